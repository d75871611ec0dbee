// An identity provider that misbehaves, as a real node:http server: bodies that trickle, never end, are too large,
// compressed, nested a hundred thousand deep, redirects, HTML; an introspection endpoint that refuses the gateway's
// credentials; a JWKS holding keys no gateway should use. The client, and a running server, must answer in time,
// never fail a Check with a gRPC error, and say what is wrong once.

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { createHttpClient, MAX_BODY_BYTES } from '../../../src/authz/http-client.js';
import { eventually, startTestApp, type TestApp } from '../../support/app.js';
import { startIdentityProvider, type IdentityProvider } from '../../support/identity-provider.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const json = (status: number, body: string | Buffer, headers: Record<string, string> = {}): Handler => (req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body));
};
/** Headers at once, then a space every 50 ms, for ever. */
const trickle = (status: number): Handler => (req, res) => {
  req.resume();
  res.writeHead(status, { 'content-type': 'application/json' });
  res.write('{"keys":[');
  const timer = setInterval(() => res.write(' '), 50);
  res.on('close', () => clearInterval(timer));
};
const nested = (depth: number): string => `{"active":true,"sub":"svc","groups":${'['.repeat(depth)}"admins"${']'.repeat(depth)}}`;

async function startHostile(routes: Record<string, Handler>): Promise<{ url: (p: string) => string; hits: Map<string, number>; stop: () => Promise<void> }> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const route = req.url ?? '/';
    hits.set(route, (hits.get(route) ?? 0) + 1);
    (routes[route] ?? json(404, '{}'))(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: (p) => `${origin}${p}`,
    hits,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('authz http client against hostile answers', () => {
  let idp: Awaited<ReturnType<typeof startHostile>>;
  before(async () => {
    idp = await startHostile({
      '/trickle': trickle(200),
      '/trickle-401': trickle(401),
      // Promises 100 bytes, sends one.
      '/short': (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' }).write('{');
      },
      '/declared-huge': (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(100 * MAX_BODY_BYTES) }).write('{');
      },
      '/exact': json(200, `{"keys":[]${' '.repeat(MAX_BODY_BYTES - 11)}}`),
      '/over': json(200, `{"keys":[]${' '.repeat(MAX_BODY_BYTES - 10)}}`),
      '/gzip': json(200, gzipSync('{"keys":[]}'), { 'content-encoding': 'gzip' }),
      '/redirect': (req, res) => {
        req.resume();
        res.writeHead(302, { location: '/exact' }).end();
      },
      '/html': json(200, '<html><body>Sign in</body></html>', { 'content-type': 'text/html' }),
      '/nested': json(200, nested(100_000)),
      '/keycloak-depth': json(200, '{"active":true,"resource_access":{"orders":{"roles":["read"]}}}'),
    });
  });
  after(() => idp.stop());

  const http = createHttpClient();
  // [path, how the call must end, within ms] with a 1 s signal; 'ok' resolves.
  const rows: [string, RegExp | 'ok', number][] = [
    ['/trickle', /aborted|timeout/i, 1500],
    ['/short', /aborted|timeout/i, 1500],
    ['/declared-huge', /larger than 1048576 bytes \(content-length/, 500],
    ['/exact', 'ok', 1000],
    ['/over', /larger than 1048576 bytes/, 1000],
    ['/gzip', /content-encoding "gzip", which is not read/, 500],
    ['/redirect', /answered 302/, 500],
    ['/html', /not JSON \(content-type "text\/html"\)/, 500],
    ['/nested', /nested deeper than 32/, 1000],
    ['/keycloak-depth', 'ok', 500],
  ];
  for (const [route, expected, withinMs] of rows) {
    for (const method of ['GET', 'POST'] as const) {
      it(`${method} ${route}: ${String(expected)} within ${withinMs} ms`, async () => {
        const started = Date.now();
        const call = method === 'GET'
          ? http.getJson(idp.url(route), AbortSignal.timeout(1000))
          : http.postForm(idp.url(route), { token: 't' }, {}, AbortSignal.timeout(1000)).then((r) => r.body);
        if (expected === 'ok') assert.ok(typeof (await call) === 'object');
        else if (method === 'POST' && route === '/redirect') assert.equal(await call, undefined, 'a 3xx is a status, never followed');
        else await assert.rejects(call, expected);
        assert.ok(Date.now() - started < withinMs, `took ${Date.now() - started} ms`);
      });
    }
  }

  it('a redirect is never followed', async () => {
    const before = idp.hits.get('/exact') ?? 0;
    await assert.rejects(http.getJson(idp.url('/redirect'), AbortSignal.timeout(1000)));
    await http.postForm(idp.url('/redirect'), {}, {}, AbortSignal.timeout(1000));
    assert.equal(idp.hits.get('/exact') ?? 0, before);
  });

  it('an error status whose body never ends: the status, within the signal', async () => {
    const started = Date.now();
    const answer = await http.postForm(idp.url('/trickle-401'), {}, {}, AbortSignal.timeout(1000)).catch((error: Error) => error);
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
    if (!(answer instanceof Error)) assert.equal(answer.status, 401);
  });
});

describe('a running server against a hostile introspection endpoint and JWKS', () => {
  let hostile: Awaited<ReturnType<typeof startHostile>>;
  let idp: IdentityProvider;
  let app: TestApp;
  let introspection: Handler = json(200, '{"active":false}');
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  const leaked = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  before(async () => {
    idp = await startIdentityProvider();
    const good = (await (await fetch(idp.jwksUrl)).json()) as { keys: unknown[] };
    hostile = await startHostile({
      '/introspect': (req, res) => introspection(req, res),
      '/jwks': json(200, JSON.stringify({ keys: [{ ...weak, kid: 'weak' }, { ...leaked, kid: 'leaked' }, { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }, ...good.keys] })),
    });
    app = await startTestApp({
      descriptors: {},
      files: { secret: 'wrong\n' },
      authz: `jwt:
  providers:
    - { name: main, issuer: "${idp.issuer}", audiences: [orders-api], algorithms: [RS256, ES256], jwks: { uri: "${hostile.url('/jwks')}" } }
introspection: { url: "${hostile.url('/introspect')}", client_id: gateway, client_secret_file: ./secret, cache_seconds: 0 }
policies:
  - { name: admin, match: { path_prefix: /admin }, authenticate: [introspection], require: { claims: { groups: [admins] } } }
  - { name: orders, match: { path_prefix: /orders }, authenticate: [jwt] }`,
    });
  });
  after(async () => {
    await app.close();
    await hostile.stop();
    await idp.stop();
  });

  const check = (path: string, token: string) => app.authz.check({ path, headers: { authorization: `Bearer ${token}` } });
  const deniedStatus = (r: Awaited<ReturnType<typeof check>>): unknown => r.denied_response?.status?.code;

  it('an answer nested 100,000 deep is an unreadable answer (503), not a gRPC error', async () => {
    introspection = json(200, nested(100_000));
    const r = await check('/admin', 'opaque-1');
    assert.equal(deniedStatus(r), 'ServiceUnavailable', JSON.stringify(r));
    assert.deepEqual(app.logs().filter((l) => l['msg'] === 'Check failed'), []);
    assert.match(String(app.logs().find((l) => l['msg'] === 'introspection failing; answering with introspection.on_failure')?.['error']), /nested deeper than 32/);
    introspection = json(200, '{"active":true,"sub":"svc","groups":[["admins"]]}');
    assert.equal(deniedStatus(await check('/admin', 'opaque-2')), 'Forbidden', 'a nested list never matches');
  });

  it('credentials refused (401) for a while: every Check denied at once and counted, a bounded few calls, one warning naming the credentials, one line when it answers again', async () => {
    introspection = json(401, '{"error":"invalid_client"}');
    const errorsBefore = await app.metric('portcullis_authz_introspection_errors_total');
    const callsBefore = hostile.hits.get('/introspect') ?? 0;
    const logsBefore = app.logs().length;
    // 1.5 s of Checks with distinct tokens, ten at a time: a call each before; now one call, then one probe after 1 s.
    const refusedUntil = Date.now() + 1500;
    let checks = 0;
    while (Date.now() < refusedUntil) {
      const started = Date.now();
      const batch = await Promise.all(Array.from({ length: checks === 0 ? 1 : 10 }, (_, i) => check('/admin', `opaque-${checks + i}`)));
      for (const r of batch) assert.equal(deniedStatus(r), 'ServiceUnavailable');
      assert.ok(Date.now() - started < 500, `a batch of Checks took ${Date.now() - started} ms`);
      checks += batch.length;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const calls = (hostile.hits.get('/introspect') ?? 0) - callsBefore;
    assert.ok(checks > 100, `${checks} Checks`);
    assert.ok(calls >= 1 && calls <= 3, `${calls} calls for ${checks} Checks`);
    assert.equal(await app.metric('portcullis_authz_introspection_errors_total') - errorsBefore, checks, 'each Check counted');
    const warnings = app.logs().slice(logsBefore).filter((l) => l['msg'] === 'introspection failing; answering with introspection.on_failure');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]!['error']), /answered 401: it refuses the gateway's client credentials/);
    introspection = json(200, '{"active":true,"sub":"svc","groups":["admins"]}');
    // The second failure (after 1 s) holds calls off for 2 s more: Checks pass again once it is over.
    await eventually(async () => (await check('/admin', 'opaque-ok')).status?.code === 0, 4000, 'Checks allowed again');
    assert.ok((hostile.hits.get('/introspect') ?? 0) - callsBefore <= calls + 1, 'one probe call brought it back');
    assert.equal(app.logs().slice(logsBefore).filter((l) => l['msg'] === 'introspection answering again').length, 1);
  });

  it('a JWKS with a 1024-bit RSA key, a private key and a shared secret: each named in one warning, the good key serves', async () => {
    const token = await idp.token({ sub: 'alice' });
    await eventually(async () => (await check('/orders', token)).status?.code === 0, 5000, 'the good key verifies');
    const skipped = app.logs().filter((l) => String(l['msg']).startsWith('JWKS keys skipped')).flatMap((l) => l['skipped'] as string[]);
    assert.ok(skipped.some((s) => /^key 'weak' is an RSA key of 1024 bits, under 2048$/.test(s)), skipped.join('\n'));
    assert.ok(skipped.some((s) => /^key 'leaked' holds private key material \(d\)/.test(s)), skipped.join('\n'));
    assert.ok(skipped.some((s) => /^key 'hmac' is of key type oct/.test(s)), skipped.join('\n'));
  });
});

