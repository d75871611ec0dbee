import type { RevocationEntry, RevocationKind, RevocationList } from '../authz/ports.js';
import type { Clock } from '../shared/clock.js';
import type { RedisClient } from './redis-client.js';

const KINDS = ['jti', 'key'] as const;

/** Revoked ids of one kind with their expiry; an entry past its expiry no longer matters (the token expired). */
class ExpiringIds {
  private ids = new Map<string, number>();
  has(id: string, nowMs: number): boolean {
    const until = this.ids.get(id);
    return until !== undefined && until > nowMs;
  }
  /** Keeps the later expiry of the two: the one in effect. */
  add(id: string, untilMs: number): number {
    const until = Math.max(untilMs, this.ids.get(id) ?? Number.NEGATIVE_INFINITY);
    this.ids.set(id, until);
    return until;
  }
  /** True if the id was revoked at `nowMs` (removing an expired entry lifts nothing). */
  delete(id: string, nowMs: number): boolean {
    const was = this.has(id, nowMs);
    this.ids.delete(id);
    return was;
  }
  entries(kind: RevocationKind, nowMs: number): RevocationEntry[] {
    return [...this.ids].filter(([, untilMs]) => untilMs > nowMs).map(([id, untilMs]) => ({ kind, id, untilMs }));
  }
  replace(entries: Map<string, number>): void {
    this.ids = entries;
  }
}

