import { systemClock, type Clock } from './clock.js';

/** Reasons reported per outage at most (newReasonsWhileFailing): messages that vary past reasonCode stay a few lines. */
const MAX_REASONS = 8;

/**
 * Whether a dependency (the counter store, the cache store) is failing, shared by every request, so that an outage
 * is logged once per change of state instead of once per request: at a few hundred requests a second, a line per
 * failed call buries everything else in the log while Redis is away. The failures stay counted in the metrics;
 * the callers log the first one of a run and its end.
 *
 * A dependency that fails only in part flaps: while one master of a Redis Cluster is down (until the cluster
 * notices, or while it comes back), the calls for it fail and the calls for the others succeed, many times a second,
 * and a line per change of state was a flood again (~100 lines a second after a CLUSTERDOWN). So within an
 * episode (failures less than `quietMs` apart) a failure with a reason already reported is not reported again, and
 * the end of such a run is reported once the failures have stopped for `quietMs`. A new reason (OOM, then
 * READONLY) is reported at once, and so is a dependency that fails every call for `downMs` (a cluster gone from
 * one master down to CLUSTERDOWN).
 *
 * With `newReasonsWhileFailing`, a new reason is also reported while every call keeps failing, up to MAX_REASONS
 * an outage: for a dependency called seldom (a JWKS retried with backoff), where the second reason (the issuer is
 * back but serves a document that is no JWKS) is what the operator needs to read. Off for the stores: a Redis
 * failing over gives several reasons a second, and the first one says enough.
 */
export class FailureStreak {
  private state: 'ok' | 'failing' | 'flapping' = 'ok';
  /** Failures since the last line the caller logged. */
  private failures = 0;
  /** Reason codes reported in the current episode (reasonCode). */
  private readonly reported = new Set<string>();
  private lastFailureMs = Number.NEGATIVE_INFINITY;
  /** When the failures since the last success began. */
  private failingSinceMs = Number.NEGATIVE_INFINITY;
  private answeredLast = true;

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly quietMs = 10_000,
    private readonly downMs = 1000,
    private readonly newReasonsWhileFailing = false,
  ) {}

  /** A call failed. True when this failure is to be logged (it starts an outage, or brings a new reason). */
  failed(reason = ''): boolean {
    const nowMs = this.clock.nowMs();
    this.failures++;
    const episodeOver = nowMs - this.lastFailureMs >= this.quietMs;
    if (this.answeredLast) this.failingSinceMs = nowMs;
    this.answeredLast = false;
    this.lastFailureMs = nowMs;
    // A dependency retried with backoff (a JWKS: up to a minute apart) fails less often than quietMs while it stays
    // down: that is one outage, whose reasons stay reported.
    if (episodeOver && !(this.newReasonsWhileFailing && this.state === 'failing')) this.reported.clear();
    const code = reasonCode(reason);
    if (this.state === 'failing') {
      // The same outage going on: a reason it has not given yet is news (refused, then a document that is no JWKS).
      if (!this.newReasonsWhileFailing || this.reported.has(code) || this.reported.size >= MAX_REASONS) return false;
      this.reported.add(code);
      return true;
    }
    if (this.state === 'flapping') {
      // Flapping that has turned into failing outright is reported.
      if (nowMs - this.failingSinceMs < this.downMs && this.reported.has(code)) return false;
    } else if (this.reported.has(code)) {
      this.state = 'flapping';
      return false;
    }
    this.reported.add(code);
    this.state = 'failing';
    return true;
  }

  /** A call succeeded. When this ends a reported run of failures, how many there were (log the recovery); else undefined. */
  answered(): number | undefined {
    this.answeredLast = true;
    // Every answered call comes here: the clock is read only while failures are being tracked.
    if (this.state === 'ok') return undefined;
    if (this.state === 'flapping' && this.clock.nowMs() - this.lastFailureMs < this.quietMs) return undefined;
    const failures = this.failures;
    this.state = 'ok';
    this.failures = 0;
    return failures;
  }
}

/**
 * What kind of failure a message reports, without the details that vary from call to call: a Redis error code
 * (CLUSTERDOWN, OOM, READONLY, NOAUTH…), else the message's first sentence with its numbers blanked. ioredis's
 * "Too many Cluster redirections. Last error: …" is named by its last error when that is a refusal (NOAUTH), and
 * is one kind whatever the redirection or dropped connection it ended on (those alternate while a master is down).
 */
export function reasonCode(message: string): string {
  let text = message.replace(/^redis: /, '');
  const redirections = /^Too many Cluster redirections\. Last error: (?:\w*Error: )?(.*)$/s.exec(text);
  if (redirections !== null) {
    const last = /^([A-Z][A-Z_]+)(?: |$)/.exec(redirections[1]!)?.[1];
    if (last === undefined || last === 'MOVED' || last === 'ASK' || last === 'TRYAGAIN') return 'Too many Cluster redirections';
    text = redirections[1]!;
  }
  const code = /^([A-Z][A-Z_]+)(?: |$)/.exec(text);
  if (code !== null) return code[1]!;
  return (text.split(/[.:]/, 1)[0] ?? '').replace(/\d+/g, '#').trim();
}
