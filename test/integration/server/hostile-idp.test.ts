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

  it('credentials refused (401): every Check denied and counted, one warning naming the credentials, one line when it answers again', async () => {
    introspection = json(401, '{"error":"invalid_client"}');
    const errorsBefore = await app.metric('portcullis_authz_introspection_errors_total');
    const logsBefore = app.logs().length;
    for (let i = 0; i < 20; i++) assert.equal(deniedStatus(await check('/admin', `opaque-${i}`)), 'ServiceUnavailable');
    assert.equal(await app.metric('portcullis_authz_introspection_errors_total') - errorsBefore, 20);
    const warnings = app.logs().slice(logsBefore).filter((l) => l['msg'] === 'introspection failing; answering with introspection.on_failure');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]!['error']), /answered 401: it refuses the gateway's client credentials/);
    introspection = json(200, '{"active":true,"sub":"svc","groups":["admins"]}');
    assert.equal((await check('/admin', 'opaque-ok')).status?.code, 0);
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
