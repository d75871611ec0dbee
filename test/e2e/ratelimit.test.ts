// Global rate limiting end to end: plain HTTP through a real Envoy whose ratelimit filter calls Portcullis, with the
// committed example configs (envoy/ratelimit.yaml, envoy/portcullis.yaml, envoy/ratelimit/*.yaml) and a Node
// upstream. Envoy itself writes the x-ratelimit-* headers (DRAFT_VERSION_03) from Portcullis' descriptor statuses,
// so exact header values prove current_limit, limit_remaining and duration_until_reset on the wire.
//
// Limits used (envoy/ratelimit/portcullis-demo.yaml):
//   /            per x-user-id   5/minute, named "per-user"
//   /            anonymous       10/minute per client address
//   /reports     per x-user-id   3/week, and the 5/minute above
//   /search      per x-user-id   20/minute, each request costs 5 (descriptor hits_addend, set in RateLimitPerRoute)

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { rateLimitBootstrap, startEnvoy, type EnvoyInstance } from '../support/envoy.js';
import { shippedPortcullisConfig, startPortcullis, type PortcullisInstance } from '../support/portcullis.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { startUpstream, type EchoBody, type Upstream } from '../support/upstream.js';
import { awayFromWindowEdge } from '../support/windows.js';

const MINUTE = 60;
const WEEK = 604_800;

interface Stack {
  envoy: EnvoyInstance;
  portcullis: PortcullisInstance;
  upstream: Upstream;
  /** http://127.0.0.1:<envoy ingress port> */
  baseUrl: string;
  stop(): Promise<void>;
}

