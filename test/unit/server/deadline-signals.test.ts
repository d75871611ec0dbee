import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeadlineSignals } from '../../../src/server/deadline-signals.js';

describe('DeadlineSignals', () => {
  it('shares one signal between deadlines in the same slot and not across slots', () => {
    const deadlines = new DeadlineSignals(10);
    const base = Math.ceil(Date.now() / 10) * 10 + 1000;
    assert.equal(deadlines.signalFor(base + 1), deadlines.signalFor(base + 9));
    assert.notEqual(deadlines.signalFor(base + 9), deadlines.signalFor(base + 11));
  });

  it('aborts no earlier than the deadline and at most one slot after it', async () => {
    const deadlines = new DeadlineSignals(5);
    const started = Date.now();
    const signal = deadlines.signalFor(started + 30);
    const keepAlive = setTimeout(() => undefined, 1000); // the deadline timer itself does not hold the process
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
    clearTimeout(keepAlive);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 29 && elapsed < 200, `aborted after ${elapsed} ms`);
    assert.equal((signal.reason as Error).message, 'deadline exceeded');
  });
});
