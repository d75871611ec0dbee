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

/** How a client connects, for what its errors mean (redisTransport). */
export interface RedisTransport {
  /** rediss://. */
  readonly tls: boolean;
  /** redis.tls.cert_file: the client shows a certificate. */
  readonly clientCertificate: boolean;
}

const PLAINTEXT: RedisTransport = { tls: false, clientCertificate: false };

/**
 * How `client` (createRedisClient's) connects: a Cluster's nodes with its redisOptions, a client of the master the
 * sentinels name like the sentinels (sentinelTLS: the same redis.tls), a single node with its own options (ioredis
 * makes a rediss:// URL tls: true). Plaintext for what is none of these (a test's stand-in).
 */
export function redisTransport(client: Redis | Cluster): RedisTransport {
  const options = (client as { options?: Cluster['options'] & Redis['options'] }).options;
  if (options === undefined) return PLAINTEXT;
  const tls: unknown = client.isCluster ? options.redisOptions?.tls : options.sentinels !== undefined && options.sentinels !== null ? options.sentinelTLS : options.tls;
  return { tls: tls !== undefined && tls !== null && tls !== false, clientCertificate: typeof tls === 'object' && tls !== null && (tls as { cert?: unknown }).cert !== undefined };
}

const NO_CERTIFICATE_HINT = 'a server that requires one (tls-auth-clients yes) refuses the connection so: set redis.tls.cert_file and redis.tls.key_file';
const REFUSED_CERTIFICATE_HINT = "a server whose tls-ca-cert-file did not sign redis.tls.cert_file (or that finds it expired) refuses it so";

/**
 * A connection error as an operator can act on it. Several are ambiguous as Node words them:
 * - a TLS-only port resets a plaintext client ("read ECONNRESET" or "write ECONNRESET", alternating);
 * - a rediss:// client on a plaintext port waits for a TLS handshake that never comes ("connect ETIMEDOUT", the same
 *   as a host that does not answer);
 * - a server with tls-auth-clients yes refuses a client without a certificate, or with one its CA did not sign: with
 *   TLS 1.3 the client's handshake is over before the server has looked, so the client hears the server's alert
 *   ("tlsv13 alert certificate required", "tlsv1 alert unknown ca") only if it reads before it writes, and else the
 *   reset ("write ECONNRESET", two times in three against redis-server 7). Both are worded alike (one kind of reason,
 *   one log line), and OpenSSL's wording is cut to its alert.
 * `transport` says which of these a reset can be (redisTransport).
 */
export function explainRedisError(message: string, transport: RedisTransport = PLAINTEXT): string {
  // The message may name its node first ("host:port: read ECONNRESET").
  const [, node = '', reason = message] = /^(\S+:\d+: )?([\s\S]*)$/.exec(message) ?? [];
  return `${node}${explainReason(reason, transport)}`;
}

function explainReason(reason: string, transport: RedisTransport): string {
  const alert = /\b((?:sslv3|tlsv1|tlsv13) alert [a-z ]+?)(?::[^\n]*?)?(?:SSL alert number (\d+))?\s*$/.exec(reason);
  if (alert !== undefined && alert !== null) {
    const said = `${alert[1]}${alert[2] === undefined ? '' : ` (SSL alert number ${alert[2]})`}`;
    // 40 (handshake failure, TLS 1.2) and 116 (certificate required, TLS 1.3): what a server that wants a certificate
    // answers a client with none. The others concern a certificate shown.
    const certificateAlert = /alert (?:handshake failure|certificate required|unknown ca|bad certificate|certificate (?:unknown|expired|revoked)|unsupported certificate|decrypt error|access denied)/.test(said);
    if (!certificateAlert) return said;
    return transport.clientCertificate
      ? `client certificate refused: the server answered ${said}: ${REFUSED_CERTIFICATE_HINT}`
      : `no client certificate: the server answered ${said}: ${NO_CERTIFICATE_HINT}`;
  }
  const reset = /^(?:read|write) ECONNRESET$/.exec(reason);
  if (reset !== null) {
    if (!transport.tls) return 'ECONNRESET: the server closed the connection (a server that requires TLS does this to redis://: use rediss://)';
    return transport.clientCertificate
      ? `client certificate refused: the server closed the TLS connection (${reset[0]}): ${REFUSED_CERTIFICATE_HINT}`
      : `no client certificate: the server closed the TLS connection (${reset[0]}): ${NO_CERTIFICATE_HINT}`;
  }
  if (reason === 'connect ETIMEDOUT') return 'connect ETIMEDOUT: no answer within connect_timeout_ms (with rediss://, a server that does not speak TLS times out too)';
  return reason;
}

/**
 * A round of sentinel lookups that found no master (SentinelsUnanswered): each sentinel with its reason, explained,
 * and the kind, which is the kinds of the sentinels' reasons: a certificate fixed and a password then refused is a
 * new line, the same certificate at the next round is not.
 */
export function describeSentinelsUnanswered(reasons: ReadonlyMap<string, string>, transport: RedisTransport = PLAINTEXT): { readonly message: string; readonly code: string } {
  const explained = [...reasons].map(([sentinel, reason]) => [sentinel, explainRedisError(reason, transport)] as const);
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
  const transport = redisTransport(client);
  const reported = new Set<string>();
  /** Bumped on recovery: a probe started before it reports nothing. */
  let epoch = 0;
  let probing = false;
  let lastProbeMs = Number.NEGATIVE_INFINITY;
  const report = (message: string, node?: string): void => {
    const explained = explainRedisError(message, transport);
    // The kind, whichever node said it (a probe's reason names its node in the message).
    reportOnce(reasonCode(explained.replace(/^\S+:\d+: /, '')), node === undefined ? explained : `${node}: ${explained}`);
  };
  const reportOnce = (code: string, text: string): void => {
    if (reported.has(code)) return;
    reported.add(code);
    events.down(redact(text));
  };
  const reportSentinels = (reasons: ReadonlyMap<string, string>): void => {
    const { message, code } = describeSentinelsUnanswered(reasons, transport);
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
      const explained = explainRedisError(reason, transport);
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
