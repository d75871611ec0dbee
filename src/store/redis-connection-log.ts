import { Redis, type Cluster } from 'ioredis';
import type { Clock } from '../shared/clock.js';
import { reasonCode } from '../shared/failure-streak.js';
import { SEED_LOOKUP_EVENT, SENTINEL_WATCH_EVENT, SentinelsUnanswered, type SentinelWatch } from './redis-client.js';

export interface RedisConnectionEvents {
  /** The connection failed, with a kind of reason not yet reported since it last worked (credentials already hidden). */
  down(reason: string): void;
  /** Connected again after a failure. */
  up(): void;
  /**
   * A Cluster seed whose host name does not resolve ("host: reason"), once until it resolves again: the cluster is
   * learnt from the other seeds, and this is only a failure when none of them answers (then down() says so too).
   */
  seedSkipped(reason: string): void;
  /**
   * The failover detector lost a sentinel ("host:port: reason"), once per kind of reason until it is back: the
   * master still serves, but the failovers that sentinel announces are not heard.
   */
  sentinelLost(reason: string): void;
  /** A sentinel lost is heard again ("host:port"). */
  sentinelBack(sentinel: string): void;
}

/** Finds why a connection fails when the client only says that it did (see watchRedisConnection); undefined when it cannot tell. */
export type RedisProbe = () => Promise<string | undefined>;

/**
 * What ioredis says when a connection failed without saying why: a Cluster's node connections and its CLUSTER SLOTS
 * refresher report "Connection is closed." whatever closed them (an untrusted certificate, plaintext to a TLS port),
 * and the Cluster itself only "Failed to refresh slots cache.".
 */
