import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { AuthzService } from '../../../src/authz/service.js';
import type { AllowDecision, Decision, DenyDecision } from '../../../src/authz/types.js';
import { MemoryRevocationList } from '../../../src/store/revocation-list.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { authzSettings, countingObserver, fakeHttp, input } from './support.js';

const KEY_A = 'pk_alpha-key-for-tests-0000000000000000000000';
const KEY_B = 'pk_bravo-key-for-tests-0000000000000000000000';
const KEY_OFF = 'pk_disabled-key-00000000000000000000000000000';
const sha = (k: string): string => createHash('sha256').update(k).digest('hex');
const KEYS = `- { id: alpha-1, sha256: ${sha(KEY_A)}, owner: alice, tier: gold, scopes: [orders:read] }
- { id: bravo-1, sha256: ${sha(KEY_B)}, owner: bob, tier: free }
- { id: disabled-1, sha256: ${sha(KEY_OFF)}, owner: carol, disabled: true }
`;

const SECTION = `api_keys: { header: x-api-key, query: api_key, file: ./keys.yaml }
mtls: { trusted: [192.0.2.200] }
policies:
  - name: public
    match: { path_prefix: /public }
    authenticate: [anonymous]
  - name: orders
    match: { path_prefix: /api/orders, methods: [GET, POST] }
    authenticate: [api_key]
    require: { scopes: [orders:read] }
  - name: keyed
    match: { path_prefix: /api }
    authenticate: [api_key]
  - name: admin
    match: { path_prefix: /admin }
    authenticate: [mtls]
    require: { principals: ["spiffe://example.org/ops"] }
    ip_allow: [10.0.0.0/8]
  - name: routed
    authenticate: [anonymous]
  - name: ops
    authenticate: [mtls]`;

function setup(section = SECTION, keys = KEYS) {
  const clock = new FakeClock(1_700_000_000_000);
  const revocation = new MemoryRevocationList(clock);
  const service = new AuthzService({ clock, revocation, http: fakeHttp({}), observer: countingObserver() });
  const settings = authzSettings(section);
  const snapshot = service.prepare(settings, new Map([['/etc/portcullis/keys.yaml', keys]]));
  const check = async (i: Parameters<typeof input>[0]): Promise<Decision> => service.check(input(i), snapshot, AbortSignal.timeout(1000));
  return { clock, revocation, service, snapshot, check };
}

const allowed = (d: Decision): AllowDecision => {
  assert.ok(d.allow, `expected allow, got ${JSON.stringify(d)}`);
  return d;
};
const denied = (d: Decision, status: number, reason: string): DenyDecision => {
  assert.ok(!d.allow, `expected deny, got allow as ${d.allow && d.identity.subject}`);
  assert.equal(d.status, status, d.message);
  assert.equal(d.reason, reason);
  return d;
};

