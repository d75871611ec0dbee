// The canary audit of "credentials never logged": unique canary strings enter everywhere a credential can (API keys,
// JWTs, introspection tokens and the client secret, Redis passwords, cookies and authorization headers through
// ext_proc and the composer, secrets in config files where they do not belong), real processes run (serve at debug
// and info, real redis-server, real HTTP issuer, introspection endpoint and upstream, the CLIs), and every channel an
// operator or a client can read is searched for them: log lines, /metrics, /config, /rlconfig, /readyz, /json,
// gRPC statuses, ext_authz deny bodies and headers, ext_proc immediate responses, composer error answers, CLI output
// and config errors. A canary is looked for as written, as a prefix of 8 characters, and base64, base64url, hex and
// percent-encoded (the three base64 alignments, so a canary inside a longer encoded text is found too).
// Not channels: what ext_proc header rules add for the upstream (their purpose) and a composer's 200 body (the
// upstream's own answer).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { authzClient } from '../../support/authz-client.js';
import { eventually } from '../../support/app.js';
import { makeTestCertificates } from '../../support/grpc-tls.js';
import { body, extprocClient, requestHeaders, responseHeaders } from '../../support/extproc-client.js';
import { startIdentityProvider, type IdentityProvider } from '../../support/identity-provider.js';
import { portcullisBin, startPortcullis, writeConfig, type PortcullisInstance } from '../../support/portcullis.js';
import { rateLimitClient } from '../../support/ratelimit-client.js';
import { startRedis, startRedisSentinel, type RedisServer } from '../../support/redis-server.js';

/** A canary: a tag naming where it went in (its first 8 characters are unique to it) and random hex. */
const canary = (tag: string): string => `${tag.padEnd(8, 'X').slice(0, 8)}${randomBytes(10).toString('hex')}`;

const C = {
  apiKeyValid: canary('CnKeyOk'),
  apiKeyBad: canary('CnKeyBad'),
  apiKeyQuery: canary('CnKeyQry'),
  apiKeyLong: canary('CnKeyLng'),
  jwtHeader: canary('CnJwtHdr'),
  jwtPayload: canary('CnJwtPay'),
  jwtSignature: canary('CnJwtSig'),
  bearerRaw: canary('CnBearer'),
  opaqueGood: canary('CnOpqOk'),
  opaqueEcho: canary('CnOpqEch'),
  opaqueJunk: canary('CnOpqJnk'),
  clientSecret: canary('CnCliSec'),
  redisPassword: canary('CnRdsPw'),
  redisWrongPassword: canary('CnRdsBad'),
  sentinelPassword: canary('CnSntPw'),
  sentinelWrongPassword: canary('CnSntBad'),
  cookie: canary('CnCookie'),
  extprocSecret: canary('CnEpSec'),
  extprocBody: canary('CnEpBody'),
  bffSecret: canary('CnBffSec'),
  bffAuth: canary('CnBffAut'),
  configSecret: canary('CnCfgSec'),
  tlsKey: canary('CnTlsKey'),
} as const;

const CANARIES: readonly string[] = Object.values(C);