describe('a running server while the JWKS endpoint is down, then back', () => {
  let idp: IdentityProvider;
  let hostile: Awaited<ReturnType<typeof startHostile>>;
  let app: TestApp;
  let down = true;
  before(async () => {
    idp = await startIdentityProvider();
    const good = await (await fetch(idp.jwksUrl)).text();
    hostile = await startHostile({
      '/jwks': (req, res) => (down ? json(503, '{}') : json(200, good))(req, res),
    });
    app = await startTestApp({
      descriptors: {},
      authz: `jwt:
  providers:
    - { name: flaky, issuer: "${idp.issuer}", audiences: [orders-api], jwks: { uri: "${hostile.url('/jwks')}" } }
policies:
  - { name: orders, match: { path_prefix: /orders }, authenticate: [jwt] }`,
    });
  });
  after(async () => {
    await app.close();
    await hostile.stop();
    await idp.stop();
  });

  it('fetches back off (2 s, then 4 s), each counted, one warning; the keys are taken and it says so once it answers', async () => {
    const started = Date.now();
    const token = await idp.token({ sub: 'alice' });
    // Until 4.5 s: the fetch at start and the retry 2 s later (every 2 s before: three by now).
    while (Date.now() - started < 4500) {
      const r = await app.authz.check({ path: '/orders', headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.denied_response?.status?.code, 'ServiceUnavailable', 'no keys yet');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(hostile.hits.get('/jwks'), 2, 'no fetch while backing off, however many Checks need keys');
    assert.equal(await app.metric('portcullis_authz_jwks_refreshes_total', { provider: 'flaky', result: 'error' }), 2);
    const failing = app.logs().filter((l) => String(l['msg']).startsWith('JWKS refresh fail'));
    assert.equal(failing.length, 1, JSON.stringify(failing));
    assert.equal(failing[0]!['provider'], 'flaky');
    assert.match(String(failing[0]!['error']), /answered 503/);
    down = false;
    // The next retry, 4 s after the second (about 6 s after start).
    await eventually(async () => (await app.authz.check({ path: '/orders', headers: { authorization: `Bearer ${token}` } })).status?.code === 0, 4000, 'the keys fetched');
    assert.equal(hostile.hits.get('/jwks'), 3);
    assert.deepEqual(app.logs().filter((l) => l['msg'] === 'JWKS refreshed again').map((l) => [l['provider'], l['failures']]), [['flaky', 2]]);
  });
});