describe('AuthzService.check: policies and API keys', () => {
  it('without an authz section every request is denied 403', async () => {
    const clock = new FakeClock(0);
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http: fakeHttp({}), observer: countingObserver() });
    denied(await service.check(input({ rawPath: '/public' }), service.prepare(undefined, new Map()), AbortSignal.timeout(100)), 403, 'no_policy');
  });

  const table: { name: string; req: Parameters<typeof input>[0]; status: number; reason: string; subject?: string }[] = [
    { name: 'anonymous route', req: { rawPath: '/public/docs' }, status: 200, reason: 'allowed', subject: 'anonymous' },
    { name: 'prefix is whole segments', req: { rawPath: '/publicity' }, status: 403, reason: 'no_policy' },
    { name: 'path trick out of /public', req: { rawPath: '/public/../api/x' }, status: 401, reason: 'missing_credentials' },
    { name: 'encoded dot trick', req: { rawPath: '/public/%2e%2e/admin' }, status: 403, reason: 'ip_not_allowed' },
    { name: 'encoded slash refused', req: { rawPath: '/public%2F..%2Fadmin' }, status: 400, reason: 'bad_path' },
    { name: 'path parameter refused', req: { rawPath: '/public/..;/admin' }, status: 400, reason: 'bad_path' },
    { name: 'overlong UTF-8 refused', req: { rawPath: '/public/%C0%AE%C0%AE/admin' }, status: 400, reason: 'bad_path' },
    { name: 'three-byte overlong UTF-8 refused', req: { rawPath: '/public/%E0%80%AE%E0%80%AE/admin' }, status: 400, reason: 'bad_path' },
    { name: 'key in header', req: { rawPath: '/api/x', headers: { 'x-api-key': KEY_B } }, status: 200, reason: 'allowed', subject: 'bob' },
    { name: 'key in query', req: { rawPath: `/api/x?a=1&api_key=${KEY_B}` }, status: 200, reason: 'allowed', subject: 'bob' },
    { name: 'unknown key', req: { rawPath: '/api/x', headers: { 'x-api-key': 'pk_nope' } }, status: 401, reason: 'invalid_credentials' },
    { name: 'disabled key', req: { rawPath: '/api/x', headers: { 'x-api-key': KEY_OFF } }, status: 401, reason: 'invalid_credentials' },
    { name: 'two keys', req: { rawPath: '/api/x', headers: { 'x-api-key': `${KEY_A},${KEY_B}` } }, status: 401, reason: 'invalid_credentials' },
    { name: 'two query keys', req: { rawPath: `/api/x?api_key=${KEY_A}&api_key=${KEY_B}` }, status: 401, reason: 'invalid_credentials' },
    { name: 'header key and query key', req: { rawPath: `/api/x?api_key=${KEY_B}`, headers: { 'x-api-key': KEY_A } }, status: 401, reason: 'invalid_credentials' },
    { name: 'no key', req: { rawPath: '/api/x' }, status: 401, reason: 'missing_credentials' },
    { name: 'query key parameter encoded', req: { rawPath: `/api/x?api%5Fkey=${KEY_B}` }, status: 401, reason: 'invalid_credentials' },
    { name: 'query key parameter in capitals, beside a good one', req: { rawPath: `/api/x?api_key=${KEY_B}&API_KEY=${KEY_A}` }, status: 401, reason: 'invalid_credentials' },
    { name: 'a miswritten key parameter is refused on an anonymous route too', req: { rawPath: `/public/docs?api%5Fkey=${KEY_B}` }, status: 401, reason: 'invalid_credentials' },
    { name: 'a key parameter as PHP and Rails read it (api_key[]), beside a good header key', req: { rawPath: `/public/docs?api_key[]=${KEY_B}`, headers: { 'x-api-key': KEY_A } }, status: 401, reason: 'invalid_credentials' },
    { name: 'a key parameter after a ; separator', req: { rawPath: `/public/docs?x=1;api_key=${KEY_B}` }, status: 401, reason: 'invalid_credentials' },
    { name: 'scope required and held', req: { rawPath: '/api/orders/1', headers: { 'x-api-key': KEY_A } }, status: 200, reason: 'allowed', subject: 'alice' },
    { name: 'scope required, not held: 403', req: { rawPath: '/api/orders/1', headers: { 'x-api-key': KEY_B } }, status: 403, reason: 'forbidden' },
    { name: 'method not in the policy falls through', req: { method: 'DELETE', rawPath: '/api/orders/1', headers: { 'x-api-key': KEY_B } }, status: 200, reason: 'allowed', subject: 'bob' },
    { name: 'context_extensions picks the policy', req: { rawPath: '/api/x', context: { policy: 'routed' } }, status: 200, reason: 'allowed', subject: 'anonymous' },
    { name: 'unknown context policy denies', req: { rawPath: '/public', context: { policy: 'typo' } }, status: 403, reason: 'unknown_policy' },
    { name: 'admin from outside the allow-list', req: { rawPath: '/admin', sourcePrincipal: 'spiffe://example.org/ops' }, status: 403, reason: 'ip_not_allowed' },
    { name: 'admin, allowed address, right principal', req: { rawPath: '/admin', sourceAddress: '10.1.2.3', sourcePrincipal: 'spiffe://example.org/ops' }, status: 200, reason: 'allowed', subject: 'spiffe://example.org/ops' },
    { name: 'admin, wrong principal', req: { rawPath: '/admin', sourceAddress: '10.1.2.3', sourcePrincipal: 'spiffe://example.org/dev' }, status: 403, reason: 'forbidden' },
    { name: 'admin, no certificate', req: { rawPath: '/admin', sourceAddress: '10.1.2.3' }, status: 401, reason: 'missing_credentials' },
    { name: 'admin, a blank principal names nobody', req: { rawPath: '/admin', sourceAddress: '10.1.2.3', sourcePrincipal: ' \t' }, status: 401, reason: 'invalid_credentials' },
    { name: 'admin, a principal with a leading space names nobody', req: { rawPath: '/admin', sourceAddress: '10.1.2.3', sourcePrincipal: ' spiffe://example.org/ops' }, status: 401, reason: 'invalid_credentials' },
    { name: 'admin, a principal with CR LF names nobody', req: { rawPath: '/admin', sourceAddress: '10.1.2.3', sourcePrincipal: 'spiffe://example.org/ops\r\nx-admin: 1' }, status: 401, reason: 'invalid_credentials' },
    { name: 'client XFCC from an untrusted peer is ignored', req: { rawPath: '/admin', sourceAddress: '10.1.2.3', headers: { 'x-forwarded-client-cert': 'URI=spiffe://example.org/ops' } }, status: 401, reason: 'missing_credentials' },
  ];
  for (const row of table) {
    it(row.name, async () => {
      const { check } = setup();
      const d = await check(row.req);
      if (row.status === 200) assert.equal(allowed(d).identity.subject, row.subject);
      else denied(d, row.status, row.reason);
    });
  }

  it('a trailing slash: the spelling no exact policy names is refused where its twin takes another policy (docs/authz.md)', async () => {
    const { check } = setup(`api_keys: { header: x-api-key, file: ./keys.yaml }
policies:
  - { name: orders, match: { path: /api/orders }, authenticate: [api_key] }
  - { name: docs, match: { path: /docs/ }, authenticate: [api_key] }
  - { name: public, match: { path_prefix: / }, authenticate: [anonymous] }`);
    // Express without strict routing and Spring MVC before 6 serve /api/orders/ as /api/orders: not anonymously.
    const refused = denied(await check({ rawPath: '/api/orders/' }), 400, 'bad_path');
    assert.equal(refused.message, 'bad request path: trailing slash: the path with and without it take different policies');
    denied(await check({ rawPath: '/api/orders/?x=1' }), 400, 'bad_path');
    denied(await check({ rawPath: '/api/orders', headers: {} }), 401, 'missing_credentials');
    denied(await check({ rawPath: '/docs' }), 400, 'bad_path');
    denied(await check({ rawPath: '/docs/' }), 401, 'missing_credentials');
    allowed(await check({ rawPath: '/api/orders', headers: { 'x-api-key': KEY_A } }));
    allowed(await check({ rawPath: '/api/orders/x' }));
    allowed(await check({ rawPath: '/' }));
    // A policy the route names is the route's: no path is matched.
    allowed(await check({ rawPath: '/api/orders/', context: { policy: 'public' } }));
  });

  it('identity headers: set with the values, every other identity header removed, never both; key header and query stripped', async () => {
    const { check } = setup();
    const d = allowed(await check({ rawPath: `/api/x?api_key=${KEY_A}`, headers: { 'x-user-id': 'mallory', 'x-client-tier': 'platinum' } }));
    assert.deepEqual(d.grant.headers, [['x-user-id', 'alice'], ['x-auth-method', 'api_key'], ['x-api-key-id', 'alpha-1'], ['x-client-tier', 'gold'], ['x-user-scopes', 'orders:read']]);
    assert.deepEqual(d.grant.headersToRemove, ['x-api-key']);
    assert.deepEqual(d.grant.queryParamsToRemove, ['api_key']);
    assert.deepEqual(d.grant.dynamicMetadata, { user_id: 'alice', auth_method: 'api_key', policy: 'keyed', api_key_id: 'alpha-1', tier: 'gold', scopes: 'orders:read' });
    const anon = allowed(await check({ rawPath: '/public', headers: { 'x-api-key-id': 'spoofed' } }));
    assert.deepEqual(anon.grant.headers, [['x-user-id', 'anonymous'], ['x-auth-method', 'anonymous']]);
    assert.deepEqual(anon.grant.headersToRemove, ['x-api-key-id', 'x-client-tier', 'x-user-scopes', 'x-api-key']);
    for (const [name] of anon.grant.headers) assert.ok(!anon.grant.headersToRemove.includes(name));
  });

  it('identity and key headers spelled with _ (read as the real ones by CGI, WSGI, PHP) are removed by the exact names sent', async () => {
    const { check } = setup();
    const spoofs = { 'x_user_id': 'root', 'x-auth_method': 'mtls', 'x_api_key': KEY_B, 'x_trace_id': 't' };
    const keyed = allowed(await check({ rawPath: '/api/x', headers: { 'x-api-key': KEY_A, ...spoofs } }));
    assert.equal(keyed.identity.subject, 'alice');
    assert.deepEqual(keyed.grant.headersToRemove, ['x-api-key', 'x_user_id', 'x-auth_method', 'x_api_key']);
    assert.equal(keyed.grant.shared, false);
    // Anonymous routes strip every client-sent copy too.
    const anon = allowed(await check({ rawPath: '/public', headers: spoofs }));
    assert.deepEqual(anon.grant.headersToRemove, ['x-api-key-id', 'x-client-tier', 'x-user-scopes', 'x-api-key', 'x_user_id', 'x-auth_method', 'x_api_key']);
    for (const d of [keyed, anon]) for (const [name] of d.grant.headers) assert.ok(!d.grant.headersToRemove.includes(name));
    // The next request without them gets the cached caller's shared Grant, as before.
    const plain = allowed(await check({ rawPath: '/api/x', headers: { 'x-api-key': KEY_A } }));
    assert.deepEqual(plain.grant.headersToRemove, ['x-api-key']);
    assert.equal(plain.grant.shared, true);
    // An mTLS caller (an identity of its own each time) too.
    const admin = allowed(await check({ rawPath: '/admin', sourceAddress: '10.1.2.3', sourcePrincipal: 'spiffe://example.org/ops', headers: { 'x_client_tier': 'platinum' } }));
    assert.ok(admin.grant.headersToRemove.includes('x_client_tier'));
  });

  it('a configured identity header holding _ : its all-- spelling is removed (it holds no _, so it is looked up by name)', async () => {
    const { service } = setup();
    const snapshot = service.prepare(authzSettings(`identity_headers: { user_id: x_caller }\n${SECTION}`), new Map([['/etc/portcullis/keys.yaml', KEYS]]));
    const d = allowed(await service.check(input({ rawPath: '/public', headers: { 'x-caller': 'root', 'x_caller': 'root' } }), snapshot, AbortSignal.timeout(1000)));
    assert.deepEqual(d.grant.headers[0], ['x_caller', 'anonymous']);
    assert.ok(d.grant.headersToRemove.includes('x-caller'));
    assert.ok(!d.grant.headersToRemove.includes('x_caller'));
  });

  it('asks Envoy to remove the key parameter only from a query that holds it (Envoy re-sorts any query it edits)', async () => {
    const { check } = setup();
    assert.deepEqual(allowed(await check({ rawPath: '/api/x?z=1&a=2', headers: { 'x-api-key': KEY_A } })).grant.queryParamsToRemove, []);
    assert.deepEqual(allowed(await check({ rawPath: '/public/docs?z=1&a=2' })).grant.queryParamsToRemove, []);
    assert.deepEqual(allowed(await check({ rawPath: `/public/docs?api_key=${KEY_A}` })).grant.queryParamsToRemove, ['api_key']);
  });

  it('one frozen Grant per settings, cached identity and policy: repeat callers share it, a reload gets new ones', async () => {
    const { check, service } = setup();
    const first = allowed(await check({ rawPath: '/api/x', headers: { 'x-api-key': KEY_A } }));
    const again = allowed(await check({ rawPath: '/api/y', headers: { 'x-api-key': KEY_A }, requestId: 'req-2' }));
    assert.equal(again.grant, first.grant);
    assert.ok(Object.isFrozen(first.grant));
    const otherKey = allowed(await check({ rawPath: '/api/x', headers: { 'x-api-key': KEY_B } }));
    assert.notEqual(otherKey.grant, first.grant);
    const otherPolicy = allowed(await check({ method: 'GET', rawPath: '/api/orders', headers: { 'x-api-key': KEY_A } }));
    assert.equal(otherPolicy.policy, 'orders');
    assert.notEqual(otherPolicy.grant, first.grant);
    assert.equal(allowed(await check({ rawPath: '/public' })).grant, allowed(await check({ rawPath: '/public/x' })).grant);
    // A reload with other identity headers: the same key now gets a grant built from the new settings.
    const reloaded = service.prepare(authzSettings(`identity_headers: { user_id: x-caller }\n${SECTION}`), new Map([['/etc/portcullis/keys.yaml', KEYS]]));
    const after = allowed(await service.check(input({ rawPath: '/api/x', headers: { 'x-api-key': KEY_A } }), reloaded, AbortSignal.timeout(1000)));
    assert.notEqual(after.grant, first.grant);
    assert.deepEqual(after.grant.headers[0], ['x-caller', 'alice']);
  });

  it('an identity made for one request (mTLS) gets a Grant of its own each time: nothing is kept beside it', async () => {
    const { check } = setup();
    const req = { rawPath: '/admin', sourceAddress: '10.1.2.3', sourcePrincipal: 'spiffe://example.org/ops' };
    const [first, second] = [allowed(await check(req)), allowed(await check(req))];
    assert.equal(first.identity.reused, undefined);
    assert.notEqual(second.grant, first.grant);
    assert.deepEqual(second.grant, first.grant);
    assert.equal(allowed(await check({ rawPath: '/api/x', headers: { 'x-api-key': KEY_A } })).identity.reused, true);
  });

  it('answers from memory synchronously: an API key, anonymous and a denial are no promise', () => {
    const { service, snapshot } = setup();
    for (const i of [{ rawPath: '/api/x', headers: { 'x-api-key': KEY_A } }, { rawPath: '/public' }, { rawPath: '/api/x' }, { rawPath: '/nowhere/../%2e%2e/x' }]) {
      const d = service.check(input(i), snapshot, AbortSignal.timeout(1000));
      assert.ok(!(d instanceof Promise), i.rawPath);
    }
    assert.equal(allowed(service.check(input({ rawPath: '/api/x', headers: { 'x-api-key': KEY_A } }), snapshot, AbortSignal.timeout(1000)) as Decision).identity.subject, 'alice');
  });

  it('XFCC is read only from a trusted peer', async () => {
    const { check } = setup();
    const xfcc = 'By=spiffe://example.org/envoy;Hash=abc;Subject="CN=x, O=y";URI=spiffe://example.org/ops;DNS=ops.example.org';
    const d = allowed(await check({ rawPath: '/x', context: { policy: 'ops' }, sourceAddress: '192.0.2.200', headers: { 'x-forwarded-client-cert': xfcc } }));
    assert.equal(d.identity.subject, 'spiffe://example.org/ops');
    denied(await check({ rawPath: '/x', context: { policy: 'ops' }, sourceAddress: '192.0.2.201', headers: { 'x-forwarded-client-cert': xfcc } }), 401, 'missing_credentials');
    const dns = allowed(await check({ rawPath: '/x', context: { policy: 'ops' }, sourceAddress: '192.0.2.200', headers: { 'x-forwarded-client-cert': 'Hash=1;DNS=a.example, Hash=2;Subject="CN=b, O=c"' } }));
    assert.equal(dns.identity.subject, 'CN=b, O=c');
    // A client's open quote would swallow the element the proxy appended: no identity from that header.
    const injected = 'URI=spiffe://example.org/ops;x=",By=spiffe://example.org/gateway;URI=spiffe://example.org/attacker';
    denied(await check({ rawPath: '/x', context: { policy: 'ops' }, sourceAddress: '192.0.2.200', headers: { 'x-forwarded-client-cert': injected } }), 401, 'missing_credentials');
  });

  it('revoking a key id denies it', async () => {
    const section = SECTION.replace('mtls:', 'revocation: { enabled: true }\nmtls:');
    const { check, revocation, clock } = setup(section);
    allowed(await check({ rawPath: '/api/x', headers: { 'x-api-key': KEY_B } }));
    await revocation.revoke('key', 'bravo-1', clock.nowMs() + 60_000);
    denied(await check({ rawPath: '/api/x', headers: { 'x-api-key': KEY_B } }), 401, 'invalid_credentials');
  });

  it('a broken keys file is a config error naming keys.yaml, line and path', () => {
    assert.throws(() => setup(SECTION, '- { id: a, sha256: ABC }\n- { id: a, sha256: ' + sha('x') + ', extra: 1 }\n'), (error: Error) => {
      assert.match(error.message, /keys\.yaml: expected 64 lower-case hex digits \(sha256 of the key\) \(line 1, at \[0\]\.sha256\)/);
      // Nothing the file says is quoted: a plaintext key may have gone where a name or an id goes.
      assert.match(error.message, /keys\.yaml: unknown key \(expected one of: id, sha256, .*\) \(line 2, at \[1\]\.\(not shown\)\)/);
      assert.match(error.message, /duplicate key id \(not shown\) \(line 2, at \[1\]\.id\)/);
      return true;
    });
  });

  it('an owner the upstream could not be handed as x-user-id is a config error; a bad id is named once', () => {
    const entries = `- { id: a, sha256: ${sha('1')}, owner: "  " }\n- { id: b, sha256: ${sha('2')}, owner: "ops\\r\\nx-admin: 1" }\n- { id: c, sha256: ${sha('4')}, owner: " admin" }\n- { id: "c d", sha256: ${sha('3')} }\n- { owner: x }\n`;
    assert.throws(() => setup(SECTION, entries), (error: Error) => {
      assert.deepEqual(error.message.split('\n').filter((l) => l.startsWith('keys.yaml')), [
        'keys.yaml: must not be blank, start or end with a space or tab, or hold control characters (line 1, at [0].owner)',
        'keys.yaml: must not be blank, start or end with a space or tab, or hold control characters (line 2, at [1].owner)',
        'keys.yaml: must not be blank, start or end with a space or tab, or hold control characters (line 3, at [2].owner)',
        'keys.yaml: expected an id of letters, digits and ._:- , got (not shown) (line 4, at [3].id)',
        'keys.yaml: is required (line 5, at [4].id)',
        'keys.yaml: is required (line 5, at [4].sha256)',
      ]);
      return true;
    });
  });
});

