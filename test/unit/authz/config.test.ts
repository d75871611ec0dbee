import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/errors.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { CONFIG_FILE, authzSettings } from './support.js';

function issues(text: string): string[] {
  try {
    parsePortcullisConfig(text, CONFIG_FILE);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

describe('authz config', () => {
  it('a required claim value is read as written: 1.10, 0123 and on are not 1.1, 83 and true', () => {
    const settings = authzSettings('policies:\n  - name: p\n    authenticate: [anonymous]\n    require: { claims: { api_version: 1.10, org: 0123, beta: on, tags: [x, 2.50] } }');
    assert.deepEqual([...settings.policies[0]!.require.claims], [['api_version', ['1.10']], ['org', ['0123']], ['beta', ['on']], ['tags', ['x', '2.50']]]);
  });

  it('no authz section: undefined (every Check denied)', () => {
    assert.equal(parsePortcullisConfig('log: { level: info }\n', CONFIG_FILE).authz, undefined);
  });

  it('the issue contract parses, relative paths resolved against the config directory, frozen', () => {
    const s = authzSettings(`default_policy: deny
client_ip: { trusted_hops: 0 }
api_keys:
  header: x-api-key
  query: api_key
  file: ./keys.yaml
jwt:
  providers:
    - name: main
      issuer: https://issuer.example
      audiences: [orders-api]
      algorithms: [RS256, ES256, EdDSA]
      jwks: { file: ./jwks.json }
      clock_skew_seconds: 30
introspection: { url: https://idp.example/introspect, client_id: gw, client_secret_file: secrets/introspect, cache_seconds: 60 }
mtls: { principals_header: x-forwarded-client-cert, trusted: [] }
policies:
  - name: public
    match: { path_prefix: /public }
    authenticate: [anonymous]
  - name: orders
    match: { path_prefix: /api/orders, methods: [GET, POST] }
    authenticate: [jwt, api_key]
    require: { scopes: [orders:read] }
  - name: admin
    match: { path_prefix: /admin }
    authenticate: [mtls]
    require: { principals: ["spiffe://example.org/ops"] }
    ip_allow: [10.0.0.0/8]`);
    assert.equal(s.apiKeys?.file, '/etc/portcullis/keys.yaml');
    assert.equal(s.apiKeys?.query, 'api_key');
    assert.deepEqual(s.jwt?.providers[0]?.jwks, { kind: 'file', path: '/etc/portcullis/jwks.json' });
    assert.deepEqual(s.jwt?.providers[0]?.algorithms, ['RS256', 'ES256', 'EdDSA']);
    assert.deepEqual(s.jwt?.providers[0]?.requiredClaims, ['exp']);
    assert.equal(s.introspection?.clientSecretFile, '/etc/portcullis/secrets/introspect');
    assert.deepEqual(s.policies.map((p) => p.name), ['public', 'orders', 'admin']);
    assert.deepEqual(s.policies[1]?.match, { pathPrefix: '/api/orders', path: undefined, methods: ['GET', 'POST'], ignoreCase: false });
    assert.deepEqual(s.policies[2]?.ipAllow, ['10.0.0.0/8']);
    assert.ok(Object.isFrozen(s) && Object.isFrozen(s.policies));
  });

  it('reports every problem at once with file, line and path', () => {
    const lines = issues(`authz:
  default_policy: nowhere
  bogus: 1
  jwt:
    providers:
      - name: main
        issuer: https://i
        audiences: [a]
        algorithms: [HS256, none]
        jwks: { file: a.json, uri: http://x/jwks }
  policies:
    - name: p
      match: { path_prefix: nope, methods: [FETCH] }
      authenticate: [api_key, magic, jwt:other]
      ip_allow: [10.0.0.0/33, not-an-ip]
    - name: p
      authenticate: [anonymous]
`);
    const want = [
      "portcullis.yaml: unknown key 'bogus' (expected one of: default_policy, client_ip, timeout_ms, log_decisions, identity_headers, api_keys, jwt, introspection, mtls, revocation, policies) (line 3, at authz.bogus)",
      'line 9, at authz.jwt.providers[0].algorithms[0]',
      'line 9, at authz.jwt.providers[0].algorithms[1]',
      'set exactly one of file, uri, oidc_discovery (line 10, at authz.jwt.providers[0].jwks)',
      "must start with /, got 'nope' (line 13, at authz.policies[0].match.path_prefix)",
      'line 13, at authz.policies[0].match.methods[0]',
      "bad prefix length in '10.0.0.0/33' (line 15, at authz.policies[0].ip_allow[0])",
      "expected an IP address or CIDR, got 'not-an-ip' (line 15, at authz.policies[0].ip_allow[1])",
      "method 'api_key' is used but authz.api_keys is not configured (line 14, at authz.policies[0].authenticate[0])",
      "unknown method 'magic'",
      "unknown JWT provider 'other' (line 14, at authz.policies[0].authenticate[2])",
      "duplicate policy name 'p' (line 16, at authz.policies[1].name)",
      "expected deny or a policy name, got 'nowhere' (line 2, at authz.default_policy)",
    ];
    for (const w of want) assert.ok(lines.some((l) => l.includes(w)), `missing ${w} in\n${lines.join('\n')}`);
    assert.equal(lines.length, want.length, lines.join('\n'));
  });

  // Matched against normalized request paths only: a path normalization refuses, or one with a query or fragment,
  // could never match, and the requests it was written for would fall through to a later policy.
  it('a policy path no normalized request path can equal is refused', () => {
    const lines = issues(`authz:
  policies:
    - { name: a, match: { path_prefix: /files%2Fsecret }, authenticate: [anonymous] }
    - { name: b, match: { path: "/search?q=x" }, authenticate: [anonymous] }
    - { name: c, match: { path_prefix: /admin;v=1 }, authenticate: [anonymous] }
    - { name: d, match: { path: "/docs#top" }, authenticate: [anonymous] }
`);
    const want = [
      'encoded slash or backslash in path (line 3, at authz.policies[0].match.path_prefix)',
      "no query or fragment, got '/search?q=x' (line 4, at authz.policies[1].match.path)",
      'semicolon (path parameter) in path (line 5, at authz.policies[2].match.path_prefix)',
      "no query or fragment, got '/docs#top' (line 6, at authz.policies[3].match.path)",
    ];
    for (const w of want) assert.ok(lines.some((l) => l.includes(w)), `missing ${w} in\n${lines.join('\n')}`);
    assert.equal(lines.length, want.length, lines.join('\n'));
  });

  // `%2541` is `%41` after one decode: a request path holding it is refused (a second decode would read `A`), so
  // a policy path holding it could never match.
  it('a policy path with a double-encoded escape is refused, naming the path', () => {
    const lines = issues(`authz:
  policies:
    - { name: a, match: { path_prefix: /files/%2541 }, authenticate: [anonymous] }
    - { name: b, match: { path: /x/%25%32%65 }, authenticate: [anonymous] }
`);
    const want = [
      "no request path can match '/files/%2541': double-encoded percent-escape (%25 before two hex digits) in path (line 3, at authz.policies[0].match.path_prefix)",
      "no request path can match '/x/%25%32%65': double-encoded percent-escape (%25 before two hex digits) in path (line 4, at authz.policies[1].match.path)",
    ];
    for (const w of want) assert.ok(lines.some((l) => l.includes(w)), `missing ${w} in\n${lines.join('\n')}`);
    assert.equal(lines.length, want.length, lines.join('\n'));
  });

  describe('match.ignore_case', () => {
    it('defaults to false, and is read when given', () => {
      const s = authzSettings(`policies:
  - { name: a, match: { path_prefix: /a }, authenticate: [anonymous] }
  - { name: b, match: { path: /B, ignore_case: true }, authenticate: [anonymous] }`);
      assert.deepEqual(s.policies.map((p) => p.match?.ignoreCase), [false, true]);
      // Kept as written (normalized): folding is how it is compared, not what the config says.
      assert.equal(s.policies[1]?.match?.path, '/B');
    });

    it('a letter outside ASCII with another case is refused under ignore_case; one without case, or without ignore_case, is not', () => {
      const lines = issues(`authz:
  policies:
    - { name: a, match: { path_prefix: /café, ignore_case: true }, authenticate: [anonymous] }
    - { name: b, match: { path: /%C3%9Cber, ignore_case: true }, authenticate: [anonymous] }
    - { name: c, match: { path_prefix: /caf%c3%a9, ignore_case: false }, authenticate: [anonymous] }
    - { name: d, match: { path_prefix: /%E2%82%AC/日本, ignore_case: true }, authenticate: [anonymous] }
    - { name: e, match: { path_prefix: /x, ignore_case: 1 }, authenticate: [anonymous] }
    - { name: f, match: { path_prefix: /x, ignorecase: true }, authenticate: [anonymous] }
`);
      const want = [
        "ignore_case folds ASCII letters only, and '/café' holds 'é', which has another case an upstream may or may not fold",
        'line 3, at authz.policies[0].match.path_prefix)',
        "'/%C3%9Cber' holds 'Ü'",
        'line 4, at authz.policies[1].match.path)',
        'expected true or false, got 1 (line 7, at authz.policies[4].match.ignore_case)',
        "unknown key 'ignorecase' (expected one of: path_prefix, path, methods, ignore_case) (line 8, at authz.policies[5].match.ignorecase)",
      ];
      for (const w of want) assert.ok(lines.some((l) => l.includes(w)), `missing ${w} in\n${lines.join('\n')}`);
      assert.equal(lines.length, 4, lines.join('\n'));
    });
  });

  it('required keys of a present subsection are required; absent subsections are not', () => {
    const lines = issues('authz:\n  api_keys: { header: x-api-key }\n  introspection: { url: http://idp/introspect }\n');
    assert.ok(lines.some((l) => l.includes('is required (line 2, at authz.api_keys.file)')), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('at authz.introspection.client_id')));
    assert.ok(lines.some((l) => l.includes('at authz.introspection.client_secret_file')));
    assert.equal(lines.length, 3);
  });

  describe('identity headers must be distinct', () => {
    const rows: [string, string, string | undefined][] = [
      // name, identity_headers, issue expected (undefined: accepted)
      ['the defaults', '{}', undefined],
      ['all renamed, distinct', '{ user_id: x-caller, tier: x-plan, scopes: x-perms }', undefined],
      ['tier onto user_id', '{ user_id: x-user-id, tier: x-user-id }', "header 'x-user-id' is also identity_headers.user_id: each identity header needs a name of its own (line 2, at authz.identity_headers.tier)"],
      ['onto a default name', '{ scopes: x-auth-method }', "header 'x-auth-method' is also identity_headers.auth_method: each identity header needs a name of its own (line 2, at authz.identity_headers.scopes)"],
      ['a default onto the written one', '{ user_id: x-client-tier }', "header 'x-client-tier' is also identity_headers.tier: each identity header needs a name of its own (line 2, at authz.identity_headers.user_id)"],
      // One header to an upstream that reads `_` as `-` (CGI's HTTP_X_CLIENT_TIER): a tier could stand in for the caller.
      ['a spelling of a default name', '{ user_id: x_client-tier }', "header 'x_client-tier' is identity_headers.tier's 'x-client-tier' to an upstream that reads _ as -: each identity header needs a name of its own (line 2, at authz.identity_headers.user_id)"],
      ['two written spellings of one name', '{ user_id: x_caller, tier: x-caller }', "header 'x-caller' is identity_headers.user_id's 'x_caller' to an upstream that reads _ as -: each identity header needs a name of its own (line 2, at authz.identity_headers.tier)"],
      ['a name holding _ of its own', '{ user_id: x_caller }', undefined],
    ];
    for (const [name, headers, issue] of rows) {
      it(name, () => {
        const text = `authz:\n  identity_headers: ${headers}\n`;
        if (issue === undefined) {
          assert.doesNotThrow(() => parsePortcullisConfig(text, CONFIG_FILE));
          return;
        }
        const lines = issues(text);
        assert.deepEqual(lines, [`portcullis.yaml: ${issue}`]);
      });
    }
  });

  it('a provider without audiences is refused', () => {
    const lines = issues('authz:\n  jwt:\n    providers:\n      - { name: m, issuer: https://i, jwks: { uri: http://i/jwks } }\n');
    assert.ok(lines.some((l) => l.includes('list at least one audience')), lines.join('\n'));
  });

  it('a provider with an empty list of algorithms is refused, naming file, line and path', () => {
    const lines = issues('authz:\n  jwt:\n    providers:\n      - name: m\n        issuer: https://i\n        audiences: [a]\n        algorithms: []\n        jwks: { uri: http://i/jwks }\n');
    assert.deepEqual(lines, ['portcullis.yaml: list at least one algorithm (or leave it out for RS256): with none, every token is refused (line 7, at authz.jwt.providers[0].algorithms)']);
  });
});

describe('authz.introspection.max_in_flight', () => {
  const base = 'authz:\n  introspection:\n    url: http://idp/introspect\n    client_id: g\n    client_secret_file: ./s\n';
  it('64 unless set', () => {
    assert.equal(authzSettings('introspection: { url: http://idp/introspect, client_id: g, client_secret_file: ./s }').introspection?.maxInFlight, 64);
    assert.equal(authzSettings('introspection: { url: http://idp/introspect, client_id: g, client_secret_file: ./s, max_in_flight: 1 }').introspection?.maxInFlight, 1);
    assert.equal(authzSettings('introspection: { url: http://idp/introspect, client_id: g, client_secret_file: ./s, max_in_flight: 4096 }').introspection?.maxInFlight, 4096);
  });
  for (const value of ['0', '-1', '1.5', 'lots', '4097', '[]']) {
    it(`${value} is refused, naming file, line and path`, () => {
      const lines = issues(`${base}    max_in_flight: ${value}\n`);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, /^portcullis\.yaml: .+ \(line 6, at authz\.introspection\.max_in_flight\)$/);
    });
  }
});
