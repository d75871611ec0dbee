import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Grant } from '../../../src/authz/types.js';
import { encodeAllow } from '../../../src/server/allow-encoding.js';
import { toCheckResponse } from '../../../src/server/authz-handler.js';
import { authorizationServiceDefinition } from '../../../src/server/protos.js';

const check = authorizationServiceDefinition()['Check']!;
const grant = (g: Partial<Grant>): Grant => ({ shared: false, headers: [], headersToRemove: [], queryParamsToRemove: [], dynamicMetadata: {}, ...g });

describe('allow-encoding: encodeAllow gives the bytes the service serializer makes of toCheckResponse', () => {
  const cases: { name: string; grant: Grant }[] = [
    { name: 'empty grant', grant: grant({}) },
    { name: 'a JWT caller', grant: grant({
      headers: [['x-user-id', 'user-17'], ['x-auth-method', 'jwt'], ['x-user-scopes', 'orders:read orders:write']],
      headersToRemove: ['x-api-key-id', 'x-client-tier', 'x-api-key'],
      dynamicMetadata: { user_id: 'user-17', auth_method: 'jwt', policy: 'orders', scopes: 'orders:read orders:write', provider: 'main' },
    }) },
    { name: 'an API key in the query', grant: grant({
      headers: [['x-user-id', 'alice'], ['x-auth-method', 'api_key'], ['x-api-key-id', 'k1'], ['x-client-tier', 'gold']],
      headersToRemove: ['x-user-scopes', 'x-api-key'], queryParamsToRemove: ['api_key'],
      dynamicMetadata: { user_id: 'alice', auth_method: 'api_key', policy: 'p', api_key_id: 'k1', tier: 'gold' },
    }) },
    { name: 'non-ASCII values (2-, 3- and 4-byte UTF-8)', grant: grant({
      headers: [['x-user-id', 'jürgen-日本-😀']], dynamicMetadata: { user_id: 'jürgen-日本-😀', 'clé': 'välue' },
    }) },
    // Lengths that need a two- and a three-byte varint, at every nesting level.
    { name: 'long values', grant: grant({
      headers: [['x-user-scopes', 's'.repeat(200)], ['x-user-id', 'u'.repeat(4096)]],
      headersToRemove: ['h'.repeat(130)], queryParamsToRemove: ['q'.repeat(127), 'q'.repeat(128)],
      dynamicMetadata: { scopes: 'm'.repeat(20_000), k: '' },
    }) },
    // `shared` says whether the bytes may be kept; it is no part of them.
    { name: 'lookalike removals, shared or not', grant: grant({ shared: true, headers: [['x-user-id', 'anonymous']], headersToRemove: ['x-api-key', 'x_user_id', 'x-auth_method'] }) },
    { name: 'empty strings', grant: grant({ headers: [['x-a', '']], headersToRemove: [''], dynamicMetadata: { '': '' } }) },
  ];
  for (const { name, grant: g } of cases) {
    it(name, () => {
      const want = check.responseSerialize(toCheckResponse({ allow: true, policy: 'p', reason: 'allowed', identity: undefined as never, attempts: [], grant: g }, ''));
      assert.deepEqual(encodeAllow(g), want);
    });
  }

  it('decodes to the allow a reader of the proto expects', () => {
    const decoded = check.responseDeserialize(encodeAllow(cases[2]!.grant)) as Record<string, any>;
    assert.equal(decoded['status'].code, 0);
    assert.deepEqual(decoded['ok_response'].headers.map((h: any) => [h.header.key, h.header.value, h.append.value]).slice(0, 2), [['x-user-id', 'alice', false], ['x-auth-method', 'api_key', false]]);
    assert.deepEqual(decoded['ok_response'].query_parameters_to_remove, ['api_key']);
    assert.equal(decoded['dynamic_metadata'].fields.find((f: any) => f.key === 'tier').value.string_value, 'gold');
  });
});
