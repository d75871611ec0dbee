// ext_authz end to end: plain HTTP and mTLS through a real Envoy running the committed envoy/authz/envoy.yaml (ports,
// addresses and certificate paths replaced), with Portcullis' ext_authz and rate limit services, a real Redis, a
// real HTTP issuer (JWKS) and an echo upstream that shows what reached it.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { at, byName, list, loadYamlFile, record, repoRoot, runCommand, setClusterEndpoint, setSocketAddress, startEnvoy, validateBootstrap, type EnvoyInstance } from '../support/envoy.js';
import { startIdentityProvider, type IdentityProvider } from '../support/identity-provider.js';
import { portcullisBin, startPortcullis, writeConfig, type PortcullisInstance } from '../support/portcullis.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { startUpstream, type EchoBody, type Upstream } from '../support/upstream.js';
import { awayFromWindowEdge } from '../support/windows.js';

const GOLD_KEY = 'pk_demo_gold_key_do_not_use_in_production';
const LIMITED_KEY = 'pk_demo_limited_key_do_not_use_in_production';

/** A CA, Envoy's server certificate and two client certificates with SPIFFE URI SANs, made by openssl. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=portcullis-test-ca');
  const leaf = (name: string, subject: string, san: string, usage: string): void => {
    writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  leaf('server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1', 'serverAuth');
  leaf('ops', '/CN=ops', 'URI:spiffe://example.org/ops', 'clientAuth');
  leaf('dev', '/CN=dev', 'URI:spiffe://example.org/dev', 'clientAuth');
}

function authzBootstrap(upstream: Upstream, portcullis: { host: string; port: number }, tlsDir: string): Record<string, unknown> {
  const bootstrap = structuredClone(loadYamlFile('envoy/authz/envoy.yaml'));
  setSocketAddress(at(bootstrap, 'admin', 'address'), { host: '127.0.0.1', port: 0 });
  const resources = record(at(bootstrap, 'static_resources'));
  for (const name of ['ingress', 'mtls']) setSocketAddress(at(byName(list(resources['listeners']), name), 'address'), { host: '127.0.0.1', port: 0 });
  setClusterEndpoint(byName(list(resources['clusters']), 'upstream'), { host: upstream.host, port: upstream.port });
  setClusterEndpoint(byName(list(resources['clusters']), 'portcullis'), portcullis);
  // A loaded CI machine needs more than the example's 0.25 s for the first calls.
  let text = JSON.stringify(bootstrap).replaceAll('"timeout":"0.25s"', '"timeout":"2s"');
  text = text.replaceAll('/etc/portcullis/tls/', `${tlsDir}/`);
  return JSON.parse(text) as Record<string, unknown>;
}

function portcullisConfig(redisUrl: string, idp: IdentityProvider): Record<string, unknown> {
  const example = loadYamlFile('envoy/authz/portcullis.yaml');
  const authz = record(example['authz']);
  const policies = list(authz['policies']).map((p) => record(p));
  const api = policies.find((p) => p['name'] === 'api')!;
  api['authenticate'] = ['jwt', 'api_key'];
  return {
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    redis: { url: redisUrl },
    ratelimit: { descriptors: path.join(repoRoot(), 'envoy', 'authz', 'ratelimit') },
    authz: {
      ...authz,
      api_keys: { ...record(authz['api_keys']), file: path.join(repoRoot(), 'envoy', 'authz', 'keys.yaml') },
      jwt: { providers: [{ name: 'idp', issuer: idp.issuer, audiences: ['orders-api'], jwks: { uri: idp.jwksUrl } }] },
      revocation: { enabled: true, refresh_ms: 200 },
      policies,
    },
  };
}

interface Reply {
  status: number;
  headers: Headers;
  body: string;
  echo: EchoBody | undefined;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const body = await response.text();
  let echo: EchoBody | undefined;
  try {
    echo = response.status === 200 ? (JSON.parse(body) as EchoBody) : undefined;
  } catch {
    echo = undefined;
  }
  return { status: response.status, headers: response.headers, body, echo };
}

function getTls(port: number, tlsDir: string, client: 'ops' | 'dev', pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path: pathname, servername: 'localhost',
      ca: readFileSync(path.join(tlsDir, 'ca.crt')), cert: readFileSync(path.join(tlsDir, `${client}.crt`)), key: readFileSync(path.join(tlsDir, `${client}.key`)),
      headers: { 'x-user-id': 'spoofed' },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('ext_authz through a real Envoy (envoy/authz/envoy.yaml)', () => {
  let redis: RedisServer;
  let idp: IdentityProvider;
  let upstream: Upstream;
  let portcullis: PortcullisInstance;
  let second: PortcullisInstance;
  let envoy: EnvoyInstance;
  let base: string;
  let tlsDir: string;

  before(async () => {
    tlsDir = mkdtempSync(path.join(tmpdir(), 'portcullis-tls-'));
    makeCertificates(tlsDir);
    redis = await startRedis();
    idp = await startIdentityProvider();
    upstream = await startUpstream();
    portcullis = await startPortcullis(portcullisConfig(redis.url, idp));
    second = await startPortcullis(portcullisConfig(redis.url, idp));
    envoy = await startEnvoy(authzBootstrap(upstream, second.grpc, tlsDir));
    base = `http://127.0.0.1:${envoy.listenerPort('ingress')}`;
  });
  after(async () => {
    await envoy?.stop();
    await second?.stop();
    await portcullis?.stop();
    await upstream?.stop();
    await idp?.stop();
    await redis?.stop();
    rmSync(tlsDir, { recursive: true, force: true });
  });

  it('the example bootstrap passes envoy --mode validate', async () => {
    const result = await validateBootstrap(authzBootstrap(upstream, second.grpc, tlsDir));
    assert.equal(result.code, 0, result.output);
  });

  it('no credentials → 401 with WWW-Authenticate and a JSON body; the upstream never sees it', async () => {
    const before = upstream.requestCount();
    const r = await get(`${base}/api/orders`, { 'x-request-id': 'e2e-1' });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="portcullis", error="invalid_request"/);
    assert.equal(r.headers.get('content-type'), 'application/json');
    // An edge Envoy (use_remote_address) replaces a client's x-request-id with its own: that one is in the body.
    const body = JSON.parse(r.body) as Record<string, string>;
    assert.deepEqual({ ...body, request_id: undefined }, { error: 'missing_credentials', message: 'credentials are required', request_id: undefined });
    assert.match(body['request_id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(upstream.requestCount(), before);
  });

  it('valid JWT → 200; the upstream sees x-user-id from the token, not the spoofed one', async () => {
    const token = await idp.token({ sub: 'user-e2e', scope: 'orders:read', tier: 'gold' });
    const r = await get(`${base}/api/orders`, { authorization: `Bearer ${token}`, 'x-user-id': 'spoofed', 'x-api-key-id': 'spoofed' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.echo?.headers['x-user-id'], 'user-e2e');
    assert.equal(r.echo?.headers['x-auth-method'], 'jwt');
    assert.equal(r.echo?.headers['x-api-key-id'], undefined, 'spoofed header removed');
    const anon = await get(`${base}/public/page`, { 'x-user-id': 'spoofed', 'x-client-tier': 'platinum' });
    assert.equal(anon.status, 200);
    assert.equal(anon.echo?.headers['x-user-id'], 'anonymous');
    assert.equal(anon.echo?.headers['x-client-tier'], undefined);
    assert.equal(anon.echo?.headers['x-auth-method'], 'anonymous');
  });

  it('API key in a header and in the query; neither reaches the upstream', async () => {
    const header = await get(`${base}/api/orders`, { 'x-api-key': GOLD_KEY });
    assert.equal(header.status, 200, header.body);
    assert.equal(header.echo?.headers['x-api-key'], undefined);
    assert.equal(header.echo?.headers['x-api-key-id'], 'gold');
    const query = await get(`${base}/api/orders?page=2&api_key=${GOLD_KEY}`);
    assert.equal(query.status, 200, query.body);
    assert.equal(query.echo?.path, '/api/orders?page=2');
    assert.equal(query.echo?.headers['x-client-tier'], 'gold');
    assert.equal((await get(`${base}/api/orders`, { 'x-api-key': 'pk_wrong' })).status, 401);
  });

  it('per-API-key rate limiting through dynamic metadata: one key gets 429, another still passes', async () => {
    await awayFromWindowEdge(60, 5);
    const limited: number[] = [];
    for (let i = 0; i < 4; i++) limited.push((await get(`${base}/api/orders`, { 'x-api-key': LIMITED_KEY })).status);
    assert.deepEqual(limited.slice(0, 2), [200, 200]);
    assert.ok(limited.slice(2).every((s) => s === 429), `got ${limited.join(',')}`);
    assert.equal((await get(`${base}/api/orders`, { 'x-api-key': GOLD_KEY })).status, 200);
  });

  it('IP allow-list on /admin: a valid key from outside 10.0.0.0/8 gets 403', async () => {
    const r = await get(`${base}/admin/users`, { 'x-api-key': GOLD_KEY });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error, 'ip_not_allowed');
  });

  it('path tricks are matched after normalization', async () => {
    assert.equal((await get(`${base}/public/../admin/users`)).status, 403);
    assert.equal((await get(`${base}/public/%2e%2e/api/orders`)).status, 401);
    assert.equal((await get(`${base}/publicity`)).status, 403);
  });

  it('mTLS listener: the ops SPIFFE id is accepted, dev is refused', async () => {
    const port = envoy.listenerPort('mtls');
    const ops = await getTls(port, tlsDir, 'ops', '/admin/users');
    assert.equal(ops.status, 200, ops.body);
    const echo = JSON.parse(ops.body) as EchoBody;
    assert.equal(echo.headers['x-user-id'], 'spiffe://example.org/ops');
    assert.equal(echo.headers['x-auth-method'], 'mtls');
    const dev = await getTls(port, tlsDir, 'dev', '/admin/users');
    assert.equal(dev.status, 403);
    assert.equal(JSON.parse(dev.body).error, 'forbidden');
  });

  it('a jti revoked in Redis is refused within a second by the other Portcullis instance', async () => {
    const token = await idp.token({ sub: 'user-r', scope: 'orders:read', jti: 'e2e-jti' });
    assert.equal((await get(`${base}/api/orders`, { authorization: `Bearer ${token}` })).status, 200);
    // The operator's command, with the same config as the instances.
    const { file } = writeConfig(portcullisConfig(redis.url, idp));
    const revoked = await runCommand(process.execPath, [portcullisBin(), 'revoke', '--config', file, '--jti', 'e2e-jti', '--ttl', '600']);
    assert.equal(revoked.code, 0, revoked.output);
    assert.match(revoked.output, /^revoked jti e2e-jti until /);
    const revokedAt = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - revokedAt < 3000) {
      status = (await get(`${base}/api/orders`, { authorization: `Bearer ${token}` })).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 401);
    assert.ok(Date.now() - revokedAt < 1000, `took ${Date.now() - revokedAt} ms`);
  });
});
