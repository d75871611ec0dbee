// Request aggregation end to end: plain HTTP through a real Envoy (the committed envoy/bff.yaml, ports replaced) to
// the Portcullis composer (the committed envoy/bff-portcullis.yaml, service URLs and ports replaced), which fans out
// to three Node services: users answers at once, orders is slow (5 s, past its 300 ms timeout), recommendations
// fails (503).

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../support/app.js';
import { bffBootstrap, loadYamlFile, repoRoot, startEnvoy, type EnvoyInstance } from '../support/envoy.js';
import { splitHostPort, startPortcullis, type PortcullisInstance } from '../support/portcullis.js';
import { startUpstream, type EchoBody, type Upstream } from '../support/upstream.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

function portcullisConfig(services: Record<string, Upstream>): Record<string, unknown> {
  const config = loadYamlFile('envoy/bff-portcullis.yaml');
  const ratelimit = config['ratelimit'] as Record<string, unknown>;
  const bff = config['bff'] as Record<string, unknown>;
  const configured = bff['services'] as Record<string, unknown>;
  const urls = Object.fromEntries(Object.keys(configured).map((name) => {
    const upstream = services[name];
    assert.ok(upstream, `the example's service ${name} has a test upstream`);
    const spec = configured[name];
    return [name, typeof spec === 'string' ? upstream.url : { ...(spec as object), url: upstream.url }];
  }));
  return {
    ...config,
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, http: { address: '127.0.0.1:0' } },
    ratelimit: { ...ratelimit, descriptors: path.join(repoRoot(), 'envoy', String(ratelimit['descriptors'])) },
    bff: { ...bff, services: urls },
  };
}

describe('composer through a real Envoy', () => {
  let users: Upstream;
  let orders: Upstream;
  let recommendations: Upstream;
  let portcullis: PortcullisInstance;
  let envoy: EnvoyInstance;
  let base: string;

  before(async () => {
    users = await startUpstream();
    orders = await startUpstream('127.0.0.1', 0, { delayMs: 5000 });
    recommendations = await startUpstream('127.0.0.1', 0, { status: 503 });
    portcullis = await startPortcullis(portcullisConfig({ users, orders, recommendations }));
    assert.ok(portcullis.httpUrl, 'the composer listener is on');
    envoy = await startEnvoy(bffBootstrap(splitHostPort(new URL(portcullis.httpUrl).host)));
    base = `http://127.0.0.1:${envoy.listenerPort('ingress')}`;
    // Connects Envoy to the composer and the composer to users and orders once, so the timed request is warm.
    await fetch(`${base}/bff/mobile/dashboard/warm-up`).then((r) => r.arrayBuffer());
  });
  after(async () => {
    await envoy?.stop();
    await portcullis?.stop();
    await Promise.all([users?.stop(), orders?.stop(), recommendations?.stop()]);
  });

  it('answers within the endpoint timeout with the slow and the failing parts degraded', async () => {
    const started = performance.now();
    const response = await fetch(`${base}/bff/web/dashboard/alice`, {
      headers: { 'x-user-id': 'alice', traceparent: TRACEPARENT },
      signal: AbortSignal.timeout(10_000),
    });
    const ms = performance.now() - started;
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.equal(response.headers.get('x-bff-degraded'), 'orders,recommendations,latest');
    assert.deepEqual(body['_degraded'], ['orders', 'recommendations', 'latest']);
    assert.deepEqual(body['recentOrders'], []);
    assert.equal(body['latest'], null);
    assert.deepEqual(body['recommendations'], []);
    assert.equal((body['user'] as EchoBody).path, '/users/alice');

    // The composer's own time is bounded by the endpoint's timeout_ms (800); the client's adds Envoy and a shared,
    // loaded machine, and still stays far below the 5 s the slow service would take.
    const requestId = response.headers.get('x-request-id');
    assert.ok(requestId, 'the composer echoes the request id');
    const logged = (): Record<string, unknown> | undefined => portcullis.logs().find((l) => l['msg'] === 'bff answer degraded' && l['requestId'] === requestId);
    await eventually(() => logged() !== undefined, 5000, 'the degraded answer logged with its request id');
    const line = logged();
    assert.ok(line);
    assert.equal(line['traceId'], '0af7651916cd43dd8448eb211c80319c');
    assert.ok(Number(line['ms']) < 800 + 100, `composed in ${String(line['ms'])} ms`);
    assert.ok(ms < 2500, `answered through Envoy in ${ms} ms`);
  });

  it("every upstream, the slow and the failing one too, saw the caller's identity and trace headers", async () => {
    const response = await fetch(`${base}/bff/web/dashboard/bob`, { headers: { 'x-user-id': 'bob', traceparent: TRACEPARENT, cookie: 'session=1' } });
    await response.arrayBuffer();
    const requestId = response.headers.get('x-request-id');
    assert.ok(requestId, 'Envoy generated a request id');
    for (const [name, upstream, pathname] of [['users', users, '/users/bob'], ['orders', orders, '/orders?user=bob&limit=5'], ['recommendations', recommendations, '/recommendations/bob']] as const) {
      const seen: EchoBody | undefined = upstream.requests().find((r) => r.headers['x-request-id'] === requestId);
      assert.ok(seen, `${name} got a call with Envoy's x-request-id`);
      assert.equal(seen.path, pathname, name);
      assert.equal(seen.headers['x-user-id'], 'bob', name);
      assert.equal(seen.headers['traceparent'], TRACEPARENT, name);
      assert.equal(seen.headers['cookie'], undefined, `${name}: headers outside forward_headers stay behind`);
    }
  });

  it('the mobile variant makes fewer calls and selects fewer fields', async () => {
    const before = recommendations.requestCount();
    const response = await fetch(`${base}/bff/mobile/dashboard/carol`, { headers: { 'x-user-id': 'carol' } });
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(response.status, 200);
    assert.deepEqual(Object.keys(body).sort(), ['_degraded', 'name', 'orders']);
    assert.deepEqual(body['orders'], []);
    assert.deepEqual(body['_degraded'], ['orders']);
    assert.equal(recommendations.requestCount(), before, 'mobile never calls recommendations');
  });

  it('a bad path parameter is a 400 problem+json through Envoy', async () => {
    const response = await fetch(`${base}/bff/web/dashboard/${encodeURIComponent('a b')}`);
    assert.equal(response.status, 400);
    assert.equal(response.headers.get('content-type'), 'application/problem+json');
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body['code'], 'PC_BFF_BAD_REQUEST');
  });
});
