import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/errors.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import type { Template } from '../../../src/extproc/templates.js';

let dir: string;
const file = (): string => path.join(dir, 'portcullis.yaml');
const parse = (text: string) => parsePortcullisConfig(text, file());

function issues(text: string): string[] {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

describe('extproc config', () => {
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-extproc-config-'));
    writeFileSync(path.join(dir, 'user.json'), JSON.stringify({ type: 'object', required: ['name'] }));
    writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ type: 'objekt' }));
    writeFileSync(path.join(dir, 'broken.json'), '{\n  "type": "object",\n  not json\n}');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a header value is read as written: 1.10, on, 0755 and 1e3 stay themselves', () => {
    const config = parse('extproc:\n  routes:\n    - name: r\n      headers: { request: { set: { x-api-version: 1.10, x-feature: on, x-build: 0755, x-ratio: 1e3 } } }\n');
    const set = config.extproc.routes[0]!.requestHeaders.set.map(([n, t]) => [n, (t as Template).source]);
    assert.deepEqual(set, [['x-api-version', '1.10'], ['x-feature', 'on'], ['x-build', '0755'], ['x-ratio', '1e3']]);
  });

  it('without an extproc section: request ids and trace context only', () => {
    const config = parse('');
    assert.deepEqual(config.extproc.requestId, { header: 'x-request-id', echo: 'portcullis' });
    assert.deepEqual(config.extproc.routes, []);
  });

  it('request_id.echo: envoy only with the header Envoy echoes', () => {
    assert.equal(parse('extproc:\n  request_id: { echo: envoy }\n').extproc.requestId.echo, 'envoy');
    assert.match(issues('extproc:\n  request_id:\n    header: x-correlation-id\n    echo: envoy\n').join('\n'),
      /Envoy echoes only x-request-id; with header 'x-correlation-id' use echo: portcullis \(line 4, at extproc\.request_id\.echo\)/);
    assert.match(issues('extproc:\n  request_id: { echo: upstream }\n').join('\n'), /must be one of portcullis, envoy.*\(line 2, at extproc\.request_id\.echo\)/);
  });

  it('compiles the issue contract: routes, templates, validation with a schema file relative to the config, cache TTLs', () => {
    const config = parse(`
extproc:
  request_id: { header: x-correlation-id }
  tracing: { mirror: { trace_id: x-trace-id, span_id: x-span-id } }
  cache: { max_entry_bytes: 1048576 }
  routes:
    - name: users
      match: { path_prefix: /api/users, methods: [GET, HEAD, POST] }
      headers:
        request:  { set: { x-gateway: portcullis, x-client-ip: "{client_ip}" }, remove: [x-debug] }
        response: { set: { x-content-type-options: nosniff }, remove: [server, x-powered-by] }
      validate:
        content_types: [application/json]
        max_body_bytes: 65536
        json_schema: ./user.json
        required_headers: [x-client-version]
      cache:
        ttl_seconds: { "200": 300, "404": 60 }
        public: false
`);
    const e = config.extproc;
    assert.equal(e.requestId.header, 'x-correlation-id');
    assert.deepEqual(e.tracing.mirror, { traceId: 'x-trace-id', spanId: 'x-span-id' });
    const route = e.routes[0]!;
    assert.equal(route.name, 'users');
    assert.deepEqual(route.match, { path: undefined, pathPrefix: '/api/users', methods: ['GET', 'HEAD', 'POST'], ignoreCase: false });
    assert.deepEqual(route.requestHeaders.set.map(([n, t]) => [n, (t as Template).source]), [['x-gateway', 'portcullis'], ['x-client-ip', '{client_ip}']]);
    assert.deepEqual(route.responseHeaders.remove, ['server', 'x-powered-by']);
    assert.equal(route.validate?.jsonSchema?.file, path.join(dir, 'user.json'));
    assert.equal(route.validate?.jsonSchema?.validate({}), false);
    assert.deepEqual([...route.cache!.ttlSecondsByStatus], [[200, 300], [404, 60]]);
    assert.equal(Object.isFrozen(route), true);
  });

  it('reports every problem at once with file, line and path', () => {
    const lines = issues(`extproc:
  request_id: { header: X-Bad }
  routes:
    - name: a
      match: { path: nope, methods: [FETCH] }
      headers:
        request: { set: { x-a: "{unclosed" } }
      validate: { json_schema: ./missing.json }
      cache: { ttl_seconds: { "999": 5 } }
      colour: red
    - name: a
      headers:
        response: { set: { x-envoy-upstream-service-time: "1", host: evil } }
`);
    const text = lines.join('\n');
    for (const expected of [
      /portcullis\.yaml: expected a lower-case HTTP header name, got 'X-Bad' \(line 2, at extproc\.request_id\.header\)/,
      /must start with \/, got 'nope' \(line 5, at extproc\.routes\[0\]\.match\.path\)/,
      /must be one of GET, .*got 'FETCH' \(line 5, at extproc\.routes\[0\]\.match\.methods\[0\]\)/,
      /unclosed '\{'.* \(line 7, at extproc\.routes\[0\]\.headers\.request\.set\.x-a\)/,
      /cannot use JSON Schema .*missing\.json.* \(line 8, at extproc\.routes\[0\]\.validate\.json_schema\)/,
      /expected an HTTP status \(100-599\), got '999' \(line 9, at extproc\.routes\[0\]\.cache\.ttl_seconds\.999\)/,
      /unknown key 'colour' .* \(line 10, at extproc\.routes\[0\]\.colour\)/,
      /duplicate route name 'a' \(line 11, at extproc\.routes\[1\]\.name\)/,
      /header 'x-envoy-upstream-service-time' cannot be set by ext_proc \(Envoy refuses it\) \(line 11, at extproc\.routes\[1\]\.headers\)/,
      /header 'host' cannot be set by ext_proc/,
    ]) assert.match(text, expected);
  });

  it('a JSON Schema that does not compile, or is not JSON, is a load error', () => {
    const bad = issues('extproc:\n  routes:\n    - name: a\n      validate: { json_schema: ./bad.json }\n').join('\n');
    assert.match(bad, /cannot use JSON Schema .*bad\.json: schema is invalid.*\(line 4, at extproc\.routes\[0\]\.validate\.json_schema\)/);
    const broken = issues('extproc:\n  routes:\n    - name: a\n      validate: { json_schema: ./broken.json }\n').join('\n');
    assert.match(broken, /cannot use JSON Schema .*broken\.json: invalid JSON at line 3, column 3: .* \(line 4, at extproc\.routes\[0\]\.validate\.json_schema\)/);
  });

  // A parsed body inherits Object.prototype; only its own properties are its properties.
  const inherited: [string, object, string, boolean][] = [
    ['required constructor, absent', { type: 'object', required: ['constructor'] }, '{}', false],
    ['required constructor, present', { type: 'object', required: ['constructor'] }, '{"constructor":1}', true],
    ['optional valueOf: number, absent', { type: 'object', properties: { valueOf: { type: 'number' } } }, '{}', true],
    ['optional toString: string, absent', { type: 'object', properties: { toString: { type: 'string' } } }, '{"a":1}', true],
    ['optional valueOf: number, a string', { type: 'object', properties: { valueOf: { type: 'number' } } }, '{"valueOf":"x"}', false],
    ['dependentRequired on hasOwnProperty', { type: 'object', dependentRequired: { hasOwnProperty: ['a'] } }, '{}', true],
  ];
  for (const [name, schema, body, valid] of inherited) {
    it(`a JSON Schema sees only a body's own properties: ${name}`, () => {
      writeFileSync(path.join(dir, 'inherited.json'), JSON.stringify(schema));
      const route = parse('extproc:\n  routes:\n    - name: a\n      validate: { json_schema: ./inherited.json }\n').extproc.routes[0]!;
      assert.equal(route.validate?.jsonSchema?.validate(JSON.parse(body)), valid);
    });
  }

  it('stale_while_revalidate_seconds: 0 unless set, at most a day; refresh_lock_ms bounded, errors with line and path', () => {
    const routes = parse('extproc:\n  routes:\n    - name: a\n      cache: { ttl_seconds: { "200": 5 }, stale_while_revalidate_seconds: 30 }\n    - name: b\n      cache: { ttl_seconds: { "200": 5 } }\n').extproc.routes;
    assert.deepEqual(routes.map((r) => r.cache?.staleWhileRevalidateSeconds), [30, 0]);
    assert.equal(parse('').extproc.cache.refreshLockMs, 5000);
    const text = issues(`extproc:
  cache: { refresh_lock_ms: 50 }
  routes:
    - name: a
      cache:
        ttl_seconds: { "200": 5 }
        stale_while_revalidate_seconds: 86401
    - name: b
      cache: { ttl_seconds: { "200": 5 }, stale_while_revalidate_seconds: 1.5 }
`).join('\n');
    assert.match(text, /portcullis\.yaml: must be between 100 and 60000, got 50 \(line 2, at extproc\.cache\.refresh_lock_ms\)/);
    assert.match(text, /portcullis\.yaml: must be between 0 and 86400, got 86401 \(line 7, at extproc\.routes\[0\]\.cache\.stale_while_revalidate_seconds\)/);
    assert.match(text, /expected an integer, got .* \(line 9, at extproc\.routes\[1\]\.cache\.stale_while_revalidate_seconds\)/);
  });

  it('a cached route needs at least one status TTL', () => {
    assert.match(issues('extproc:\n  routes:\n    - name: a\n      cache: { public: true }\n').join('\n'), /needs ttl_seconds/);
  });

  // Route paths are compared with normalized request paths (src/shared/normalize-path.ts), as authz policy paths are.
  it('normalizes route paths, folds ignore_case ones, and refuses one no request path can match', () => {
    const route = parse('extproc:\n  routes:\n    - name: a\n      match: { path_prefix: /API/./x//%7Euser/caf\u00e9, ignore_case: false }\n').extproc.routes[0]!;
    assert.deepEqual([route.match.pathPrefix, route.matchPrefix, route.match.ignoreCase], ['/API/x/~user/caf%C3%A9', '/API/x/~user/caf%C3%A9', false]);
    const folded = parse('extproc:\n  routes:\n    - name: a\n      match: { path: /API/Orders, ignore_case: true }\n').extproc.routes[0]!;
    assert.deepEqual([folded.match.path, folded.matchPath, folded.match.ignoreCase], ['/API/Orders', '/api/orders', true]);
    const bad: [string, RegExp][] = [
      ['path: /api/orders;x', /no request path can match '\/api\/orders;x': semicolon \(path parameter\) in path \(line 4, at extproc\.routes\[0\]\.match\.path\)/],
      ['path_prefix: /a%2Fb', /no request path can match '\/a%2Fb': encoded slash or backslash in path \(line 4, at extproc\.routes\[0\]\.match\.path_prefix\)/],
      ['path: /a?b=1', /must be a path with no query or fragment, got '\/a\?b=1'/],
      ['path: /files/%2541', /double-encoded percent-escape/],
    ];
    for (const [match, expected] of bad) assert.match(issues(`extproc:\n  routes:\n    - name: a\n      match: { ${match} }\n`).join('\n'), expected);
  });

  it('ignore_case folds ASCII letters only: a cased letter outside ASCII in its path is a config error', () => {
    for (const written of ['/caf\u00e9', '/%C3%9Cber']) {
      assert.match(issues(`extproc:\n  routes:\n    - name: a\n      match: { path_prefix: "${written}", ignore_case: true }\n`).join('\n'),
        /ignore_case folds ASCII letters only, and .* holds '.', which has another case .*\(line 4, at extproc\.routes\[0\]\.match\.path_prefix\)/);
    }
    assert.equal(parse('extproc:\n  routes:\n    - name: a\n      match: { path_prefix: "/\u20ac/\u65e5\u672c", ignore_case: true }\n').extproc.routes.length, 1);
    assert.equal(parse('extproc:\n  routes:\n    - name: a\n      match: { path_prefix: "/caf\u00e9" }\n').extproc.routes.length, 1);
  });
});
