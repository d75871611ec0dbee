// docs/bff.md, row by row: each case is one endpoint (compiled from YAML the real way), fake upstream replies, and
// what the doc says the composer answers. The table is the contract; a row that fails is a doc/code disagreement.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Composer, type BffObserver } from '../../../src/bff/composer.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { FakeUpstreamClient, type FakeReply } from '../../fakes/fake-upstream-client.js';

const SERVICES = '{ users: "http://users:1", orders: "http://orders:2/api" }';

interface Row {
  readonly name: string;
  /** The endpoint's lines after `path:` (params, forward_headers, calls, respond). */
  readonly yaml: string;
  readonly timeoutMs?: number;
  readonly replies: Readonly<Record<string, FakeReply>>;
  readonly params?: Readonly<Record<string, string>>;
  readonly headers?: Readonly<Record<string, string>>;
  /** A 200 answer's body, or the failure `[status, call]`. */
  readonly want: unknown;
  /** Request paths the upstreams saw, in the order sent (when it matters). */
  readonly sent?: readonly string[];
  readonly sentHeaders?: Readonly<Record<string, string>>;
}

const silent: BffObserver = { call: () => undefined, answer: () => undefined };

async function compose(row: Row) {
  const text = `bff:
  services: ${SERVICES}
  endpoints:
    - path: /bff/t/{userId}
      timeout_ms: ${row.timeoutMs ?? 300}
${row.yaml.trim().split('\n').map((l) => `      ${l}`).join('\n')}
`;
  const endpoint = parsePortcullisConfig(text, '/x/portcullis.yaml').bff.endpoints[0];
  assert.ok(endpoint);
  const client = new FakeUpstreamClient(row.replies);
  const result = await new Composer({ client, observer: silent, now: () => performance.now() }).compose({
    endpoint,
    params: new Map(Object.entries(row.params ?? { userId: '42' })),
    headers: row.headers ?? {},
    maxResponseBytes: 1 << 20,
    signal: new AbortController().signal,
  });
  const got = result.kind === 'answer' ? result.body : result.kind === 'failed' ? [result.failure === 'timeout' ? 504 : 502, result.call] : 'abandoned';
  return { got, client };
}

const USER = { 'users /users/42': { body: { name: 'Ada', age: 36, address: { city: 'Paris' }, 'full name': 'Ada L', tags: ['a', 'b'] } } };
const ONE_CALL = 'calls:\n  user: { service: users, path: "/users/{userId}" }';