async function startStack(redisUrl: string | undefined): Promise<Stack> {
  const stopped: (() => Promise<unknown>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stopped.reverse()) await stop();
  };
  try {
    const upstream = await startUpstream();
    stopped.push(() => upstream.stop());
    const portcullis = await startPortcullis(shippedPortcullisConfig(redisUrl));
    stopped.push(() => portcullis.stop());
    const envoy = await startEnvoy(
      rateLimitBootstrap({
        upstream: { host: upstream.host, port: upstream.port },
        portcullis: portcullis.grpc,
        // The example's 0.25s deadline is for production; a loaded CI machine may need longer for the first call
        // (HTTP/2 connection setup), and a timeout would let the request through without headers.
        timeout: '2s',
      }),
    );
    stopped.push(() => envoy.stop());
    return {
      envoy,
      portcullis,
      upstream,
      baseUrl: `http://127.0.0.1:${envoy.listenerPort('ingress')}`,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

interface Answer {
  status: number;
  limit: string | null;
  remaining: string | null;
  reset: string | null;
  ratelimited: string | null;
  body: string;
  /** Unix seconds just before the request was sent and just after the answer arrived. */
  sentAt: number;
  answeredAt: number;
}

async function send(baseUrl: string, pathname: string, headers: Record<string, string> = {}): Promise<Answer> {
  const sentAt = Math.floor(Date.now() / 1000);
  const response = await fetch(`${baseUrl}${pathname}`, { headers, signal: AbortSignal.timeout(10_000) });
  const body = await response.text();
  return {
    status: response.status,
    limit: response.headers.get('x-ratelimit-limit'),
    remaining: response.headers.get('x-ratelimit-remaining'),
    reset: response.headers.get('x-ratelimit-reset'),
    ratelimited: response.headers.get('x-envoy-ratelimited'),
    body,
    sentAt,
    answeredAt: Math.floor(Date.now() / 1000),
  };
}

/** x-ratelimit-reset is the seconds left in the window when Portcullis answered: D - now % D. */
function assertReset(answer: Answer, windowSeconds: number): void {
  const latest = windowSeconds - (answer.sentAt % windowSeconds);
  const earliest = windowSeconds - (answer.answeredAt % windowSeconds);
  const reset = Number(answer.reset);
  assert.ok(
    Number.isInteger(reset) && reset >= earliest && reset <= latest,
    `x-ratelimit-reset ${answer.reset} should be in [${earliest}, ${latest}]`,
  );
}

function assertAllowed(answer: Answer, limit: string, remaining: number, windowSeconds: number): void {
  assert.equal(answer.status, 200, `expected 200, got ${answer.status}: ${answer.body}`);
  assert.equal(answer.limit, limit);
  assert.equal(answer.remaining, String(remaining));
  assertReset(answer, windowSeconds);
  assert.equal(answer.ratelimited, null);
}

function assertLimited(answer: Answer, limit: string, windowSeconds: number): void {
  assert.equal(answer.status, 429, `expected 429, got ${answer.status}: ${answer.body}`);
  assert.equal(answer.limit, limit);
  assert.equal(answer.remaining, '0');
  assertReset(answer, windowSeconds);
  assert.equal(answer.ratelimited, 'true');
}

/**
 * A counter from Envoy's admin /stats (0 when not yet created). The ratelimit filter's stats live under the route's
 * target cluster: cluster.upstream.ratelimit.{ok,over_limit,error,failure_mode_allowed}.
 */
async function envoyCounter(envoy: EnvoyInstance, name: string): Promise<number> {
  const response = await fetch(`${envoy.adminUrl}/stats?format=json&filter=${encodeURIComponent(`^${name}$`)}`);
  const body = (await response.json()) as { stats: { name?: string; value?: number }[] };
  return body.stats.find((stat) => stat.name === name)?.value ?? 0;
}

function user(name: string): string {
  return `${name}-${randomUUID()}`;
}

/** Scenarios that hold for any store. */
function sharedScenarios(stack: () => Stack): void {
  it('allows 5 requests per user and minute, then answers 429 with the same limit headers', async () => {
    const { baseUrl } = stack();
    const headers = { 'x-user-id': user('alice') };
    const limit = '5, 5;w=60;name="per-user"';
    await awayFromWindowEdge(MINUTE);
    for (let remaining = 4; remaining >= 0; remaining -= 1) {
      const answer = await send(baseUrl, '/orders', headers);
      assertAllowed(answer, limit, remaining, MINUTE);
      const echo = JSON.parse(answer.body) as EchoBody;
      assert.equal(echo.path, '/orders');
      assert.equal(echo.headers['x-user-id'], headers['x-user-id']);
    }
    assertLimited(await send(baseUrl, '/orders', headers), limit, MINUTE);
    assertLimited(await send(baseUrl, '/other', headers), limit, MINUTE);
  });

  it('counts each user separately', async () => {
    const { baseUrl } = stack();
    const alice = { 'x-user-id': user('alice') };
    const bob = { 'x-user-id': user('bob') };
    const limit = '5, 5;w=60;name="per-user"';
    await awayFromWindowEdge(MINUTE);
    for (let i = 0; i < 5; i += 1) assert.equal((await send(baseUrl, '/', alice)).status, 200);
    assertLimited(await send(baseUrl, '/', alice), limit, MINUTE);
    assertAllowed(await send(baseUrl, '/', bob), limit, 4, MINUTE);
    assertAllowed(await send(baseUrl, '/', bob), limit, 3, MINUTE);
    assertLimited(await send(baseUrl, '/', alice), limit, MINUTE);
  });

  it('charges hits_addend (5) per /search request', async () => {
    const { baseUrl } = stack();
    const headers = { 'x-user-id': user('carol') };
    const limit = '20, 20;w=60';
    await awayFromWindowEdge(MINUTE);
    for (const remaining of [15, 10, 5, 0]) {
      assertAllowed(await send(baseUrl, '/search?q=x', headers), limit, remaining, MINUTE);
    }
    assertLimited(await send(baseUrl, '/search?q=y', headers), limit, MINUTE);
  });

  it('applies a week limit next to the minute limit; headers report the one with the lowest remaining', async () => {
    const { baseUrl } = stack();
    const headers = { 'x-user-id': user('dave') };
    // Both statuses are listed (w=604800 proves unit WEEK = 7 reached Envoy); the first number, remaining and reset
    // are the week's, whose remaining (2, 1, 0) is always below the minute's (4, 3, 2).
    const limit = '3, 5;w=60;name="per-user", 3;w=604800';
    await awayFromWindowEdge(MINUTE);
    await awayFromWindowEdge(WEEK);
    for (const remaining of [2, 1, 0]) {
      assertAllowed(await send(baseUrl, '/reports/weekly', headers), limit, remaining, WEEK);
    }
    assertLimited(await send(baseUrl, '/reports/weekly', headers), limit, WEEK);
    // The minute counter counted all 4 requests (the rejected one too), so this 5th is the last one allowed.
    assertAllowed(await send(baseUrl, '/orders', headers), '5, 5;w=60;name="per-user"', 0, MINUTE);
  });
}

describe('rate limiting through Envoy, Redis store', () => {
  let redis: RedisServer | undefined;
  let stack: Stack | undefined;

  before(async () => {
    redis = await startRedis();
    stack = await startStack(redis.url);
  });

  after(async () => {
    await stack?.stop();
    await redis?.stop();
  });

  const current = (): Stack => {
    if (stack === undefined) throw new Error('stack not started');
    return stack;
  };

  sharedScenarios(current);

  it('limits anonymous callers per client address', async () => {
    const { baseUrl } = current();
    await awayFromWindowEdge(MINUTE);
    // Only this test sends anonymous requests, and the counter is per minute: 10 allowed.
    const first = await send(baseUrl, '/anonymous');
    assertAllowed(first, '10, 10;w=60', 9, MINUTE);
  });

  it('answers /healthz without consulting the rate limit service', async () => {
    const answer = await send(current().baseUrl, '/healthz');
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'ok\n');
    assert.equal(answer.limit, null);
  });

  it('lets requests through while Redis is down, and limits again once it is back', async () => {
    const { baseUrl, envoy } = current();
    const server = redis;
    if (server === undefined) throw new Error('redis not started');
    const errorsBefore = await envoyCounter(envoy, 'cluster.upstream.ratelimit.error');
    await server.kill();
    for (let i = 0; i < 3; i += 1) {
      // Portcullis answers with a gRPC error (failure_mode: error); Envoy fails open (failure_mode_deny: false).
      const answer = await send(baseUrl, '/orders', { 'x-user-id': user('frank') });
      assert.equal(answer.status, 200, answer.body);
      assert.equal(answer.limit, null);
    }
    assert.equal((await envoyCounter(envoy, 'cluster.upstream.ratelimit.error')) - errorsBefore, 3);

    await server.restart();
    // The restarted Redis is empty; wait for Portcullis to reconnect (a fresh user per attempt, so each counts 1).
    const deadline = Date.now() + 20_000;
    for (;;) {
      await awayFromWindowEdge(MINUTE);
      const answer = await send(baseUrl, '/orders', { 'x-user-id': user('grace') });
      assert.equal(answer.status, 200, answer.body);
      if (answer.limit !== null) {
        assertAllowed(answer, '5, 5;w=60;name="per-user"', 4, MINUTE);
        break;
      }
      assert.ok(Date.now() < deadline, 'rate limit headers did not come back within 20s of Redis restarting');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  it('lets requests through without rate limit headers when Portcullis is down (failure_mode_deny: false)', async () => {
    const { baseUrl, portcullis, upstream, envoy } = current();
    const code = await portcullis.stop();
    assert.equal(code, 0, `portcullis should exit 0 on SIGTERM\n${portcullis.output()}`);
    const headers = { 'x-user-id': user('erin') };
    const servedBefore = upstream.requestCount();
    const allowedBefore = await envoyCounter(envoy, 'cluster.upstream.ratelimit.failure_mode_allowed');
    for (let i = 0; i < 7; i += 1) {
      const answer = await send(baseUrl, '/orders', headers);
      assert.equal(answer.status, 200, answer.body);
      assert.equal(answer.limit, null);
      assert.equal(answer.remaining, null);
      assert.equal(answer.reset, null);
    }
    assert.equal(upstream.requestCount() - servedBefore, 7);
    assert.equal((await envoyCounter(envoy, 'cluster.upstream.ratelimit.failure_mode_allowed')) - allowedBefore, 7);
  });
});

describe('rate limiting through Envoy, in-memory store', () => {
  let stack: Stack | undefined;

  before(async () => {
    stack = await startStack(undefined);
  });

  after(async () => {
    await stack?.stop();
  });

  sharedScenarios(() => {
    if (stack === undefined) throw new Error('stack not started');
    return stack;
  });
});
