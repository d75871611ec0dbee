import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestApp, type TestApp } from '../../support/app.js';
import { headerMap, metadataOf } from '../../support/authz-client.js';
import { startIdentityProvider, type IdentityProvider } from '../../support/identity-provider.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';
import { RedisRevocationList } from '../../../src/store/revocation-list.js';
import { createRedisClient } from '../../../src/store/redis-client.js';
import { systemClock } from '../../../src/shared/clock.js';
import { REDACTED_PATHS } from '../../../src/observability/logger.js';

const KEY_A = 'pk_integration-key-a-000000000000000000000000';
const KEY_B = 'pk_integration-key-b-000000000000000000000000';
const sha = (k: string): string => createHash('sha256').update(k).digest('hex');
const keysFile = (...entries: [string, string, string][]): string => entries.map(([id, key, tier]) => `- { id: ${id}, sha256: ${sha(key)}, owner: owner-${id}, tier: ${tier}, scopes: [orders:read] }`).join('\n') + '\n';

function section(idp: { jwksUrl: string; issuer: string; introspectionUrl: string }, extra = ''): string {
  return `api_keys: { header: x-api-key, query: api_key, file: ./keys.yaml }
jwt:
  providers:
    - name: main
      issuer: ${idp.issuer}
      audiences: [orders-api]
      jwks: { uri: ${idp.jwksUrl} }
      refetch_cooldown_seconds: 0
    - name: discovered
      issuer: ${idp.issuer}
      audiences: [discovery-api]
      jwks: { oidc_discovery: ${idp.issuer} }
introspection: { url: ${idp.introspectionUrl}, client_id: gateway, client_secret_file: ./secret, cache_seconds: 60 }
${extra}policies:
  - name: public
    match: { path_prefix: /public }
    authenticate: [anonymous]
  - name: orders
    match: { path_prefix: /api/orders }
    authenticate: [jwt, api_key]
    require: { scopes: [orders:read] }
  - name: opaque
    match: { path_prefix: /opaque }
    authenticate: [introspection]`;
}

