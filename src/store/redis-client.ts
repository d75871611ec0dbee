// The ioredis clients the Redis stores and the revocation list are given: a single node, the master Redis Sentinel
// names, or a Redis Cluster. A rate limit check has a deadline of a few milliseconds, so a client fails at once while
// disconnected instead of queueing, does not resend a command that may already have run when a connection drops
// (that could count a request twice), and reconnects forever in the background.
//
// Where ioredis had to be corrected (a socket's second error thrown, sentinels asked from where the last lookup
// stopped, a failover during a reconnect never reconnected), the correction is a connector subclass here, each with
// why; these are the only places Portcullis reaches into ioredis' internals.

import { lookup } from 'node:dns';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import SentinelConnectorModule from 'ioredis/built/connectors/SentinelConnector/index.js';
import StandaloneConnectorModule from 'ioredis/built/connectors/StandaloneConnector.js';
import { backoffDelayMs, type BackoffPolicy } from '../shared/backoff.js';
import { ErrorCode, PortcullisError } from '../shared/errors.js';
import { urlCredentials, type RedisTlsSettings, type SentinelSettings } from './redis-config.js';
import { BATCH_COMMANDS } from './redis-counter-store.js';

export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  /** Single node, e.g. redis://127.0.0.1:6379 (the default). Ignored when `cluster` or `sentinel` is given. */
  readonly url?: string | undefined;
  /** Cluster seed nodes, "host:port" or redis:// URLs, or rediss:// URLs (all of them) for TLS to every node. */
  readonly cluster?: readonly string[] | undefined;
  /** The master the sentinels name (redis-config.ts); rediss:// sentinels (all of them) for TLS to them and to it. */
  readonly sentinel?: SentinelSettings | undefined;
  /**
   * redis.tls: the CA, client certificate and server name for every TLS connection (tlsOptions). Only with rediss://
   * URLs: with plaintext ones it is refused (redis-config.ts says why).
   */
  readonly tls?: RedisTlsSettings | undefined;
  /** How long one connection attempt may take (default 1000 ms). */
  readonly connectTimeoutMs?: number;
}

/**
 * The credentials for every node of a cluster, from the first seed URL that carries any (its user info, else its
 * `password` / `username` query parameters, as ioredis reads a URL). ioredis applies a seed URL's credentials to
 * that seed's connection only; a node it learns from CLUSTER SLOTS (a replica promoted by a failover, a master
 * that was not listed) gets the shared options, so without this a password-protected cluster answered NOAUTH for
 * the failed-over slots until a restart.
 */
export function seedCredentials(seeds: readonly string[]): { readonly username?: string; readonly password?: string } {
  for (const seed of seeds) {
    const credentials = urlCredentials(seed);
    if (credentials.username !== undefined || credentials.password !== undefined) return credentials;
  }
  return Object.freeze({});
}

/**
 * Whether the nodes of a cluster are reached over TLS: every seed is rediss://. ioredis's Cluster reads a seed URL's
 * host, port and credentials but not its scheme, so rediss:// seeds alone connected in plaintext, password and all;
 * only redisOptions.tls reaches every node connection, the ones learnt from CLUSTER SLOTS included. Seeds that mix
 * schemes (a "host:port" seed counts as plain) are refused: the cluster would be half TLS, or TLS by accident.
 * Certificates are checked against the CA list Node trusts (NODE_EXTRA_CA_CERTS adds a private CA), or redis.tls's
 * CA, as for the single node (tlsOptions).
 */