const rows: Row[] = [
  // respond templates
  { name: 'whole value keeps its type', yaml: `${ONE_CALL}\nrespond: { u: "{user}", age: "{user.age}", tags: "{user.tags}" }`, replies: USER,
    want: { u: USER['users /users/42'].body, age: 36, tags: ['a', 'b'] } },
  { name: 'embedded in text: values become text, objects JSON, missing empty', yaml: `${ONE_CALL}\nrespond: { a: "age {user.age}", o: "t={user.tags}", m: "x{user.nope}y" }`, replies: USER,
    want: { a: 'age 36', o: 't=["a","b"]', m: 'xy' } },
  { name: 'missing whole value is null', yaml: `${ONE_CALL}\nrespond: { m: "{user.nope}", deep: "{user.address.zip.code}", idx: "{user.tags[5]}" }`, replies: USER,
    want: { m: null, deep: null, idx: null } },
  { name: 'nested paths, indexes and quoted fields', yaml: `${ONE_CALL}\nrespond: { city: "{user.address.city}", first: "{user.tags[0]}", full: '{user["full name"]}' }`, replies: USER,
    want: { city: 'Paris', first: 'a', full: 'Ada L' } },
  { name: 'own properties only', yaml: `${ONE_CALL}\nrespond: { c: "{user.constructor}", l: "{user.tags.length}" }`, replies: USER, want: { c: null, l: null } },
  { name: 'parameters are readable', yaml: `${ONE_CALL}\nrespond: { id: "{userId}", text: "id-{userId}" }`, replies: USER, want: { id: '42', text: 'id-42' } },
  { name: 'lists and mappings nest, other YAML values are literal', yaml: `${ONE_CALL}\nrespond: { l: ["{user.name}", 1, true, null, { c: "{user.address.city}" }], n: 2.5 }`, replies: USER,
    want: { l: ['Ada', 1, true, null, { c: 'Paris' }], n: 2.5 } },
  { name: 'literal braces', yaml: `${ONE_CALL}\nrespond: { b: "{{x}} {user.name}" }`, replies: USER, want: { b: '{x} Ada' } },
  { name: 'selection from an object and from each object of a list', yaml: `calls:\n  user: { service: users, path: "/users/{userId}" }\nrespond: { u: { $from: "{user}", $pick: [name, age, nope] }, l: { $from: "{user.list}", $pick: [id] } }`,
    replies: { 'users /users/42': { body: { name: 'Ada', age: 1, x: 2, list: [{ id: 1, y: 2 }, { id: 3 }] } } }, want: { u: { name: 'Ada', age: 1 }, l: [{ id: 1 }, { id: 3 }] } },
  { name: 'respond absent: every call under its name', yaml: 'calls:\n  user: { service: users, path: "/users/{userId}" }\n  orders: { service: orders, path: "/orders", on_error: [] }',
    replies: { 'users /users/42': { body: 'u' }, 'orders /api/orders': { body: [1] } }, want: { user: 'u', orders: [1] } },

  // call templates
  { name: 'path: service prefix first, placeholders URL-encoded', yaml: 'calls:\n  o: { service: orders, path: "/orders/{userId}/x" }', params: { userId: 'a/b c' },
    replies: { 'orders /api/orders/a%2Fb%20c/x': { body: 1 } }, want: { o: 1 }, sent: ['/api/orders/a%2Fb%20c/x'] },
  { name: 'query: encoded, a parameter whose only placeholder is missing is left out', yaml: 'params: { q: {} }\ncalls:\n  o: { service: orders, path: "/orders", query: { user: "{userId}", q: "{q}", t: "x{q}", n: "1 2" } }',
    replies: { 'orders /api/orders': { body: 1 } }, want: { o: 1 }, sent: ['/api/orders?user=42&t=x&n=1%202'] },
  { name: 'headers: templates rendered, forwarded headers copied, nothing else', yaml: 'calls:\n  o: { service: orders, path: "/orders", headers: { x-for: "user {userId}" } }',
    headers: { 'x-user-id': 'alice', cookie: 'c', authorization: 'a', traceparent: 't' }, replies: { 'orders /api/orders': { body: 1 } }, want: { o: 1 },
    sentHeaders: { 'x-user-id': 'alice', traceparent: 't', 'x-for': 'user 42' } },
  { name: 'forward_headers on the endpoint overrides the default list', yaml: 'forward_headers: [x-tenant]\ncalls:\n  o: { service: orders, path: "/orders" }',
    headers: { 'x-user-id': 'alice', 'x-tenant': 't1' }, replies: { 'orders /api/orders': { body: 1 } }, want: { o: 1 }, sentHeaders: { 'x-tenant': 't1' } },

  // on_error and degradation
  { name: 'on_error []', yaml: 'calls:\n  o: { service: orders, path: "/orders", on_error: [] }', replies: { 'orders /api/orders': { status: 500 } }, want: { o: [], _degraded: ['o'] } },
  { name: 'on_error null', yaml: 'calls:\n  o: { service: orders, path: "/orders", on_error: null }', replies: { 'orders /api/orders': { status: 404 } }, want: { o: null, _degraded: ['o'] } },
  { name: 'on_error mapping', yaml: 'calls:\n  o: { service: orders, path: "/orders", on_error: { a: [1] } }', replies: { 'orders /api/orders': { network: true } }, want: { o: { a: [1] }, _degraded: ['o'] } },
  { name: 'on_error absent: required, 502', yaml: 'calls:\n  o: { service: orders, path: "/orders" }', replies: { 'orders /api/orders': { status: 503 } }, want: [502, 'o'] },
  { name: 'a 3xx is a failure too', yaml: 'calls:\n  o: { service: orders, path: "/orders", on_error: 0 }', replies: { 'orders /api/orders': { status: 302 } }, want: { o: 0, _degraded: ['o'] } },

  // after and skips
  { name: 'after: waits for a call it does not read, which degraded; it still runs', yaml: 'calls:\n  a: { service: orders, path: "/a", on_error: null }\n  b: { service: orders, path: "/b", after: [a] }',
    replies: { 'orders /api/a': { status: 500, delayMs: 20 }, 'orders /api/b': { body: 'b' } }, want: { a: null, b: 'b', _degraded: ['a'] }, sent: ['/api/a', '/api/b'] },
  { name: 'skip: the dependency legitimately empty, a required call is skipped, nothing degraded', yaml: 'calls:\n  o: { service: orders, path: "/orders" }\n  d: { service: orders, path: "/orders/{o[0].id}" }',
    replies: { 'orders /api/orders': { body: [] } }, want: { o: [], d: null }, sent: ['/api/orders'] },
  { name: 'skip: the dependency degraded, the optional call is skipped and degraded, its on_error taken', yaml: 'calls:\n  o: { service: orders, path: "/orders", on_error: [] }\n  d: { service: orders, path: "/orders/{o[0].id}", on_error: { none: true } }',
    replies: { 'orders /api/orders': { status: 500 } }, want: { o: [], d: { none: true }, _degraded: ['o', 'd'] } },
  { name: 'skip: the dependency degraded, a required call is skipped: 502', yaml: 'calls:\n  o: { service: orders, path: "/orders", on_error: [] }\n  d: { service: orders, path: "/orders/{o[0].id}" }',
    replies: { 'orders /api/orders': { status: 500 } }, want: [502, 'd'] },
  { name: 'skip chains: what reads a skipped degraded call is degraded too', yaml: 'calls:\n  o: { service: orders, path: "/orders", on_error: [] }\n  d: { service: orders, path: "/orders/{o[0].id}", on_error: null }\n  e: { service: orders, path: "/x/{d.id}", on_error: null }',
    replies: { 'orders /api/orders': { status: 500 } }, want: { o: [], d: null, e: null, _degraded: ['o', 'd', 'e'] } },
  { name: 'a required call after one that failed: 502 names the first', yaml: 'calls:\n  a: { service: orders, path: "/a" }\n  b: { service: orders, path: "/b", after: [a] }',
    replies: { 'orders /api/a': { status: 500 } }, want: [502, 'a'], sent: ['/api/a'] },
  { name: '_degraded and the header list in plan order', yaml: 'calls:\n  z: { service: orders, path: "/z", on_error: null }\n  a: { service: orders, path: "/a", after: [z], on_error: null }\n  m: { service: orders, path: "/m", on_error: null }',
    replies: { 'orders /api/z': { status: 500, delayMs: 30 }, 'orders /api/m': { status: 500 } }, want: { z: null, a: null, m: null, _degraded: ['z', 'm', 'a'] } },

  // timeouts
  { name: 'call timeout: optional call takes its fallback', yaml: 'calls:\n  o: { service: orders, path: "/o", timeout_ms: 30, on_error: [] }\n  u: { service: users, path: "/users/{userId}" }',
    replies: { 'orders /api/o': { delayMs: 1000 }, 'users /users/42': { body: 1, delayMs: 60 } }, want: { o: [], u: 1, _degraded: ['o'] } },
  { name: 'call timeout: required call is a 504', yaml: 'calls:\n  o: { service: orders, path: "/o", timeout_ms: 30 }', replies: { 'orders /api/o': { delayMs: 1000 } }, want: [504, 'o'] },
  { name: 'endpoint timeout: required call is a 504', yaml: 'calls:\n  o: { service: orders, path: "/o" }', timeoutMs: 40, replies: { 'orders /api/o': { delayMs: 1000 } }, want: [504, 'o'] },
  { name: 'endpoint timeout: a call not yet started takes its fallback', yaml: 'calls:\n  a: { service: orders, path: "/a", on_error: 1 }\n  b: { service: orders, path: "/b", after: [a], on_error: 2 }', timeoutMs: 40,
    replies: { 'orders /api/a': { delayMs: 1000 } }, want: { a: 1, b: 2, _degraded: ['a', 'b'] }, sent: ['/api/a'] },
];

describe('docs/bff.md, row by row', () => {
  for (const row of rows) {
    it(row.name, async () => {
      const { got, client } = await compose(row);
      assert.deepEqual(got, row.want);
      if (row.sent) assert.deepEqual(client.seen.map((s) => s.path), row.sent);
      if (row.sentHeaders) assert.deepEqual({ ...client.seen[0]?.headers }, row.sentHeaders);
    });
  }
});