describe('Authorization/Check over gRPC (real server, real HTTP issuer)', () => {
  let idp: IdentityProvider;
  let app: TestApp;
  before(async () => {
    idp = await startIdentityProvider();
    app = await startTestApp({ descriptors: {}, authz: section(idp), files: { 'keys.yaml': keysFile(['a', KEY_A, 'gold']), secret: 'shh\n' } });
  });
  after(async () => {
    await app.close();
    await idp.stop();
  });

  it('no credentials: a 401 CheckResponse (not a gRPC error) with WWW-Authenticate and a JSON body', async () => {
    const r = await app.authz.check({ path: '/api/orders/1', headers: { 'x-request-id': 'rid-7' } });
    assert.equal(r.status?.code, 16);
    assert.equal(Number(r.denied_response?.status?.code === 'Unauthorized' ? 401 : r.denied_response?.status?.code), 401);
    const headers = headerMap(r.denied_response?.headers);
    assert.match(headers['www-authenticate'] ?? '', /^Bearer /);
    assert.equal(headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.denied_response?.body ?? ''), { error: 'missing_credentials', message: 'credentials are required', request_id: 'rid-7' });
  });

  it('JWT from the JWKS URI: identity headers overwrite the spoofed ones; dynamic metadata carries the identity', async () => {
    const token = await idp.token({ sub: 'user-42', scope: 'orders:read', tier: 'pro' });
    const r = await app.authz.check({ path: '/api/orders/1', headers: { authorization: `Bearer ${token}`, 'x-user-id': 'spoofed' } });
    assert.equal(r.status?.code, 0, JSON.stringify(r));
    const set = headerMap(r.ok_response?.headers);
    assert.equal(set['x-user-id'], 'user-42');
    assert.equal(set['x-client-tier'], 'pro');
    for (const h of r.ok_response?.headers ?? []) assert.equal(h.append?.value, false);
    for (const name of Object.keys(set)) assert.ok(!r.ok_response?.headers_to_remove?.includes(name));
    assert.deepEqual(metadataOf(r), { user_id: 'user-42', auth_method: 'jwt', policy: 'orders', tier: 'pro', scopes: 'orders:read', provider: 'main' });
  });

  it('JWT through OIDC discovery (second provider, other audience)', async () => {
    const token = await idp.token({ sub: 'user-d', scope: 'orders:read' }, { audience: 'discovery-api' });
    await eventually(async () => (await app.authz.check({ path: '/api/orders', headers: { authorization: `Bearer ${token}` } })).status?.code === 0, 5000, 'discovery keys');
  });

  it('API key in the query: stripped via query_parameters_to_remove; the key header is removed upstream', async () => {
    const r = await app.authz.check({ path: `/api/orders?x=1&api_key=${KEY_A}` });
    assert.equal(r.status?.code, 0);
    assert.deepEqual(r.ok_response?.query_parameters_to_remove, ['api_key']);
    assert.ok(r.ok_response?.headers_to_remove?.includes('x-api-key'));
    assert.equal(metadataOf(r)['api_key_id'], 'a');
  });

  it('introspection against a real endpoint, with client credentials; active false denies', async () => {
    idp.setIntrospection((token, authorization) => (token === 'good-opaque' && authorization === `Basic ${Buffer.from('gateway:shh').toString('base64')}` ? { active: true, sub: 'svc', scope: 'x' } : { active: false }));
    assert.equal((await app.authz.check({ path: '/opaque', headers: { authorization: 'Bearer good-opaque' } })).status?.code, 0);
    assert.equal((await app.authz.check({ path: '/opaque', headers: { authorization: 'Bearer bad-opaque' } })).status?.code, 16);
  });

  it('one decision log line per Check, credentials never logged; metrics by policy/decision/reason', async () => {
    const before = app.logs().length;
    await app.authz.check({ path: `/api/orders?api_key=${KEY_A}`, headers: { authorization: 'Bearer not.a.jwt' } });
    const lines = app.logs().slice(before).filter((l) => l['msg'] === 'authz decision');
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line['path'], '/api/orders');
    assert.equal(line['policy'], 'orders');
    assert.equal(line['decision'], 'allow');
    assert.equal(line['identity'], 'owner-a');
    // A valid credential the policy refuses: the deny line names who was refused.
    const scopeless = await idp.token({ sub: 'user-7', scope: 'other' });
    await app.authz.check({ path: '/api/orders', headers: { authorization: `Bearer ${scopeless}` } });
    const refused = app.logs().slice(before).filter((l) => l['msg'] === 'authz decision' && l['reason'] === 'forbidden');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!['identity'], 'user-7');
    assert.equal(refused[0]!['auth_method'], 'jwt');
    // The line skips the logger's redaction, which is sound only while none of its fields is a redacted name.
    const redactedNames = new Set(REDACTED_PATHS.map((p) => p.replace(/^.*[.[]/, '').replace(/["\]]/g, '')));
    const names = Object.entries(line).flatMap(([k, v]) => [k, ...(typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.keys(v) : [])]);
    assert.deepEqual(names.filter((n) => redactedNames.has(n)), []);
    const everything = JSON.stringify(app.logs());
    assert.ok(!everything.includes(KEY_A) && !everything.includes('not.a.jwt') && !everything.includes('good-opaque'), 'a credential reached the log');
    assert.ok((await app.metric('portcullis_authz_checks_total', { policy: 'orders', decision: 'deny', reason: 'missing_credentials' })) >= 1);
    const metrics = await app.registry.metrics();
    assert.ok(!metrics.includes(KEY_A) && !metrics.includes('user-42'));
  });

  it('keys file hot reload: a new key works, a broken file keeps the last good keys', async () => {
    writeFileSync(path.join(app.dir, 'keys.yaml'), keysFile(['a', KEY_A, 'gold'], ['b', KEY_B, 'free']));
    await eventually(async () => (await app.authz.check({ path: '/api/orders', headers: { 'x-api-key': KEY_B } })).status?.code === 0, 5000, 'key b');
    writeFileSync(path.join(app.dir, 'keys.yaml'), '- { id: broken, sha256: NOTHEX }\n');
    await eventually(() => app.logs().some((l) => l['msg'] === 'config rejected; keeping the last good config' && JSON.stringify(l).includes('keys.yaml')), 5000, 'rejection logged');
    assert.equal((await app.authz.check({ path: '/api/orders', headers: { 'x-api-key': KEY_B } })).status?.code, 0);
  });
});

describe('Check with the JWKS URI unreachable at start', () => {
  it('starts, serves API keys and anonymous routes; JWT works once the issuer is up', async () => {
    const idp = await startIdentityProvider();
    idp.setMode('down');
    const app = await startTestApp({ descriptors: {}, authz: section(idp), files: { 'keys.yaml': keysFile(['a', KEY_A, 'gold']), secret: 's' } });
    try {
      assert.equal((await app.authz.check({ path: '/public' })).status?.code, 0);
      assert.equal((await app.authz.check({ path: '/api/orders', headers: { 'x-api-key': KEY_A } })).status?.code, 0);
      const token = await idp.token({ sub: 'u', scope: 'orders:read' });
      const down = await app.authz.check({ path: '/api/orders', headers: { authorization: `Bearer ${token}` } });
      assert.equal(down.status?.code, 14, 'keys unavailable: 503, not a gRPC error');
      idp.setMode('up');
      await eventually(async () => (await app.authz.check({ path: '/api/orders', headers: { authorization: `Bearer ${token}` } })).status?.code === 0, 8000, 'JWKS recovered');
      idp.setMode('slow');
      const started = Date.now();
      const unknownKid = await idp.token({ sub: 'u', scope: 'orders:read' }, { kid: 'rotated' });
      // The issuer hangs: the refetch for the unknown kid is abandoned at the Check's deadline, and the answer
      // (a denial) still arrives before the client's deadline.
      const slow = await app.authz.check({ path: '/api/orders', headers: { authorization: `Bearer ${unknownKid}` } }, 1000);
      assert.notEqual(slow.status?.code, 0);
      assert.ok(Date.now() - started < 1000);
      assert.equal((await app.authz.check({ path: '/api/orders', headers: { authorization: `Bearer ${token}` } })).status?.code, 0, 'cached keys keep serving');
    } finally {
      await app.close();
      await idp.stop();
    }
  });
});

describe('jti revocation in Redis', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  it('a jti revoked through one instance is refused by another within a second, accepted again as fast once lifted; Redis down → configured answer, counted', async () => {
    const idp = await startIdentityProvider();
    const revocation = (): RedisRevocationList => new RedisRevocationList(createRedisClient({ url: redis.url }), { clock: systemClock, refreshMs: 200, maxStalenessMs: 1500 });
    const a = revocation();
    const extra = 'revocation: { enabled: true, on_unavailable: deny }\n';
    const files = { 'keys.yaml': keysFile(['a', KEY_A, 'gold']), secret: 's' };
    const one = await startTestApp({ descriptors: {}, authz: section(idp, extra), files, revocation: a });
    const two = await startTestApp({ descriptors: {}, authz: section(idp, extra), files, revocation: revocation() });
    try {
      const token = await idp.token({ sub: 'u', scope: 'orders:read', jti: 'jti-123' });
      const check = (app: TestApp): Promise<number | undefined> => app.authz.check({ path: '/api/orders', headers: { authorization: `Bearer ${token}` } }).then((r) => r.status?.code);
      await eventually(async () => (await check(two)) === 0, 5000, 'token accepted');
      await a.revoke('jti', 'jti-123', Date.now() + 60_000);
      const revokedAt = Date.now();
      await eventually(async () => (await check(two)) === 16, 2000, 'revocation seen by instance two');
      assert.ok(Date.now() - revokedAt < 1000, `took ${Date.now() - revokedAt} ms`);
      // A lift through one instance reaches the other in the same time.
      assert.equal(await a.lift('jti', 'jti-123'), true);
      const liftedAt = Date.now();
      await eventually(async () => (await check(two)) === 0, 2000, 'lift seen by instance two');
      assert.ok(Date.now() - liftedAt < 1000, `took ${Date.now() - liftedAt} ms`);
      assert.equal(await check(one), 0, 'and by the instance that lifted it');
      await redis.kill();
      await eventually(async () => (await two.authz.check({ path: '/api/orders', headers: { 'x-api-key': KEY_A } })).status?.code === 14, 5000, 'stale list denies (503)');
      assert.ok((await two.metric('portcullis_authz_revocation_unavailable_total')) >= 1);
      assert.equal((await two.authz.check({ path: '/public' })).status?.code, 0, 'anonymous routes do not need the list');
      await redis.restart();
    } finally {
      await one.close();
      await two.close();
      await idp.stop();
    }
  });
});
