import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizePath } from '../../../src/shared/normalize-path.js';
import { compilePolicies, selectPolicy } from '../../../src/authz/policy.js';
import { authzSettings } from './support.js';

/**
 * Which policy a request gets (docs/authz.md, "How a Check is answered" 2–3): context_extensions.policy, else the
 * first policy whose match holds for the method and the normalized path, else default_policy. A policy's path is
 * compared with the request's normalized path, so it is normalized the same way when the config is read: written
 * with lower-case escapes, an escaped unreserved character, raw non-ASCII or `//`, it still protects the path the
 * upstream serves.
 */
describe('selectPolicy: order, precedence and path matching', () => {
  const settings = authzSettings(`default_policy: fallback
policies:
  - { name: exact, match: { path: /health }, authenticate: [anonymous] }
  - { name: get-api, match: { path_prefix: /api, methods: [GET, HEAD] }, authenticate: [anonymous] }
  - { name: api, match: { path_prefix: /api }, authenticate: [anonymous] }
  - { name: api-v1, match: { path_prefix: /api/v1 }, authenticate: [anonymous] }
  - { name: slash, match: { path_prefix: /slash/ }, authenticate: [anonymous] }
  - { name: escaped, match: { path_prefix: /caf%c3%a9 }, authenticate: [anonymous] }
  - { name: unicode, match: { path_prefix: /bücher }, authenticate: [anonymous] }
  - { name: tilde, match: { path_prefix: /%7Euser }, authenticate: [anonymous] }
  - { name: merged, match: { path_prefix: /x//y }, authenticate: [anonymous] }
  - { name: dotted, match: { path: /docs/./index }, authenticate: [anonymous] }
  - { name: admin-ci, match: { path_prefix: /admin, ignore_case: true }, authenticate: [anonymous] }
  - { name: login-ci, match: { path: /Login, ignore_case: true }, authenticate: [anonymous] }
  - { name: euro-ci, match: { path_prefix: "/X%e2%82%acy", ignore_case: true }, authenticate: [anonymous] }
  - { name: manual, match: { path_prefix: /Manual }, authenticate: [anonymous] }
  - { name: named-only, authenticate: [anonymous] }
  - { name: fallback, authenticate: [anonymous] }
`);
  const set = compilePolicies(settings);
  // [method, raw path, context_extensions.policy, expected policy | 'unknown' | 'none']
  const table: [string, string, string | undefined, string][] = [
    ['GET', '/health', undefined, 'exact'],
    ['GET', '/health/', undefined, 'fallback'],
    ['GET', '/health?x=1', undefined, 'exact'],
    ['GET', '/api/orders', undefined, 'get-api'],
    ['HEAD', '/api', undefined, 'get-api'],
    ['POST', '/api/orders', undefined, 'api'],
    ['get', '/api/orders', undefined, 'api'], // methods are case-sensitive (RFC 9110 §9.1)
    ['POST', '/api/v1/orders', undefined, 'api'], // first match, not the most specific
    ['POST', '/apiary', undefined, 'fallback'], // whole segments
    ['GET', '/slash', undefined, 'slash'],
    ['GET', '/slash/a', undefined, 'slash'],
    ['GET', '/slashes', undefined, 'fallback'],
    ['GET', '/caf%C3%A9/menu', undefined, 'escaped'],
    ['GET', '/caf%c3%a9', undefined, 'escaped'],
    ['GET', '/café', undefined, 'escaped'],
    ['GET', '/b%C3%BCcher/1', undefined, 'unicode'],
    ['GET', '/bücher/1', undefined, 'unicode'],
    ['GET', '/~user/x', undefined, 'tilde'],
    ['GET', '/%7euser', undefined, 'tilde'],
    ['GET', '/x/y', undefined, 'merged'],
    ['GET', '/x//y/z', undefined, 'merged'],
    ['GET', '/docs/index', undefined, 'dotted'],
    ['GET', '/public/../api/x', undefined, 'get-api'],
    ['GET', '/api/x', 'named-only', 'named-only'], // context_extensions wins over match
    ['GET', '/health', 'api', 'api'],
    ['GET', '/api/x', '', 'unknown'],
    ['GET', '/api/x', 'API', 'unknown'],
    ['GET', '/nothing', undefined, 'fallback'],
    // ignore_case: ASCII letters fold, in the request and in the policy path, for path_prefix and path alike.
    ['GET', '/admin/users', undefined, 'admin-ci'],
    ['GET', '/ADMIN/users', undefined, 'admin-ci'],
    ['GET', '/Admin', undefined, 'admin-ci'],
    ['GET', '/%41dMiN/x', undefined, 'admin-ci'],
    ['GET', '/public/../ADMIN', undefined, 'admin-ci'],
    ['GET', '/ADMINISTRATORS', undefined, 'fallback'], // whole segments still
    ['GET', '/login', undefined, 'login-ci'],
    ['GET', '/LOGIN?next=/', undefined, 'login-ci'],
    ['GET', '/login/x', undefined, 'fallback'],
    ['GET', '/x%E2%82%ACY/1', undefined, 'euro-ci'], // escapes compare alike whatever the case they were written in
    ['GET', '/x€y', undefined, 'euro-ci'],
    ['GET', '/Manual/1', undefined, 'manual'],
    ['GET', '/manual/1', undefined, 'fallback'], // without ignore_case: another path, the operator's choice
  ];
  for (const [method, raw, named, want] of table) {
    it(`${method} ${raw}${named !== undefined ? ` (policy '${named}')` : ''} → ${want}`, () => {
      const normalized = normalizePath(raw);
      assert.ok(normalized.ok);
      const choice = selectPolicy(set, method, normalized.path, named);
      assert.equal(choice.kind === 'policy' ? choice.policy.name : choice.kind, want);
    });
  }

  it('a match under ignore_case says so (explain prints it)', () => {
    const choice = selectPolicy(set, 'GET', '/ADMIN', undefined);
    assert.deepEqual(choice.kind === 'policy' && [choice.policy.name, choice.why], ['admin-ci', 'match, ignoring case']);
  });

  it('default_policy deny: a request no policy matches gets none', () => {
    const deny = compilePolicies(authzSettings('policies:\n  - { name: a, match: { path_prefix: /a }, authenticate: [anonymous] }'));
    assert.equal(selectPolicy(deny, 'GET', '/b', undefined).kind, 'none');
  });
});