describe('client address with trusted hops', () => {
  it('uses the right x-forwarded-for entry', async () => {
    const { clientAddress } = await import('../../../src/authz/network.js');
    assert.equal(clientAddress('10.0.0.1', '203.0.113.9', 0), '10.0.0.1');
    assert.equal(clientAddress('10.0.0.1', '203.0.113.9', 1), '203.0.113.9');
    assert.equal(clientAddress('10.0.0.1', '203.0.113.9, 10.0.0.1', 1), '203.0.113.9');
    assert.equal(clientAddress('10.0.0.1', '1.1.1.1, 203.0.113.9, 10.0.0.5', 2), '203.0.113.9');
    assert.equal(clientAddress('10.0.0.1', 'spoofed, 203.0.113.9', 1), '203.0.113.9');
    assert.equal(clientAddress('10.0.0.1', '203.0.113.9', 5), '203.0.113.9');
  });
});

describe('AuthzService.prepare: a refused config leaves nothing running', () => {
  it('a remote JWKS source made for a config that is then refused stops fetching', async () => {
    const clock = new FakeClock(0);
    const http = fakeHttp({});
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer: countingObserver() });
    const settings = authzSettings(`jwt:
  providers:
    - { name: remote, issuer: https://idp.test, audiences: [a], jwks: { uri: "https://idp.test/jwks.json" }, refresh_seconds: 1 }
    - { name: local, issuer: https://local.test, audiences: [a], jwks: { file: ./jwks.json } }
policies:
  - { name: all, authenticate: [jwt] }`);
    assert.throws(() => service.prepare(settings, new Map([['/etc/portcullis/jwks.json', '{"keys": "not a list"}']])), /not a usable JWKS/);
    const fetched = http.calls.length;
    // The remote source's first fetch failed (no such host here): a live source retries after min(refresh, 2 s).
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.equal(http.calls.length, fetched, `fetches after the refusal: ${http.calls.slice(fetched).join(', ')}`);
    service.close();
  });
});
