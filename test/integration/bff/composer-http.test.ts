// The composer's HTTP listener on port 0 (a real Portcullis app in this process) against real Node HTTP upstreams:
// a fast one, a slow one and a failing one, through the real undici client.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestApp, type TestApp } from '../../support/app.js';
import { startUpstream, type EchoBody, type Upstream } from '../../support/upstream.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const ENDPOINT = '/bff/web/dashboard/{userId}';

// Timeouts are generous: the test machine is shared and a cold first call can take hundreds of ms.
function bffSection(users: Upstream, orders: Upstream, prefs: Upstream, limited: Upstream): string {
  return `services:
  users: "${users.url}"
  orders: "${orders.url}"
  prefs: "${prefs.url}"
  limited: { url: "${limited.url}", max_concurrency: 2 }
endpoints:
  - path: /bff/web/dashboard/{userId}
    timeout_ms: 3000
    params: { userId: { pattern: "[A-Za-z0-9/._-]+" }, limit: { pattern: "[0-9]{1,2}", default: "5" } }
    calls:
      user:   { service: users,  path: "/users/{userId}" }
      orders: { service: orders, path: "/orders", query: { user: "{userId}", limit: "{limit}" }, timeout_ms: 400, on_error: [] }
      prefs:  { service: prefs,  path: "/prefs/{userId}", on_error: { theme: light } }
      echo:   { service: users,  path: "/echo/{user.path}", after: [user], on_error: null }
    respond: { user: "{user.path}", sawUser: "{user.headers.x-user-id}", orders: "{orders}", theme: "{prefs.theme}", echo: "{echo.path}" }
  - path: /bff/mobile/dashboard/{userId}
    calls:
      user: { service: users, path: "/users/{userId}" }
    respond:
      user: { $from: "{user}", $pick: [path] }
  - path: /bff/strict/{userId}
    calls:
      prefs: { service: prefs, path: "/prefs/{userId}" }
  - path: /bff/limited
    timeout_ms: 10000
    calls:
      limited: { service: limited, path: "/limited" }`;
}

interface Reply {
  status: number;
  type: string | null;
  degraded: string | null;
  body: Record<string, unknown>;
  ms: number;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  const started = performance.now();
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, type: response.headers.get('content-type'), degraded: response.headers.get('x-bff-degraded'), body, ms: performance.now() - started };
}

