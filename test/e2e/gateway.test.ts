// The gateway end to end: a real Envoy running the generated bootstrap (src/gateway/envoy-bootstrap.ts, the
// definition behind envoy/envoy.yaml) with the filters ENABLED_FILTERS switches on, Portcullis with the shipped
// configs on a real redis-server, and the sample services. Plain HTTP(S) from loopback addresses; every client of a
// test gets a fresh 127.0.x.y so per-address budgets and ring hashes are its own. The shipped authz policies run
// with a keys file of fresh keys (each test its own, so per-key and per-user budgets are its own too).

import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { after, before, describe, it } from 'node:test';
import { ENABLED_FILTERS } from '../../src/gateway/filters.js';
import { eventually } from '../support/app.js';
import { envoyStat, loopbackAddresses, send, startGateway, type Gateway } from '../support/gateway.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { awayFromWindowEdge } from '../support/windows.js';

const MINUTE = 60;

interface TestKey {
  readonly id: string;
  readonly key: string;
  readonly owner: string;
}

/**
 * API keys for the shipped policies: `solo()` hands out a key nobody used yet (its own owner), `shared` are two keys
 * of one owner, `admin` has role admin.
 */
function testKeys(count: number) {
  const make = (id: string, owner: string, roles: string[] = []) => ({ id, key: `pk_test_${randomBytes(24).toString('base64url')}`, owner, roles });
  const solo = Array.from({ length: count }, (_, i) => make(`solo-${i}`, `user-${i}-${randomUUID()}`));
  const shared = [make('shared-1', 'shared-owner'), make('shared-2', 'shared-owner')];
  const admin = make('admin', 'operator', ['admin']);
  const entries = [...solo, ...shared, admin].map((k) => ({
    id: k.id, sha256: createHash('sha256').update(k.key).digest('hex'), owner: k.owner, tier: 'test', roles: k.roles,
  }));
  let next = 0;
  return {
    yaml: stringify(entries),
    solo: (): TestKey => {
      const key = solo[next++];
      if (key === undefined) throw new Error('out of test keys: raise the count');
      return key;
    },
    shared: shared as readonly TestKey[],
    admin: admin as TestKey,
  };
}

