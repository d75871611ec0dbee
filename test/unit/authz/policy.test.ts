import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchesPrefix, normalizePath } from '../../../src/shared/normalize-path.js';
import { compilePolicies, selectPolicy, TRAILING_SLASH_REASON } from '../../../src/authz/policy.js';
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
    ['GET', '/health/', undefined, 'bad_path'], // `/health` to a lenient upstream, yet `fallback` here
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

/**
 * A trailing slash (docs/authz.md, "match keys"): Express without strict routing and Spring MVC before 6 serve
 * `/api/orders/` as `/api/orders`, others tell them apart. Where the two spellings take different policies the one
 * no exact policy names is refused (400 bad_path), whichever way round the slash is.
 */
describe('selectPolicy: a path and its trailing-slash twin', () => {
  it('whole-segment prefixes match a path and its toggled form alike (so only exact paths can differ)', () => {
    const prefixes = ['/', '/api', '/api/', '/api/orders', '/api/orders/', '/api/ord', '/docs/', '/a/b/c'];
    const paths = ['/api', '/api/orders', '/api/orders/x', '/api/ordersx', '/docs', '/a/b', '/a/b/c', '/apiary', '/x'];
    for (const prefix of prefixes) {
      for (const path of paths) assert.equal(matchesPrefix(`${path}/`, prefix), matchesPrefix(path, prefix), `${prefix} on ${path} and ${path}/`);
    }
  });

  const settings = authzSettings(`default_policy: deny
policies:
  - { name: orders, match: { path: /api/orders }, authenticate: [anonymous] }
  - { name: docs, match: { path: /docs/ }, authenticate: [anonymous] }
  - { name: write, match: { path: /items, methods: [POST] }, authenticate: [anonymous] }
  - { name: login-ci, match: { path: /Login, ignore_case: true }, authenticate: [anonymous] }
  - { name: both, match: { path: /both }, authenticate: [anonymous] }
  - { name: both-slash, match: { path: /both/ }, authenticate: [anonymous] }
  - { name: status, match: { path: /status }, authenticate: [anonymous] }
  - { name: status-all, match: { path_prefix: /status }, authenticate: [anonymous] }
  - { name: open-prefix, match: { path_prefix: /open }, authenticate: [anonymous] }
  - { name: open-exact, match: { path: /open/x }, authenticate: [anonymous] }
  - { name: root, match: { path: / }, authenticate: [anonymous] }
  - { name: public, match: { path_prefix: /public }, authenticate: [anonymous] }
  - { name: rest, match: { path_prefix: /, methods: [GET, POST] }, authenticate: [anonymous] }
`);
  const set = compilePolicies(settings);
  // [method, normalized path, expected policy | 'bad_path' | 'none']
  const table: [string, string, string][] = [
    ['GET', '/api/orders', 'orders'], // the spelling the exact policy names keeps it
    ['GET', '/api/orders/', 'bad_path'], // `orders` to a lenient upstream, `rest` here
    ['GET', '/api/orders/x', 'rest'], // below it: no twin is an exact path
    ['GET', '/docs/', 'docs'],
    ['GET', '/docs', 'bad_path'], // the other way round: Express serves a `/docs/` route at `/docs`
    ['POST', '/items', 'write'],
    ['POST', '/items/', 'bad_path'],
    ['GET', '/items/', 'rest'], // for GET `write` does not apply: both spellings take `rest`
    ['DELETE', '/items/', 'none'], // and for DELETE neither takes anything
    ['GET', '/login', 'login-ci'],
    ['GET', '/LOGIN/', 'bad_path'],
    ['GET', '/Login/', 'bad_path'],
    ['GET', '/both', 'bad_path'], // each spelling its own exact policy: the upstream may read either as the other
    ['GET', '/both/', 'bad_path'],
    ['GET', '/status', 'status'],
    ['GET', '/status/', 'bad_path'], // twin of an exact path, another policy (status-all): refused
    ['GET', '/open/x', 'open-prefix'], // an earlier prefix takes both spellings: same policy, allowed
    ['GET', '/open/x/', 'open-prefix'],
    ['GET', '/', 'root'], // `/` has no twin
    ['GET', '/public/', 'public'],
    ['GET', '/public', 'public'],
  ];
  for (const [method, path, want] of table) {
    it(`${method} ${path} → ${want}`, () => {
      const choice = selectPolicy(set, method, path, undefined);
      assert.equal(choice.kind === 'policy' ? choice.policy.name : choice.kind, want);
      if (choice.kind === 'bad_path') assert.equal(choice.reason, TRAILING_SLASH_REASON);
    });
  }

  it('context_extensions.policy is not affected', () => {
    const choice = selectPolicy(set, 'GET', '/api/orders/', 'rest');
    assert.equal(choice.kind === 'policy' && choice.policy.name, 'rest');
  });

  it('a config without exact paths selects as before, trailing slash or not', () => {
    const prefixes = compilePolicies(authzSettings(`default_policy: fallback
policies:
  - { name: api, match: { path_prefix: /api/ }, authenticate: [anonymous] }
  - { name: fallback, authenticate: [anonymous] }
`));
    assert.equal(prefixes.exactForms.size, 0);
    for (const path of ['/api', '/api/', '/api/orders/', '/x/']) {
      const choice = selectPolicy(prefixes, 'GET', path, undefined);
      assert.equal(choice.kind === 'policy' && choice.policy.name, path.startsWith('/api') ? 'api' : 'fallback', path);
    }
  });
});