/** Every form of `c` that counts as a leak. */
function formsOf(c: string): string[] {
  const forms = new Set<string>([c, c.slice(0, 8), Buffer.from(c).toString('hex'), encodeURIComponent(c)]);
  // Inside a longer encoded text the canary starts at byte offset 0, 1 or 2 of a 3-byte group: pad it to each and
  // drop the characters the padding and the unknown neighbours touch.
  for (let shift = 0; shift < 3; shift++) {
    const padded = Buffer.concat([Buffer.alloc(shift), Buffer.from(c)]);
    const b64 = padded.toString('base64').replace(/=+$/, '');
    const inner = b64.slice(Math.ceil((shift * 4) / 3), b64.length - 2);
    if (inner.length >= 8) {
      forms.add(inner);
      forms.add(inner.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  return [...forms];
}

const FORMS = CANARIES.flatMap((c) => formsOf(c).map((form) => ({ canary: c, form })));

/** Where a canary shows up in `text`, as `channel: form (canary) …context…` lines. */
function hits(channel: string, text: string): string[] {
  const found: string[] = [];
  for (const { canary: c, form } of FORMS) {
    const at = text.indexOf(form);
    if (at >= 0) found.push(`${channel}: ${form === c ? c : `${form} (a form of ${c})`} in …${text.slice(Math.max(0, at - 120), at + form.length + 40).replace(/\n/g, '⏎')}…`);
  }
  return found;
}

/** Bytes (a body, a raw header value) as the text they hold: JSON.stringify would show a Buffer as numbers. */
function bytesAsText(_key: string, value: unknown): unknown {
  const bytes = value as { type?: unknown; data?: unknown } | null;
  if (typeof bytes === 'object' && bytes !== null && bytes.type === 'Buffer' && Array.isArray(bytes.data)) return Buffer.from(bytes.data as number[]).toString('latin1');
  if (value instanceof Uint8Array) return Buffer.from(value).toString('latin1');
  return value;
}

/** Every channel read by a test, with what it held; checked at the end of each test. */
class Channels {
  private readonly texts: [string, string][] = [];
  add(channel: string, value: unknown): void {
    this.texts.push([channel, typeof value === 'string' ? value : JSON.stringify(value, bytesAsText)]);
  }
  assertClean(): void {
    const found = this.texts.flatMap(([channel, text]) => hits(channel, text));
    // The audit's full list, for a run by hand: LEAK_REPORT=/tmp/leaks.txt node --test …
    const report = process.env['LEAK_REPORT'];
    if (report !== undefined && report !== '') appendFileSync(report, found.map((f) => `${f}\n`).join(''));
    assert.deepEqual(found, [], `credentials leaked:\n${found.join('\n')}`);
  }
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const b64url = (value: string | object): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Rate limit descriptors in their own dir: one rule reads a header-derived value, as an Envoy config may send. */
const descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-leaks-'));
after(() => rmSync(descriptors, { recursive: true, force: true }));
writeFileSync(path.join(descriptors, 'd.yaml'), 'domain: d\ndescriptors:\n  - key: auth\n    rate_limit: { unit: second, requests_per_unit: 1 }\n');

/** An introspection endpoint that misbehaves with the token it was given: echoes it in errors and in junk. */
async function startIntrospection(): Promise<{ url: string; server: Server }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
      const token = new URLSearchParams(text).get('token') ?? '';
      const echo = `token=${token} authorization=${req.headers.authorization ?? ''}`;
      if (token === C.opaqueGood) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active: true, sub: 'svc', scope: 'read' }));
      if (token === C.opaqueEcho) return void res.writeHead(500, { 'content-type': 'text/plain', 'x-echo': echo }).end(`internal error for ${echo}`);
      if (token === C.opaqueJunk) return void res.writeHead(200, { 'content-type': 'application/json' }).end(`{"active": ${token}, "echo": "${echo}"`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ active: false, error: echo }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`, server };
}

/** An upstream for the composer that echoes the request headers it got, in a 200 or in an error. */
async function startEchoUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const echo = JSON.stringify({ path: req.url, headers: req.headers });
    if (req.url?.startsWith('/fail')) return void res.writeHead(500, { 'content-type': 'application/json', 'x-echo': Buffer.from(echo).toString('base64') }).end(echo);
    if (req.url?.startsWith('/junk')) return void res.writeHead(200, { 'content-type': 'application/json' }).end(`{"broken": ${echo}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** The CLI as operators run it: combined output and exit code; a serve that starts is stopped after `ms`. */
function cli(args: readonly string[], ms = 4000): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [portcullisBin(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const timer = setTimeout(() => child.kill('SIGTERM'), ms);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const stop = (server: Server): Promise<void> => new Promise((resolve) => {
  server.close(() => resolve());
  server.closeAllConnections();
});

describe('the canary search', () => {
  it('finds a canary as written, by its prefix, and inside base64, base64url, hex and percent-encoded text', () => {
    const c = C.apiKeyBad;
    const encoded = [
      `x ${c} y`, `key ${c.slice(0, 8)}…`, Buffer.from(`Basic u:${c}`).toString('base64'), Buffer.from(`{"k":"${c}"}`).toString('base64url'),
      Buffer.from(`ab${c}`).toString('base64'), Buffer.from(`a${c}`).toString('hex'), encodeURIComponent(`k=${c}&`),
    ];
    for (const text of encoded) assert.notDeepEqual(hits('t', text), [], text);
    assert.deepEqual(hits('t', 'nothing here, not even CnKeyBa'), []);
  });
});

describe('credentials never leak (canary audit over real processes)', () => {
  let redis: RedisServer;
  let idp: IdentityProvider;
  let introspection: { url: string; server: Server };
  let upstream: { url: string; server: Server };
  let configDir: string;

  before(async () => {
    redis = await startRedis({ args: ['--requirepass', C.redisPassword] });
    idp = await startIdentityProvider();
    introspection = await startIntrospection();
    upstream = await startEchoUpstream();
    configDir = writeConfig({}).dir;
    writeFileSync(path.join(configDir, 'keys.yaml'), `- { id: good, sha256: ${sha(C.apiKeyValid)}, owner: alice, scopes: [read] }\n`);
    writeFileSync(path.join(configDir, 'secret'), `${C.clientSecret}\n`);
    mkdirSync(path.join(configDir, 'schemas'), { recursive: true });
    writeFileSync(path.join(configDir, 'schemas', 'login.json'), JSON.stringify({ type: 'object', required: ['user'], properties: { user: { type: 'string' }, password: { type: 'string', maxLength: 4 } }, additionalProperties: false }));
  });
  after(async () => {
    await redis.stop();
    await idp.stop();
    await stop(introspection.server);
    await stop(upstream.server);
  });

  /** The serve config: every section that takes a credential, with the canaries where they belong. */
  const serveConfig = (level: string, redisUrl: string): object => ({
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, http: { address: '127.0.0.1:0' } },
    redis: { url: redisUrl, connect_timeout_ms: 300 },
    log: { level },
    ratelimit: { descriptors },
    authz: {
      api_keys: { header: 'x-api-key', query: 'api_key', file: path.join(configDir, 'keys.yaml') },
      jwt: { providers: [{ name: 'main', issuer: idp.issuer, audiences: ['api'], jwks: { uri: idp.jwksUrl } }] },
      introspection: { url: introspection.url, client_id: 'gateway', client_secret_file: path.join(configDir, 'secret'), cache_seconds: 60 },
      revocation: { enabled: true, on_unavailable: 'deny' },
      policies: [
        { name: 'keys', match: { path_prefix: '/keys' }, authenticate: ['api_key'] },
        { name: 'jwt', match: { path_prefix: '/jwt' }, authenticate: ['jwt'] },
        { name: 'opaque', match: { path_prefix: '/opaque' }, authenticate: ['introspection'] },
        { name: 'any', match: { path_prefix: '/' }, authenticate: ['jwt', 'api_key', 'introspection'], require: { scopes: ['admin'] } },
      ],
    },
    extproc: {
      routes: [{
        name: 'login',
        match: { path_prefix: '/login' },
        headers: {
          request: { set: { 'x-upstream-authorization': `Bearer ${C.extprocSecret}`, 'x-upstream-creds': C.extprocSecret, 'x-signed': `v1=${C.extprocSecret};user={user_id}` } },
        },
        validate: { json_schema: path.join(configDir, 'schemas', 'login.json'), required_headers: ['x-client-version'] },
      }, {
        name: 'cached',
        match: { path_prefix: '/cached' },
        cache: { ttl_seconds: { '200': 60 } },
      }],
    },
    bff: {
      services: { svc: upstream.url },
      forward_headers: ['x-request-id', 'authorization', 'cookie'],
      endpoints: [
        { path: '/bff/ok', calls: { a: { service: 'svc', path: '/ok', headers: { 'x-api-key': C.bffSecret } } } },
        { path: '/bff/fail', calls: { a: { service: 'svc', path: '/fail', headers: { 'x-api-key': C.bffSecret } } } },
        { path: '/bff/junk', calls: { a: { service: 'svc', path: '/junk', headers: { 'x-api-key': C.bffSecret } } } },
        { path: '/bff/degraded', calls: { a: { service: 'svc', path: '/fail', headers: { 'x-api-key': C.bffSecret }, on_error: null } } },
      ],
    },
  });

  /** Every request that carries a canary, through every service of `p`; each answer is a channel. */
  async function traffic(p: PortcullisInstance, channels: Channels): Promise<void> {
    const authz = authzClient(p.grpcAddress);
    const forged = (parts: { header?: object; payload?: object; signature?: string }): string =>
      `${b64url(parts.header ?? { alg: 'RS256', kid: 'k1' })}.${b64url(parts.payload ?? { iss: idp.issuer, aud: 'api', sub: 'x' })}.${parts.signature ?? b64url('sig')}`;
    const now = Math.floor(Date.now() / 1000);
    const valid = await idp.token({ sub: 'user-1', scope: 'read', note: C.jwtPayload }, { audience: 'api' });
    const expired = await idp.token({ sub: 'user-1', scope: 'read', note: C.jwtPayload }, { audience: 'api', ttlSeconds: -600 });
    const tokens = [
      valid,
      expired,
      `${valid.slice(0, valid.lastIndexOf('.'))}.${b64url(C.jwtSignature)}`,
      forged({ header: { kid: C.jwtHeader, alg: 'RS256' } }),
      forged({ header: { alg: 'none', kid: C.jwtHeader } }),
      forged({ header: { alg: 'RS256', kid: 'k1', crit: ['x'], x: C.jwtHeader } }),
      forged({ payload: { iss: idp.issuer, aud: 'api', sub: 'user-1', exp: now + 60, secret: C.jwtPayload }, signature: b64url(C.jwtSignature) }),
      forged({ payload: { iss: 'https://other.test', aud: 'api', sub: 'x', secret: C.jwtPayload } }),
      `${b64url({ alg: 'RS256', kid: C.jwtHeader })}.not*base64.${C.jwtSignature}`,
      `${b64url(`{"alg":"RS256","kid":"${C.jwtHeader}"`)}.${b64url(`{"secret":"${C.jwtPayload}"`)}.${C.jwtSignature}`,
      `${forged({ header: { kid: C.jwtHeader, alg: 'RS256' } })}${'A'.repeat(20_000)}`,
      C.bearerRaw,
      `${C.bearerRaw}.${C.bearerRaw}.${C.bearerRaw}`,
      C.opaqueGood, C.opaqueEcho, C.opaqueJunk,
    ];
    const checks: { path: string; headers?: Record<string, string> }[] = [];
    for (const prefix of ['/keys', '/jwt', '/opaque', '/any']) {
      checks.push(
        { path: `${prefix}/x`, headers: { 'x-api-key': C.apiKeyValid } },
        { path: `${prefix}/x`, headers: { 'x-api-key': C.apiKeyBad } },
        { path: `${prefix}/x`, headers: { 'x-api-key': `${C.apiKeyBad}, ${C.apiKeyValid}` } },
        { path: `${prefix}/x`, headers: { 'x-api-key': `${C.apiKeyLong}${'k'.repeat(5000)}` } },
        { path: `${prefix}/x?api_key=${C.apiKeyQuery}&q=1` },
        { path: `${prefix}/x?api_key=${C.apiKeyValid}`, headers: { 'x-api-key': C.apiKeyBad } },
        { path: `${prefix}/%zz?api_key=${C.apiKeyQuery}` },
        { path: `${prefix}/x`, headers: { authorization: `Basic ${Buffer.from(`user:${C.bearerRaw}`).toString('base64')}`, cookie: `session=${C.cookie}` } },
        { path: `${prefix}/x`, headers: { authorization: `Bearer ${C.bearerRaw}, Bearer ${C.opaqueGood}` } },
        ...tokens.map((t) => ({ path: `${prefix}/x`, headers: { authorization: `Bearer ${t}` } })),
      );
    }
    for (const check of checks) {
      try {
        channels.add(`Check ${check.path}`, await authz.check(check));
      } catch (error) {
        const e = error as { message?: string; details?: string; metadata?: { getMap(): unknown } };
        channels.add(`Check ${check.path} (gRPC error)`, { message: e.message, details: e.details, metadata: e.metadata?.getMap() });
      }
    }
    authz.close();

    // ext_proc: credentials in headers, a secret-bearing body that fails validation, cache keys from cookies.
    const extproc = extprocClient(p.grpcAddress);
    const credentialHeaders = { authorization: `Bearer ${C.bearerRaw}`, cookie: `session=${C.cookie}`, 'x-api-key': C.apiKeyValid };
    const streams: { name: string; messages: object[] }[] = [
      { name: 'missing header', messages: [requestHeaders({ ':method': 'POST', ':path': `/login?api_key=${C.apiKeyQuery}`, ':authority': 'h', 'content-type': 'application/json', ...credentialHeaders }, false), body('request_body', '{}')] },
      { name: 'invalid JSON', messages: [requestHeaders({ ':method': 'POST', ':path': '/login', ':authority': 'h', 'x-client-version': '1', 'content-type': 'application/json', ...credentialHeaders }, false), body('request_body', `{"user": "u", "password": ${C.extprocBody}}`)] },
      { name: 'schema violation', messages: [requestHeaders({ ':method': 'POST', ':path': '/login', ':authority': 'h', 'x-client-version': '1', 'content-type': 'application/json', ...credentialHeaders }, false), body('request_body', JSON.stringify({ user: 7, password: C.extprocBody, extra: 1 }))] },
      { name: 'bad header bytes', messages: [requestHeaders({ ':method': 'GET', ':path': '/login', ':authority': 'h', 'x-client-version': '1', ...credentialHeaders, 'x-request-id': `id\u0001${C.cookie}` }, true)] },
      { name: 'cache miss', messages: [requestHeaders({ ':method': 'GET', ':path': '/cached/a', ':authority': 'h', ...credentialHeaders }, true), responseHeaders({ ':status': '200', 'cache-control': 'max-age=60', 'content-length': '2' }, false), body('response_body', '{}')] },
      { name: 'cache hit', messages: [requestHeaders({ ':method': 'GET', ':path': '/cached/a', ':authority': 'h', ...credentialHeaders }, true)] },
      { name: 'cache path not normal', messages: [requestHeaders({ ':method': 'GET', ':path': `/cached/../a%2f?token=${C.bearerRaw}`, ':authority': 'h', ...credentialHeaders }, true)] },
    ];
    for (const s of streams) {
      const stream = extproc.open();
      for (const message of s.messages) {
        try {
          // Request-phase mutations go to the upstream (the header rules' very purpose); the rest reaches the client.
          const { request_headers: _headers, request_body: _body, ...towardClient } = await stream.exchange(message, 2000) as Record<string, unknown>;
          channels.add(`ext_proc ${s.name}`, towardClient);
        } catch (error) {
          channels.add(`ext_proc ${s.name} (error)`, (error as Error).message);
          break;
        }
      }
      stream.end();
      channels.add(`ext_proc ${s.name} (status)`, await stream.status);
    }
    extproc.close();

    // Rate limit with a header-derived descriptor value, as `request_headers` actions send one.
    const rl = rateLimitClient(p.grpcAddress);
    for (let i = 0; i < 3; i++) {
      try {
        channels.add('ShouldRateLimit', await rl.shouldRateLimit({ domain: 'd', descriptors: [{ entries: [{ key: 'auth', value: `Bearer ${C.bearerRaw}` }] }] }));
      } catch (error) {
        channels.add('ShouldRateLimit (error)', (error as Error).message);
      }
    }
    rl.close();

    // The composer: forwarded credentials, upstream errors that echo them, bad requests carrying them.
    const bffHeaders = { authorization: `Bearer ${C.bffAuth}`, cookie: `session=${C.cookie}`, 'x-api-key': C.apiKeyValid };
    for (const target of ['/bff/fail', '/bff/junk', '/bff/degraded', `/bff/nope?token=${C.bffAuth}`, `/bff/ok?token=${C.bffAuth}`, '/bff/%zz']) {
      for (const method of ['GET', 'POST']) {
        const response = await fetch(`${p.httpUrl}${target}`, { method, headers: bffHeaders });
        const text = await response.text();
        channels.add(`bff ${method} ${target}`, { status: response.status, headers: [...response.headers], body: text });
      }
    }

    // Admin endpoints.
    for (const endpoint of ['/config', '/rlconfig', '/readyz', '/healthz', '/metrics', '/healthcheck']) {
      const response = await fetch(`${p.adminUrl}${endpoint}`);
      channels.add(`admin ${endpoint}`, { status: response.status, body: await response.text() });
    }
    for (const jsonBody of [`{"domain": "d", "descriptors": [{"entries": [{"key": "auth", "value": "${C.bearerRaw}"}]}]}`, `{"domain": "d", ${C.bearerRaw}}`, `{"domain": "${C.bearerRaw}", "descriptors": []}`]) {
      const response = await fetch(`${p.adminUrl}/json`, { method: 'POST', body: jsonBody });
      channels.add('admin /json', { status: response.status, body: await response.text() });
    }
  }

  for (const level of ['debug', 'info']) {
    it(`serve at ${level}: no canary in logs, answers, metrics or admin endpoints`, async () => {
      const channels = new Channels();
      const p = await startPortcullis(serveConfig(level, `redis://:${C.redisPassword}@127.0.0.1:${redis.port}/0`));
      try {
        await eventually(async () => (await fetch(`${p.adminUrl}/readyz`)).status === 200, 5000, 'ready');
        await traffic(p, channels);
        // A reload with a broken file logs its errors: the secrets it holds must not come with them.
        writeFileSync(p.configFile, `${stringifyYaml(serveConfig(level, `redis://:${C.redisPassword}@127.0.0.1:${redis.port}/0`))}\nbroken: [${C.configSecret}\n`);
        await eventually(() => p.output().includes('config rejected') || p.output().includes('config reload failed'), 5000, 'reload rejected');
      } finally {
        await p.stop();
        channels.add(`serve --log ${level} output`, p.output());
      }
      channels.assertClean();
    });
  }

  const redisCases: { name: string; url: (port: number) => string; starts: boolean }[] = [
    { name: 'wrong password in the user info', url: (port) => `redis://:${C.redisWrongPassword}@127.0.0.1:${port}/0`, starts: true },
    { name: 'wrong password as ?password=', url: (port) => `redis://127.0.0.1:${port}/0?password=${C.redisWrongPassword}`, starts: true },
    { name: 'user and password, unreachable', url: () => `redis://default:${C.redisPassword}@127.0.0.1:1/0`, starts: true },
    { name: 'unparsable: a / in the password', url: (port) => `redis://:${C.redisPassword}/x@127.0.0.1:${port}/0`, starts: false },
    { name: 'unparsable: a # in the password', url: (port) => `redis://:x#${C.redisPassword}@127.0.0.1:${port}/0`, starts: false },
    { name: 'unparsable: a bad port after the password', url: () => `redis://:${C.redisPassword}@127.0.0.1:99999/0`, starts: false },
    { name: 'a space in the password', url: (port) => `redis://: ${C.redisPassword}@127.0.0.1:${port}/0`, starts: false },
  ];
  for (const r of redisCases) {
    it(`Redis URL, ${r.name}: serve, validate and revoke never show the password`, async () => {
      const channels = new Channels();
      const config = { ...serveConfig('debug', r.url(redis.port)), server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, bff: {} };
      const { file } = writeConfig(config);
      if (r.starts) {
        const p = await startPortcullis(config);
        try {
          await eventually(() => p.logs().some((l) => l['msg'] === 'redis connection failed'), 5000, 'the redis error in the log');
          for (const endpoint of ['/config', '/readyz', '/metrics']) channels.add(`admin ${endpoint}`, await (await fetch(`${p.adminUrl}${endpoint}`)).text());
          const authz = authzClient(p.grpcAddress);
          channels.add('Check', await authz.check({ path: '/keys/x', headers: { 'x-api-key': C.apiKeyValid } }).catch((e: Error) => e.message));
          authz.close();
        } finally {
          await p.stop();
          channels.add('serve output', p.output());
        }
      } else {
        channels.add('serve', await cli(['serve', '--config', file]));
      }
      channels.add('validate', await cli(['validate', '--config', file]));
      channels.add('revoke', await cli(['revoke', '--config', file, '--jti', 'some-id']));
      channels.add('explain', await cli(['explain', '--config', file, '--path', '/keys/x', '-H', `x-api-key: ${C.apiKeyBad}`]));
      channels.assertClean();
    });
  }

  it("Redis Sentinel: serve, validate and revoke never show the master's or the sentinels' passwords", async () => {
    const sentinel = await startRedisSentinel({ master: redis, password: C.sentinelPassword, masterPassword: C.redisPassword });
    const at = `127.0.0.1:${sentinel.server.port}`;
    const cases: { name: string; nodes: string[]; password: string; ready: boolean }[] = [
      { name: 'the right passwords', nodes: [`redis://:${C.sentinelPassword}@${at}`], password: C.redisPassword, ready: true },
      { name: "the sentinels' password as ?password=, the same on a second node", nodes: [`redis://${at}?password=${C.sentinelPassword}`, `redis://:${C.sentinelPassword}@127.0.0.1:1`], password: C.redisPassword, ready: true },
      { name: 'a wrong sentinel password', nodes: [`redis://:${C.sentinelWrongPassword}@${at}`], password: C.redisPassword, ready: false },
      { name: 'a wrong master password', nodes: [`redis://:${C.sentinelPassword}@${at}`], password: C.redisWrongPassword, ready: false },
      { name: 'two sentinel passwords (a config error)', nodes: [`redis://:${C.sentinelPassword}@${at}`, `redis://:${C.sentinelWrongPassword}@127.0.0.1:1`], password: C.redisPassword, ready: false },
    ];
    try {
      for (const c of cases) {
        const channels = new Channels();
        const config = {
          ...serveConfig('debug', ''), server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, bff: {},
          redis: { sentinel: { master: sentinel.name, nodes: c.nodes, password: c.password }, connect_timeout_ms: 300 },
        };
        const { file } = writeConfig(config);
        if (!c.name.includes('config error')) {
          const p = await startPortcullis(config);
          try {
            if (c.ready) await eventually(async () => (await fetch(`${p.adminUrl}/readyz`)).status === 200, 5000, `${c.name}: ready`);
            else await eventually(() => p.logs().some((l) => l['msg'] === 'redis connection failed'), 5000, `${c.name}: the redis error in the log`);
            for (const endpoint of ['/config', '/readyz', '/metrics']) channels.add(`${c.name}: admin ${endpoint}`, await (await fetch(`${p.adminUrl}${endpoint}`)).text());
          } finally {
            await p.stop();
            channels.add(`${c.name}: serve output`, p.output());
          }
        } else {
          channels.add(`${c.name}: serve`, await cli(['serve', '--config', file]));
        }
        channels.add(`${c.name}: validate`, await cli(['validate', '--config', file]));
        channels.add(`${c.name}: revoke`, await cli(['revoke', '--config', file, '--jti', 'some-id']));
        channels.assertClean();
      }
    } finally {
      await sentinel.stop();
    }
  });

  it('explain: the credentials it is given are never printed', async () => {
    const channels = new Channels();
    const { file } = writeConfig({ ...serveConfig('info', `redis://:${C.redisPassword}@127.0.0.1:${redis.port}/0`), server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, bff: {} });
    const valid = await idp.token({ sub: 'user-1', scope: 'read', note: C.jwtPayload }, { audience: 'api' });
    const runs: string[][] = [
      ['--path', '/keys/x', '-H', `x-api-key: ${C.apiKeyValid}`],
      ['--path', '/keys/x', '-H', `x-api-key: ${C.apiKeyBad}`],
      ['--path', `/keys/x?api_key=${C.apiKeyQuery}`],
      ['--path', '/any/x', '-H', `authorization: Bearer ${valid}`, '-H', `cookie: s=${C.cookie}`],
      ['--path', '/jwt/x', '-H', `authorization: Bearer ${b64url({ alg: 'RS256', kid: C.jwtHeader })}.${b64url({ secret: C.jwtPayload })}.${C.jwtSignature}`],
      ['--path', '/opaque/x', '-H', `authorization: Bearer ${C.opaqueEcho}`],
      ['--path', '/opaque/x', '-H', `authorization: Bearer ${C.opaqueGood}`],
      ['--path', '/opaque/x', '-H', `authorization Bearer ${C.bearerRaw}`],
    ];
    for (const args of runs) channels.add(`explain ${args.join(' ')}`, await cli(['explain', '--config', file, ...args]));
    channels.assertClean();
  });

  it('config files with secrets where they do not belong: validate and serve name the place, not the secret', async () => {
    const channels = new Channels();
    const base = { server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, ratelimit: { descriptors } };
    const policies = [{ name: 'all', match: { path_prefix: '/' }, authenticate: ['api_key', 'introspection'] }];
    const keysFiles = [
      `- { id: a, sha256: ${C.configSecret} }\n`,
      `- ${C.configSecret}\n`,
      `- { id: a, sha256: ${sha('x')}, ${C.configSecret} }\n`,
      `- { id: "${C.configSecret} key", sha256: ${sha('x')} }\n`,
      `- { id: a, sha256: ${sha('x')}, owner: " ${C.configSecret}" }\n`,
      `- { id: a, sha256: "${C.configSecret}\n`,
      `${C.configSecret}\n`,
      `- { id: "a'b ${C.configSecret}", sha256: ${sha('x')} }\n`,
    ];
    const variants: { name: string; config: object; files?: Record<string, string> }[] = [
      ...keysFiles.map((keys, i) => ({ name: `keys.yaml #${i}`, config: { ...base, authz: { api_keys: { header: 'x-api-key', file: './keys.yaml' }, policies: [{ name: 'all', match: { path_prefix: '/' }, authenticate: ['api_key'] }] } }, files: { 'keys.yaml': keys } })),
      { name: 'a plaintext key as a cluster seed', config: { ...base, redis: { cluster: `redis://:${C.configSecret}@127.0.0.1:7000` } } },
      { name: 'client secret in client_secret_file', config: { ...base, authz: { introspection: { url: introspection.url, client_id: 'gateway', client_secret_file: C.configSecret }, policies } } },
      { name: 'client secret as client_secret', config: { ...base, authz: { introspection: { url: introspection.url, client_id: 'gateway', client_secret: C.configSecret, client_secret_file: './secret' }, policies } }, files: { secret: 'x' } },
      { name: 'client secret in the introspection URL', config: { ...base, authz: { introspection: { url: `http://gateway:${C.configSecret}@127.0.0.1:1/introspect`, client_id: 'gateway', client_secret_file: './secret' }, policies } }, files: { secret: 'x' } },
      { name: 'unparsable introspection URL with a secret', config: { ...base, authz: { introspection: { url: `http://gateway:${C.configSecret}@127.0.0.1:99999/introspect`, client_id: 'gateway', client_secret_file: './secret' }, policies } }, files: { secret: 'x' } },
      { name: 'unparsable JWKS URL with a secret', config: { ...base, authz: { jwt: { providers: [{ name: 'p', issuer: 'https://i', audiences: ['a'], jwks: { uri: `https://u:${C.configSecret}@idp:99999/jwks` } }] }, policies: [{ name: 'all', match: { path_prefix: '/' }, authenticate: ['jwt'] }] } } },
      { name: 'a client secret file that is a directory', config: { ...base, authz: { introspection: { url: introspection.url, client_id: 'gateway', client_secret_file: './d' }, policies } } },
      { name: 'composer service URL with a password', config: { ...base, server: { ...base.server, http: { address: '127.0.0.1:0' } }, bff: { services: { s: `http://u:${C.configSecret}@127.0.0.1:1` }, endpoints: [] } } },
      { name: 'unparsable composer service URL with a password', config: { ...base, server: { ...base.server, http: { address: '127.0.0.1:0' } }, bff: { services: { s: `http://u:${C.configSecret}@127.0.0.1:99999` }, endpoints: [] } } },
      { name: 'a secret as a header rule with a bad name', config: { ...base, extproc: { routes: [{ name: 'r', headers: { request: { set: { 'X-Authorization': `Bearer ${C.configSecret}` } } } }] } } },
      { name: 'a secret as a header rule with a bad template', config: { ...base, extproc: { routes: [{ name: 'r', headers: { request: { set: { 'x-authorization': `Bearer {${C.configSecret}` } } } }] } } },
      { name: 'a secret in a composer header with a bad template', config: { ...base, server: { ...base.server, http: { address: '127.0.0.1:0' } }, bff: { services: { s: 'http://127.0.0.1:1' }, endpoints: [{ path: '/b', calls: { a: { service: 's', path: '/', headers: { 'x-api-key': `${C.configSecret}{` } } } }] } } },
      { name: 'a secret in a composer header with a control character', config: { ...base, server: { ...base.server, http: { address: '127.0.0.1:0' } }, bff: { services: { s: 'http://127.0.0.1:1' }, endpoints: [{ path: '/b', calls: { a: { service: 's', path: '/', headers: { 'x-api-key': `${C.configSecret}\n` } } } }] } } },
      { name: 'a Redis password where a cluster seed goes', config: { ...base, redis: { cluster: [`redis://:${C.configSecret}@127.0.0.1:99999`] } } },
      { name: 'a bare Redis password where the URL goes', config: { ...base, redis: { url: C.configSecret } } },
      { name: 'a Redis password holding a quote where the URL goes', config: { ...base, redis: { url: `it's ${C.configSecret}` } } },
      { name: 'a Redis password for the whole section', config: { ...base, redis: C.configSecret } },
      { name: 'a header line where the header rules go', config: { ...base, extproc: { routes: [{ name: 'r', headers: { request: `authorization: Bearer ${C.configSecret}` } }] } } },
      { name: 'a credential as a header to remove', config: { ...base, extproc: { routes: [{ name: 'r', headers: { request: { remove: [`Bearer ${C.configSecret}`] } } }] } } },
      { name: 'an API key where its header name goes', config: { ...base, authz: { api_keys: { header: `Bearer ${C.configSecret}`, file: './keys.yaml' }, policies } }, files: { 'keys.yaml': '[]\n' } },
      { name: 'an introspection secret for the whole section', config: { ...base, authz: { introspection: C.configSecret, policies: [] } } },
      // Key files: a PEM block around the canary, where a key, or a certificate, goes. The messages say what is wrong
      // with the file, never what it holds.
      ...tlsKeyVariants(base),
    ];
    for (const v of variants) {
      const { file, dir } = writeConfig(v.config);
      for (const [name, text] of Object.entries(v.files ?? {})) writeFileSync(path.join(dir, name), text);
      if (v.name.includes('directory')) mkdirSync(path.join(dir, 'd'));
      channels.add(`validate (${v.name})`, await cli(['validate', '--config', file]));
      channels.add(`serve (${v.name})`, await cli(['serve', '--config', file]));
    }
    channels.assertClean();
  });

  /** server.grpc.tls and redis.tls given a key file (and, once, a certificate file) holding the canary. */
  function tlsKeyVariants(base: { server: { grpc: object } }): { name: string; config: object; files: Record<string, string> }[] {
    const certs = makeTestCertificates(mkdtempSync(path.join(tmpdir(), 'pc-leak-certs-')));
    const cert = readFileSync(certs.server, 'utf8');
    const key = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(C.tlsKey).toString('base64')}\n${C.tlsKey}\n-----END PRIVATE KEY-----\n`;
    const grpcTls = (tls: object): object => ({ ...base, server: { ...base.server, grpc: { ...base.server.grpc, tls } } });
    const redisTls = (tls: object): object => ({ ...base, redis: { url: 'rediss://127.0.0.1:1', tls } });
    return [
      { name: 'a gRPC TLS key file that is no key', config: grpcTls({ cert_file: './cert.pem', key_file: './key.pem' }), files: { 'cert.pem': cert, 'key.pem': key } },
      { name: 'a gRPC TLS key where the certificate goes', config: grpcTls({ cert_file: './key.pem', key_file: './key.pem' }), files: { 'key.pem': key } },
      { name: 'a Redis TLS key file that is no key', config: redisTls({ cert_file: './cert.pem', key_file: './key.pem' }), files: { 'cert.pem': cert, 'key.pem': key } },
      { name: 'a Redis TLS key where the CA goes', config: redisTls({ ca_file: './key.pem' }), files: { 'key.pem': key } },
    ];
  }

  it('check-envoy: secrets in the Envoy bootstrap (TLS keys, header values) are never printed', async () => {
    const channels = new Channels();
    const { dir } = writeConfig({});
    const bootstrap = {
      static_resources: {
        listeners: [{
          name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
          filter_chains: [{
            transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', common_tls_context: { tls_certificates: [{ certificate_chain: { inline_string: 'cert' }, private_key: { inline_string: `-----BEGIN PRIVATE KEY-----\n${C.tlsKey}\n-----END PRIVATE KEY-----` } }] } } },
            filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', stat_prefix: 's', route_config: { virtual_hosts: [{ name: 'v', domains: ['*'], request_headers_to_add: [{ header: { key: 'authorization', value: `Bearer ${C.configSecret}` } }], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.ext_authz': { '@type': `${C.configSecret}` } } }] }] }, http_filters: [{ name: 'envoy.filters.http.ratelimit', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit', domain: 'd' } }, { name: 'envoy.filters.http.router' }] } }],
          }],
        }],
        clusters: [],
      },
    };
    const files = {
      'ok.yaml': stringifyYaml(bootstrap),
      'broken.yaml': `static_resources:\n  listeners: [{ private_key: ${C.tlsKey}\n`,
      'json.json': `{"static_resources": {"secret": ${C.tlsKey}}`,
    };
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(path.join(dir, name), text);
      channels.add(`check-envoy ${name}`, await cli(['check-envoy', path.join(dir, name), '--descriptors', descriptors]));
    }
    channels.assertClean();
  });
});
