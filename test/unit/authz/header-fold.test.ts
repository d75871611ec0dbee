import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foldTargets, lookalikes, mayFold, underscoredNames } from '../../../src/authz/header-fold.js';
import { authzSettings } from './support.js';

const POLICIES = 'policies:\n  - { name: p, match: { path_prefix: / }, authenticate: [anonymous] }';
const defaults = foldTargets(authzSettings(`api_keys: { header: x-api-key, file: ./keys.yaml }\n${POLICIES}`));
const renamed = foldTargets(authzSettings(`identity_headers: { user_id: x_caller, tier: x-plan, scopes: x_granted_scopes }\n${POLICIES}`));

/** The request's header names (lower case, as Envoy sends them) → the lookalikes to remove. */
function found(targets: typeof defaults, names: readonly string[]): readonly string[] {
  const headers = new Map(names.map((n) => [n, 'v']));
  return lookalikes(targets, headers, underscoredNames(names));
}

describe('header-fold: the names an upstream that reads _ as - takes for an identity or API key header', () => {
  // [targets, the request's header names, the lookalikes]
  const rows: [string, typeof defaults, string[], string[]][] = [
    ['no header holds _', defaults, ['x-user-id', 'x-auth-method', 'x-api-key', 'user-agent'], []],
    ['every identity header, all _', defaults, ['x_user_id', 'x_auth_method', 'x_api_key_id', 'x_client_tier', 'x_user_scopes'], ['x_user_id', 'x_auth_method', 'x_api_key_id', 'x_client_tier', 'x_user_scopes']],
    ['mixed spellings, beside the exact name', defaults, ['x-user-id', 'x-user_id', 'x_user-id', 'x-api_key-id'], ['x-user_id', 'x_user-id', 'x-api_key-id']],
    ['the API key header', defaults, ['x_api_key', 'x-api_key'], ['x_api_key', 'x-api_key']],
    ['names holding _ that fold to nothing guarded', defaults, ['x_custom', 'x_user_ids', 'x__user_id', '_x_user_id', 'x_forwarded_for'], []],
    ['a repeated name once', defaults, ['x_user_id', 'x_user_id'], ['x_user_id']],
    ['only the guarded ones among others', defaults, ['accept', 'x_trace', 'x_client_tier', 'x-request-id'], ['x_client_tier']],
    ['renamed headers: the names they replaced are nothing special', renamed, ['x_user_id', 'x_client-tier', 'x_user_scopes'], []],
    ['renamed: a spelling of a configured name', renamed, ['x_plan', 'x-auth_method'], ['x_plan', 'x-auth_method']],
    // A configured name holding `_`: its all-`-` spelling holds none, and is found by name.
    ['renamed: a configured name holding _ is itself set, not a lookalike', renamed, ['x_caller'], []],
    ['renamed: the all-- spelling of a configured name holding _', renamed, ['x-caller'], ['x-caller']],
    ['renamed: every other spelling of a configured name holding _', renamed, ['x_granted_scopes', 'x-granted_scopes', 'x_granted-scopes', 'x-granted-scopes'], ['x-granted_scopes', 'x_granted-scopes', 'x-granted-scopes']],
  ];
  for (const [name, targets, names, want] of rows) {
    it(name, () => assert.deepEqual(found(targets, names), want));
  }

  it('names are lower-cased and kept once, and a request without _ in any name gets one shared empty list', () => {
    assert.deepEqual(underscoredNames(['X_User_Id', 'x_user_id', 'Accept', 'x-a_b']), ['x_user_id', 'x-a_b']);
    assert.equal(underscoredNames(['accept', 'x-user-id']), underscoredNames([]));
    assert.equal(lookalikes(defaults, new Map(), underscoredNames([])), lookalikes(defaults, new Map(), underscoredNames(['accept'])));
  });

  it('mayFold: names of a guarded name\'s length holding _, longer names than any guarded one included', () => {
    // Guarded lengths by default: 9 (x-user-id, x-api-key), 12 (x-api-key-id), 13 (x-auth-method, x-client-tier, x-user-scopes).
    const rows: [string, boolean][] = [
      ['x_user_id', true], ['x_api_key', true], ['x_foo_bar', true], ['x-user-id', false], ['x_trace', false], ['x_client_tier', true],
      ['x_envoy_expected_rq_timeout_ms', false], ['', false], ['_'.repeat(13), true], ['_'.repeat(14), false],
    ];
    for (const [name, may] of rows) assert.equal(mayFold(defaults, name), may, name);
    // Every lookalike passes it: the handler lists no fewer names than lookalikes() needs.
    const names = ['x_user_id', 'x-user_id', 'x_api_key', 'x_api_key_id', 'x_client_tier', 'x_user_scopes', 'x_auth_method'];
    assert.deepEqual(found(defaults, names), names.filter((n) => mayFold(defaults, n)));
    assert.deepEqual(underscoredNames(['x_trace', 'X_User_Id', 'x_client_tier'], defaults), ['x_user_id', 'x_client_tier']);
  });

  it('no guarded name holds _ by default, so the scan of names holding _ is all there is', () => {
    assert.deepEqual(defaults.dashed, []);
    assert.deepEqual(renamed.dashed, ['x-caller', 'x-granted-scopes']);
    assert.deepEqual(foldTargets(undefined).dashed, []);
  });
});
