import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { BffConfig, BffEndpoint } from '../bff/config.js';
import { CLIENT_CLOSED, type BffObserver, type CallReport, type Composer } from '../bff/composer.js';
import { matchRoute } from '../bff/routes.js';
import { acceptRequestId, parseTraceparent } from '../extproc/ids.js';
import type { Logger } from '../observability/logger.js';
import { ErrorCode } from '../shared/errors.js';
import { httpStatusOf } from './status.js';

export interface BffHttpDeps {
  /** The current snapshot's bff section, read once per request. */
  readonly config: () => BffConfig;
  readonly composer: Composer;
  readonly observer: BffObserver;
  readonly logger: Logger;
  readonly now: () => number;
  readonly inFlight: { enter(): void; leave(): void };
}

/** Metrics label for requests that matched no endpoint (keeps the label set bounded). */
const UNMATCHED = '__unmatched__';
const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 500: 'Internal Server Error', 502: 'Bad Gateway', 504: 'Gateway Timeout',
};

/**
 * The composer's HTTP edge: match an endpoint, validate its parameters (400 problem+json), compose,
 * answer JSON with the degraded parts named in a header and in `_degraded`. Envoy routes to this
 * listener after ext_authz, rate limiting and ext_proc, so the identity headers it forwards are the
 * ones those filters set, never the client's.
 */
export function createBffServer(deps: BffHttpDeps): Server {
  const server = createServer((req, res) => {
    deps.inFlight.enter();
    res.once('close', () => deps.inFlight.leave());
    handle(deps, req, res).catch((error: unknown) => {
      deps.logger.error({ err: error }, 'bff request failed');
      if (!res.headersSent) sendProblem(res, ErrorCode.INTERNAL, 'internal error', req.method === 'HEAD');
      else res.destroy();
    });
  });
  // Longer than the idle timeout Envoy's bff cluster uses, so Envoy, not this side, closes idle
  // connections: no request races a close.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  return server;
}