describe('the gateway through a real Envoy', () => {
  let redis: RedisServer | undefined;
  let gateway: Gateway | undefined;
  const nextAddress = loopbackAddresses();
  const keys = testKeys(160);
  const keysDir = mkdtempSync(path.join(tmpdir(), 'portcullis-gateway-keys-'));
  /** The x-api-key header of a key nobody used yet. */
  const withKey = (key: TestKey = keys.solo()): Record<string, string> => ({ 'x-api-key': key.key });

  before(async () => {
    writeFileSync(path.join(keysDir, 'keys.yaml'), keys.yaml);
    redis = await startRedis();
    gateway = await startGateway({ redisUrl: redis.url, filters: ENABLED_FILTERS, apiKeysFile: path.join(keysDir, 'keys.yaml') });
  });

  after(async () => {
    await gateway?.stop();
    await redis?.stop();
    rmSync(keysDir, { recursive: true, force: true });
  });

  const gw = (): Gateway => {
    if (gateway === undefined) throw new Error('gateway not started');
    return gateway;
  };
  const http = (pathname: string, options: Parameters<typeof send>[2] = {}) =>
    send(gw().port('http'), pathname, { localAddress: nextAddress(), ...options });
  const served = (name: string) => {
    const sample = gw().samples.get(name);
    if (sample === undefined) throw new Error(`no sample ${name}`);
    return sample;
  };

  describe('routing', () => {
    it('strips the /api/users/ prefix and balances round robin over both users instances', async () => {
      const seen = new Map<string, number>();
      for (let i = 0; i < 20; i += 1) {
        const reply = await http('/api/users/42?x=1');
        assert.equal(reply.status, 200, reply.body);
        assert.equal(reply.json?.['path'], '/42?x=1');
        const instance = String(reply.json?.['instance']);
        seen.set(instance, (seen.get(instance) ?? 0) + 1);
      }
      assert.deepEqual([...seen.keys()].sort(), ['users-1', 'users-2']);
      for (const count of seen.values()) assert.ok(count >= 8, `round robin should split 20 evenly: ${[...seen]}`);
    });

    it('matches methods: GET and POST reach orders, other methods get 405 from Envoy', async () => {
      assert.equal((await http('/api/orders', { headers: withKey() })).json?.['service'], 'orders');
      const created = await http('/api/orders', { method: 'POST', body: '{"item":1}', headers: { 'content-type': 'application/json', ...withKey() } });
      assert.equal(created.status, 200);
      assert.equal(created.json?.['method'], 'POST');
      assert.equal(created.json?.['bodyBytes'], 10);
      const before = served('orders-1').requestCount() + served('orders-2').requestCount();
      assert.equal((await http('/api/orders/7', { method: 'DELETE' })).status, 405);
      assert.equal(served('orders-1').requestCount() + served('orders-2').requestCount(), before);
    });

    const versions: [string, string, Record<string, string>, string][] = [
      ['URL /v1', '/v1/items', {}, 'v1'],
      ['URL /v2', '/v2/items', {}, 'v2'],
      ['no version asked', '/api/items', {}, 'v1'],
      ['header api-version: 2', '/api/items', { 'api-version': '2' }, 'v2'],
      ['header api-version: 1', '/api/items', { 'api-version': '1' }, 'v1'],
      ['query ?version=2', '/api/items?version=2', {}, 'v2'],
      ['Accept: application/vnd.api.v2+json', '/api/items', { accept: 'application/json, application/vnd.api.v2+json' }, 'v2'],
      ['Accept: application/json', '/api/items', { accept: 'application/json' }, 'v1'],
    ];
    for (const [what, pathname, headers, version] of versions) {
      it(`versioning by ${what} reaches ${version}`, async () => {
        const reply = await http(pathname, { headers });
        assert.equal(reply.status, 200, reply.body);
        assert.equal(reply.json?.['version'], version);
        assert.equal(reply.json?.['service'], `api-${version}`);
        assert.match(String(reply.json?.['path']), /^\/items/);
      });
    }

    it('splits /api/catalog 90/10 between stable and canary', async () => {
      const total = 400;
      let canary = 0;
      for (let i = 0; i < total; i += 1) {
        const reply = await http('/api/catalog');
        assert.equal(reply.status, 200, reply.body);
        if (reply.json?.['instance'] === 'catalog-canary') canary += 1;
        else assert.equal(reply.json?.['instance'], 'catalog-stable');
      }
      // Binomial(400, 0.1): mean 40, sd 6; ±4.5 sd.
      assert.ok(canary >= 13 && canary <= 67, `canary got ${canary} of ${total}`);
    });

    it('ring hash keeps each client address on one sessions instance', async () => {
      const instances = new Set<string>();
      for (let client = 0; client < 12; client += 1) {
        const address = nextAddress();
        const seen = new Set<string>();
        for (let i = 0; i < 8; i += 1) seen.add(String((await send(gw().port('http'), '/api/sessions', { localAddress: address })).json?.['instance']));
        assert.equal(seen.size, 1, `${address} was served by ${[...seen].join(', ')}`);
        instances.add([...seen][0]!);
      }
      assert.ok(instances.size >= 2, `12 clients should spread over the ring, got ${[...instances].join(', ')}`);
    });

    it('weights inventory endpoints 3:1', async () => {
      const big = served('inventory-big').requestCount();
      const small = served('inventory-small').requestCount();
      for (let i = 0; i < 80; i += 1) assert.equal((await http('/api/inventory')).status, 200);
      const bigShare = served('inventory-big').requestCount() - big;
      const smallShare = served('inventory-small').requestCount() - small;
      assert.equal(bigShare + smallShare, 80);
      assert.ok(bigShare >= 52 && bigShare <= 68, `big got ${bigShare}, small ${smallShare}`);
    });

    it('least request (orders) and random (search) reach every instance', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 30; i += 1) {
        seen.add(String((await http('/api/orders', { headers: withKey() })).json?.['instance']));
        seen.add(String((await http('/api/search')).json?.['instance']));
      }
      assert.deepEqual([...seen].sort(), ['orders-1', 'orders-2', 'search-1', 'search-2']);
    });

    it('answers unknown paths 404 from Envoy', async () => {
      assert.equal((await http('/nowhere')).status, 404);
    });
  });

  describe('resilience', () => {
    it('a retry with backoff hides a transient failure', async () => {
      const api = served('api-v1');
      const before = api.requestCount();
      api.state.failNext = 2;
      const reply = await http('/v1/items');
      assert.equal(reply.status, 200, reply.body);
      assert.equal(api.requestCount() - before, 3, 'two failed attempts, then the successful one');
      assert.equal(api.requests().at(-1)?.headers['x-envoy-attempt-count'], '3');
      assert.ok((await envoyStat(gw().envoy, 'cluster.api_v1.upstream_rq_retry')) >= 2);
    });

    it('outlier detection ejects a failing instance, and traffic returns once it heals', async () => {
      const { envoy } = gw();
      const bad = served('flaky-1');
      bad.state.failNext = Infinity;
      try {
        // Retries on another host hide every failure from the client while the bad host collects its 5xx.
        await eventually(async () => {
          const reply = await http('/api/flaky');
          assert.equal(reply.status, 200, reply.body);
          return (await envoyStat(envoy, 'cluster.flaky.outlier_detection.ejections_active')) === 1;
        }, 10_000, 'flaky-1 to be ejected');
        const whileEjected = bad.requestCount();
        for (let i = 0; i < 20; i += 1) assert.equal((await http('/api/flaky')).status, 200);
        assert.equal(bad.requestCount(), whileEjected, 'an ejected host gets no traffic');
      } finally {
        bad.state.failNext = 0;
      }
      // base_ejection_time 5 s, checked every 1 s: the healed host is back and served again.
      const healed = bad.requestCount();
      await eventually(async () => {
        await http('/api/flaky');
        return bad.requestCount() > healed;
      }, 15_000, 'flaky-1 to receive traffic again');
      assert.equal(await envoyStat(envoy, 'cluster.flaky.outlier_detection.ejections_active'), 0);
    });

    it('a slow upstream times out with 504 (route timeout 1 s on /api/search)', async () => {
      const started = Date.now();
      const reply = await http('/api/search?delay_ms=2500');
      const took = Date.now() - started;
      assert.equal(reply.status, 504, reply.body);
      assert.ok(took >= 900 && took < 2400, `answered after ${took} ms`);
      assert.match(String(reply.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'Envoy\'s own answer carries the request id too');
    });

    it('refuses a body over 1 MiB with 413 before any upstream sees it', async () => {
      const before = served('orders-1').requestCount() + served('orders-2').requestCount();
      const key = keys.solo();
      const reply = await http('/api/orders', { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 'a'), headers: withKey(key) });
      assert.equal(reply.status, 413);
      assert.equal(served('orders-1').requestCount() + served('orders-2').requestCount(), before);
      assert.equal((await http('/api/orders', { method: 'POST', body: Buffer.alloc(512 * 1024, 'a'), headers: withKey(key) })).status, 200);
    });
  });

  describe('edge policy', () => {
    it('answers a CORS preflight itself with the configured headers', async () => {
      const before = served('users-1').requestCount() + served('users-2').requestCount();
      const reply = await http('/api/users/1', {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key' },
      });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['access-control-allow-origin'], 'https://app.example.com');
      assert.equal(reply.headers['access-control-allow-methods'], 'GET, POST, PUT, PATCH, DELETE');
      assert.match(String(reply.headers['access-control-allow-headers']), /x-api-key/);
      assert.equal(reply.headers['access-control-max-age'], '600');
      assert.equal(reply.headers['access-control-allow-credentials'], 'true');
      assert.equal(served('users-1').requestCount() + served('users-2').requestCount(), before);
      // Also where other methods are refused by a direct response (/api/orders): the filter needs a forwarding route.
      const ordersBefore = served('orders-1').requestCount() + served('orders-2').requestCount();
      const orders = await http('/api/orders', {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key' },
      });
      assert.equal(orders.status, 200);
      assert.equal(orders.headers['access-control-allow-origin'], 'https://app.example.com');
      assert.equal(served('orders-1').requestCount() + served('orders-2').requestCount(), ordersBefore);
      // A simple request from an allowed origin gets the exposed headers; another origin gets no CORS headers.
      const allowed = await http('/api/users/1', { headers: { origin: 'https://app.example.com' } });
      assert.match(String(allowed.headers['access-control-expose-headers']), /x-ratelimit-remaining/);
      const other = await http('/api/users/1', { headers: { origin: 'https://evil.example' } });
      assert.equal(other.headers['access-control-allow-origin'], undefined);
    });

    it('/admin is open to an allowed address and refused (403) from any other, whatever x-forwarded-for says', async () => {
      const allowed = await send(gw().port('http'), '/admin/stats', { localAddress: '127.0.0.1', headers: withKey(keys.admin) });
      assert.equal(allowed.status, 200);
      const refused = await http('/admin/stats', { headers: { 'x-forwarded-for': '127.0.0.1', ...withKey(keys.admin) } });
      assert.equal(refused.status, 403);
      assert.match(refused.body, /RBAC/);
    });

    it('the metrics listener serves Envoy\'s Prometheus stats and none of the admin interface', async () => {
      const metrics = (pathname: string, method = 'GET') => send(gw().port('metrics'), pathname, { method });
      const stats = await metrics('/stats/prometheus?usedonly');
      assert.equal(stats.status, 200);
      assert.match(stats.body, /^envoy_cluster_upstream_rq_total\{/m);
      for (const [method, pathname] of [['GET', '/config_dump'], ['GET', '/clusters'], ['POST', '/logging?level=trace'],
        ['POST', '/healthcheck/fail'], ['POST', '/quitquitquit'], ['POST', '/stats/prometheus'], ['GET', '/stats/prometheus/../../config_dump']]) {
        const reply = await metrics(pathname!, method);
        assert.equal(reply.status, 404, `${method} ${pathname}: ${reply.body.slice(0, 80)}`);
      }
      assert.equal((await fetch(`${gw().envoy.adminUrl}/ready`)).status, 200, 'Envoy is still up and serving');
      assert.equal((await http('/healthz')).status, 200);
    });

    it('a sample service\'s control endpoint cannot be reached through the gateway (prefix rewrites would map to it)', async () => {
      for (const path of ['/v1/__control?fail=always', '/api/users/__control?health=fail']) {
        const reply = await http(path, { method: 'POST' });
        assert.equal(reply.status, 404, path);
      }
      const after = await http('/v1/items');
      assert.equal(after.status, 200);
      assert.equal(after.headers['x-envoy-attempt-count'] ?? '1', '1');
    });

    it('normalizes the path before routing and the allow-list: dot segments cannot reach /admin, %2F is refused', async () => {
      const dotted = await http('/api/users/../../admin/stats', { headers: withKey(keys.admin) });
      assert.equal(dotted.status, 403);
      assert.match(dotted.body, /RBAC/);
      const escaped = await http('/admin%2Fstats', { headers: withKey(keys.admin) });
      assert.equal(escaped.status, 400);
      // The upstream sees the path Envoy routed on, prefix stripped: one path for every party.
      const merged = await http('/api/users//x/../1');
      assert.equal(merged.status, 200);
      assert.equal(merged.json?.['path'], '/1');
    });

    it('sets x-request-id (replacing a client-supplied one) and returns it to the client', async () => {
      const reply = await http('/api/users/1', { headers: { 'x-request-id': 'spoofed' } });
      const id = reply.headers['x-request-id'];
      assert.match(String(id), /^[0-9a-f-]{36}$/);
      assert.equal((reply.json?.['headers'] as Record<string, string>)['x-request-id'], id);
    });

    it('ext_proc skips the response phase where it has nothing to do there; Envoy still returns the request id', async () => {
      const responsePhases = async (): Promise<number> => {
        const metrics = await (await fetch(`${gw().portcullis.adminUrl}/metrics`)).text();
        return Number(/^portcullis_extproc_messages_total\{phase="response_headers"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
      };
      const before = await responsePhases();
      for (let i = 0; i < 5; i++) {
        const reply = await http('/api/users/1');
        assert.equal(reply.status, 200);
        const id = String(reply.headers['x-request-id']);
        assert.match(id, /^[0-9a-f-]{36}$/);
        assert.equal((reply.json?.['headers'] as Record<string, string>)['x-request-id'], id, 'the id the upstream saw');
      }
      assert.equal(await responsePhases(), before, 'no response_headers message for a route without response work');
      // A cached route keeps its response phase (x-cache-status, storing).
      const cached = await http('/api/catalog/featured', { headers: withKey() });
      assert.match(String(cached.headers['x-cache-status']), /^(MISS|HIT)$/);
      assert.equal(await responsePhases(), before + 1);
    });

    it('a request Envoy cannot parse gets its 400 at once, though ext_proc is on (no response phase it never asked for)', async () => {
      // With the response phase on by default, ext_proc held Envoy's own 400 for a call while the connection closed,
      // and the client got nothing.
      const rawReply = (request: string): Promise<{ statusLine: string; ms: number }> => new Promise((resolve, reject) => {
        const started = Date.now();
        let data = '';
        const socket = connect(gw().port('http'), '127.0.0.1', () => socket.write(request));
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => {
          data += chunk;
          if (data.includes('\r\n')) {
            resolve({ statusLine: data.slice(0, data.indexOf('\r\n')), ms: Date.now() - started });
            socket.destroy();
          }
        });
        socket.on('close', () => resolve({ statusLine: data, ms: Date.now() - started }));
        socket.on('error', reject);
      });
      for (const header of ['x_user_id: spoofed', 'x user: bad']) {
        const reply = await rawReply(`GET /api/users/1 HTTP/1.1\r\nhost: gateway\r\n${header}\r\n\r\n`);
        assert.equal(reply.statusLine, 'HTTP/1.1 400 Bad Request', header);
        assert.ok(reply.ms < 900, `${header}: answered after ${reply.ms} ms`);
      }
    });

    it('terminates TLS on the https listener', async () => {
      const ca = readFileSync(path.join(gw().certDir, 'ca.pem'));
      const reply = await send(gw().port('https'), '/api/users/1', { tls: { ca } });
      assert.equal(reply.status, 200);
      assert.equal((reply.json?.['headers'] as Record<string, string>)['x-forwarded-proto'], 'https');
    });

    it('requires a client certificate on the mtls listener and passes its identity on', async () => {
      const file = (name: string) => readFileSync(path.join(gw().certDir, name));
      await assert.rejects(send(gw().port('mtls'), '/api/users/1', { tls: { ca: file('ca.pem') } }));
      const reply = await send(gw().port('mtls'), '/api/users/1', { tls: { ca: file('ca.pem'), cert: file('client.pem'), key: file('client-key.pem') } });
      assert.equal(reply.status, 200);
      const xfcc = String((reply.json?.['headers'] as Record<string, string>)['x-forwarded-client-cert']);
      assert.match(xfcc, /URI=spiffe:\/\/portcullis\.local\/demo-client/);
      assert.match(xfcc, /CN=demo-client/);
      // A client cannot forge it on the other listeners.
      const forged = await http('/api/users/1', { headers: { 'x-forwarded-client-cert': 'URI=spiffe://evil' } });
      assert.equal((forged.json?.['headers'] as Record<string, string>)['x-forwarded-client-cert'], undefined);
    });

    it('writes one JSON access log line per request with every field', async () => {
      const key = keys.solo();
      const user = key.owner;
      const client = nextAddress();
      // A query may carry a credential: the line names the path without it.
      const reply = await send(gw().port('http'), '/api/users/7?access_token=log-canary-3f9a&x=1', { localAddress: client, headers: withKey(key) });
      const id = String(reply.headers['x-request-id']);
      let line: Record<string, unknown> | undefined;
      await eventually(() => (line = gw().accessLog().find((l) => l['request_id'] === id)) !== undefined, 5000, 'the access log line');
      const fields = ['timestamp', 'method', 'path', 'status', 'latency_ms', 'client_ip', 'user_id', 'upstream', 'request_id', 'rate_limit_remaining', 'cache_status'];
      for (const field of fields) assert.ok(line !== undefined && field in line, `missing ${field}: ${JSON.stringify(line)}`);
      assert.equal(line?.['method'], 'GET');
      assert.equal(line?.['path'], '/api/users/7');
      assert.equal(line?.['status'], 200);
      assert.equal(typeof line?.['latency_ms'], 'number');
      assert.equal(line?.['client_ip'], client);
      assert.equal(line?.['user_id'], user);
      assert.equal(line?.['upstream'], 'users');
      assert.equal(line?.['rate_limit_remaining'], String(reply.headers['x-ratelimit-remaining']));
      assert.ok(!Number.isNaN(Date.parse(String(line?.['timestamp']))));
      assert.ok(!JSON.stringify(line).includes('log-canary'), JSON.stringify(line));
    });
  });

  describe('ext_authz through Portcullis (authz: in envoy/portcullis.yaml)', () => {
    const upstreamHeaders = (reply: { json: Record<string, unknown> | undefined }) => (reply.json?.['headers'] ?? {}) as Record<string, string>;

    it('refuses /api/orders without a credential: 401 with WWW-Authenticate, the upstream never asked', async () => {
      const before = served('orders-1').requestCount() + served('orders-2').requestCount();
      const reply = await http('/api/orders');
      assert.equal(reply.status, 401, reply.body);
      assert.match(String(reply.headers['www-authenticate']), /^Bearer realm="portcullis"/);
      assert.equal(reply.json?.['error'], 'missing_credentials');
      const wrong = await http('/api/export', { headers: { 'x-api-key': 'pk_not_a_key' } });
      assert.equal(wrong.status, 401, wrong.body);
      assert.match(String(wrong.headers['www-authenticate']), /error="invalid_token"/);
      assert.equal(served('orders-1').requestCount() + served('orders-2').requestCount(), before);
    });

    it('a valid key reaches the upstream as its identity headers; the key itself and spoofed identity never do', async () => {
      const key = keys.solo();
      const reply = await http('/api/orders', {
        headers: { ...withKey(key), 'x-user-id': 'admin', 'x-api-key-id': 'forged', 'x-auth-method': 'jwt', 'x-user-scopes': 'everything' },
      });
      assert.equal(reply.status, 200, reply.body);
      const seen = upstreamHeaders(reply);
      assert.equal(seen['x-user-id'], key.owner);
      assert.equal(seen['x-api-key-id'], key.id);
      assert.equal(seen['x-auth-method'], 'api_key');
      assert.equal(seen['x-client-tier'], 'test');
      assert.equal(seen['x-user-scopes'], undefined, 'a key without scopes: the spoofed header is removed');
      assert.equal(seen['x-api-key'], undefined, 'the key never travels upstream');
    });

    it('an anonymous caller on an open route is `anonymous` upstream, whatever identity headers it sends', async () => {
      const reply = await http('/api/users/1', { headers: { 'x-user-id': 'admin', 'x-api-key-id': 'forged', 'x-client-tier': 'gold' } });
      assert.equal(reply.status, 200, reply.body);
      const seen = upstreamHeaders(reply);
      assert.equal(seen['x-user-id'], 'anonymous');
      assert.equal(seen['x-auth-method'], 'anonymous');
      assert.equal(seen['x-api-key-id'], undefined);
      assert.equal(seen['x-client-tier'], undefined);
    });

    it('a known caller without the required role is forbidden (403) on /admin, even from the allowed address', async () => {
      const forbidden = await send(gw().port('http'), '/admin/stats', { localAddress: '127.0.0.1', headers: withKey() });
      assert.equal(forbidden.status, 403, forbidden.body);
      assert.equal(forbidden.json?.['error'], 'forbidden');
      const anonymous = await send(gw().port('http'), '/admin/stats', { localAddress: '127.0.0.1' });
      assert.equal(anonymous.status, 401, anonymous.body);
    });

    it('the mtls listener\'s client certificate is an identity: its SPIFFE id reaches orders as x-user-id', async () => {
      const file = (name: string) => readFileSync(path.join(gw().certDir, name));
      const reply = await send(gw().port('mtls'), '/api/orders', { tls: { ca: file('ca.pem'), cert: file('client.pem'), key: file('client-key.pem') } });
      assert.equal(reply.status, 200, reply.body);
      assert.equal(upstreamHeaders(reply)['x-user-id'], 'spiffe://portcullis.local/demo-client');
      assert.equal(upstreamHeaders(reply)['x-auth-method'], 'mtls');
      // The same request over TLS without a client certificate has no identity.
      assert.equal((await send(gw().port('https'), '/api/orders', { tls: { ca: file('ca.pem') } })).status, 401);
    });
  });

  describe('ext_proc response cache (extproc: in envoy/portcullis.yaml)', () => {
    it('caches GET /api/catalog/featured per caller: MISS, then HIT without the upstream, another caller MISS', async () => {
      const catalog = () => served('catalog-stable').requestCount() + served('catalog-canary').requestCount();
      const key = keys.solo();
      const first = await http('/api/catalog/featured', { headers: withKey(key) });
      assert.equal(first.status, 200, first.body);
      assert.equal(first.headers['x-cache-status'], 'MISS');
      let hit: Awaited<ReturnType<typeof http>> | undefined;
      let upstreamCalls = 0;
      // The entry is stored once the first response has passed through; give that a moment on a loaded machine.
      await eventually(async () => {
        const before = catalog();
        hit = await http('/api/catalog/featured', { headers: withKey(key) });
        upstreamCalls = catalog() - before;
        return hit.headers['x-cache-status'] === 'HIT';
      }, 5000, 'a cache HIT');
      assert.equal(hit?.status, 200);
      assert.equal(hit?.json?.['instance'], first.json?.['instance']);
      assert.equal(upstreamCalls, 0, 'a HIT never reaches the upstream');
      const other = await http('/api/catalog/featured', { headers: withKey() });
      assert.equal(other.headers['x-cache-status'], 'MISS', 'private route: another caller has its own entry');
      const id = String(hit?.headers['x-request-id']);
      let line: Record<string, unknown> | undefined;
      await eventually(() => (line = gw().accessLog().find((l) => l['request_id'] === id)) !== undefined, 5000, 'the access log line');
      assert.equal(line?.['cache_status'], 'HIT');
    });
  });

  describe('rate limits through Portcullis (envoy/ratelimit/gateway.yaml)', () => {
    /** Sends `count` requests and returns their statuses. */
    const burst = async (count: number, make: (i: number) => Promise<{ status: number }>) => {
      const statuses: number[] = [];
      for (let i = 0; i < count; i += 1) statuses.push((await make(i)).status);
      return statuses;
    };
    const allowedThenLimited = (statuses: number[], allowed: number) => {
      assert.deepEqual(statuses.slice(0, allowed), Array(allowed).fill(200));
      assert.deepEqual(statuses.slice(allowed), Array(statuses.length - allowed).fill(429));
    };

    it('every request counts against the global limit (1000/s), visible in x-ratelimit-limit', async () => {
      const reply = await http('/api/users/1');
      assert.match(String(reply.headers['x-ratelimit-limit']), /1000;w=1;name="global"/);
      assert.match(String(reply.headers['x-ratelimit-limit']), /300;w=60;name="per-address"/);
    });

    it('limits each API key to 20 per minute (the key ext_authz verified): one key gets 429, another passes', async () => {
      await awayFromWindowEdge(MINUTE, 15);
      const key = keys.solo();
      allowedThenLimited(await burst(22, () => http('/api/users/1', { headers: withKey(key) })), 20);
      assert.equal((await http('/api/users/1', { headers: withKey() })).status, 200, 'another key has its own budget');
    });

    it('limits each user to 30 per minute over all of their keys, whatever x-user-id a client sends', async () => {
      await awayFromWindowEdge(MINUTE, 15);
      const [first, second] = keys.shared;
      // Alternating two keys of one owner: neither key reaches 20, the owner reaches 30.
      const statuses = await burst(32, (i) => http('/api/users/1', { headers: { ...withKey(i % 2 === 0 ? first : second), 'x-user-id': `spoof-${i}` } }));
      allowedThenLimited(statuses, 30);
      assert.equal((await http('/api/users/1', { headers: withKey() })).status, 200, 'another user has their own budget');
    });

    it('anonymous callers share no per-user budget: 40 from different addresses all pass', async () => {
      await awayFromWindowEdge(MINUTE, 5);
      assert.deepEqual(await burst(40, () => http('/api/users/1', { headers: { 'x-user-id': 'anonymous' } })), Array(40).fill(200));
    });

    it('limits each client address to 300 per minute', async () => {
      await awayFromWindowEdge(MINUTE, 20);
      const address = nextAddress();
      const statuses = await burst(301, () => send(gw().port('http'), '/api/users/1', { localAddress: address }));
      allowedThenLimited(statuses, 300);
      assert.equal((await http('/api/users/1')).status, 200, 'another address has its own budget');
    });

    it('limits /api/export to 10 per minute for everyone together', async () => {
      await awayFromWindowEdge(MINUTE);
      // A new key, user and address for every call: only the per-endpoint rule can stop the 11th.
      const statuses = await burst(11, () => http('/api/export', { headers: withKey() }));
      allowedThenLimited(statuses, 10);
      assert.equal((await http('/api/orders', { headers: withKey() })).status, 200, 'other endpoints are not affected');
    });
  });
});

