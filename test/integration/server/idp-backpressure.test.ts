// An identity provider under pressure, as a real node:http server: an introspection endpoint that is slow (not
// failing) under a burst of distinct opaque tokens, and endpoints that answer 429 or 503 with Retry-After. A running
// server must keep at most authz.introspection.max_in_flight calls open and answer the rest at once, and must not ask
// again before the Retry-After is over (up to the backoff's cap).

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createHttpClient } from '../../../src/authz/http-client.js';
import { HttpStatusError } from '../../../src/authz/ports.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { eventually, startTestApp, type TestApp } from '../../support/app.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Idp {
  url(path: string): string;
  /** When each request came, by path. */
  readonly seen: Map<string, number[]>;
  stop(): Promise<void>;
}

async function startIdp(route: (path: string) => Handler): Promise<Idp> {
  const seen = new Map<string, number[]>();
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    seen.set(path, [...(seen.get(path) ?? []), Date.now()]);
    route(path)(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: (p) => `${origin}${p}`,
    seen,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const answer = (status: number, body: unknown, headers: Record<string, string> = {}): Handler => (req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body)));
};

describe('the http client hands a 429 or 503 Retry-After to its caller', () => {
  let idp: Idp;
  before(async () => {
    idp = await startIdp((path) => {
      const [, status, retryAfter] = /^\/(\d+)(?:\/(.*))?$/.exec(path) ?? [];
      return answer(Number(status), {}, retryAfter === undefined ? {} : { 'retry-after': decodeURIComponent(retryAfter) });
    });
  });
  after(() => idp.stop());

  const http = createHttpClient();
  // [path (status/Retry-After), Retry-After handed over]
  const rows: [string, string | undefined][] = [
    ['/429/3', '3'],
    ['/503/3', '3'],
    [`/503/${encodeURIComponent('Sun, 06 Nov 1994 08:49:37 GMT')}`, 'Sun, 06 Nov 1994 08:49:37 GMT'],
    ['/503', undefined],
    ['/500/3', undefined],
    ['/401/3', undefined],
    ['/301/3', undefined],
  ];
  for (const [path, retryAfter] of rows) {
    it(`${path}: ${String(retryAfter)}`, async () => {
      const posted = await http.postForm(idp.url(path), {}, {}, AbortSignal.timeout(1000));
      assert.equal(posted.retryAfter, retryAfter);
      const error = await http.getJson(idp.url(path), AbortSignal.timeout(1000)).catch((e: unknown) => e);
      assert.ok(error instanceof HttpStatusError, String(error));
      assert.equal(error.status, Number(path.split('/')[1]));
      assert.equal(error.retryAfter, retryAfter);
    });
  }
});

describe('a running server against a slow introspection endpoint and a burst of distinct tokens', () => {
  const MAX_IN_FLIGHT = 4;
  const BURST = 20;
  let idp: Idp;
  let app: TestApp;
  const held: (() => void)[] = [];
  before(async () => {
    // Holds every call until the test lets it go: slow, not failing.
    idp = await startIdp(() => (req, res) => {
      req.resume();
      held.push(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active: true, sub: 'svc' })));
    });
    app = await startTestApp({
      descriptors: {},
      files: { secret: 'gateway-secret\n' },
      authz: `timeout_ms: 4000
introspection: { url: "${idp.url('/introspect')}", client_id: gateway, client_secret_file: ./secret, max_in_flight: ${MAX_IN_FLIGHT} }
policies:
  - { name: api, match: { path_prefix: / }, authenticate: [introspection] }`,
    });
  });
  after(async () => {
    for (const release of held.splice(0)) release();
    await app.close();
    await idp.stop();
  });

  it(`${BURST} tokens at once: ${MAX_IN_FLIGHT} calls reach the endpoint, the other Checks are answered at once (503), counted, logged once`, async () => {
    const started = Date.now();
    const answeredMs: (number | undefined)[] = Array.from({ length: BURST }, () => undefined);
    const checks = Array.from({ length: BURST }, (_, i) => app.authz.check({ path: '/orders', headers: { authorization: `Bearer burst-${i}` } }).then((r) => {
      answeredMs[i] = Date.now() - started;
      return r;
    }));
    await eventually(() => answeredMs.filter((t) => t !== undefined).length >= BURST - MAX_IN_FLIGHT, 2000, 'the Checks past the bound answered');
    // The calls made are still held open: the others did not wait for them.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(idp.seen.get('/introspect')?.length, MAX_IN_FLIGHT, 'no more calls than max_in_flight reach the endpoint');
    assert.equal(answeredMs.filter((t) => t !== undefined).length, BURST - MAX_IN_FLIGHT, 'the Checks with calls are still waiting');
    const quick = answeredMs.filter((t): t is number => t !== undefined);
    assert.ok(Math.max(...quick) < 1000, `the shed Checks answered within ${Math.max(...quick)} ms`);
    assert.equal(await app.metric('portcullis_authz_introspection_shed_total'), BURST - MAX_IN_FLIGHT);
    assert.equal(await app.metric('portcullis_authz_introspection_errors_total'), 0);
    const lines = app.logs().filter((l) => String(l['msg']).startsWith('introspection calls at authz.introspection.max_in_flight'));
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(app.logs().filter((l) => l['msg'] === 'introspection failing; answering with introspection.on_failure').length, 0);
    for (const release of held.splice(0)) release();
    const results = await Promise.all(checks);
    const allowed = results.filter((r) => r.status?.code === 0).length;
    assert.equal(allowed, MAX_IN_FLIGHT);
    for (const r of results) if (r.status?.code !== 0) assert.equal(r.denied_response?.status?.code, 'ServiceUnavailable');
    // Once the calls ended, new tokens get calls again.
    const next = app.authz.check({ path: '/orders', headers: { authorization: 'Bearer after-burst' } });
    await eventually(() => held.length === 1, 2000, 'a call for a new token');
    held.splice(0)[0]!();
    assert.equal((await next).status?.code, 0);
  });
});

