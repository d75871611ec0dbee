import { Pool } from 'undici';
import type { Readable } from 'node:stream';
import { whenAborted } from '../shared/abort.js';
import type { BffService } from './config.js';
import { nestsDeeperThan } from '../shared/json-depth.js';
import { UpstreamError, type UpstreamClient, type UpstreamRequest, type UpstreamResponse } from './upstream-client.js';

/** Deeper than any API answer; far below the ≈ 5,000 levels where JSON.stringify of the answer overflows the stack. */
const MAX_JSON_DEPTH = 512;

/**
 * The composer's HTTP client: one keep-alive undici Pool per service, whose connection count is the
 * service's max_concurrency. With pipelining off, a pool never has more requests in flight than
 * connections; the rest wait in its queue, and their timeout runs while they wait: a call settles
 * when its signal aborts, queued or not (see settleOnAbort).
 */
export class UndiciUpstreamClient implements UpstreamClient {
  private readonly pools = new Map<string, Pool>();

  async request(request: UpstreamRequest): Promise<UpstreamResponse> {
    const pool = this.poolFor(request.service);
    let response: Awaited<ReturnType<Pool['request']>>;
    try {
      response = await settleOnAbort(pool.request({ method: 'GET', path: request.path, headers: request.headers, signal: request.signal }), request.signal);
    } catch (error) {
      if (request.signal.aborted) throw error;
      throw new UpstreamError('network', (error as Error).message, { cause: error });
    }
    const { statusCode, headers, body } = response;
    if (statusCode < 200 || statusCode >= 300) {
      // The status is the answer: waiting for the error body would hold the call until its timeout when the body trickles.
      discard(body);
      return { status: statusCode, body: undefined };
    }
    const declared = Number(headers['content-length']);
    if (declared > request.maxBytes) {
      discard(body);
      throw new UpstreamError('body', `response of ${declared} bytes exceeds max_response_bytes ${request.maxBytes}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of body) {
        size += (chunk as Buffer).length;
        if (size > request.maxBytes) {
          body.destroy();
          throw new UpstreamError('body', `response exceeds max_response_bytes ${request.maxBytes}`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (error) {
      if (error instanceof UpstreamError || request.signal.aborted) throw error;
      throw new UpstreamError('network', (error as Error).message, { cause: error });
    }
    const bytes = Buffer.concat(chunks, size);
    const type = String(headers['content-type'] ?? '');
    if (!/[/+]json\b/i.test(type)) return { status: statusCode, body: bytes.toString('utf8') };
    // The answer is JSON.stringify'd with the value inside: too deep, and that would overflow the stack.
    if (nestsDeeperThan(bytes, MAX_JSON_DEPTH)) throw new UpstreamError('body', `JSON from ${request.service.name} nests deeper than ${MAX_JSON_DEPTH} levels`);
    const text = bytes.toString('utf8');
    try {
      return { status: statusCode, body: JSON.parse(text) as unknown };
    } catch (error) {
      throw new UpstreamError('body', `invalid JSON from ${request.service.name}: ${(error as Error).message}`);
    }
  }

  async retain(services: Iterable<BffService>): Promise<void> {
    const keep = new Set([...services].map(poolKey));
    const stale = [...this.pools].filter(([key]) => !keep.has(key));
    for (const [key] of stale) this.pools.delete(key);
    await Promise.all(stale.map(([, pool]) => pool.close()));
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy()));
  }

  private poolFor(service: BffService): Pool {
    const key = poolKey(service);
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = new Pool(service.origin, { connections: service.maxConcurrency, pipelining: 1, keepAliveTimeout: 30_000 });
      this.pools.set(key, pool);
    }
    return pool;
  }
}

/**
 * `promise`, or a rejection with the signal's reason as soon as it aborts. undici 7 only records the abort of a
 * request still in the pool's queue and settles it when a connection takes it (after a hanging call ahead of it,
 * possibly never); it is still handed the signal, so it is cancelled then, never sent, and a late answer is discarded.
 */
function settleOnAbort<T extends { body: Readable }>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    let unsubscribe = (): void => undefined;
    const onAbort = (): void => {
      reject(signal.reason);
      promise.then((late) => discard(late.body), () => undefined);
    };
    promise.then(
      (value) => {
        unsubscribe();
        resolve(value);
      },
      (error: unknown) => {
        unsubscribe();
        reject(error);
      },
    );
    if (signal.aborted) onAbort();
    // The signal may be the endpoint's, shared by its calls: whenAborted keeps unsubscribing O(1).
    else unsubscribe = whenAborted(signal, onAbort);
  });
}

/** Drops a body unread, closing its connection; destroying a body emits an error nobody else listens for. */
function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Services with the same origin and limit share one pool, across reloads too. */
function poolKey(service: BffService): string {
  return `${service.origin} ${service.maxConcurrency}`;
}