/** One process, no Redis: revocations live as long as the process. */
export class MemoryRevocationList implements RevocationList {
  private readonly lists: Record<RevocationKind, ExpiringIds> = { jti: new ExpiringIds(), key: new ExpiringIds() };
  constructor(private readonly clock: Clock) {}
  isRevoked(kind: RevocationKind, id: string): boolean {
    return this.lists[kind].has(id, this.clock.nowMs());
  }
  revoke(kind: RevocationKind, id: string, expiresAtMs: number): Promise<number> {
    return Promise.resolve(this.lists[kind].add(id, expiresAtMs));
  }
  lift(kind: RevocationKind, id: string): Promise<boolean> {
    return Promise.resolve(this.lists[kind].delete(id, this.clock.nowMs()));
  }
  entries(): Promise<RevocationEntry[]> {
    const nowMs = this.clock.nowMs();
    return Promise.resolve(KINDS.flatMap((kind) => this.lists[kind].entries(kind, nowMs)));
  }
  start(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A sorted-set score as Redis sends it: 'inf' is an operator's `ZADD … +inf id` (revoked for good), which Number()
 * would read as NaN, and NaN is never above now: the id would not be revoked at all.
 */
export function scoreMs(text: string): number {
  const lower = text.toLowerCase();
  if (lower === 'inf' || lower === '+inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  return Number(text);
}

/** A ZRANGEBYSCORE … WITHSCORES reply (member, score, member, score…) as id → until. */
export function scoredIds(flat: readonly string[]): Map<string, number> {
  const entries = new Map<string, number>();
  for (let i = 0; i + 1 < flat.length; i += 2) entries.set(flat[i]!, scoreMs(flat[i + 1]!));
  return entries;
}

export interface RedisRevocationOptions {
  readonly clock: Clock;
  /** How often the local copy is refreshed (one GET when nothing changed). */
  readonly refreshMs: number;
  /** A copy older than this is not trusted: isRevoked answers undefined for the ids it does not hold as revoked. */
  readonly maxStalenessMs: number;
  readonly prefix?: string;
  /** Called on every failed refresh. */
  readonly onError?: (error: Error) => void;
}

/**
 * Revoke, keeping the later expiry (ZADD GT needs Redis 6.2; this runs on any). The version moves only when the set
 * did: a revoke that changes nothing costs the instances no reload. Expired entries are trimmed on the way.
 * KEYS[1] = the kind's set, KEYS[2] = version; ARGV[1] = id, ARGV[2] = until ms, ARGV[3] = now ms. Reply: the until
 * in effect, as a string (a Lua number would come back truncated to an integer, and 'inf' not at all).
 */
const REVOKE_SCRIPT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if held and tonumber(held) >= tonumber(ARGV[2]) then return held end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('INCR', KEYS[2])
return ARGV[2]`;

/**
 * Lift: remove the id and move the version in one step, so no refresh can read the set without the id and keep a
 * version from before (it would never reload). An entry already expired was not in effect: nothing lifted.
 * KEYS as REVOKE_SCRIPT; ARGV[1] = id, ARGV[2] = now ms. Reply: 1 lifted, 0 nothing to lift.
 */
const LIFT_SCRIPT = `
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if not held or tonumber(held) <= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
return 1`;

/**
 * The sets are read whole this often even when the version has not moved. The version is a counter: after a failover
 * to a replica that missed a change, or a restore, it can come back to a number an instance already holds with other
 * sets behind it, and that instance would keep its copy until the next change. This bounds how long.
 */
const FULL_READ_EVERY_MS = 30_000;

const REVOKE_SCRIPT_NAME = 'portcullisRevoke';
const LIFT_SCRIPT_NAME = 'portcullisLiftRevocation';
type ScriptRunner = Record<typeof REVOKE_SCRIPT_NAME | typeof LIFT_SCRIPT_NAME, (...args: (string | number)[]) => Promise<unknown>>;

/**
 * Revocation lists in Redis, shared by every instance: one sorted set per kind (member = jti or key id, score = when
 * the entry may be forgotten) and a version counter bumped on every change, an addition or a removal. Each instance
 * keeps a local copy and refreshes it every refreshMs (a GET of the version; the sets, whole, only when it moved),
 * so a Check never waits on Redis and a revocation or a lift reaches every instance within about a refresh interval.
 * The whole sets, not what changed since: a removal leaves nothing behind for an incremental read to find.
 *
 * Operators revoke with: ZADD {portcullis:authz}:revoked:jti <expiry ms> <jti>; INCR {portcullis:authz}:revoked:version
 */
export class RedisRevocationList implements RevocationList {
  private readonly lists: Record<RevocationKind, ExpiringIds> = { jti: new ExpiringIds(), key: new ExpiringIds() };
  private readonly keys: { jti: string; key: string; version: string };
  private version: string | null | undefined;
  private lastSuccessMs = Number.NEGATIVE_INFINITY;
  /** When the sets were last read whole, whatever the version said. */
  private lastReadMs = Number.NEGATIVE_INFINITY;
  private refreshing = false;
  /** Which load may still write the copy: one abandoned by the refresh timeout must not land after a newer one. */
  private loads = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly client: RedisClient, private readonly options: RedisRevocationOptions) {
    const base = `${options.prefix ?? ''}{portcullis:authz}:revoked`;
    this.keys = { jti: `${base}:jti`, key: `${base}:key`, version: `${base}:version` };
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT (after a restart or SCRIPT FLUSH).
    if (!(REVOKE_SCRIPT_NAME in client)) client.defineCommand(REVOKE_SCRIPT_NAME, { lua: REVOKE_SCRIPT, numberOfKeys: 2 });
    if (!(LIFT_SCRIPT_NAME in client)) client.defineCommand(LIFT_SCRIPT_NAME, { lua: LIFT_SCRIPT, numberOfKeys: 2 });
  }

  isRevoked(kind: RevocationKind, id: string): boolean | undefined {
    const nowMs = this.options.clock.nowMs();
    // An id the last good copy holds as revoked stays revoked while Redis is away: only ids it does not know are in
    // doubt (else on_unavailable: allow would let every token revoked so far back in during an outage).
    if (this.lists[kind].has(id, nowMs)) return true;
    if (nowMs - this.lastSuccessMs > this.options.maxStalenessMs) return undefined;
    return false;
  }

  async revoke(kind: RevocationKind, id: string, expiresAtMs: number): Promise<number> {
    const scripts = this.client as unknown as ScriptRunner;
    const held = scoreMs(String(await scripts[REVOKE_SCRIPT_NAME](this.keys[kind], this.keys.version, id, expiresAtMs, this.options.clock.nowMs())));
    this.lists[kind].add(id, held);
    return held;
  }

  async lift(kind: RevocationKind, id: string): Promise<boolean> {
    const scripts = this.client as unknown as ScriptRunner;
    const lifted = Number(await scripts[LIFT_SCRIPT_NAME](this.keys[kind], this.keys.version, id, this.options.clock.nowMs())) === 1;
    this.lists[kind].delete(id, this.options.clock.nowMs());
    return lifted;
  }

  async entries(): Promise<RevocationEntry[]> {
    const nowMs = this.options.clock.nowMs();
    const sets = await Promise.all(KINDS.map((kind) => this.client.zrangebyscore(this.keys[kind], `(${nowMs}`, '+inf', 'WITHSCORES')));
    return KINDS.flatMap((kind, i) => [...scoredIds(sets[i]!)].map(([id, untilMs]) => ({ kind, id, untilMs })));
  }

  start(): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs);
    this.timer.unref();
  }

  /** One refresh; overlapping calls are skipped, a hung one is abandoned after the staleness bound. */
  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('revocation refresh timed out')), Math.min(this.options.maxStalenessMs, 2000)).unref());
    try {
      await Promise.race([this.load(), timeout]);
    } catch (error) {
      this.options.onError?.(error as Error);
    } finally {
      this.refreshing = false;
    }
  }

  private async load(): Promise<void> {
    const load = ++this.loads;
    const startedMs = this.options.clock.nowMs();
    // The version first, the sets after: a change (revoke or lift) that lands between the two reads is in the sets
    // or not, but either way the version read is older than it, so the next refresh reloads.
    const version = await this.client.get(this.keys.version);
    if (version !== this.version || this.version === undefined || startedMs - this.lastReadMs >= FULL_READ_EVERY_MS) {
      const sets = new Map<RevocationKind, Map<string, number>>();
      for (const kind of KINDS) sets.set(kind, scoredIds(await this.client.zrangebyscore(this.keys[kind], startedMs, '+inf', 'WITHSCORES')));
      if (load !== this.loads) return;
      for (const kind of KINDS) this.lists[kind].replace(sets.get(kind)!);
      this.version = version;
      this.lastReadMs = startedMs;
    }
    if (load !== this.loads) return;
    this.lastSuccessMs = startedMs;
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    // Nothing in flight is worth waiting for; a disconnected client must also stop reconnecting.
    this.client.disconnect();
    return Promise.resolve();
  }
}