export function seedsUseTls(seeds: readonly string[]): boolean {
  const tls = seeds.filter((seed) => /^rediss:\/\//i.test(seed)).length;
  if (tls === 0) return false;
  if (tls === seeds.length) return true;
  throw new PortcullisError(ErrorCode.CONFIG_INVALID, `redis cluster seeds mix rediss:// and redis://: all seeds must be rediss:// (TLS) or none`);
}

/**
 * The options every TLS connection of a client is opened with (tls.connect's), from redis.tls: its CA in place of the
 * ones Node trusts, its client certificate, its server name. Empty without redis.tls: Node's defaults (the Mozilla
 * list and NODE_EXTRA_CA_CERTS, the host connected to). ioredis passes them whole to each connection: the node, every
 * node of a cluster (redisOptions.tls, the nodes learnt from CLUSTER SLOTS included), the sentinels (sentinelTLS,
 * which the failover detector's subscriptions use too) and the master they name (tls).
 */
export function tlsOptions(tls: RedisTlsSettings | undefined): ConnectionOptions {
  if (tls === undefined) return {};
  const unread = [[tls.caFile, tls.pem.ca], [tls.certFile, tls.pem.cert], [tls.keyFile, tls.pem.key]].find(([file, text]) => file !== undefined && text === undefined);
  // A config only checked (off the serving thread) has not read its files: connecting without them would drop a CA
  // (trusting every public one instead) or the certificate (refused by the server).
  if (unread !== undefined) throw new PortcullisError(ErrorCode.CONFIG_INVALID, `redis.tls: ${unread[0]} was not read (a config checked, not loaded)`);
  return {
    ...(tls.pem.ca === undefined ? {} : { ca: tls.pem.ca }),
    ...(tls.pem.cert === undefined || tls.pem.key === undefined ? {} : { cert: tls.pem.cert, key: tls.pem.key }),
    ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
  };
}

function plaintextWithTls(what: string): PortcullisError {
  return new PortcullisError(ErrorCode.CONFIG_INVALID, `redis.tls is set but ${what}: use rediss:// URLs`);
}

/**
 * Emitted by a Cluster from createRedisClient after each lookup of a seed's host name, at every (re)connect:
 * (host, the lookup's error or undefined). The connection log (watchRedisConnection) reports the seeds skipped.
 */
export const SEED_LOOKUP_EVENT = 'portcullis:seed lookup';

/**
 * ioredis's connector with one more 'error' listener on each socket, which stays. ioredis listens with once() only
 * (twice), and a TLS socket can fail twice: the certificate check fails, then the server's alert arrives before the
 * socket is gone ("tlsv1 alert decode error"). With no listener left the second error was thrown, and killed the
 * process (2 runs in 4 of `serve` with three Cluster clients and an untrusted CA). The first error is ioredis's to
 * report; a later one on a socket already failing says nothing new.
 */
class SocketErrorsHeard extends StandaloneConnectorModule.default {
  // ioredis passes the client's options, which are the connector's (ConnectorConstructor types them unknown).
  constructor(options: unknown) {
    super(options as StandaloneConnectionOptions);
  }

  override async connect(emitter: ErrorEmitter): Promise<NetStream> {
    const stream = await super.connect(emitter);
    stream.on('error', () => undefined);
    return stream;
  }
}
type StandaloneConnectionOptions = ConstructorParameters<typeof StandaloneConnectorModule.default>[0];

/**
 * Emitted as the 'error' of a client for the master Redis Sentinel names (createRedisClient) when no sentinel said
 * where the master is: each sentinel asked, "host:port", with why it did not answer. ioredis says "All sentinels are
 * unreachable… Last error: Connection is closed." whatever closed a sentinel's connection (an untrusted certificate,
 * a refused connection, plaintext to a TLS port), and only the last sentinel's error at that. The connection log
 * (watchRedisConnection) words it.
 */
export class SentinelsUnanswered extends Error {
  constructor(readonly reasons: ReadonlyMap<string, string>) {
    super(`no sentinel answered: ${[...reasons].map(([sentinel, reason]) => `${sentinel}: ${reason}`).join('; ')}`);
  }
}

/**
 * Emitted by a client for the master Redis Sentinel names (createRedisClient) when the failover detector's
 * subscription to a sentinel fails or works again: a SentinelWatch. While it is down, failovers that sentinel
 * announces are not heard (the others' still are); the master serves meanwhile, so nothing else would say so.
 */
export const SENTINEL_WATCH_EVENT = 'portcullis:sentinel watch';
export interface SentinelWatch {
  /** "host:port", as configured. */
  readonly sentinel: string;
  /** Why its subscription failed; undefined: subscribed again. */
  readonly reason: string | undefined;
}

/** ioredis's (private) SentinelConnector members the connector below builds on. */
interface SentinelConnectorInternals {
  readonly sentinelIterator: { readonly cursor: number; reset(moveCurrentEndpointToFirst: boolean): void };
  initFailoverDetector(): Promise<void>;
  resolve(endpoint: SentinelEndpoint): Promise<unknown>;
  connectToSentinel(endpoint: SentinelEndpoint, options?: object): Redis;
}
interface SentinelEndpoint { readonly host?: string; readonly port?: number }

/**
 * SocketErrorsHeard for a master found through Redis Sentinel: the master's socket gets the same lasting listener,
 * and so do the connections to the sentinels (the lookups, and the failover detector's subscriptions), which ioredis
 * opens with its own connector. Besides:
 * - A round of lookups in which no sentinel answered is reported as SentinelsUnanswered, each sentinel with the
 *   first error its connection heard (the certificate, the refusal), not the command's "Connection is closed.".
 * - Each (re)connect asks the sentinels from the first again, the one that answered last in front. ioredis went on
 *   where the last lookup stopped: after a lookup whose master then refused the connection (a master killed, not
 *   yet failed over) that was past the last sentinel, and it reported "All sentinels are unreachable" without having
 *   asked one, then waited before asking.
 * - The failover detector's subscriptions get an 'error' listener: while a sentinel is down they retry every
 *   second (sentinelReconnectStrategy), and ioredis printed each failure to stderr as "[ioredis] Unhandled error
 *   event" (not JSON). Each failure, and each subscription that works again, is told to the client as
 *   SENTINEL_WATCH_EVENT instead: the master still serves meanwhile, so nothing else says that a sentinel is gone.
 * - A failover announced while the client is reconnecting (a master killed: the client retries it until the
 *   sentinels promote the replica) asks the sentinels again. ioredis's detector disconnects the connector then, the
 *   connect in progress fails with "Connection is closed.", and ioredis never connected again: every call answered
 *   by failure_mode until a restart (seen in CI in the kill -9 failover; test/integration/store/
 *   redis-sentinel-failover-race.test.ts makes the race happen every time).
 */
class SentinelSocketErrorsHeard extends SentinelConnectorModule.default {
  /** This round's sentinels that did not answer, and why. */
  private readonly unanswered = new Map<string, string>();
  /**
   * The first error the lookup connection in progress heard (lookups are one at a time). One object per connection:
   * a TLS socket's late second error must not land on the next lookup's.
   */
  private lookup: { error?: string } = {};
  /** The failover detector disconnected this connector since the connect in progress began. */
  private failingOver = false;
  /** The client's events (ioredis passes them to connect), for SENTINEL_WATCH_EVENT. */
  private events: ErrorEmitter | undefined;

  constructor(options: unknown) {
    super(options as SentinelConnectionOptions);
  }

  override async connect(emitter: ErrorEmitter): Promise<NetStream> {
    const iterator = (this as unknown as SentinelConnectorInternals).sentinelIterator;
    if (iterator.cursor > 0) iterator.reset(true);
    this.unanswered.clear();
    this.failingOver = false;
    this.events = emitter;
    let stream: NetStream;
    try {
      stream = await super.connect((type: string, error: Error) => {
        if (type === 'error' && /^All sentinels are unreachable\b/.test(error.message) && this.unanswered.size > 0) {
          const reasons = new Map(this.unanswered);
          this.unanswered.clear();
          emitter(type, new SentinelsUnanswered(reasons));
        } else {
          emitter(type, error);
        }
      });
    } catch (error) {
      // Not the client's own disconnect (that one ends it): a failover, whose new master the sentinels now name.
      if (this.failingOver) return this.connect(emitter);
      throw error;
    }
    stream.on('error', () => undefined);
    return stream;
  }

  static {
    const prototype = SentinelConnectorModule.default.prototype as unknown as SentinelConnectorInternals;
    const own = SentinelSocketErrorsHeard.prototype as unknown as SentinelConnectorInternals;
    const { connectToSentinel, resolve, initFailoverDetector } = prototype;
    // The detector calls its own disconnect() on +switch-master, and nothing else does: marked here, it tells a
    // failover from the client's disconnect (connect above).
    own.initFailoverDetector = async function (this: SentinelSocketErrorsHeard) {
      await initFailoverDetector.call(this);
      const detector = (this as unknown as { failoverDetector: { disconnect(): void } | null }).failoverDetector;
      if (detector === null) return;
      const disconnect = detector.disconnect.bind(detector);
      detector.disconnect = (): void => {
        this.failingOver = true;
        disconnect();
      };
    };
    own.connectToSentinel = function (this: SentinelSocketErrorsHeard, endpoint, options) {
      const client = connectToSentinel.call(this, endpoint, { Connector: SocketErrorsHeard, ...options });
      // A lookup's client (no options) reports its first error to resolve below; the detector's (options) none.
      if (options === undefined) {
        const lookup: { error?: string } = {};
        this.lookup = lookup;
        client.on('error', (error: Error) => void (lookup.error ??= error.message));
      } else {
        const watch = (reason: string | undefined): void => {
          const change: SentinelWatch = { sentinel: sentinelAddress(endpoint), reason };
          // ioredis' emitter passes its second argument on as is, whatever it is.
          (this.events as ((type: string, change: SentinelWatch) => void) | undefined)?.(SENTINEL_WATCH_EVENT, change);
        };
        client.on('error', (error: Error) => watch(error.message));
        client.on('ready', () => watch(undefined));
      }
      return client;
    };
    own.resolve = async function (this: SentinelSocketErrorsHeard, endpoint) {
      const sentinel = sentinelAddress(endpoint);
      try {
        const resolved = await resolve.call(this, endpoint);
        if (resolved === null || resolved === undefined) this.unanswered.set(sentinel, 'knows no address for the master');
        return resolved;
      } catch (error) {
        this.unanswered.set(sentinel, this.lookup.error ?? (error as Error).message);
        throw error;
      }
    };
  }
}
function sentinelAddress(endpoint: SentinelEndpoint): string {
  return `${endpoint.host ?? '127.0.0.1'}:${endpoint.port ?? 26379}`;
}
type SentinelConnectionOptions = ConstructorParameters<typeof SentinelConnectorModule.default>[0];
type ErrorEmitter = Parameters<InstanceType<typeof StandaloneConnectorModule.default>['connect']>[0];
type NetStream = Awaited<ReturnType<InstanceType<typeof StandaloneConnectorModule.default>['connect']>>;

/**
 * The options of a client for the master the sentinels name: the single node's (fail at once while disconnected,
 * reconnect forever), the address asked of the sentinels at every (re)connect, and the connection dropped as soon as
 * a sentinel announces a failover (+switch-master, failoverDetector): a master that stopped answering (a paused
 * process, a host gone) keeps its connection open, so without it every call would wait for the stall guard and
 * fail until the operating system gave up on the socket, long after the replica took over.
 */
export function sentinelOptions(sentinel: SentinelSettings, connectionOptions: { readonly connectTimeout: number }, tlsSettings?: RedisTlsSettings): RedisOptions {
  const tls = sentinel.nodes.every((node) => /^rediss:\/\//i.test(node));
  if (!tls && tlsSettings !== undefined) throw plaintextWithTls('the sentinels are redis://');
  const connectionTls = tlsOptions(tlsSettings);
  const credentials = sentinel.nodes.map(urlCredentials).find((c) => c.username !== undefined || c.password !== undefined) ?? {};
  return {
    ...connectionOptions,
    Connector: SentinelSocketErrorsHeard,
    autoPipeliningIgnoredCommands: BATCH_COMMANDS,
    enableOfflineQueue: false,
    retryStrategy: reconnectDelayMs,
    lazyConnect: false,
    name: sentinel.master,
    role: 'master',
    sentinels: sentinel.nodes.map((node) => {
      const url = new URL(node);
      return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 26379) };
    }),
    ...(sentinel.username === undefined ? {} : { username: sentinel.username }),
    ...(sentinel.password === undefined ? {} : { password: sentinel.password }),
    ...(credentials.username === undefined ? {} : { sentinelUsername: credentials.username }),
    ...(credentials.password === undefined ? {} : { sentinelPassword: credentials.password }),
    // TLS to the sentinels (sentinelTLS) and to the master (tls, which ioredis uses in sentinel mode only with
    // enableTLSForSentinelMode), certificates checked against the CAs Node trusts or redis.tls's, as for a single
    // node; one redis.tls for both: the sentinels and the data nodes are one deployment, with one CA.
    ...(tls ? { tls: connectionTls, enableTLSForSentinelMode: true, sentinelTLS: connectionTls } : {}),
    // Every sentinel down: ask them again on the same schedule as a single node is reconnected.
    sentinelRetryStrategy: reconnectDelayMs,
    // A sentinel that accepts the connection but does not answer (a paused process) must not hold the lookup forever.
    sentinelCommandTimeout: connectionOptions.connectTimeout,
    failoverDetector: true,
    // How long the detector's disconnect waits for the old master to close the connection before it drops it: one
    // that does not answer (paused) never closes it, and calls fail until it is dropped (the default is 2 s).
    disconnectTimeout: 100,
    // The failover detector's subscriptions, when a sentinel drops them (the default waits a minute).
    sentinelReconnectStrategy: () => 1000,
    // A master demoted to a replica answers READONLY to every write: look the master up again. The command is not
    // resent (ioredis would for 2): it may be past its deadline, answered by failure_mode already.
    reconnectOnError: (error) => /^READONLY\b/.test(error.message),
  };
}

