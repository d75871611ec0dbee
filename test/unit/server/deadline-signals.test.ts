import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeadlineSignals, storeDeadlineMs } from '../../../src/server/deadline-signals.js';

describe('DeadlineSignals', () => {
  it('shares one signal between deadlines in the same slot and not across slots', () => {
    const deadlines = new DeadlineSignals(10);
    const base = Math.ceil(Date.now() / 10) * 10 + 100; // near enough for the 10 ms minimum
    assert.equal(deadlines.signalFor(base + 1), deadlines.signalFor(base + 9));
    assert.notEqual(deadlines.signalFor(base + 9), deadlines.signalFor(base + 11));
  });

  it('widens the slot for far deadlines, to at most 1/32 of the wait', () => {
    const deadlines = new DeadlineSignals(2);
    // 700–740 ms away: 16 ms slots (16 × 64 > 740, 8 × 64 ≤ 700).
    const far = Math.ceil((Date.now() + 700) / 16) * 16;
    assert.equal(deadlines.signalFor(far + 1), deadlines.signalFor(far + 15));
    assert.notEqual(deadlines.signalFor(far + 15), deadlines.signalFor(far + 17));
    // 50 ms away: the 2 ms minimum, and a far slot in use does not change it.
    const near = Math.ceil((Date.now() + 50) / 2) * 2;
    assert.notEqual(deadlines.signalFor(near + 1), deadlines.signalFor(near + 3));
    assert.equal(deadlines.signalFor(far + 1), deadlines.signalFor(far + 15));
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

describe('storeDeadlineMs', () => {
  const cases: { name: string; remaining: number; timeout: number; want: number }[] = [
    { name: 'Envoy sends no deadline: timeout_ms', remaining: Infinity, timeout: 1000, want: 1000 },
    { name: 'a far deadline: timeout_ms', remaining: 60_000, timeout: 1000, want: 1000 },
    { name: 'a 1 s deadline with a 1 s timeout: 200 ms left to answer', remaining: 1000, timeout: 1000, want: 800 },
    { name: 'a 5 s deadline: at most 250 ms margin', remaining: 5000, timeout: 10_000, want: 4750 },
    { name: 'a 200 ms deadline: 20% margin', remaining: 200, timeout: 1000, want: 160 },
    { name: 'a 20 ms deadline: at least 5 ms margin', remaining: 20, timeout: 1000, want: 15 },
    { name: 'a short timeout_ms wins', remaining: 1000, timeout: 100, want: 100 },
    { name: 'almost nothing left: 1 ms, so the store fails at once', remaining: 3, timeout: 1000, want: 1 },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(storeDeadlineMs(c.remaining, c.timeout), c.want));
  }
});
