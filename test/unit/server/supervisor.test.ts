import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { restartDelayMs } from '../../../src/server/supervisor.js';
import { resolveWorkers } from '../../../src/server/workers-config.js';
import { availableParallelism } from 'node:os';

describe('restartDelayMs: backoff before replacing a worker that keeps dying', () => {
  const cases: [number, number][] = [[1, 100], [2, 200], [3, 400], [5, 1600], [7, 6400], [8, 10_000], [50, 10_000]];
  for (const [crashes, delay] of cases) {
    it(`${crashes} crash(es) in a row → ${delay} ms`, () => assert.equal(restartDelayMs(crashes), delay));
  }
});

describe('resolveWorkers', () => {
  it('keeps a count and turns auto into the CPUs this process may use', () => {
    assert.equal(resolveWorkers(3), 3);
    assert.equal(resolveWorkers('auto'), availableParallelism());
  });
});