describe('the gateway with preserve_external_request_id (request_id.echo: envoy)', () => {
  let gateway: Gateway | undefined;
  before(async () => {
    // Every connection manager keeps a client's x-request-id; the shipped one replaces it.
    gateway = await startGateway({
      redisUrl: undefined, filters: ENABLED_FILTERS,
      adjustBootstrap: (bootstrap) => JSON.parse(JSON.stringify(bootstrap).replaceAll('"preserve_external_request_id":false', '"preserve_external_request_id":true')),
    });
  });
  after(async () => gateway?.stop());

  it('Envoy echoes the id ext_proc put in place of one it refused, and a kept one as sent', async () => {
    const port = (): number => gateway!.port('http');
    const kept = await send(port(), '/api/users/1', { headers: { 'x-request-id': 'client-id-1' } });
    assert.equal(kept.headers['x-request-id'], 'client-id-1');
    assert.equal((kept.json?.['headers'] as Record<string, string>)['x-request-id'], 'client-id-1');
    const replaced = await send(port(), '/api/users/1', { headers: { 'x-request-id': 'an id with spaces' } });
    const id = String(replaced.headers['x-request-id']);
    assert.match(id, /^[0-9a-f-]{36}$/, 'Portcullis refused the client id and set a UUID');
    assert.equal((replaced.json?.['headers'] as Record<string, string>)['x-request-id'], id, 'the upstream saw the same one');
  });
});
