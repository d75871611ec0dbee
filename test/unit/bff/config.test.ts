import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, type ConfigIssue } from '../../../src/config/errors.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { parseStringTemplate } from '../../../src/bff/template.js';

const FILE = '/etc/portcullis/portcullis.yaml';

function issuesOf(text: string): ConfigIssue[] {
  try {
    parsePortcullisConfig(text, FILE);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return [...error.issues];
  }
  assert.fail('expected a ConfigError');
}

const SAMPLE = `server:
  http: { address: "127.0.0.1:0" }
bff:
  services: { users: "http://127.0.0.1:8001", orders: { url: "http://127.0.0.1:8002/api/", max_concurrency: 8 } }
  endpoints:
    - path: /bff/web/dashboard/{userId}
      timeout_ms: 800
      params: { userId: { pattern: "[0-9]+" }, limit: { pattern: "[0-9]{1,2}", default: "5" } }
      calls:
        user:    { service: users,  path: "/users/{userId}", timeout_ms: 300 }
        orders:  { service: orders, path: "/orders", query: { user: "{userId}", limit: "{limit}" }, on_error: [] }
        details: { service: orders, path: "/orders/{orders[0].id}", after: [orders], on_error: null }
      respond: { user: "{user}", recentOrders: "{orders}", latest: "{details}" }
    - path: /bff/mobile/dashboard/{userId}
      calls:
        user: { service: users, path: "/users/{userId}", headers: { X-Client: mobile } }
      respond:
        name: "{user.name}"
        orders: { $from: "{user.orders}", $pick: [id] }
`;

describe('bff config: a valid section', () => {
  const config = parsePortcullisConfig(SAMPLE, FILE);
  const [web, mobile] = config.bff.endpoints;
  assert.ok(web && mobile);

  it('turns on the listener and reads the services', () => {
    assert.deepEqual(config.server.http, { address: '127.0.0.1:0' });
    assert.deepEqual(config.bff.services.get('users'), { name: 'users', origin: 'http://127.0.0.1:8001', basePath: '', maxConcurrency: 64 });
    assert.deepEqual(config.bff.services.get('orders'), { name: 'orders', origin: 'http://127.0.0.1:8002', basePath: '/api', maxConcurrency: 8 });
  });

  it('plans the calls in waves from after and template reads', () => {
    assert.deepEqual(web.waves, [['user', 'orders'], ['details']]);
    assert.deepEqual(web.calls.map((c) => [c.name, c.deps]), [['user', []], ['orders', []], ['details', ['orders']]]);
  });

  it('reads timeouts, fallbacks and parameters', () => {
    assert.equal(web.timeoutMs, 800);
    assert.deepEqual(web.calls.map((c) => c.timeoutMs), [300, 800, 800]);
    assert.deepEqual(web.calls.map((c) => c.fallback), [undefined, { value: [] }, { value: null }]);
    assert.deepEqual(web.params.map((p) => [p.name, p.in, p.required, p.default, p.pattern?.source]), [
      ['userId', 'path', true, undefined, '^(?:[0-9]+)$'],
      ['limit', 'query', false, '5', '^(?:[0-9]{1,2})$'],
    ]);
    assert.equal(mobile.timeoutMs, 1000, 'the section default');
  });

  it('a template written as a number or a boolean is read as written (1.10, not 1.1)', () => {
    const config = parsePortcullisConfig(SAMPLE.replace('headers: { X-Client: mobile }', 'headers: { X-Client: mobile, X-Api-Version: 1.10, X-Beta: on }'), FILE);
    assert.deepEqual(config.bff.endpoints[1]?.calls[0]?.headers.slice(1), [['x-api-version', parseStringTemplate('1.10')], ['x-beta', parseStringTemplate('on')]]);
  });

  it('forwards the default identity and trace headers; call headers are lower-cased', () => {
    assert.deepEqual(web.forwardHeaders, ['x-user-id', 'x-request-id', 'traceparent', 'tracestate']);
    assert.deepEqual(mobile.calls[0]?.headers, [['x-client', parseStringTemplate('mobile')]]);
  });

  it('compiles the mobile selection', () => {
    assert.equal(mobile.respond.kind, 'object');
    const orders = mobile.respond.kind === 'object' ? mobile.respond.entries[1] : undefined;
    assert.deepEqual(orders?.[1].kind === 'pick' ? orders[1].fields : undefined, ['id']);
  });

  it('without respond, answers every call by name', () => {
    const c = parsePortcullisConfig('bff:\n  services: { a: "http://h:1" }\n  endpoints:\n    - path: /x\n      calls: { one: { service: a, path: /1 } }\n', FILE);
    assert.deepEqual(c.bff.endpoints[0]?.respond, { kind: 'object', entries: [['one', { kind: 'ref', expr: { root: 'one', steps: [], source: 'one' } }]] });
  });

  it('a __proto__ key in an on_error fallback is kept as a key, not taken as the prototype', () => {
    const c = parsePortcullisConfig('bff:\n  services: { a: "http://h:1" }\n  endpoints:\n    - path: /x\n      calls: { one: { service: a, path: /1, on_error: { __proto__: { b: 1 }, c: 2 } } }\n', FILE);
    assert.equal(JSON.stringify(c.bff.endpoints[0]?.calls[0]?.fallback?.value), '{"__proto__":{"b":1},"c":2}');
  });

  it('a bff section is optional', () => {
    const c = parsePortcullisConfig('server: {}\n', FILE);
    assert.equal(c.server.http, undefined);
    assert.deepEqual(c.bff.endpoints, []);
  });
});

