import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide } from '../../../src/authz/decide.js';
import { compilePolicies } from '../../../src/authz/policy.js';
import type { Identity } from '../../../src/authz/types.js';
import { authzSettings } from './support.js';

const settings = authzSettings('policies:\n  - { name: p, match: { path_prefix: / }, authenticate: [anonymous] }');
const policy = compilePolicies(settings).byName.get('p')!;

function grantOf(identity: Partial<Identity>) {
  const full: Identity = { method: 'jwt', subject: 'alice', scopes: [], roles: [], claims: {}, ...identity };
  const d = decide(settings, policy, [{ method: 'jwt', outcome: { kind: 'success', identity: full, detail: '' } }], undefined, []);
  assert.ok(d.allow);
  return d.grant;
}

describe('decide: identity values not fit for a header are neither set nor forwarded in dynamic metadata', () => {
  const long = 'x'.repeat(4097);
  // [identity values, header, metadata key, forwarded value (undefined: removed / absent)]
  const rows: [Partial<Identity>, string, string, string | undefined][] = [
    [{ tier: 'gold' }, 'x-client-tier', 'tier', 'gold'],
    [{ tier: 'gold\r\nx-user-id: root' }, 'x-client-tier', 'tier', undefined],
    [{ tier: 'gold\u0000' }, 'x-client-tier', 'tier', undefined],
    [{ tier: long }, 'x-client-tier', 'tier', undefined],
    [{ tier: 'a\tb' }, 'x-client-tier', 'tier', 'a\tb'],
    [{ scopes: ['read', 'write'] }, 'x-user-scopes', 'scopes', 'read write'],
    [{ scopes: ['read', 'wr\nite'] }, 'x-user-scopes', 'scopes', undefined],
    [{ scopes: [long] }, 'x-user-scopes', 'scopes', undefined],
    [{ method: 'api_key', apiKeyId: 'k\u007f1' }, 'x-api-key-id', 'api_key_id', undefined],
    [{ method: 'api_key', apiKeyId: 'k1' }, 'x-api-key-id', 'api_key_id', 'k1'],
  ];
  for (const [identity, header, key, forwarded] of rows) {
    it(`${JSON.stringify(identity).slice(0, 60)}: ${forwarded === undefined ? 'removed' : 'forwarded'}`, () => {
      const grant = grantOf(identity);
      assert.equal(new Map(grant.headers.map(([n, v]) => [n, v])).get(header), forwarded);
      assert.equal(grant.headersToRemove.includes(header), forwarded === undefined);
      assert.equal(grant.dynamicMetadata[key], forwarded);
    });
  }

  it('a provider name not fit for a header is not forwarded either', () => {
    assert.equal(grantOf({ provider: 'main' }).dynamicMetadata['provider'], 'main');
    assert.equal(grantOf({ provider: 'ma\nin' }).dynamicMetadata['provider'], undefined);
  });
});

describe('decide: every lookalike of an identity or API key header the request carried is removed too', () => {
  const keyed = authzSettings('api_keys: { header: x-api-key, file: ./keys.yaml }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [anonymous] }');
  const anonymous: Identity = Object.freeze({ method: 'anonymous', subject: 'anonymous', scopes: [], roles: [], claims: {}, reused: true });
  const alice: Identity = Object.freeze({ method: 'api_key', subject: 'alice', apiKeyId: 'k1', tier: 'gold', scopes: ['read'], roles: [], claims: {}, reused: true });
  const allowed = (identity: Identity, lookalikes: readonly string[]) => {
    const d = decide(keyed, policy, [{ method: identity.method, outcome: { kind: 'success', identity, detail: '' } }], undefined, lookalikes);
    assert.ok(d.allow);
    return d.grant;
  };
  // [caller, lookalikes, headers_to_remove]
  const rows: [string, Identity, string[], string[]][] = [
    ['anonymous, none', anonymous, [], ['x-api-key-id', 'x-client-tier', 'x-user-scopes', 'x-api-key']],
    ['anonymous: a spoofed caller and key id', anonymous, ['x_user_id', 'x-api_key-id'], ['x-api-key-id', 'x-client-tier', 'x-user-scopes', 'x-api-key', 'x_user_id', 'x-api_key-id']],
    ['an API key caller: spellings of set headers and of the key header', alice, ['x_user_id', 'x_client_tier', 'x_api_key'], ['x-api-key', 'x_user_id', 'x_client_tier', 'x_api_key']],
    ['a name given twice is removed once', alice, ['x_user_id', 'x_user_id'], ['x-api-key', 'x_user_id']],
    // lookalikes() never hands one out, but a header Portcullis sets must not also be removed: Envoy would drop it.
    ['a set header is never removed, whatever is asked', alice, ['x-user-id', 'x_auth_method'], ['x-api-key', 'x_auth_method']],
  ];
  for (const [name, identity, lookalikes, removed] of rows) {
    it(name, () => {
      const grant = allowed(identity, lookalikes);
      assert.deepEqual(grant.headersToRemove, removed);
      for (const [set] of grant.headers) assert.ok(!grant.headersToRemove.includes(set), `${set} both set and removed`);
      assert.equal(grant.shared, lookalikes.length === 0);
    });
  }

  it('a cached caller with lookalikes gets a Grant of its own; the shared one is untouched and still shared', () => {
    const shared = allowed(alice, []);
    const own = allowed(alice, ['x_user_id']);
    assert.notEqual(own, shared);
    assert.ok(Object.isFrozen(own));
    assert.deepEqual(own.headers, shared.headers);
    assert.deepEqual(own.dynamicMetadata, shared.dynamicMetadata);
    assert.equal(allowed(alice, []), shared);
    assert.ok(!shared.headersToRemove.includes('x_user_id'));
  });

  it('a denial is the same with or without lookalikes: nothing reaches the upstream to strip', () => {
    const none = decide(keyed, policy, [{ method: 'api_key', outcome: { kind: 'absent', detail: '' } }], undefined, ['x_user_id']);
    assert.deepEqual(none, decide(keyed, policy, [{ method: 'api_key', outcome: { kind: 'absent', detail: '' } }], undefined, []));
  });
});

describe('decide: require.claims compares a claim\'s scalar values only', () => {
  const org = authzSettings('policies:\n  - { name: p, match: { path_prefix: / }, authenticate: [anonymous], require: { claims: { org: [acme, "7", "true"] } } }');
  const p = compilePolicies(org).byName.get('p')!;
  const deep = (depth: number): unknown => JSON.parse(`${'['.repeat(depth)}"acme"${']'.repeat(depth)}`);
  // [claim value, allowed]
  const rows: [unknown, boolean][] = [
    ['acme', true], [['other', 'acme'], true], [7, true], [true, true], ['other', false], [undefined, false], [null, false],
    // String() of these said "acme" or "[object Object]"; of a list nested this deep it overflowed the stack.
    [[['acme']], false], [{ toString: 'acme' }, false], [deep(2), false], [deep(100_000), false],
  ];
  for (const [i, [value, allowed]] of rows.entries()) {
    it(`${i === rows.length - 1 ? 'a list nested 100,000 deep' : JSON.stringify(value)}: ${allowed ? 'allowed' : 'forbidden'}`, () => {
      const identity: Identity = { method: 'jwt', subject: 'alice', scopes: [], roles: [], claims: { org: value } };
      const d = decide(org, p, [{ method: 'jwt', outcome: { kind: 'success', identity, detail: '' } }], undefined, []);
      assert.equal(d.allow, allowed);
    });
  }
});
