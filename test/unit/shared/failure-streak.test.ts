import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailureStreak } from '../../../src/shared/failure-streak.js';

describe('FailureStreak', () => {
  it('reports the first failure of an outage and its end, with the number of failures', () => {
    const health = new FailureStreak();
    const steps: [string, boolean | number | undefined][] = [];
    steps.push(['answered', health.answered()]);
    for (let i = 0; i < 3; i++) steps.push(['failed', health.failed()]);
    steps.push(['answered', health.answered()], ['answered', health.answered()], ['failed', health.failed()], ['answered', health.answered()]);
    assert.deepEqual(steps, [
      ['answered', undefined],
      ['failed', true], ['failed', false], ['failed', false],
      ['answered', 3], ['answered', undefined],
      ['failed', true], ['answered', 1],
    ]);
  });
});