/** Each case: a bff section (after `bff:` on line 1) and the issue expected, by line and path. */
interface BadCase {
  readonly name: string;
  readonly yaml: string;
  readonly line: number;
  readonly path: string;
  readonly message: RegExp;
}

const HEAD = `bff:
  services: { users: "http://u:1", orders: "http://o:2" }
  endpoints:
    - path: /bff/x/{userId}
`;

const BAD: readonly BadCase[] = [
  {
    name: 'unknown service',
    yaml: `${HEAD}      calls:\n        user: { service: accounts, path: "/u" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.user.service', message: /unknown service 'accounts' \(known: users, orders\)/,
  },
  {
    name: 'dependency cycle through templates',
    yaml: `${HEAD}      calls:\n        a: { service: users, path: "/a/{b.id}" }\n        b: { service: users, path: "/b/{a.id}" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.a', message: /dependency cycle: a -> b -> a/,
  },
  {
    name: 'dependency cycle through after',
    yaml: `${HEAD}      calls:\n        a: { service: users, path: "/a", after: [c] }\n        b: { service: users, path: "/b", after: [a] }\n        c: { service: users, path: "/c", after: [b] }\n`,
    line: 6, path: 'bff.endpoints[0].calls.a', message: /dependency cycle: a -> c -> b -> a/,
  },
  {
    name: 'a template reading a call that does not exist',
    yaml: `${HEAD}      calls:\n        a: { service: users, path: "/a/{ordrs[0].id}" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.a.path', message: /reads 'ordrs', which is no call or parameter of this endpoint \(known: userId, a\)/,
  },
  {
    name: 'respond reading a call that does not exist',
    yaml: `${HEAD}      calls:\n        a: { service: users, path: "/a" }\n      respond:\n        x: { y: "{b}" }\n`,
    line: 8, path: 'bff.endpoints[0].respond.x.y', message: /reads 'b'/,
  },
  {
    name: 'a query template reading a call that does not exist',
    yaml: `${HEAD}      calls:\n        a:\n          service: users\n          path: /a\n          query: { q: "{nope}" }\n`,
    line: 9, path: 'bff.endpoints[0].calls.a.query.q', message: /reads 'nope'/,
  },
  {
    name: 'a bad template',
    yaml: `${HEAD}      calls:\n        a: { service: users, path: "/a/{userId" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.a.path', message: /bad template: unclosed '\{' at offset 3/,
  },
  {
    name: 'after naming no call',
    yaml: `${HEAD}      calls:\n        a:\n          service: users\n          path: /a\n          after: [b]\n`,
    line: 9, path: 'bff.endpoints[0].calls.a.after[0]', message: /after: no call named 'b'/,
  },
  {
    name: 'a call reading itself',
    yaml: `${HEAD}      calls:\n        a: { service: users, path: "/a/{a.id}" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.a.path', message: /reads its own result/,
  },
  {
    name: 'an unknown key in a call',
    yaml: `${HEAD}      calls:\n        a:\n          service: users\n          path: /a\n          timeout: 5\n`,
    line: 9, path: 'bff.endpoints[0].calls.a.timeout', message: /unknown key 'timeout'/,
  },
  {
    name: 'a call timeout longer than its endpoint',
    yaml: `${HEAD}      timeout_ms: 100\n      calls:\n        a: { service: users, path: "/a", timeout_ms: 200 }\n`,
    line: 7, path: 'bff.endpoints[0].calls.a.timeout_ms', message: /exceeds the endpoint's timeout_ms 100/,
  },
  {
    name: 'a call path without a leading slash',
    yaml: `${HEAD}      calls:\n        a: { service: users, path: "a/{userId}" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.a.path', message: /must start with '\/'/,
  },
  {
    name: 'a call named like a parameter',
    yaml: `${HEAD}      calls:\n        userId: { service: users, path: "/a" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.userId', message: /has the name of a parameter/,
  },
  {
    name: 'a bad call name',
    yaml: `${HEAD}      calls:\n        my-call: { service: users, path: "/a" }\n`,
    line: 6, path: 'bff.endpoints[0].calls.my-call', message: /call names are letters, digits and _/,
  },
  {
    name: 'a bad parameter pattern',
    yaml: `${HEAD}      params: { userId: { pattern: "[0-9" } }\n`,
    line: 5, path: 'bff.endpoints[0].params.userId.pattern', message: /bad regular expression/,
  },
  {
    // Valid without the u flag the pattern is compiled with: it used to pass the check and then throw a bare
    // SyntaxError (no file, line or path) from the compile step.
    name: 'a parameter pattern that only Unicode mode refuses (an identity escape like \\_)',
    yaml: `${HEAD}      params: { userId: { pattern: '[a-z]+\\_[0-9]+' } }\n`,
    line: 5, path: 'bff.endpoints[0].params.userId.pattern', message: /bad regular expression/,
  },
  {
    name: 'a parameter pattern that only compiles once anchored',
    yaml: `${HEAD}      params: { userId: { pattern: 'a)|(b' } }\n`,
    line: 5, path: 'bff.endpoints[0].params.userId.pattern', message: /bad regular expression/,
  },
  {
    name: 'a default for a path parameter',
    yaml: `${HEAD}      params:\n        userId: { default: "1" }\n`,
    line: 6, path: 'bff.endpoints[0].params.userId', message: /is a path parameter/,
  },
  {
    name: 'a bad endpoint path',
    yaml: `bff:\n  endpoints:\n    - path: /bff/user-{id}\n`,
    line: 3, path: 'bff.endpoints[0].path', message: /whole segment/,
  },
  {
    name: 'two endpoints for the same paths',
    yaml: `bff:\n  endpoints:\n    - path: /bff/u/{a}\n    - path: /bff/u/{b}\n`,
    line: 4, path: 'bff.endpoints[1].path', message: /matches the same paths as '\/bff\/u\/\{a\}'/,
  },
  {
    name: 'a service URL that is not http',
    yaml: `bff:\n  services:\n    users: "ftp://u"\n`,
    line: 3, path: 'bff.services.users', message: /expected an http:\/\/ or https:\/\/ URL/,
  },
  {
    name: 'a service URL with credentials',
    yaml: `bff:\n  services:\n    users: "http://alice:topsecret@127.0.0.1:8001"\n`,
    line: 3, path: 'bff.services.users', message: /no query, fragment or credentials/,
  },
  {
    name: 'a service URL with a password but no user name',
    yaml: `bff:\n  services:\n    users: "http://:topsecret@127.0.0.1:8001"\n`,
    line: 3, path: 'bff.services.users', message: /no query, fragment or credentials/,
  },
  {
    name: 'a respond that is not a mapping',
    yaml: `${HEAD}      respond: "{userId}"\n`,
    line: 5, path: 'bff.endpoints[0].respond', message: /respond must be a mapping/,
  },
  {
    name: 'the reserved _degraded key in respond',
    yaml: `${HEAD}      respond: { _degraded: x }\n`,
    line: 5, path: 'bff.endpoints[0].respond._degraded', message: /reserved/,
  },
  {
    name: 'a selection with an unknown key',
    yaml: `${HEAD}      respond:\n        a: { $from: "{userId}", $fields: [x] }\n`,
    line: 6, path: 'bff.endpoints[0].respond.a', message: /exactly the keys \$from and \$pick/,
  },
  {
    name: 'a bad forwarded header name',
    yaml: `bff:\n  forward_headers: ["x user"]\n`,
    line: 2, path: 'bff.forward_headers[0]', message: /not a valid header name/,
  },
  {
    name: 'a bad server.http address',
    yaml: `server:\n  http: { address: "nowhere" }\n`,
    line: 2, path: 'server.http.address', message: /expected host:port/,
  },
];

describe('bff config: load errors name line and path', () => {
  for (const c of BAD) {
    it(c.name, () => {
      const issues = issuesOf(c.yaml);
      const found = issues.find((i) => i.path === c.path && c.message.test(i.message));
      assert.ok(found, `no issue at ${c.path} matching ${c.message}; got:\n${issues.map((i) => `${i.line} ${i.path}: ${i.message}`).join('\n')}`);
      assert.equal(found.line, c.line, `line of ${found.message}`);
      assert.equal(found.file, 'portcullis.yaml');
    });
  }

  it('reports every problem of a section at once', () => {
    const issues = issuesOf(`${HEAD}      calls:\n        a: { service: nope, path: "/a/{x}" }\n        b: { service: users, path: "/b/{" }\n`);
    assert.deepEqual(issues.map((i) => i.path).sort(), [
      'bff.endpoints[0].calls.a.path',
      'bff.endpoints[0].calls.a.service',
      'bff.endpoints[0].calls.b.path',
    ]);
  });
});
