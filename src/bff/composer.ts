import { whenAborted } from '../shared/abort.js';
import { assemble, settle, type CallResult, type Settled } from './assemble.js';
import type { BffCall, BffEndpoint } from './config.js';
import { evaluateExpr, renderString, textOf, type JsonValue } from './template.js';
import type { FailureReason, UpstreamClient } from './upstream-client.js';

/** Where the composer reports what happened; implemented with prom-client in observability/. */
export interface BffObserver {
  call(endpoint: string, call: string, seconds: number, outcome: 'ok' | 'skipped' | FailureReason, degraded: boolean): void;
  answer(endpoint: string, status: number, seconds: number, degraded: boolean): void;
}

export interface ComposerDeps {
  readonly client: UpstreamClient;
  readonly observer: BffObserver;
  /** Monotonic milliseconds (performance.now in production): for durations only. */
  readonly now: () => number;
}

export interface ComposeInput {
  readonly endpoint: BffEndpoint;
  /** Path and query parameters, validated, decoded. */
  readonly params: ReadonlyMap<string, string>;
  /** Request headers by lower-case name; those the endpoint forwards go to every call. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly maxResponseBytes: number;
  /** Aborts when the client went away. */
  readonly signal: AbortSignal;
}

export interface CallReport {
  readonly name: string;
  readonly result: CallResult;
  readonly degraded: boolean;
  readonly ms: number;
}

export type ComposeResult =
  | { readonly kind: 'answer'; readonly body: JsonValue; readonly degraded: readonly string[]; readonly calls: readonly CallReport[] }
  /** A required call failed: `timeout` when it ran out of time, else `upstream`. */
  | { readonly kind: 'failed'; readonly failure: 'upstream' | 'timeout'; readonly call: string; readonly calls: readonly CallReport[] }
  /** The client went away: there is nobody to answer. */
  | { readonly kind: 'abandoned'; readonly calls: readonly CallReport[] };

/** Status recorded for answers nobody waited for (nginx's "client closed request"). */
export const CLIENT_CLOSED = 499;

/** Abort reasons, told apart by identity when a call fails. */
const DEADLINE = new Error('endpoint timeout');
const CALL_TIMEOUT = new Error('call timeout');
const GAVE_UP = new Error('a required call failed');
const FINISHED = new Error('the answer is done');

/**
 * Runs an endpoint's calls: each starts as soon as the calls it depends on have settled, so
 * independent calls run in parallel and the answer takes about as long as its slowest chain. The
 * endpoint's timeout bounds everything: when it fires, in-flight calls are aborted and take their
 * fallbacks, so the answer still arrives on time.
 */
export class Composer {
  constructor(private readonly deps: ComposerDeps) {}

  async compose(input: ComposeInput): Promise<ComposeResult> {
    const { endpoint } = input;
    const started = this.deps.now();
    const stop = new AbortController();
    const deadline = setTimeout(() => stop.abort(DEADLINE), endpoint.timeoutMs);
    const clientGone = (): void => stop.abort(input.signal.reason);
    // One listener on a signal of this request alone: plain add/remove is O(1) here.
    input.signal.addEventListener('abort', clientGone, { once: true });
    if (input.signal.aborted) clientGone();
    const scope = new Map<string, unknown>(input.params);
    const settled = new Map<string, Promise<Settled>>();
    const reports: CallReport[] = [];
    const forwarded = forwardedHeaders(endpoint.forwardHeaders, input.headers);
    let fatal: string | undefined;
    try {
      for (const call of endpoint.calls) {
        // Plan order: every dependency's promise exists already.
        const before = call.deps.map((d) => settled.get(d) as Promise<Settled>);
        const ready = before.length === 0 ? NO_INPUTS : Promise.all(before);
        settled.set(call.name, ready.then(async (inputs) => {
          const dependencyDegraded = inputs.some((s) => s.degraded);
          const callStarted = this.deps.now();
          const result = await this.run(call, scope, forwarded, input.maxResponseBytes, stop.signal, endpoint.timeoutMs);
          const outcome = settle(call, result, dependencyDegraded);
          const ms = this.deps.now() - callStarted;
          scope.set(call.name, outcome.value);
          reports.push({ name: call.name, result, degraded: outcome.degraded, ms });
          // A part lost because the client left is not a degraded answer: nobody receives it.
          this.deps.observer.call(endpoint.path, call.name, ms / 1000, result.kind === 'failed' ? result.reason : result.kind, outcome.degraded && !input.signal.aborted);
          if (outcome.fatal && fatal === undefined) {
            fatal = call.name;
            stop.abort(GAVE_UP);
          }
          return outcome;
        }));
      }
      await Promise.all(settled.values());
    } finally {
      clearTimeout(deadline);
      input.signal.removeEventListener('abort', clientGone);
      // When a call threw, Promise.all gave up on the others: without this they would run on past the deadline.
      stop.abort(FINISHED);
    }
    const seconds = (this.deps.now() - started) / 1000;
    if (input.signal.aborted) {
      this.deps.observer.answer(endpoint.path, CLIENT_CLOSED, seconds, false);
      return { kind: 'abandoned', calls: reports };
    }
    if (fatal !== undefined) {
      const report = reports.find((r) => r.name === fatal);
      const timedOut = report?.result.kind === 'failed' && (report.result.reason === 'timeout' || report.result.reason === 'deadline');
      this.deps.observer.answer(endpoint.path, timedOut ? 504 : 502, seconds, true);
      return { kind: 'failed', failure: timedOut ? 'timeout' : 'upstream', call: fatal, calls: reports };
    }
    // Degraded parts in plan order, whatever order they settled in.
    const degraded = endpoint.calls.filter((c) => reports.some((r) => r.name === c.name && r.degraded)).map((c) => c.name);
    this.deps.observer.answer(endpoint.path, 200, seconds, degraded.length > 0);
    return { kind: 'answer', body: assemble(endpoint, scope, degraded), degraded, calls: reports };
  }

