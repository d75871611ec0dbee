// The composer's HTTP listener on port 0 (a real Portcullis app in this process) against real Node HTTP upstreams:
// a fast one, a slow one and a failing one, through the real undici client.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestApp, type TestApp } from '../../support/app.js';
import { startUpstream, type EchoBody, type Upstream } from '../../support/upstream.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const ENDPOINT = '/bff/web/dashboard/{userId}';

// Timeouts are generous: the test machine is shared and a cold first call can take hundreds of ms.
function bffSection(users: Upstream, orders: Upstream, prefs: Upstream, limited: Upstream, deep: string): string {
  return `services:
  users: "${users.url}"
  orders: "${orders.url}"
  prefs: "${prefs.url}"
  limited: { url: "${limited.url}", max_concurrency: 2 }
  deep: "${deep}"
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
  - path: /bff/deep
    calls:
      deep: { service: deep, path: "/deep", on_error: { fallback: true } }
    respond: { deep: "{deep}" }
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

/** One request sent as written: fetch would resolve dot segments (`%2e%2e` too) and reject odd targets. */
function raw(base: string, method: string, target: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | undefined; requestId: string | undefined; body: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(port), method, path: target, headers, signal: AbortSignal.timeout(5000) }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], requestId: res.headers['x-request-id'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('composer over HTTP with real upstreams', () => {
  let users: Upstream;
  let slowOrders: Upstream;
  let failingPrefs: Upstream;
  let limited: Upstream;
  /** Answers JSON nested 10,000 levels deep (about 20 KB): JSON.stringify of a value that deep overflows the stack. */
  let deep: Server;
  let t: TestApp;
  let base: string;

  before(async () => {
    users = await startUpstream();
    slowOrders = await startUpstream('127.0.0.1', 0, { delayMs: 5000 });
    failingPrefs = await startUpstream('127.0.0.1', 0, { status: 503 });
    limited = await startUpstream('127.0.0.1', 0, { delayMs: 200 });
    deep = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('['.repeat(10_000) + ']'.repeat(10_000)));
    await new Promise<void>((resolve) => deep.listen(0, '127.0.0.1', resolve));
    const deepUrl = `http://127.0.0.1:${(deep.address() as AddressInfo).port}`;
    t = await startTestApp({ descriptors: {}, bff: bffSection(users, slowOrders, failingPrefs, limited, deepUrl) });
    assert.ok(t.httpUrl);
    base = t.httpUrl;
    await get(`${base}/bff/mobile/dashboard/warm-up`); // connects the users pool and warms the code paths
  });
  after(async () => {
    await t.close();
    await Promise.all([users.stop(), slowOrders.stop(), failingPrefs.stop(), limited.stop(), new Promise((resolve) => deep.close(resolve))]);
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

  it('forwards no trace from two traceparent lines or a malformed one (nor its tracestate)', async () => {
    const spoofed = `cc-${'1'.repeat(32)}-${'2'.repeat(16)}-01-x`;
    for (const [id, lines] of [['req-dup', [spoofed, TRACEPARENT]], ['req-bad', ['zz-not-a-trace']]] as const) {
      // Written by hand: node:http would send the two lines, but not as the client chose them.
      const head = [`GET /bff/mobile/dashboard/carol HTTP/1.1`, 'host: bff', 'connection: close', `x-request-id: ${id}`, 'x-user-id: carol', 'tracestate: vendor=1', ...lines.map((line) => `traceparent: ${line}`)];
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(base).port), '127.0.0.1', () => socket.write(`${head.join('\r\n')}\r\n\r\n`));
        let text = '';
        socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text)).on('error', reject);
      });
      assert.match(answer, /^HTTP\/1\.1 200 /, id);
      const seen = users.requests().find((r) => r.headers['x-request-id'] === id);
      assert.ok(seen, `${id}: users got the request`);
      assert.equal(seen.headers['x-user-id'], 'carol');
      assert.equal(seen.headers['traceparent'], undefined, `${id}: no traceparent forwarded`);
      assert.equal(seen.headers['tracestate'], undefined, `${id}: no tracestate forwarded`);
    }
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
    // A dot segment, encoded or not, would climb the users service's path.
    for (const dots of ['..', '%2e%2e', '%2E', '.%2e']) {
      const climb = await raw(base, 'GET', `/bff/mobile/dashboard/${dots}`);
      assert.equal(climb.status, 400, dots);
      assert.match(String(JSON.parse(climb.body)['detail']), /path parameter 'userId' must not be '\.' or '\.\.'/);
    }
    // Decoded once, still an escape: re-encoded for the service, it is a dot segment or a slash to one that decodes twice.
    for (const twice of ['%252e%252e', '%252E', '%25%32%65', 'a%252Fb', 'x%2541']) {
      const climb = await raw(base, 'GET', `/bff/mobile/dashboard/${twice}`);
      assert.equal(climb.status, 400, twice);
      assert.match(String(JSON.parse(climb.body)['detail']), /path parameter 'userId' must not hold a percent-escape once decoded/);
    }
    assert.equal((await raw(base, 'GET', '/bff/mobile/dashboard/100%25')).status, 200);
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

  it('hostile paths, queries, methods and headers: each gets its answer, nothing fails internally', async () => {
    const segments = ['%', '%zz', '%00', '%0d%0ax-user-id:%20root', '..', '..%2f..%2fadmin', '%2e%2e', 'a'.repeat(8000), '%F0%9F%99%82', '%ED%A0%80'];
    const targets = [
      ...segments.map((s) => `/bff/mobile/dashboard/${s}`),
      ...segments.map((s) => `/bff/web/dashboard/alice?limit=${s}`),
      ...segments.map((s) => `/bff/${s}/dashboard/x`),
      '/bff/mobile/dashboard/', '/bff/mobile/dashboard', '//bff//mobile//dashboard//x', '/bff/mobile/dashboard/x/', '/bff/mobile/dashboard/x?',
      '/bff/web/dashboard/alice?limit=1&limit=2', '/bff/web/dashboard/alice?limit', '/bff/web/dashboard/alice?=&&=1', '*', '/?' + 'q=1&'.repeat(2000),
    ];
    const answered = new Map<number, number>();
    for (const target of targets) {
      for (const method of ['GET', 'HEAD', 'POST', 'OPTIONS', 'PROPFIND']) {
        const { status, type, requestId } = await raw(base, method, target, { traceparent: 'zz-not-a-trace', 'x-request-id': 'r'.repeat(5000) });
        assert.ok([200, 400, 404, 405].includes(status), `${method} ${target.slice(0, 80)}: ${status}`);
        // A request id longer than 200 characters is not kept: a fresh one is sent back.
        assert.match(requestId ?? '', /^[0-9a-f-]{36}$/, `${method} ${target.slice(0, 80)}`);
        if (status !== 200 && method !== 'HEAD') assert.equal(type, 'application/problem+json', `${method} ${target.slice(0, 80)}: ${status}`);
        answered.set(status, (answered.get(status) ?? 0) + 1);
      }
    }
    assert.deepEqual([...answered.keys()].sort(), [200, 400, 404, 405], JSON.stringify([...answered]));
    assert.deepEqual(t.logs().filter((l) => Number(l['level']) >= 50), [], 'a request failed internally');
  });

  it('an upstream answer nested too deeply to render is a failed call: its part degrades', async () => {
    const reply = await get(`${base}/bff/deep`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, { deep: { fallback: true }, _degraded: ['deep'] });
    assert.ok(await t.metric('portcullis_bff_call_failures_total', { endpoint: '/bff/deep', call: 'deep', reason: 'body' }) >= 1);
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

  it('shows the plan of each endpoint on the admin /config', async () => {
    const config = (await (await fetch(`${t.adminUrl}/config`)).json()) as { bff: { endpoints: { path: string; waves: string[][] }[] } };
    const web = config.bff.endpoints.find((e) => e.path === ENDPOINT);
    assert.deepEqual(web?.waves, [['user', 'orders', 'prefs'], ['echo']]);
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
