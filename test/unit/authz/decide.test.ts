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
  const d = decide(settings, policy, [{ method: 'jwt', outcome: { kind: 'success', identity: full, detail: '' } }], undefined);
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
