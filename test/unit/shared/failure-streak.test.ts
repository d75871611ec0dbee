import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureStreak, reasonCode } from '../../../src/shared/failure-streak.js';
import { FakeClock } from '../../fakes/fake-clock.js';

/** `fail <reason>`, `ok`, or `wait <ms>`; each call's answer: true/false for a failure, the count or undefined for a success. */
function play(script: readonly string[], newReasonsWhileFailing = false): (boolean | number | undefined | null)[] {
  const clock = new FakeClock(1_000_000);
  const health = new FailureStreak(clock, 10_000, 1000, newReasonsWhileFailing);
  return script.map((step) => {
    const [verb, ...rest] = step.split(' ');
    if (verb === 'wait') {
      clock.advance(Number(rest[0]));
      return null;
    }
    return verb === 'ok' ? health.answered() : health.failed(rest.join(' '));
  });
}

describe('FailureStreak', () => {
  const table: [string, string[], (boolean | number | undefined | null)[]][] = [
    ['the first failure of an outage and its end, with the number of failures',
      ['ok', 'fail a', 'fail a', 'fail a', 'ok', 'ok'],
      [undefined, true, false, false, 3, undefined]],
    ['a new outage after a quiet spell is reported again',
      ['fail a', 'ok', 'wait 10000', 'fail a', 'ok'],
      [true, 1, null, true, 1]],
    ['a new reason right after a recovery is reported at once (OOM, then READONLY)',
      ['fail OOM command not allowed', 'ok', 'fail READONLY You can\'t write', 'ok'],
      [true, 1, true, 1]],
    // One master of a cluster down: its calls fail, the others' succeed, many times a second.
    ['flapping with a reason already reported stays quiet until the failures stop for the quiet time',
      ['fail CLUSTERDOWN x', 'ok', 'fail CLUSTERDOWN x', 'ok', 'wait 5000', 'fail CLUSTERDOWN x', 'ok', 'wait 9999', 'ok', 'wait 1', 'ok', 'ok'],
      [true, 1, false, undefined, null, false, undefined, null, undefined, null, 2, undefined]],
    ['a new reason while flapping is reported',
      ['fail CLUSTERDOWN x', 'ok', 'fail CLUSTERDOWN x', 'ok', 'fail OOM y', 'fail OOM y', 'ok'],
      [true, 1, false, undefined, true, false, 3]],
    ['flapping that turns into failing outright (every call failing for 1 s) is reported',
      ['fail CLUSTERDOWN x', 'ok', 'fail CLUSTERDOWN x', 'wait 999', 'fail CLUSTERDOWN x', 'wait 1', 'fail CLUSTERDOWN x', 'fail CLUSTERDOWN x', 'ok'],
      [true, 1, false, null, false, null, true, false, 4]],
    ['a success restarts the time to failing outright',
      ['fail CLUSTERDOWN x', 'ok', 'fail CLUSTERDOWN x', 'wait 600', 'ok', 'fail CLUSTERDOWN x', 'wait 600', 'fail CLUSTERDOWN x'],
      [true, 1, false, null, undefined, false, null, false]],
  ];
  for (const [name, script, expected] of table) it(name, () => assert.deepEqual(play(script), expected));

  it('by default, a new reason while every call keeps failing is not reported (a store failing over)', () => {
    assert.deepEqual(play(['fail refused', 'fail timeout', 'ok']), [true, false, 2]);
  });

  // A JWKS retried with backoff: every attempt fails, up to a minute apart, with whatever reason the issuer gives.
  const seldom: [string, string[], (boolean | number | undefined | null)[]][] = [
    ['each new reason of one outage is reported once, however far apart the failures',
      ['fail refused', 'wait 60000', 'fail answered 503', 'wait 60000', 'fail refused', 'wait 60000', 'fail answered 503', 'fail no keys', 'ok'],
      [true, null, true, null, false, null, false, true, 5]],
    ['a failure a minute after the last, with no success between, is the same outage',
      ['fail refused', 'wait 60000', 'fail refused', 'wait 60000', 'fail refused', 'ok', 'ok'],
      [true, null, false, null, false, 3, undefined]],
    ['after a recovery the same reason is news again',
      ['fail refused', 'wait 60000', 'ok', 'wait 60000', 'fail refused', 'ok'],
      [true, null, 1, null, true, 1]],
    ['at most 8 reasons an outage',
      ['fail alpha', 'fail bravo', 'fail charlie', 'fail delta', 'fail echo', 'fail foxtrot', 'fail golf', 'fail hotel', 'fail india', 'fail juliett'],
      [true, true, true, true, true, true, true, true, false, false]],
  ];
  for (const [name, script, expected] of seldom) it(`newReasonsWhileFailing: ${name}`, () => assert.deepEqual(play(script, true), expected));
});

describe('reasonCode', () => {
  const table: [string, string][] = [
    ['redis: CLUSTERDOWN The cluster is down', 'CLUSTERDOWN'],
    ['redis: OOM command not allowed when used memory > \'maxmemory\'.', 'OOM'],
    ['redis: Too many Cluster redirections. Last error: ReplyError: MOVED 568 127.0.0.1:46219', 'Too many Cluster redirections'],
    ['redis: Too many Cluster redirections. Last error: Error: Connection is closed.', 'Too many Cluster redirections'],
    ['redis: Too many Cluster redirections. Last error: ReplyError: TRYAGAIN Multiple keys request during rehashing of slot', 'Too many Cluster redirections'],
    ['redis: Too many Cluster redirections. Last error: ReplyError: NOAUTH Authentication required.', 'NOAUTH'],
    ['redis: connect ECONNREFUSED 127.0.0.1:6379', 'connect ECONNREFUSED #'],
    ['redis: connect ECONNREFUSED 127.0.0.1:7000', 'connect ECONNREFUSED #'],
    ['', ''],
  ];
  for (const [message, code] of table) it(message || '(empty)', () => assert.equal(reasonCode(message), code));
});
