import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Composer, isHeaderValue, type BffObserver } from '../../../src/bff/composer.js';
import type { BffEndpoint } from '../../../src/bff/config.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { FakeUpstreamClient, type FakeReply } from '../../fakes/fake-upstream-client.js';

/** One endpoint compiled from YAML (the lines after `calls:` and `respond:`), the real way. */
function endpoint(body: string, timeoutMs = 500): BffEndpoint {
  const text = `bff:
  services: { users: "http://users:1", orders: "http://orders:2/api", prefs: "http://prefs:3" }
  endpoints:
    - path: /bff/web/dashboard/{userId}
      timeout_ms: ${timeoutMs}
${body.split('\n').map((l) => `      ${l}`).join('\n')}
`;
  const e = parsePortcullisConfig(text, '/x/portcullis.yaml').bff.endpoints[0];
  assert.ok(e);
  return e;
}

class RecordingObserver implements BffObserver {
  readonly calls: string[] = [];
  readonly answers: string[] = [];
  call(endpoint: string, call: string, _seconds: number, outcome: string, degraded: boolean): void {
    this.calls.push(`${endpoint} ${call} ${outcome}${degraded ? ' degraded' : ''}`);
  }
  answer(endpoint: string, status: number, _seconds: number, degraded: boolean): void {
    this.answers.push(`${endpoint} ${status}${degraded ? ' degraded' : ''}`);
  }
}

async function run(e: BffEndpoint, replies: Record<string, FakeReply>, options: { params?: Record<string, string>; headers?: Record<string, string>; signal?: AbortSignal } = {}) {
  const client = new FakeUpstreamClient(replies);
  const observer = new RecordingObserver();
  const composer = new Composer({ client, observer, now: () => performance.now() });
  const started = performance.now();
  const result = await composer.compose({
    endpoint: e,
    params: new Map(Object.entries(options.params ?? { userId: '42' })),
    headers: options.headers ?? {},
    maxResponseBytes: 1 << 20,
    signal: options.signal ?? new AbortController().signal,
  });
  return { result, client, observer, ms: performance.now() - started };
}

const DASHBOARD = `calls:
  user:    { service: users,  path: "/users/{userId}", timeout_ms: 300 }
  orders:  { service: orders, path: "/orders", query: { user: "{userId}", limit: "5" }, on_error: [] }
  details: { service: orders, path: "/orders/{orders[0].id}", after: [orders], on_error: null }
respond: { user: "{user}", recentOrders: "{orders}", latest: "{details}" }`;

