import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../observability/logger.js';
import { ErrorCode, PortcullisError } from '../shared/errors.js';

export interface AdminDeps {
  /** A supervisor passes the sum over its workers (prom-client's AggregatorRegistry). */
  readonly registry: Pick<Registry, 'metrics' | 'contentType'>;
  readonly logger: Logger;
  readonly live: () => boolean;
  readonly ready: () => { ready: boolean; reasons: string[] };
  /** Effective config with secrets redacted. */
  readonly config: () => unknown;
  /** One line per limit, like envoyproxy/ratelimit's /rlconfig. */
  readonly limits: () => string;
  /** envoyproxy/ratelimit's POST /json. */
  readonly json: (body: string) => Promise<{ status: number; body: string }>;
}

const MAX_JSON_BODY = 1 << 20;

/**
 * /metrics, /healthz, /readyz, /config, plus envoyproxy/ratelimit's /healthcheck, /rlconfig and
 * POST /json so its users' probes and scripts keep working. Nothing here changes the process.
 */
export function createAdminServer(deps: AdminDeps): Server {
  return createServer((req, res) => {
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const route = (req.url ?? '/').split('?')[0];
    if (route === '/json' && req.method === 'POST') {
      let body = '';
      let tooLarge = false;
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_JSON_BODY && !tooLarge) {
          tooLarge = true;
          send(413, 'text/plain', 'request body too large\n');
          req.destroy();
        }
      });
      req.on('end', () => {
        if (tooLarge) return;
        deps.json(body).then(
          (r) => send(r.status, r.status < 300 || r.status === 429 ? 'application/json' : 'text/plain', r.body),
          () => send(500, 'text/plain', 'internal error\n'),
        );
      });
      return undefined;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    switch (route) {
      case '/healthcheck':
        return deps.ready().ready ? send(200, 'text/plain', 'OK') : send(500, 'text/plain', '');
      case '/rlconfig':
        return send(200, 'text/plain', deps.limits());
      case '/healthz':
        return deps.live() ? send(200, 'text/plain', 'ok\n') : send(503, 'text/plain', 'shutting down\n');
      case '/readyz': {
        const { ready, reasons } = deps.ready();
        return send(ready ? 200 : 503, 'application/json', JSON.stringify({ ready, reasons }) + '\n');
      }
      case '/config':
        return send(200, 'application/json', JSON.stringify(deps.config(), null, 2) + '\n');
      case '/metrics':
        deps.registry.metrics().then(
          (text) => send(200, deps.registry.contentType, text),
          (error: unknown) => {
            deps.logger.error({ err: error }, 'metrics rendering failed');
            send(500, 'text/plain', 'metrics unavailable\n');
          },
        );
        return undefined;
      default:
        return send(404, 'text/plain', 'not found: try /healthz /readyz /metrics /config\n');
    }
  });
}

export async function listen(server: Server, address: string): Promise<string> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new PortcullisError(ErrorCode.LISTEN_FAILED, `cannot listen on ${address} (admin HTTP): ${error.code === 'EADDRINUSE' ? 'address already in use' : error.message}`, { cause: error })));
    server.listen(port, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return `${host.includes(':') ? `[${host}]` : host}:${bound.port}`;
}