describe('composer over HTTP with real upstreams', () => {
  let users: Upstream;
  let slowOrders: Upstream;
  let failingPrefs: Upstream;
  let limited: Upstream;
  let t: TestApp;
  let base: string;

  before(async () => {
    users = await startUpstream();
    slowOrders = await startUpstream('127.0.0.1', 0, { delayMs: 5000 });
    failingPrefs = await startUpstream('127.0.0.1', 0, { status: 503 });
    limited = await startUpstream('127.0.0.1', 0, { delayMs: 200 });
    t = await startTestApp({ descriptors: {}, bff: bffSection(users, slowOrders, failingPrefs, limited) });
    assert.ok(t.httpUrl);
    base = t.httpUrl;
    await get(`${base}/bff/mobile/dashboard/warm-up`); // connects the users pool and warms the code paths
  });
  after(async () => {
    await t.close();
    await Promise.all([users.stop(), slowOrders.stop(), failingPrefs.stop(), limited.stop()]);
  });

  it('answers within the timeouts with the slow and the failing parts degraded', async () => {
    const reply = await get(`${base}/bff/web/dashboard/alice`, { 'x-user-id': 'alice', 'x-request-id': 'req-1', traceparent: TRACEPARENT });
    assert.equal(reply.status, 200);
    assert.equal(reply.type, 'application/json');
    assert.deepEqual(reply.body, {
      user: '/users/alice', sawUser: 'alice', orders: [], theme: 'light', echo: '/echo/%2Fusers%2Falice', _degraded: ['orders', 'prefs'],
    });
    assert.equal(reply.degraded, 'orders,prefs');
    assert.ok(reply.ms >= 400 && reply.ms < 3000, `answered in ${reply.ms} ms: orders gives up after 400 ms (its upstream takes 5000), the endpoint after 3000`);
  });

  it('forwards the identity and trace headers to every upstream, the slow and the failing ones too', async () => {
    await get(`${base}/bff/web/dashboard/bob`, { 'x-user-id': 'bob', 'x-request-id': 'req-2', traceparent: TRACEPARENT, cookie: 'session=1' });
    const saw = (u: Upstream): EchoBody | undefined => u.requests().find((r) => r.headers['x-request-id'] === 'req-2');
    for (const [name, upstream] of [['users', users], ['orders', slowOrders], ['prefs', failingPrefs]] as const) {
      const request = saw(upstream);
      assert.ok(request, `${name} got the request`);
      assert.equal(request.headers['x-user-id'], 'bob', name);
      assert.equal(request.headers['traceparent'], TRACEPARENT, name);
      assert.equal(request.headers['cookie'], undefined, `${name}: only the configured headers are forwarded`);
    }
    assert.equal(saw(slowOrders)?.path, '/orders?user=bob&limit=5');
  });

  it('URL-encodes path parameters into the calls', async () => {
    const reply = await get(`${base}/bff/web/dashboard/a%2F..%2Fadmin`);
    assert.equal(reply.body['user'], '/users/a%2F..%2Fadmin');
  });

  it('mobile: one call, selected fields', async () => {
    const reply = await get(`${base}/bff/mobile/dashboard/carol`);
    assert.deepEqual(reply.body, { user: { path: '/users/carol' } });
  });

  it('a bad parameter is a 400 problem+json', async () => {
    const reply = await get(`${base}/bff/web/dashboard/alice?limit=1000`);
    assert.equal(reply.status, 400);
    assert.equal(reply.type, 'application/problem+json');
    assert.equal(reply.body['code'], 'PC_BFF_BAD_REQUEST');
    assert.match(String(reply.body['detail']), /query parameter 'limit' does not match/);
    const bad = await get(`${base}/bff/web/dashboard/%E0%A4%A`);
    assert.equal(bad.status, 400);
    const pattern = await get(`${base}/bff/web/dashboard/a%20b`);
    assert.equal(pattern.status, 400);
  });

  it('an unknown path is a 404 problem, another method a 405', async () => {
    const reply = await get(`${base}/bff/nothing`);
    assert.equal(reply.status, 404);
    assert.equal(reply.type, 'application/problem+json');
    const post = await fetch(`${base}/bff/mobile/dashboard/x`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.arrayBuffer();
  });

  it('a failing required call is a 502 problem', async () => {
    const reply = await get(`${base}/bff/strict/dave`);
    assert.equal(reply.status, 502);
    assert.equal(reply.body['code'], 'PC_BFF_UPSTREAM_FAILED');
  });

  it('never has more requests in flight to a service than its max_concurrency', async () => {
    const replies = await Promise.all(Array.from({ length: 5 }, () => get(`${base}/bff/limited`)));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.equal(limited.requestCount(), 5);
    assert.equal(limited.maxConcurrent(), 2);
  });

  it('counts answers, failures and degraded parts per endpoint and call', async () => {
    assert.ok(await t.metric('portcullis_bff_call_failures_total', { endpoint: ENDPOINT, call: 'orders', reason: 'timeout' }) >= 1);
    assert.ok(await t.metric('portcullis_bff_call_failures_total', { endpoint: ENDPOINT, call: 'prefs', reason: 'status' }) >= 1);
    assert.ok(await t.metric('portcullis_bff_call_degraded_total', { endpoint: ENDPOINT, call: 'prefs' }) >= 1);
    assert.ok(await t.metric('portcullis_bff_degraded_answers_total', { endpoint: ENDPOINT }) >= 1);
    assert.ok(await t.metric('portcullis_bff_requests_total', { endpoint: '__unmatched__', status: '404' }) >= 1);
    const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
    assert.match(text, /portcullis_bff_call_duration_seconds_bucket\{le="[^"]+",endpoint="\/bff\/web\/dashboard\/\{userId\}",call="user"\}/);
  });

  it('logs degraded answers with the request and trace ids', () => {
    const line = t.logs().find((l) => l['msg'] === 'bff answer degraded' && l['requestId'] === 'req-1');
    assert.ok(line, 'a degraded answer is logged');
    assert.equal(line['traceId'], '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.deepEqual(line['degraded'], ['orders', 'prefs']);
  });

  it('hot reload: a new endpoint is served after reload(); a broken file keeps the last good config', async () => {
    const original = readFileSync(t.file, 'utf8');
    const added = original.replace(/^( *)- path: \/bff\/limited$/m, (line, indent: string) =>
      `${indent}- path: /bff/hello/{userId}\n${indent}  calls:\n${indent}    user: { service: users, path: "/hello/{userId}" }\n${line}`);
    assert.notEqual(added, original);
    writeFileSync(t.file, added);
    await t.app.reload();
    const hello = await get(`${base}/bff/hello/erin`);
    assert.equal(hello.status, 200);
    assert.equal((hello.body['user'] as EchoBody).path, '/hello/erin');
    writeFileSync(t.file, readFileSync(t.file, 'utf8').replace('service: users, path: "/hello/{userId}"', 'service: nobody, path: "/hello/{userId}"'));
    await t.app.reload();
    await eventually(() => t.logs().some((l) => l['msg'] === 'config rejected; keeping the last good config' && JSON.stringify(l['errors']).includes("unknown service 'nobody'")), 2000, 'the rejection log');
    assert.equal((await get(`${base}/bff/hello/erin`)).status, 200, 'the last good config still serves');
  });
});