const UNINFORMATIVE = /^(?:Connection is closed\.|timeout|Failed to refresh slots cache\.|Cluster isn't ready|None of startup nodes is available)/;

/** Between two probes while the connection stays down: a probe is one connection attempt of its own. */
const PROBE_INTERVAL_MS = 5000;

export function isUninformative(message: string): boolean {
  return UNINFORMATIVE.test(message);
}

/**
 * A connection error as an operator can act on it. Two are ambiguous as Node words them: a TLS-only port resets a
 * plaintext client ("read ECONNRESET" or "write ECONNRESET", alternating), and a rediss:// client on a plaintext
 * port waits for a TLS handshake that never comes ("connect ETIMEDOUT", the same as a host that does not answer).
 */
export function explainRedisError(message: string): string {
  // The message may name its node first ("host:port: read ECONNRESET").
  return message
    .replace(/(^|: )(?:read|write) ECONNRESET$/, '$1ECONNRESET: the server closed the connection (a server that requires TLS does this to redis://: use rediss://)')
    .replace(/(^|: )connect ETIMEDOUT$/, '$1connect ETIMEDOUT: no answer within connect_timeout_ms (with rediss://, a server that does not speak TLS times out too)');
}

/**
 * A round of sentinel lookups that found no master (SentinelsUnanswered): each sentinel with its reason, explained,
 * and the kind, which is the kinds of the sentinels' reasons: a certificate fixed and a password then refused is a
 * new line, the same certificate at the next round is not.
 */
export function describeSentinelsUnanswered(reasons: ReadonlyMap<string, string>): { readonly message: string; readonly code: string } {
  const explained = [...reasons].map(([sentinel, reason]) => [sentinel, explainRedisError(reason)] as const);
  return {
    message: `no sentinel answered: ${explained.map(([sentinel, reason]) => `${sentinel}: ${reason}`).join('; ')}`,
    code: `no sentinel answered: ${[...new Set(explained.map(([, reason]) => reasonCode(reason)))].sort().join(', ')}`,
  };
}

/**
 * Reports Redis connection trouble once per change of state: each kind of reason once (reasonCode) until the
 * connection works again, then the recovery. ioredis emits an error on every reconnect attempt (several a second);
 * logging each would bury the one line an operator needs, such as WRONGPASS for a wrong password, which otherwise
 * only shows as "not reachable" on /readyz.
 *
 * A Cluster hides most reasons (UNINFORMATIVE): its per-node errors are heard ('node error'), and when they say
 * nothing, `probe` (probeClusterSeeds) connects to the seeds itself, at most every PROBE_INTERVAL_MS, to find the
 * reason (self-signed certificate, ENOTFOUND…). A seed whose name does not resolve is reported apart, as skipped
 * (SEED_LOOKUP_EVENT): the cluster may well serve from the others. A client for the master Redis Sentinel names
 * reports the sentinels that did not answer each with its own reason (SentinelsUnanswered), and each sentinel its
 * failover detector loses and hears again (SENTINEL_WATCH_EVENT).
 */
export interface RedisConnectionWatch {
  /** Hides credentials in a reason before it is reported. */
  readonly redact: (text: string) => string;
  /** Finds the reason a Cluster hides (probeClusterSeeds). */
  readonly probe?: RedisProbe;
  /** Spaces the probes. */
  readonly clock: Clock;
}

export function watchRedisConnection(client: Redis | Cluster, events: RedisConnectionEvents, { redact, probe, clock }: RedisConnectionWatch): void {
  const reported = new Set<string>();
  /** Bumped on recovery: a probe started before it reports nothing. */
  let epoch = 0;
  let probing = false;
  let lastProbeMs = Number.NEGATIVE_INFINITY;
  const report = (message: string, node?: string): void => {
    const explained = explainRedisError(message);
    // The kind, whichever node said it (a probe's reason names its node in the message).
    reportOnce(reasonCode(explained.replace(/^\S+:\d+: /, '')), node === undefined ? explained : `${node}: ${explained}`);
  };
  const reportOnce = (code: string, text: string): void => {
    if (reported.has(code)) return;
    reported.add(code);
    events.down(redact(text));
  };
  const reportSentinels = (reasons: ReadonlyMap<string, string>): void => {
    const { message, code } = describeSentinelsUnanswered(reasons);
    reportOnce(code, message);
  };
  /** A failure without its reason: probe for it, else report what was said (`fallback`). */
  const unexplained = (fallback: string | undefined): void => {
    if (probe === undefined || probing || clock.nowMs() - lastProbeMs < PROBE_INTERVAL_MS) {
      if (probe === undefined && fallback !== undefined) report(fallback);
      return;
    }
    probing = true;
    lastProbeMs = clock.nowMs();
    const started = epoch;
    probe().then((reason) => {
      if (started !== epoch) return;
      if (reason !== undefined) report(reason);
      else if (fallback !== undefined) report(fallback);
    }, () => undefined).finally(() => (probing = false));
  };
  const heard = (error: Error, node?: string): void => {
    if (error instanceof SentinelsUnanswered) reportSentinels(error.reasons);
    else if (isUninformative(error.message)) unexplained(node === undefined ? error.message : `${node}: ${error.message}`);
    else report(error.message, node);
  };
  client.on('error', (error: Error) => heard(error));
  if (client.isCluster) {
    const unresolved = new Set<string>();
    client.on(SEED_LOOKUP_EVENT, (host: string, error: Error | undefined) => {
      if (error === undefined) unresolved.delete(host);
      else if (!unresolved.has(host)) {
        unresolved.add(host);
        events.seedSkipped(redact(`${host}: ${error.message}`));
      }
    });
    // A skipped seed's own connection fails with the reason just reported; the others may well serve.
    client.on('node error', (error: Error, node: string) => {
      if (!unresolved.has(node.replace(/:\d+$/, ''))) heard(error, node);
    });
    // A seed that does not resolve fails the Cluster's connect before any node is tried: no error is emitted.
    client.on('reconnecting', () => unexplained(undefined));
  } else {
    const lost = new Map<string, string>();
    client.on(SENTINEL_WATCH_EVENT, ({ sentinel, reason }: SentinelWatch) => {
      if (reason === undefined) {
        if (lost.delete(sentinel)) events.sentinelBack(sentinel);
        return;
      }
      const explained = explainRedisError(reason);
      const code = reasonCode(explained);
      if (lost.get(sentinel) === code) return;
      lost.set(sentinel, code);
      events.sentinelLost(redact(`${sentinel}: ${explained}`));
    });
  }
  client.on('ready', () => {
    epoch++;
    lastProbeMs = Number.NEGATIVE_INFINITY;
    if (reported.size === 0) return;
    reported.clear();
    events.up();
  });
}

/**
 * A probe for a Cluster: one connection to each seed in turn, with the options of the Cluster's own node connections
 * (TLS, password), that keeps the first error it hears. "host:port: reason" for the first seed that fails, undefined
 * when every seed answers PING (the trouble is elsewhere). A seed whose name does not resolve is named only when no
 * seed that resolves fails: its reason is reported already (seedSkipped), and would hide theirs (WRONGPASS, say).
 */
export function probeClusterSeeds(cluster: Cluster, seeds: readonly string[]): RedisProbe {
  // Clients that share the probe and ask at once (they see the same outage) share one run.
  let running: Promise<string | undefined> | undefined;
  return () => (running ??= probeSeeds(cluster, seeds).finally(() => (running = undefined)));
}

async function probeSeeds(cluster: Cluster, seeds: readonly string[]): Promise<string | undefined> {
  let unresolved: string | undefined;
  for (const seed of seeds) {
    const url = new URL(seed.includes('://') ? seed : `redis://${seed}`);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || 6379);
    const reason = await probeNode(host, port, cluster.options.redisOptions ?? {});
    if (reason === undefined) continue;
    if (!/\b(?:ENOTFOUND|EAI_AGAIN)\b/.test(reason)) return `${host}:${port}: ${reason}`;
    unresolved ??= `${host}:${port}: ${reason}`;
  }
  return unresolved;
}

async function probeNode(host: string, port: number, options: NonNullable<Cluster['options']['redisOptions']>): Promise<string | undefined> {
  const redis = new Redis({
    ...options, host, port, lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: false, maxRetriesPerRequest: 0,
    enableAutoPipelining: false,
  });
  let first: string | undefined;
  // connect() itself only rejects with "Connection is closed.": the reason is the first error event.
  redis.on('error', (error: Error) => void (first ??= error.message));
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (error) {
    return first ?? (error as Error).message;
  } finally {
    redis.disconnect();
  }
}
