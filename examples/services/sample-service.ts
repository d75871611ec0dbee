// A small sample upstream for the gateway demo, docker-compose and the e2e tests. Every answer says who served it:
//
//   GET|POST|… <any path>   200 {"service","version","instance","method","path","headers"}, header x-served-by
//                           ?delay_ms=N waits N ms first (at most 30 s); a body is read and its size reported
//   GET /healthz            200 ok (Envoy's active health check); 503 while told to fail health checks
//   POST /__control?fail=N  the next N requests answer 503 (fail=always: until fail=0); ?health=fail|ok;
//                           ?delay_ms=N for every request. Answers the current state. Reached directly, never via Envoy:
//                           the gateway's prefix rewrites would map /v1/__control to it, so a request that came
//                           through a proxy (x-forwarded-for, which the edge Envoy always sets) gets a 404.

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SampleAnswer {
  service: string;
  version: string;
  instance: string;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
}

export interface SampleIdentity {
  readonly service: string;
  readonly version: string;
  readonly instance: string;
}

export interface SampleState {
  /** Requests still to fail with 503; Infinity = until told otherwise. */
  failNext: number;
  healthFailing: boolean;
  delayMs: number;
}

export interface SampleService {
  readonly identity: SampleIdentity;
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly state: SampleState;
  /** Requests answered so far, health checks and control calls excluded. */
  requestCount(): number;
  /** Requests seen so far (excluding health checks and control calls), oldest first, at most the last 1000. */
  requests(): readonly SampleAnswer[];
  stop(): Promise<void>;
}

const MAX_DELAY_MS = 30_000;

export async function startSampleService(identity: SampleIdentity, host = '127.0.0.1', port = 0): Promise<SampleService> {
  const state: SampleState = { failNext: 0, healthFailing: false, delayMs: 0 };
  let count = 0;
  const seen: SampleAnswer[] = [];
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://sample');
    const send = (status: number, body: unknown): void => {
      const payload = typeof body === 'string' ? body : JSON.stringify(body);
      response.writeHead(status, {
        'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
        'content-length': Buffer.byteLength(payload),
        'x-served-by': identity.instance,
      });
      response.end(payload);
    };
    let bodyBytes = 0;
    request.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    request.on('end', () => {
      if (url.pathname === '/healthz') {
        send(state.healthFailing ? 503 : 200, state.healthFailing ? 'failing\n' : 'ok\n');
        return;
      }
      if (url.pathname === '/__control' && request.headers['x-forwarded-for'] !== undefined) {
        send(404, 'not found\n');
        return;
      }
      if (url.pathname === '/__control') {
        applyControl(state, url.searchParams);
        send(200, { instance: identity.instance, ...state, failNext: Number.isFinite(state.failNext) ? state.failNext : 'always' });
        return;
      }
      count += 1;
      const answer: SampleAnswer = { ...identity, method: request.method ?? '', path: request.url ?? '', headers: request.headers, bodyBytes };
      seen.push(answer);
      if (seen.length > 1000) seen.shift();
      const delay = Math.min(MAX_DELAY_MS, Math.max(state.delayMs, Number(url.searchParams.get('delay_ms') ?? 0) || 0));
      const reply = (): void => {
        if (state.failNext > 0) {
          state.failNext -= 1;
          send(503, { ...identity, error: 'failing on demand' });
        } else {
          send(200, answer);
        }
      };
      if (delay > 0) setTimeout(reply, delay);
      else reply();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    identity,
    host,
    port: bound,
    url: `http://${host}:${bound}`,
    state,
    requestCount: () => count,
    requests: () => seen,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function applyControl(state: SampleState, params: URLSearchParams): void {
  const fail = params.get('fail');
  if (fail === 'always') state.failNext = Infinity;
  else if (fail !== null && /^\d+$/.test(fail)) state.failNext = Number(fail);
  const health = params.get('health');
  if (health === 'fail') state.healthFailing = true;
  else if (health === 'ok') state.healthFailing = false;
  const delay = params.get('delay_ms');
  if (delay !== null && /^\d+$/.test(delay)) state.delayMs = Math.min(MAX_DELAY_MS, Number(delay));
}