describe('Composer', () => {
  it('a call header named __proto__ is sent like any other', async () => {
    const e = endpoint('calls:\n  user: { service: users, path: "/users/{userId}", headers: { __proto__: "x", x-other: "y" } }\nrespond: { user: "{user}" }');
    const { client } = await run(e, { users: { status: 200, body: { name: 'alice' } } });
    const sent = client.seen[0]?.headers ?? {};
    assert.deepEqual([Object.keys(sent).includes('__proto__'), sent['x-other']], [true, 'y']);
  });

  it('answers from every call and runs independent calls in parallel, dependent ones after', async () => {
    const { result, client, observer } = await run(endpoint(DASHBOARD), {
      'users /users/42': { body: { id: 42, name: 'Ada' }, delayMs: 30 },
      'orders /api/orders': { body: [{ id: 'o/1' }], delayMs: 30 },
      'orders /api/orders/o%2F1': { body: { id: 'o/1', total: 3 } },
    });
    assert.deepEqual(result, {
      kind: 'answer',
      body: { user: { id: 42, name: 'Ada' }, recentOrders: [{ id: 'o/1' }], latest: { id: 'o/1', total: 3 } },
      degraded: [],
      calls: result.kind === 'answer' ? result.calls : [],
    });
    const [user, orders, details] = client.seen;
    assert.deepEqual(client.seen.map((s) => s.path), ['/users/42', '/api/orders?user=42&limit=5', '/api/orders/o%2F1']);
    assert.ok(user && orders && details);
    assert.ok(Math.abs(user.startedAt - orders.startedAt) < 15, 'user and orders start together');
    assert.ok(details.startedAt - orders.startedAt >= 25, 'details waits for orders');
    assert.deepEqual(observer.answers, ['/bff/web/dashboard/{userId} 200']);
  });

  it('a failing call with on_error degrades its part, and what reads it is skipped and degraded too', async () => {
    const { result, client } = await run(endpoint(DASHBOARD), {
      'users /users/42': { body: { id: 42 } },
      'orders /api/orders': { status: 500 },
    });
    assert.equal(result.kind, 'answer');
    assert.deepEqual(result.kind === 'answer' && result.body, { user: { id: 42 }, recentOrders: [], latest: null, _degraded: ['orders', 'details'] });
    assert.deepEqual(result.kind === 'answer' && result.degraded, ['orders', 'details']);
    assert.equal(client.seen.length, 2, 'details is never sent');
  });

  it('an empty result is not a failure: the call that reads it is skipped without degrading', async () => {
    const { result } = await run(endpoint(DASHBOARD), {
      'users /users/42': { body: { id: 42 } },
      'orders /api/orders': { body: [] },
    });
    assert.deepEqual(result.kind === 'answer' && result.body, { user: { id: 42 }, recentOrders: [], latest: null });
  });

  it("an upstream value of '.' or '..' is no path segment: the call that reads it is skipped, never sent", async () => {
    for (const id of ['.', '..']) {
      const { result, client } = await run(endpoint(DASHBOARD), {
        'users /users/42': { body: { id: 42 } },
        'orders /api/orders': { body: [{ id }] },
      });
      assert.deepEqual(result.kind === 'answer' && result.body, { user: { id: 42 }, recentOrders: [{ id }], latest: null });
      assert.deepEqual(client.seen.map((s) => s.path), ['/users/42', '/api/orders?user=42&limit=5'], id);
    }
  });

  it('an upstream value holding a percent-escape is not sent in a path (a service that decodes twice reads it decoded)', async () => {
    for (const id of ['%2e%2e', 'a%2Fb', '%252e', 'x%41']) {
      const e = endpoint(`calls:\n  user: { service: users, path: "/users/{userId}" }\n  details: { service: orders, path: "/orders/{user.id}", on_error: null }\nrespond: { details: "{details}" }`);
      const { result, client, observer } = await run(e, { 'users /users/42': { body: { id } } });
      assert.deepEqual(client.seen.map((s) => s.path), ['/users/42'], id);
      assert.ok(observer.calls.includes('/bff/web/dashboard/{userId} details input degraded'), `${id}: ${observer.calls.join(', ')}`);
      assert.deepEqual(result.kind === 'answer' && result.body, { details: null, _degraded: ['details'] }, id);
    }
    // A % that starts no escape is text like any other.
    const e = endpoint(`calls:\n  user: { service: users, path: "/users/{userId}" }\n  details: { service: orders, path: "/orders/{user.id}", on_error: null }\nrespond: { details: "{details}" }`);
    const { client } = await run(e, { 'users /users/42': { body: { id: '50%off' } }, 'orders /api/orders/50%25off': { body: { ok: true } } });
    assert.deepEqual(client.seen.map((s) => s.path), ['/users/42', '/api/orders/50%25off']);
  });

  it('a slow call times out at its own timeout_ms and degrades; the answer does not wait for it', async () => {
    const e = endpoint(`calls:
  user:  { service: users, path: "/users/{userId}" }
  prefs: { service: prefs, path: "/prefs/{userId}", timeout_ms: 50, on_error: { theme: default } }
respond: { user: "{user.name}", theme: "{prefs.theme}" }`);
    const { result, ms, observer } = await run(e, {
      'users /users/42': { body: { name: 'Ada' } },
      'prefs /prefs/42': { body: { theme: 'dark' }, delayMs: 2000 },
    });
    assert.deepEqual(result.kind === 'answer' && result.body, { user: 'Ada', theme: 'default', _degraded: ['prefs'] });
    assert.ok(ms < 400, `answered in ${ms} ms`);
    assert.ok(observer.calls.includes('/bff/web/dashboard/{userId} prefs timeout degraded'), observer.calls.join('\n'));
  });

  it('the endpoint timeout bounds calls that have no shorter timeout of their own', async () => {
    const e = endpoint(`calls:
  user:  { service: users, path: "/users/{userId}" }
  prefs: { service: prefs, path: "/prefs/{userId}", on_error: {} }`, 80);
    const { result, ms, observer } = await run(e, {
      'users /users/42': { body: 'ok' },
      'prefs /prefs/42': { delayMs: 5000 },
    });
    assert.deepEqual(result.kind === 'answer' && result.body, { user: 'ok', prefs: {}, _degraded: ['prefs'] });
    assert.ok(ms < 400, `answered in ${ms} ms`);
    assert.ok(observer.calls.includes('/bff/web/dashboard/{userId} prefs deadline degraded'), observer.calls.join('\n'));
  });

  it('a required call that fails fails the answer at once', async () => {
    const { result, observer, ms } = await run(endpoint(DASHBOARD), {
      'users /users/42': { network: true },
      'orders /api/orders': { body: [], delayMs: 3000 },
    });
    assert.equal(result.kind, 'failed');
    assert.deepEqual(result.kind === 'failed' && [result.failure, result.call], ['upstream', 'user']);
    assert.ok(ms < 400, `gave up in ${ms} ms, without waiting for orders`);
    assert.deepEqual(observer.answers, ['/bff/web/dashboard/{userId} 502 degraded']);
  });

  it('a required call that times out is a timeout failure', async () => {
    const { result, observer } = await run(endpoint(DASHBOARD), {
      'users /users/42': { delayMs: 3000 },
      'orders /api/orders': { body: [] },
    });
    assert.deepEqual(result.kind === 'failed' && [result.failure, result.call], ['timeout', 'user']);
    assert.deepEqual(observer.answers, ['/bff/web/dashboard/{userId} 504 degraded']);
  });

  it('forwards the configured identity and trace headers, plus the call headers', async () => {
    const e = endpoint(`calls:
  user: { service: users, path: "/users/{userId}", headers: { x-client: "web {userId}" } }`);
    const { client } = await run(e, { 'users /users/42': { body: {} } }, {
      headers: { 'x-user-id': 'alice', 'x-request-id': 'r-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', cookie: 'secret', authorization: 'Bearer t' },
    });
    assert.deepEqual({ ...client.seen[0]?.headers }, {
      'x-user-id': 'alice', 'x-request-id': 'r-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-client': 'web 42',
    });
  });

  it('URL-encodes path parameters and query values', async () => {
    const e = endpoint(`calls:
  user: { service: users, path: "/users/{userId}", query: { q: "{userId}", tail: "{userId}x" } }`);
    const { client } = await run(e, { 'users /users/..%2Fadmin%3Fx%3D1%20%23': { body: {} } }, { params: { userId: '../admin?x=1 #' } });
    assert.equal(client.seen[0]?.path, '/users/..%2Fadmin%3Fx%3D1%20%23?q=..%2Fadmin%3Fx%3D1%20%23&tail=..%2Fadmin%3Fx%3D1%20%23x');
  });

  it('the client going away aborts the calls', async () => {
    const gone = new AbortController();
    setTimeout(() => gone.abort(new Error('client went away')), 30);
    const { result, ms, observer } = await run(endpoint(DASHBOARD), {
      'users /users/42': { delayMs: 3000 },
      'orders /api/orders': { delayMs: 3000 },
    }, { signal: gone.signal });
    assert.deepEqual(observer.answers, ['/bff/web/dashboard/{userId} 499']);
    assert.ok(observer.calls.every((c) => !c.endsWith('degraded')), observer.calls.join('\n'));
    assert.equal(result.kind, 'abandoned');
    assert.ok(ms < 400, `stopped after ${ms} ms`);
  });

  it('a lone surrogate from an upstream, read by a path or a query, fails that call: degraded with on_error, fatal without', async () => {
    const cases: { name: string; call: string; want: string | [string, string] }[] = [
      { name: 'path, optional', call: 'details: { service: orders, path: "/orders/{user.id}", on_error: null }', want: 'input degraded' },
      { name: 'query, optional', call: 'details: { service: orders, path: "/orders", query: { id: "x{user.id}" }, on_error: null }', want: 'input degraded' },
      { name: 'path, required', call: 'details: { service: orders, path: "/orders/{user.id}" }', want: ['upstream', 'details'] },
      { name: 'query, required', call: 'details: { service: orders, path: "/orders", query: { id: "{user.id}" } }', want: ['upstream', 'details'] },
    ];
    for (const c of cases) {
      const e = endpoint(`calls:\n  user: { service: users, path: "/users/{userId}" }\n  ${c.call}\nrespond: { details: "{details}" }`);
      const { result, client, observer } = await run(e, { 'users /users/42': { body: JSON.parse('{"id":"\\ud800"}') } });
      assert.equal(client.seen.length, 1, `${c.name}: details is never sent`);
      assert.ok(observer.calls.includes('/bff/web/dashboard/{userId} details input degraded'), `${c.name}: ${observer.calls.join(', ')}`);
      if (typeof c.want === 'string') assert.deepEqual(result.kind === 'answer' && result.body, { details: null, _degraded: ['details'] }, c.name);
      else assert.deepEqual(result.kind === 'failed' && [result.failure, result.call], c.want, c.name);
    }
  });

  it('ending in an exception still aborts every call in flight', async () => {
    const e = endpoint(`calls:
  user:  { service: users, path: "/users/{userId}" }
  prefs: { service: prefs, path: "/prefs/{userId}", on_error: null }`, 10_000);
    let prefsSignal: AbortSignal | undefined;
    const client = new FakeUpstreamClient({
      'users /users/42': { body: {} },
      'prefs /prefs/42': (r) => {
        prefsSignal = r.signal;
        return { delayMs: 5000 };
      },
    });
    const observer = new RecordingObserver();
    observer.call = () => {
      throw new Error('observer broke');
    };
    const composer = new Composer({ client, observer, now: () => performance.now() });
    await assert.rejects(composer.compose({ endpoint: e, params: new Map([['userId', '42']]), headers: {}, maxResponseBytes: 1 << 20, signal: new AbortController().signal }), /observer broke/);
    assert.equal(prefsSignal?.aborted, true, 'prefs is aborted, not left running until the endpoint timeout');
  });

  it('a __proto__ key in respond is a key of the answer', async () => {
    const e = endpoint(`calls:
  user: { service: users, path: "/users/{userId}" }
  prefs: { service: prefs, path: "/prefs/{userId}", on_error: null }
respond: { __proto__: "{user}", other: 1 }`);
    for (const [prefs, want] of [
      [{ body: {} }, '{"__proto__":{"name":"Ada"},"other":1}'],
      [{ status: 500 }, '{"__proto__":{"name":"Ada"},"other":1,"_degraded":["prefs"]}'],
    ] as const) {
      const { result } = await run(e, { 'users /users/42': { body: { name: 'Ada' } }, 'prefs /prefs/42': prefs });
      assert.equal(JSON.stringify(result.kind === 'answer' && result.body), want);
    }
  });

  it('mobile: fewer calls and a field selection', async () => {
    const e = endpoint(`calls:
  user: { service: users, path: "/users/{userId}" }
respond:
  name: "{user.name}"
  orders: { $from: "{user.orders}", $pick: [id] }`);
    const { result, client } = await run(e, { 'users /users/42': { body: { name: 'Ada', email: 'a@x', orders: [{ id: 1, total: 2 }, { id: 2, total: 3 }] } } });
    assert.deepEqual(result.kind === 'answer' && result.body, { name: 'Ada', orders: [{ id: 1 }, { id: 2 }] });
    assert.equal(client.seen.length, 1);
  });
});

describe('isHeaderValue', () => {
  const cases: [string, boolean][] = [
    ['', true], ['plain text', true], ['tab\there', true], ['café', true], ['\u00ff', true],
    ['a\r\nx-user-id: root', false], ['a\nb', false], ['nul\u0000', false], ['del\u007f', false], ['\u0100', false], ['🙂', false],
  ];
  for (const [value, ok] of cases) it(`${JSON.stringify(value)}: ${ok}`, () => assert.equal(isHeaderValue(value), ok));
});