  private async run(
    call: BffCall, scope: ReadonlyMap<string, unknown>, forwarded: Record<string, string>, maxBytes: number, endpointSignal: AbortSignal, timeoutMs: number,
  ): Promise<CallResult> {
    for (const expr of call.pathInputs) {
      const value = evaluateExpr(expr, scope);
      // '.' and '..' would climb the upstream's path (its normalizer resolves them, encoded or not), not name a resource.
      if (value === undefined || value === null || value === '' || value === '.' || value === '..') return { kind: 'skipped', missing: expr.source };
      // Sent re-encoded (`%2e%2e` as `%252e%252e`), it is `..` again to a service that decodes twice: the same double
      // encoding bff-http refuses in a client's path parameter. An upstream's value may well be a user's text.
      if (typeof value === 'string' && /%[0-9A-Fa-f]{2}/.test(value)) {
        return { kind: 'failed', reason: 'input', detail: `the value of {${expr.source}} holds a percent-escape, which a service that decodes twice would read decoded` };
      }
    }
    if (endpointSignal.aborted) return { kind: 'failed', reason: reasonOf(endpointSignal.reason), detail: 'not started: the endpoint gave up' };
    let path: string;
    try {
      path = call.service.basePath + renderString(call.path, scope, encodeURIComponent) + queryString(call, scope);
    } catch (error) {
      // encodeURIComponent refuses a lone UTF-16 surrogate: valid JSON from an upstream, but no URL text. There was
      // something to fetch and it cannot be asked for: a failure (degraded, fatal if required), not a skip.
      if (!(error instanceof URIError)) throw error;
      return { kind: 'failed', reason: 'input', detail: `a value its path or query reads cannot be URL-encoded: ${error.message}` };
    }
    // No prototype: a header named __proto__ is a header like any other, not a prototype to set.
    const headers: Record<string, string> = Object.assign(Object.create(null) as Record<string, string>, forwarded);
    for (const [name, template] of call.headers) {
      const value = renderString(template, scope);
      // The HTTP client refuses such a value, and its error would read as the service's network failure: a client's
      // CR, LF or emoji is an input failure, like a path value that cannot be URL-encoded.
      if (!isHeaderValue(value)) return { kind: 'failed', reason: 'input', detail: `header '${name}' would hold CR, LF, NUL or a character beyond U+00FF` };
      headers[name] = value;
    }

    // A call as long as its endpoint needs no timer of its own: the endpoint's signal bounds it.
    const own = call.timeoutMs < timeoutMs ? callTimer(call.timeoutMs, endpointSignal) : undefined;
    const signal = own?.signal ?? endpointSignal;
    try {
      const response = await this.deps.client.request({ service: call.service, path, headers, signal, maxBytes });
      if (response.status < 200 || response.status >= 300) {
        return { kind: 'failed', reason: 'status', status: response.status, detail: `${call.service.name} answered ${response.status}` };
      }
      return { kind: 'ok', value: response.body };
    } catch (error) {
      if (signal.aborted) {
        const reason = reasonOf(signal.reason);
        const detail = reason === 'timeout' ? `no answer within ${call.timeoutMs} ms` : reason === 'deadline' ? 'endpoint timeout' : 'aborted';
        return { kind: 'failed', reason, detail };
      }
      const reason = (error as { reason?: unknown }).reason === 'body' ? 'body' : 'network';
      return { kind: 'failed', reason, detail: (error as Error).message };
    } finally {
      own?.clear();
    }
  }
}

const NO_INPUTS: Promise<Settled[]> = Promise.resolve([]);

/** Any character outside RFC 9110's field-value (tab, space, visible ASCII, obs-text): what undici and Node's http refuse. */
const NOT_HEADER_TEXT = /[^\t\x20-\x7e\x80-\xff]/;

export function isHeaderValue(value: string): boolean {
  return !NOT_HEADER_TEXT.test(value);
}

/** A signal that aborts after `ms` or with `parent`, whichever comes first. */
function callTimer(ms: number, parent: AbortSignal): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timeout = setTimeout(() => controller.abort(CALL_TIMEOUT), ms);
  // The endpoint's signal is shared by all its calls: whenAborted keeps unsubscribing O(1).
  const unsubscribe = whenAborted(parent, () => controller.abort(parent.reason));
  if (parent.aborted) controller.abort(parent.reason);
  return {
    signal: controller.signal,
    clear(): void {
      clearTimeout(timeout);
      unsubscribe();
    },
  };
}

/** Anything but the two timeouts aborting a call means the client went away, a required call failed or the answer is done. */
function reasonOf(abortReason: unknown): FailureReason {
  if (abortReason === CALL_TIMEOUT) return 'timeout';
  if (abortReason === DEADLINE) return 'deadline';
  return 'aborted';
}

function queryString(call: BffCall, scope: ReadonlyMap<string, unknown>): string {
  let out = '';
  for (const [name, template] of call.query) {
    // A parameter whose only placeholder is missing is left out rather than sent empty.
    const value = template.kind === 'ref' ? evaluateExpr(template.expr, scope) : renderString(template, scope);
    if (value === undefined || value === null) continue;
    out += `${out === '' ? '?' : '&'}${encodeURIComponent(name)}=${encodeURIComponent(textOf(value))}`;
  }
  return out;
}

function forwardedHeaders(names: readonly string[], headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const name of names) {
    const value = headers[name];
    if (typeof value === 'string') out[name] = value;
    else if (Array.isArray(value) && value.length > 0) out[name] = value.join(', ');
  }
  return out;
}
