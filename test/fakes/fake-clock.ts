import type { Clock } from '../../src/shared/clock.js';

/** A clock that only moves when told to. */
export class FakeClock implements Clock {
  constructor(private ms: number) {}
  nowMs(): number {
    return this.ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
