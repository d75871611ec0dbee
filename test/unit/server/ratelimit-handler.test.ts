import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status as GrpcStatus, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { createLogger } from '../../../src/observability/logger.js';
import type { Decision } from '../../../src/ratelimit/decide.js';
import type { RateLimitService } from '../../../src/ratelimit/service.js';
import type { RateLimitRequest } from '../../../src/ratelimit/types.js';
import { DeadlineSignals } from '../../../src/server/deadline-signals.js';
import { rateLimitHandlers } from '../../../src/server/ratelimit-handler.js';

const OK: Decision = { overallCode: 'OK', statuses: [], responseHeaders: [], stats: [], globalShadowApplied: false };

/** The handler with a service that answers after `delayMs`; records what it was asked and what went out. */
function harness(delayMs: number) {
  const asked: { request: RateLimitRequest; signal: AbortSignal; at: number }[] = [];
  const errors: string[] = [];
  const service = {
    async shouldRateLimit(request: RateLimitRequest, signal: AbortSignal): Promise<Decision> {
      asked.push({ request, signal, at: Date.now() });
      await new Promise((r) => setTimeout(r, delayMs));
      return OK;
    },
  } as unknown as RateLimitService;
  const handler = rateLimitHandlers({
    service, logger: createLogger('silent'), deadlines: new DeadlineSignals(), timeoutMs: () => 1000,
    onError: (code) => errors.push(code), observeDuration: () => undefined, inFlight: { enter: () => undefined, leave: () => undefined },
  })['ShouldRateLimit'] as (call: ServerUnaryCall<unknown, unknown>, callback: (error: ServiceError | null, response?: unknown) => void) => void;
  const call = (deadline: Date | number) => new Promise<{ error: ServiceError | null; response: unknown }>((resolve) => {
    const fake = { request: { domain: 'd', descriptors: [{ entries: [{ key: 'k', value: 'v' }] }] }, getDeadline: () => deadline };
    handler(fake as unknown as ServerUnaryCall<unknown, unknown>, (error, response) => resolve({ error, response }));
  });
  return { asked, errors, call };
}

describe('ShouldRateLimit handler: deadlines', () => {
  it('neither counts nor answers a call whose deadline passed before it was handled', async () => {
    const h = harness(0);
    const { error, response } = await h.call(new Date(Date.now() - 5));
    assert.equal(h.asked.length, 0, 'the service (and so the store) was asked');
    assert.equal(error?.code, GrpcStatus.DEADLINE_EXCEEDED);
    assert.equal(response, undefined);
    assert.deepEqual(h.errors, ['PC_DEADLINE_PASSED']);
  });

  it('sends no answer once the caller\'s deadline has passed', async () => {
    const h = harness(80);
    const { error, response } = await h.call(new Date(Date.now() + 30));
    assert.equal(error?.code, GrpcStatus.DEADLINE_EXCEEDED);
    assert.equal(response, undefined);
  });

  it('gives the store the caller\'s deadline minus a margin, so a fallback answer still arrives in time', async () => {
    const h = harness(0);
    const deadline = Date.now() + 500;
    const { error } = await h.call(new Date(deadline));
    assert.equal(error, null);
    const { signal, at } = h.asked[0]!;
    const keepAlive = setTimeout(() => undefined, 2000); // the deadline timer itself does not hold the process
    const fired = await new Promise<number>((resolve) => signal.addEventListener('abort', () => resolve(Date.now())));
    clearTimeout(keepAlive);
    assert.ok(fired <= deadline - 90, `store deadline fired ${deadline - fired} ms before the caller's (want ≥ 90)`);
    assert.ok(fired >= at + 350, `store deadline fired after only ${fired - at} ms`);
  });

  it('answers a call without a deadline, with timeout_ms for the store', async () => {
    const h = harness(0);
    const { error, response } = await h.call(Infinity);
    assert.equal(error, null);
    assert.ok(response !== undefined);
  });
});