/** Reconnect forever: 50 ms, 100, 200, 400, 800, then every second. */
function reconnectDelayMs(attempt: number): number {
  return backoffDelayMs(attempt, RECONNECT_BACKOFF, 0);
}
const RECONNECT_BACKOFF: BackoffPolicy = { firstMs: 50, maxMs: 1000, jitter: 0 };

/**
 * A client for RedisCounterStore that answers "Redis down" at once rather than queueing until the deadline, and
 * heals by itself when Redis returns. Connection errors are not logged here: they reach callers through apply()
 * and ping(); attach an 'error' listener to log them.
 */
export function createRedisClient(options: RedisClientOptions = {}): RedisClient {
  const connectionOptions = {
    connectTimeout: options.connectTimeoutMs ?? 1000,
    // A command written before the connection dropped may have run: resending it could count a request twice,
    // and the caller's deadline has likely passed anyway. Fail it instead.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // Concurrent per-request script calls leave in one socket write per event-loop turn instead of one each: the
    // write syscalls were the largest single cost of a request under load (docs/benchmarks.md). A batch is one call
    // per turn already; on a single node it skips this (autoPipeliningIgnoredCommands below).
    enableAutoPipelining: true,
    Connector: SocketErrorsHeard,
  };
  let client: RedisClient;
  if (options.cluster !== undefined && options.cluster.length > 0) {
    const tls = seedsUseTls(options.cluster);
    if (!tls && options.tls !== undefined) throw plaintextWithTls('the cluster seeds are redis://');
    client = new Cluster([...options.cluster], {
      enableOfflineQueue: false,
      clusterRetryStrategy: reconnectDelayMs,
      // A command for a node whose connection is not up (or just closed) is retried after this delay, at most
      // maxRedirections (16) times. The default 100 ms makes a request to a dead master wait out its whole
      // deadline; 10 ms still rides over a node connection being (re)established and gives up on a dead one within
      // ~200 ms. (A script in flight when its node's connection closes is retried too; its node is then usually
      // gone, with its counters.)
      retryDelayOnFailover: 10,
      // CLUSTERDOWN is refused before anything runs: report it at once, as envoyproxy/ratelimit does.
      retryDelayOnClusterDown: 0,
      // TRYAGAIN: a call on several keys of a slot being migrated, some of them moved already; it is refused until
      // the migration of the slot ends. The default 100 ms kept retrying for 1.6 s, past the request's deadline, and
      // a retry that then ran counted a request already answered by failure_mode: fail within ~200 ms instead, and
      // the store runs it again one key per call (refusedMidMigration).
      retryDelayOnTryAgain: 10,
      lazyConnect: false,
      // ioredis resolves every seed's host name before it connects, and one name that did not resolve failed the
      // connect (and every reconnect), good seeds and all. Such a seed is kept under its name instead: only its own
      // connection fails (ENOTFOUND), and the cluster is learnt from the others.
      dnsLookup: (hostname, callback) => lookup(hostname, (error, address) => {
        client.emit(SEED_LOOKUP_EVENT, hostname, error ?? undefined);
        callback(null, error ? hostname : address);
      }),
      // Not on the node connections: the Cluster writes its commands to them directly, and only ioredis's own calls
      // on them would be auto-pipelined, among them the ASKING that must precede a command redirected by ASK. Sent a
      // turn after that command, it let the importing node answer MOVED back to the source, and the command bounced
      // between the two until it ran out of redirections (a call on a slot being migrated, in ~60 ms).
      redisOptions: { ...connectionOptions, enableAutoPipelining: false, ...seedCredentials(options.cluster), ...(tls ? { tls: tlsOptions(options.tls) } : {}) },
    });
  } else if (options.sentinel !== undefined) {
    client = new Redis(sentinelOptions(options.sentinel, connectionOptions, options.tls));
  } else {
    const url = options.url ?? 'redis://127.0.0.1:6379';
    const tls = /^rediss:\/\//i.test(url);
    if (!tls && options.tls !== undefined) throw plaintextWithTls('redis.url is redis://');
    client = new Redis(url, {
      ...connectionOptions,
      // rediss:// alone is TLS with Node's defaults (ioredis's tls: true); redis.tls's options in their place.
      ...(tls ? { tls: tlsOptions(options.tls) } : {}),
      // A batch is one script call (or one write of INCRBYs) per turn already: auto-pipelining would only add a Pipeline
      // and a second setImmediate to it (docs/benchmarks.md, "Batched calls written directly").
      autoPipeliningIgnoredCommands: BATCH_COMMANDS,
      enableOfflineQueue: false,
      retryStrategy: reconnectDelayMs,
      lazyConnect: false,
    });
  }
  // Without a listener ioredis prints every failed reconnect attempt to stderr.
  client.on('error', () => undefined);
  return client;
}
