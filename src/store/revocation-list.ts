import type { RevocationKind, RevocationList } from '../authz/ports.js';
import type { Clock } from '../shared/clock.js';
import type { RedisClient } from './redis-counter-store.js';

/** Revoked ids of one kind with their expiry; an entry past its expiry no longer matters (the token expired). */
class ExpiringIds {
  private ids = new Map<string, number>();
  has(id: string, nowMs: number): boolean {
    const until = this.ids.get(id);
    return until !== undefined && until > nowMs;
  }
  add(id: string, untilMs: number): void {
    this.ids.set(id, Math.max(untilMs, this.ids.get(id) ?? 0));
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
  revoke(kind: RevocationKind, id: string, expiresAtMs: number): Promise<void> {
    this.lists[kind].add(id, expiresAtMs);
    return Promise.resolve();
  }
  start(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
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
 * Revocation lists in Redis, shared by every instance: one sorted set per kind (member = jti or key id, score = when
 * the entry may be forgotten) and a version counter bumped on every change. Each instance keeps a local copy and
 * refreshes it every refreshMs (a GET of the version; the sets only when it moved), so a Check never waits on Redis
 * and a revocation reaches every instance within about a refresh interval.
 *
 * Operators revoke with: ZADD {portcullis:authz}:revoked:jti <expiry ms> <jti>; INCR {portcullis:authz}:revoked:version
 */
export class RedisRevocationList implements RevocationList {
  private readonly lists: Record<RevocationKind, ExpiringIds> = { jti: new ExpiringIds(), key: new ExpiringIds() };
  private readonly keys: { jti: string; key: string; version: string };
  private version: string | null | undefined;
  private lastSuccessMs = Number.NEGATIVE_INFINITY;
  private refreshing = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly client: RedisClient, private readonly options: RedisRevocationOptions) {
    const base = `${options.prefix ?? ''}{portcullis:authz}:revoked`;
    this.keys = { jti: `${base}:jti`, key: `${base}:key`, version: `${base}:version` };
  }

  isRevoked(kind: RevocationKind, id: string): boolean | undefined {
    const nowMs = this.options.clock.nowMs();
    // An id the last good copy holds as revoked stays revoked while Redis is away: only ids it does not know are in
    // doubt (else on_unavailable: allow would let every token revoked so far back in during an outage).
    if (this.lists[kind].has(id, nowMs)) return true;
    if (nowMs - this.lastSuccessMs > this.options.maxStalenessMs) return undefined;
    return false;
  }

  async revoke(kind: RevocationKind, id: string, expiresAtMs: number): Promise<void> {
    await this.client.multi().zadd(this.keys[kind], expiresAtMs, id).zremrangebyscore(this.keys[kind], '-inf', this.options.clock.nowMs()).incr(this.keys.version).exec();
    this.lists[kind].add(id, expiresAtMs);
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
    const startedMs = this.options.clock.nowMs();
    const version = await this.client.get(this.keys.version);
    if (version !== this.version || this.version === undefined) {
      for (const kind of ['jti', 'key'] as const) {
        const flat = await this.client.zrangebyscore(this.keys[kind], startedMs, '+inf', 'WITHSCORES');
        const entries = new Map<string, number>();
        for (let i = 0; i + 1 < flat.length; i += 2) entries.set(flat[i]!, Number(flat[i + 1]));
        this.lists[kind].replace(entries);
      }
      this.version = version;
    }
    this.lastSuccessMs = startedMs;
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    // Nothing in flight is worth waiting for; a disconnected client must also stop reconnecting.
    this.client.disconnect();
    return Promise.resolve();
  }
}