async function handle(deps: BffHttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = deps.now();
  const config = deps.config();
  const head = req.method === 'HEAD';
  // The same rules as ext_proc: a client's id is kept only when it is a sane token, a trace only when well-formed.
  const requestId = acceptRequestId(headerValue(req, 'x-request-id')) ?? randomUUID();
  req.headers['x-request-id'] = requestId;
  // Node joins repeated lines with ", ", and two joined lines can read as one valid traceparent of a later version
  // (`cc-…-01-x, 00-…`): a trace is followed, and forwarded, only from exactly one well-formed line (as in ext_proc).
  const traceLines = req.headersDistinct['traceparent'] ?? [];
  const traceId = traceLines.length === 1 ? parseTraceparent(traceLines[0])?.traceId : undefined;
  if (traceId === undefined) {
    delete req.headers['traceparent'];
    delete req.headers['tracestate'];
  }
  const rawUrl = req.url ?? '/';
  const queryAt = rawUrl.indexOf('?');
  const pathname = queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt);
  const segments = pathname.split('/').slice(1);

  const reject = (endpoint: string, code: ErrorCode, detail: string): void => {
    const status = sendProblem(res, code, detail, head, requestId);
    deps.observer.answer(endpoint, status, (deps.now() - started) / 1000, false);
    deps.logger.info({ requestId, traceId, endpoint, status, path: pathname, detail }, 'bff request rejected');
  };

  let endpoint: BffEndpoint | undefined;
  let pathParams: ReadonlyMap<string, string> | undefined;
  for (const candidate of config.endpoints) {
    const match = matchRoute(candidate.route, segments);
    if (match.ok) {
      endpoint = candidate;
      pathParams = match.params;
      break;
    }
    if (match.badEncoding) return reject(candidate.path, ErrorCode.BFF_BAD_REQUEST, 'a path parameter is not valid percent-encoded UTF-8');
  }
  if (endpoint === undefined || pathParams === undefined) return reject(UNMATCHED, ErrorCode.BFF_NOT_FOUND, `no endpoint for ${pathname}`);
  for (const [name, value] of pathParams) {
    if (value === '.' || value === '..') return reject(endpoint.path, ErrorCode.BFF_BAD_REQUEST, `path parameter '${name}' must not be '.' or '..'`);
    // Sent on re-encoded (`%252e`), it is `.` again to a service that decodes twice: the dot segments above, or `%2F`
    // read as `/`. The same double encoding ext_authz refuses in a path (src/shared/normalize-path.ts).
    if (/%[0-9A-Fa-f]{2}/.test(value)) return reject(endpoint.path, ErrorCode.BFF_BAD_REQUEST, `path parameter '${name}' must not hold a percent-escape once decoded (double encoding)`);
  }
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    return reject(endpoint.path, ErrorCode.BFF_METHOD_NOT_ALLOWED, `${endpoint.path} answers GET and HEAD`);
  }
  const params = new Map(pathParams);
  const query = new URLSearchParams(queryAt < 0 ? '' : rawUrl.slice(queryAt + 1));
  for (const param of endpoint.params) {
    const value = param.in === 'path' ? params.get(param.name) : (query.get(param.name) ?? param.default);
    if (value === undefined) {
      if (param.required) return reject(endpoint.path, ErrorCode.BFF_BAD_REQUEST, `query parameter '${param.name}' is required`);
      continue;
    }
    if (param.pattern !== undefined && !param.pattern.test(value)) {
      return reject(endpoint.path, ErrorCode.BFF_BAD_REQUEST, `${param.in} parameter '${param.name}' does not match ${param.pattern.source}`);
    }
    params.set(param.name, value);
  }

  const gone = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) gone.abort(new Error('client went away'));
  };
  res.once('close', onClose);
  const result = await deps.composer.compose({ endpoint, params, headers: req.headers, maxResponseBytes: config.maxResponseBytes, signal: gone.signal });
  res.off('close', onClose);
  const ms = Math.round((deps.now() - started) * 10) / 10;
  const log = { requestId, traceId, endpoint: endpoint.path, ms };
  if (result.kind === 'abandoned') {
    deps.logger.info({ ...log, status: CLIENT_CLOSED }, 'bff client went away before the answer');
    return;
  }
  if (result.kind === 'failed') {
    const code = result.failure === 'timeout' ? ErrorCode.BFF_UPSTREAM_TIMEOUT : ErrorCode.BFF_UPSTREAM_FAILED;
    sendProblem(res, code, `required call '${result.call}' ${result.failure === 'timeout' ? 'timed out' : 'failed'}`, head, requestId);
    deps.logger.warn({ ...log, status: httpStatusOf(code), failed: failures(result.calls) }, 'bff answer failed');
    return;
  }
  const body = JSON.stringify(result.body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
  };
  if (result.degraded.length > 0) headers[config.degradedHeader] = result.degraded.join(',');
  res.writeHead(200, headers);
  res.end(head ? undefined : body);
  if (result.degraded.length > 0) deps.logger.warn({ ...log, status: 200, degraded: result.degraded, failed: failures(result.calls) }, 'bff answer degraded');
  else if (deps.logger.isLevelEnabled('debug')) deps.logger.debug({ ...log, status: 200 }, 'bff answer');
}

function failures(calls: readonly CallReport[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of calls) {
    if (c.result.kind === 'failed') out[c.name] = `${c.result.reason}: ${c.result.detail}`;
    else if (c.result.kind === 'skipped' && c.degraded) out[c.name] = `skipped: '${c.result.missing}' is missing`;
  }
  return out;
}

/** RFC 9457 problem details; returns the status sent. */
function sendProblem(res: ServerResponse, code: ErrorCode, detail: string, head: boolean, requestId?: string): number {
  const status = httpStatusOf(code);
  const body = JSON.stringify({ type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail, code });
  res.writeHead(status, {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...(requestId === undefined ? {} : { 'x-request-id': requestId }),
  });
  res.end(head ? undefined : body);
  return status;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