describe('a running server against an introspection endpoint answering 429 with Retry-After', () => {
  let idp: Idp;
  let app: TestApp;
  let busy = true;
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  before(async () => {
    idp = await startIdp(() => (busy ? answer(429, { error: 'slow_down' }, { 'retry-after': '3' }) : answer(200, { active: true, sub: 'svc' })));
    app = await startTestApp({
      descriptors: {},
      clock,
      files: { secret: 'gateway-secret\n' },
      authz: `introspection: { url: "${idp.url('/introspect')}", client_id: gateway, client_secret_file: ./secret }
policies:
  - { name: api, match: { path_prefix: / }, authenticate: [introspection] }`,
    });
  });
  after(async () => {
    await app.close();
    await idp.stop();
  });

  const check = (token: string) => app.authz.check({ path: '/orders', headers: { authorization: `Bearer ${token}` } });

  it('Retry-After: 3 → no second call before 3 s (on the injected clock), one right after', async () => {
    assert.equal((await check('first')).denied_response?.status?.code, 'ServiceUnavailable');
    assert.equal(idp.seen.get('/introspect')?.length, 1);
    busy = false;
    // The backoff's own delay (1 s) would have let these through.
    for (const step of [1000, 1000, 999]) {
      clock.advance(step);
      const r = await check(`held-${clock.nowMs()}`);
      assert.equal(r.denied_response?.status?.code, 'ServiceUnavailable');
      assert.equal(idp.seen.get('/introspect')?.length, 1, `no call ${clock.nowMs() - Date.UTC(2026, 0, 1)} ms after the 429`);
    }
    clock.advance(1);
    assert.equal((await check('after')).status?.code, 0);
    assert.equal(idp.seen.get('/introspect')?.length, 2);
  });
});

describe('a running server against a JWKS endpoint answering 503 with Retry-After', () => {
  let idp: Idp;
  let app: TestApp;
  before(async () => {
    idp = await startIdp(() => answer(503, {}, { 'retry-after': '3' }));
    app = await startTestApp({
      descriptors: {},
      authz: `jwt:
  providers:
    - { name: busy, issuer: "https://issuer.example", audiences: [orders-api], jwks: { uri: "${idp.url('/jwks')}" } }
policies:
  - { name: orders, match: { path_prefix: /orders }, authenticate: [jwt] }`,
    });
  });
  after(async () => {
    await app.close();
    await idp.stop();
  });

  it('Retry-After: 3 → the retry comes 3 s after the 503, not after the backoff\'s 2 s', async () => {
    await eventually(() => (idp.seen.get('/jwks')?.length ?? 0) >= 1, 2000, 'the first fetch');
    await eventually(() => (idp.seen.get('/jwks')?.length ?? 0) >= 2, 5000, 'the retry');
    const [first, second] = idp.seen.get('/jwks')!;
    assert.ok(second! - first! >= 3000, `retried ${second! - first!} ms after`);
    assert.ok(second! - first! < 4000, `retried ${second! - first!} ms after`);
  });
});
