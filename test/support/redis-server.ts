// Runs real redis-server processes (and a small Redis Cluster, and Redis Sentinel) for the integration and e2e tests.
//
// The binaries come from REDIS_SERVER_BIN / REDIS_CLI_BIN, else from PATH. When they are missing the tests fail
// with redis-server's own error: a store tier that silently skips would look green without having run.
//
// Ports are found by binding port 0 and closing it; another process may take the port before redis-server binds
// it, so a start that fails with "Address already in use" is retried on a fresh port. Every server is started with
// persistence off and killed when the test process exits, even if a test forgot to stop it.
//
// A TLS server (startRedis({ tls }), startRedisCluster({ tls: true })) listens on its TLS port only, with a CA and a
// certificate for 127.0.0.1 and localhost made by openssl at start: a client that does not speak TLS gets nothing.
// With authClients (tls-auth-clients yes) it also refuses a client without a certificate its CA signed; the files
// hold one (clientCertFile). sendCommand() knows which ports speak TLS (and their password, and whether they want a
// client certificate), so the tests' admin commands work on them as on the others.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port>, or rediss:// for a TLS server (no credentials in it). */
  readonly url: string;
  /** SIGTERM, then SIGKILL if it lingers; waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, simulating a crash; waits for the exit. */
  kill(): Promise<void>;
  /** Starts a stopped or killed server again on the same port (empty: persistence is off). */
  restart(): Promise<void>;
  /** Everything the server printed so far (for assertion messages). */
  output(): string;
}

export interface RedisCluster {
  /** Node URLs, redis://127.0.0.1:<port> (rediss:// with tls), one per node (the first 3 started as masters). */
  readonly urls: readonly string[];
  /** With tls: the CA that signed the nodes' certificate (for NODE_EXTRA_CA_CERTS). */
  readonly tls: RedisTlsFiles | undefined;
  /** "127.0.0.1:<port>" seeds, as ioredis's Cluster and createRedisClient({ cluster }) take them. */
  readonly nodes: readonly string[];
  readonly servers: readonly RedisServer[];
  /** The server that masters `slot` now (asks a live node: after a failover it is the promoted replica). */
  masterOf(slot: number): Promise<RedisServer>;
  /** The replicas of `master` now. */
  replicasOf(master: RedisServer): Promise<RedisServer[]>;
  /** Resolves once every live node reports cluster_state:ok and agrees on who masters every slot. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** Extra `--name value` arguments. */
  readonly args?: readonly string[];
  /** Also require port + 10000 to be free (the cluster bus port). */
  readonly withBusPort?: boolean;
  /** Serve TLS only (no plaintext port), with this certificate; with a cluster, the bus and replication too. */
  readonly tls?: RedisTlsFiles;
  /**
   * With tls: tls-auth-clients yes, every client must show a certificate the CA signed (the nodes of a cluster, a
   * replica and a sentinel show the server certificate, which is also for clientAuth).
   */
  readonly authClients?: boolean;
  /** requirepass and masterauth: sendCommand() authenticates first. */
  readonly password?: string;
  /** Run as a Redis Sentinel with this config file text (written where the sentinel may rewrite it). */
  readonly sentinelConfig?: string;
}

export interface RedisTlsFiles {
  /** PEM files: the CA, and the server certificate it signed (for 127.0.0.1 and localhost) with its key. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** A client certificate the CA signed (clientAuth only, CN=portcullis-test-client), with its key. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

/** How sendCommand() reaches the servers started with TLS or a password, by port. */
const access = new Map<number, { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly password?: string }>();

/**
 * A fresh CA, a server certificate it signs for 127.0.0.1 and localhost and a client certificate, in `dir` (openssl,
 * EC P-256). `prefix` names the files (two CAs in one directory).
 */
export function makeRedisTlsFiles(dir: string, prefix = ''): RedisTlsFiles {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const file = (name: string): string => `${prefix}${name}`;
  openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '2', '-subj', `/CN=portcullis-test-redis-ca${prefix}`);
  writeFileSync(path.join(dir, file('server.cnf')), '[ext]\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl('req', '-new', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost');
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.crt'), '-days', '2', '-extfile', file('server.cnf'), '-extensions', 'ext');
  writeFileSync(path.join(dir, file('client.cnf')), '[ext]\nextendedKeyUsage=clientAuth\n');
  openssl('req', '-new', ...ec, '-keyout', file('client.key'), '-out', file('client.csr'), '-subj', '/CN=portcullis-test-client');
  openssl('x509', '-req', '-in', file('client.csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('client.crt'), '-days', '2', '-extfile', file('client.cnf'), '-extensions', 'ext');
  const at = (name: string): string => path.join(dir, file(name));
  return { caFile: at('ca.crt'), certFile: at('server.crt'), keyFile: at('server.key'), clientCertFile: at('client.crt'), clientKeyFile: at('client.key') };
}

const HOST = '127.0.0.1';
const STARTUP_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;

const running = new Set<ChildProcess>();
const killAll = (): void => {
  for (const child of running) child.kill('SIGKILL');
};
process.once('exit', killAll);
// A test run interrupted by a signal skips 'exit' handlers: clean up, then die of the same signal.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

function redisServerBin(): string {
  return nonEmpty(process.env['REDIS_SERVER_BIN']) ?? 'redis-server';
}

function redisCliBin(): string {
  return nonEmpty(process.env['REDIS_CLI_BIN']) ?? 'redis-cli';
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Starts one redis-server on a free port and waits until it answers PING. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freePort(options.withBusPort === true);
    const dir = mkdtempSync(path.join(tmpdir(), `portcullis-redis-${port}-`));
    try {
      return await startOn(port, dir, options);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      if (!(error instanceof PortInUseError)) throw error;
      lastError = error;
    }
  }
  throw new Error(`redis-server: no free port after ${PORT_ATTEMPTS} attempts`, { cause: lastError });
}

class PortInUseError extends Error {}

async function startOn(port: number, dir: string, options: StartRedisOptions): Promise<RedisServer> {
  const tls = options.tls;
  const sentinelFile = path.join(dir, 'sentinel.conf');
  if (options.sentinelConfig !== undefined) writeFileSync(sentinelFile, options.sentinelConfig);
  const args = [
    // The config file goes first; a sentinel takes its password from it (masterauth is not a sentinel setting).
    ...(options.sentinelConfig === undefined ? [] : [sentinelFile, '--sentinel']),
    ...(tls === undefined
      ? ['--port', String(port)]
      : [
          '--port', '0', '--tls-port', String(port),
          '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile,
          // Clients show a certificate only with authClients; the nodes of a cluster talk to each other over TLS too.
          '--tls-auth-clients', options.authClients === true ? 'yes' : 'no', '--tls-cluster', 'yes', '--tls-replication', 'yes',
        ]),
    ...(options.password === undefined || options.sentinelConfig !== undefined ? [] : ['--requirepass', options.password, '--masterauth', options.password]),
    '--bind', HOST,
    '--save', '',
    '--appendonly', 'no',
    '--dir', dir,
    // The outage tests pause the server with DEBUG SLEEP.
    '--enable-debug-command', 'local',
    ...(options.args ?? []),
  ];
  if (tls !== undefined || options.password !== undefined) {
    access.set(port, {
      ...(tls === undefined ? {} : { ca: readFileSync(tls.caFile, 'utf8') }),
      ...(tls === undefined || options.authClients !== true ? {} : { cert: readFileSync(tls.clientCertFile, 'utf8'), key: readFileSync(tls.clientKeyFile, 'utf8') }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
  } else {
    access.delete(port); // a port a stopped TLS server used before
  }
  let child: ChildProcess | undefined;
  let log = '';
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    const proc = spawn(redisServerBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    running.add(proc);
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    let exitCode: number | null | undefined;
    let spawnError: Error | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once('error', (error) => {
        spawnError = error;
        running.delete(proc);
        resolve();
      });
      // 'close' rather than 'exit': by then stdout is drained, so the log holds the reason for an early exit.
      proc.once('close', (code, signal) => {
        exitCode = code ?? (signal === null ? -1 : 128);
        running.delete(proc);
        resolve();
      });
    });
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      if (spawnError !== undefined) {
        throw new Error(`cannot run ${redisServerBin()} (set REDIS_SERVER_BIN or install redis-server): ${spawnError.message}`);
      }
      if (exitCode !== undefined) {
        const message = `redis-server on port ${port} exited with ${exitCode} during startup:\n${log}`;
        throw /Address already in use/i.test(log) ? new PortInUseError(message) : new Error(message);
      }
      if (await answersPing(port)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`redis-server on port ${port} did not answer PING within ${STARTUP_TIMEOUT_MS} ms:\n${log}`);
      }
      await sleep(20);
    }
  };

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  let removed = false;
  return {
    port,
    url: `${tls === undefined ? 'redis' : 'rediss'}://${HOST}:${port}`,
    output: () => log,
    kill: () => terminate('SIGKILL'),
    restart: async () => {
      await terminate('SIGTERM');
      mkdirSync(dir, { recursive: true });
      removed = false;
      await launch();
    },
    stop: async () => {
      await terminate('SIGTERM');
      if (!removed) {
        removed = true;
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export interface StartRedisClusterOptions {
  /**
   * cluster-node-timeout (default 5000 ms): how long a master may be unreachable before the cluster reports
   * CLUSTERDOWN, and how long a restarted master waits before it serves again.
   */
  readonly nodeTimeoutMs?: number;
  /** Replicas per master (default 0): 1 starts 6 nodes, 3 masters each with a replica that can take over. */
  readonly replicas?: number;
  /** TLS only, on every node, the cluster bus and replication (a fresh CA and certificate: RedisCluster.tls). */
  readonly tls?: boolean;
  /** With tls: tls-auth-clients yes on every node (StartRedisOptions.authClients). */
  readonly authClients?: boolean;
  /** requirepass and masterauth on every node. */
  readonly password?: string;
}

/** One line of CLUSTER NODES: who a node is, what it replicates and which slots it serves. */
export interface ClusterNodeLine {
  readonly id: string;
  readonly port: number;
  readonly flags: readonly string[];
  /** The master's id for a replica, '-' for a master. */
  readonly masterId: string;
  /** Slot ranges served, [from, to] inclusive (migrating/importing markers left out). */
  readonly slots: readonly (readonly [number, number])[];
}

export function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text.split('\n').filter((line) => /^[0-9a-f]{40} /.test(line)).map((line) => {
    const [id, address, flags, masterId, , , , , ...slots] = line.trim().split(' ');
    return {
      id: id!,
      port: Number(/:(\d+)@/.exec(address!)?.[1]),
      flags: flags!.split(','),
      masterId: masterId!,
      slots: slots.filter((s) => !s.startsWith('[')).map((s) => {
        const [from, to] = s.split('-');
        return [Number(from), Number(to ?? from)] as const;
      }),
    };
  });
}

/**
 * Starts 3 masters (with `replicas` replicas each), joins them with `redis-cli --cluster create`, and waits for
 * cluster_state:ok on every node. A node's restart() keeps its nodes.conf, so it rejoins the cluster.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const servers: RedisServer[] = [];
  const certDir = options.tls === true ? mkdtempSync(path.join(tmpdir(), 'portcullis-redis-tls-')) : undefined;
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((server) => server.stop()));
    if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
  };
  try {
    const tls = certDir === undefined ? undefined : makeRedisTlsFiles(certDir);
    const replicas = options.replicas ?? 0;
    for (let i = 0; i < 3 * (1 + replicas); i++) {
      servers.push(
        await startRedis({
          withBusPort: true,
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 5000)],
          ...(tls === undefined ? {} : { tls, authClients: options.authClients === true }),
          ...(options.password === undefined ? {} : { password: options.password }),
        }),
      );
    }
    const nodes = servers.map((server) => `${HOST}:${server.port}`);
    const tlsArgs = tls === undefined ? [] : ['--tls', '--cacert', tls.caFile, ...(options.authClients === true ? ['--cert', tls.clientCertFile, '--key', tls.clientKeyFile] : [])];
    // REDISCLI_AUTH rather than -a: redis-cli warns about a password on its command line.
    const created = await run(redisCliBin(), [...tlsArgs, '--cluster', 'create', ...nodes, '--cluster-replicas', String(replicas), '--cluster-yes'],
      options.password === undefined ? {} : { REDISCLI_AUTH: options.password });
    if (created.code !== 0) throw new Error(`redis-cli --cluster create failed (${created.code}):\n${created.output}`);
    const byPort = (port: number): RedisServer => {
      const server = servers.find((s) => s.port === port);
      if (server === undefined) throw new Error(`no server on port ${port}`);
      return server;
    };
    /** CLUSTER NODES from the first node that answers. */
    const clusterNodes = async (): Promise<ClusterNodeLine[]> => {
      let lastError: unknown;
      for (const server of servers) {
        try {
          return parseClusterNodes(await sendCommand(server.port, ['CLUSTER', 'NODES'], 1000));
        } catch (error) {
          lastError = error;
        }
      }
      throw new Error('no cluster node answers CLUSTER NODES', { cause: lastError });
    };
    const waitHealthy = async (timeoutMs = STARTUP_TIMEOUT_MS): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const views: string[] = [];
        let ok = true;
        for (const server of servers) {
          const info = await sendCommand(server.port, ['CLUSTER', 'INFO'], 1000).catch(() => undefined);
          if (info === undefined) continue; // down: not asked
          if (!info.includes('cluster_state:ok')) ok = false;
          // A replica that has not synced yet would not take over when its master dies.
          const replication = await sendCommand(server.port, ['INFO', 'replication'], 1000).catch(() => '');
          if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) ok = false;
          const nodesText = await sendCommand(server.port, ['CLUSTER', 'NODES'], 1000).catch(() => '');
          // Every live node must agree on the live masters and their slots (a failover reaches them one by one).
          views.push(parseClusterNodes(nodesText).filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.length > 0)
            .map((n) => `${n.port}:${n.slots.map((r) => r.join('-')).join(',')}`).sort().join(' '));
        }
        if (ok && views.length > 0 && views.every((v) => v === views[0])) return;
        if (Date.now() > deadline) throw new Error(`cluster not healthy within ${timeoutMs} ms: ${views.join(' | ')}`);
        await sleep(50);
      }
    };
    await waitHealthy();
    return {
      urls: servers.map((server) => server.url),
      tls,
      nodes,
      servers,
      masterOf: async (slot) => {
        const owner = (await clusterNodes()).find((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.some(([from, to]) => slot >= from && slot <= to));
        if (owner === undefined) throw new Error(`no master serves slot ${slot}`);
        return byPort(owner.port);
      },
      replicasOf: async (master) => {
        const all = await clusterNodes();
        const id = all.find((n) => n.port === master.port)?.id;
        return all.filter((n) => n.masterId === id && !n.flags.includes('fail')).map((n) => byPort(n.port));
      },
      waitHealthy,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Sends one command over a fresh connection and returns the raw RESP reply (enough for PING, CLUSTER INFO, INFO
 * and other admin commands in tests; not a RESP parser).
 */
export function sendCommand(port: number, args: readonly string[], timeoutMs = 2000): Promise<string> {
  const { ca, cert, key, password } = access.get(port) ?? {};
  return new Promise<string>((resolve, reject) => {
    const socket: Socket = ca === undefined ? connect({ host: HOST, port }) : connectTls({ host: HOST, port, ca, ...(cert === undefined ? {} : { cert, key }) });
    let reply = '';
    // AUTH's own +OK comes first and is not the reply; an error (a wrong password) is.
    let authPending = password !== undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply to ${args.join(' ')} from port ${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once(ca === undefined ? 'connect' : 'secureConnect', () => {
      const commands = password === undefined ? [args] : [['AUTH', password], args];
      socket.write(commands.map((command) => `*${command.length}\r\n${command.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`).join(''));
    });
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (authPending && reply.startsWith('+OK\r\n')) {
        authPending = false;
        reply = reply.slice(5);
      }
      if ((!authPending || reply.startsWith('-')) && isCompleteReply(reply)) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // The server went away (killed) before answering; a no-op when the reply already resolved the promise.
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection to port ${port} closed before a reply to ${args.join(' ')}`));
    });
  });
}

/** A whole reply has arrived: a simple string, error, integer, bulk string, or an array of them (SENTINEL replies). */
function isCompleteReply(reply: string): boolean {
  return replyEnd(Buffer.from(reply), 0) !== undefined;
}

/** The offset just past the reply that starts at `at`, undefined when it has not fully arrived. */
function replyEnd(bytes: Buffer, at: number): number | undefined {
  const lineEnd = bytes.indexOf('\r\n', at);
  if (lineEnd === -1) return undefined;
  const type = String.fromCharCode(bytes[at]!);
  const length = Number(bytes.subarray(at + 1, lineEnd).toString());
  if (type === '$') return length < 0 ? lineEnd + 2 : bytes.length >= lineEnd + 2 + length + 2 ? lineEnd + 2 + length + 2 : undefined;
  if (type !== '*') return lineEnd + 2;
  let next: number | undefined = lineEnd + 2;
  for (let i = 0; i < length && next !== undefined; i++) next = replyEnd(bytes, next);
  return next;
}

/** The bulk strings of a flat array reply (`*2\r\n$9\r\n127.0.0.1\r\n…`), in order. */
export function bulkStrings(reply: string): string[] {
  const out: string[] = [];
  const pattern = /\$(\d+)\r\n/g;
  for (let match = pattern.exec(reply); match !== null; match = pattern.exec(reply)) {
    const start = match.index + match[0].length;
    out.push(reply.slice(start, start + Number(match[1])));
    pattern.lastIndex = start + Number(match[1]) + 2;
  }
  return out;
}

export interface RedisSentinel {
  /** The sentinel's own server (kill, restart, output). */
  readonly server: RedisServer;
  /** redis://127.0.0.1:<port> of the sentinel, rediss:// with tls (no credentials in it). */
  readonly url: string;
  /** The master name it monitors. */
  readonly name: string;
  /** The port of the master the sentinel names now. */
  masterPort(): Promise<number>;
  /** Resolves once the sentinel names the master on `port` and knows a replica it could promote. */
  waitMaster(port: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Resolves once `replica` replicates the master on `masterPort` with its link up and no sync in progress: it has
 * what the master had, give or take the last writes (replication is asynchronous). A sentinel lists a demoted master
 * among the replicas before it has even been told to replicate.
 */
export async function waitReplicating(replica: RedisServer, masterPort: number, timeoutMs = STARTUP_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await sendCommand(replica.port, ['INFO', 'replication']).catch(() => '');
    if (info.includes('role:slave') && info.includes(`master_port:${masterPort}\r\n`) && info.includes('master_link_status:up') && info.includes('master_sync_in_progress:0')) return;
    if (Date.now() > deadline) throw new Error(`port ${replica.port} does not replicate port ${masterPort} within ${timeoutMs} ms:\n${info}`);
    await sleep(20);
  }
}

export interface StartRedisSentinelOptions {
  readonly master: RedisServer;
  /** Default 'mymaster'. */
  readonly name?: string;
  /** How long the master may not answer before the sentinel fails it over (default 500 ms). */
  readonly downAfterMs?: number;
  /**
   * failover-timeout (default 2000 ms). The sentinel sees a promotion at its next INFO to the replica, once a second
   * during a failover: much less aborts the failover (-failover-abort-slave-timeout).
   */
  readonly failoverTimeoutMs?: number;
  /** The sentinel's own requirepass. */
  readonly password?: string;
  /** The password of the master and its replicas (sentinel auth-pass). */
  readonly masterPassword?: string;
  /**
   * Serve TLS only (no plaintext port) with these files, and reach the master and replicas over TLS
   * (tls-replication): give the data nodes the same `tls` to startRedis.
   */
  readonly tls?: RedisTlsFiles;
  /** With tls: tls-auth-clients yes on the sentinel (StartRedisOptions.authClients). */
  readonly authClients?: boolean;
}

/**
 * One Redis Sentinel (quorum 1: it alone decides a failover) watching `master`, started once it names it (waitMaster
 * waits for a replica too). Sentinel announces the addresses it sees, 127.0.0.1 here.
 */
export async function startRedisSentinel(options: StartRedisSentinelOptions): Promise<RedisSentinel> {
  const name = options.name ?? 'mymaster';
  const config = [
    `sentinel monitor ${name} ${HOST} ${options.master.port} 1`,
    `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 500}`,
    `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 2000}`,
    ...(options.masterPassword === undefined ? [] : [`sentinel auth-pass ${name} ${options.masterPassword}`]),
    ...(options.password === undefined ? [] : [`requirepass ${options.password}`]),
    '',
  ].join('\n');
  const server = await startRedis({
    sentinelConfig: config, ...(options.password === undefined ? {} : { password: options.password }),
    ...(options.tls === undefined ? {} : { tls: options.tls, authClients: options.authClients === true }),
  });
  const masterPort = async (): Promise<number> => Number(bulkStrings(await sendCommand(server.port, ['SENTINEL', 'get-master-addr-by-name', name]))[1]);
  const sentinel: RedisSentinel = {
    server,
    url: server.url,
    name,
    masterPort,
    waitMaster: async (port, timeoutMs = STARTUP_TIMEOUT_MS) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const named = await masterPort().catch(() => undefined);
        const replicas = await sendCommand(server.port, ['SENTINEL', 'replicas', name]).catch(() => '');
        // A replica the sentinel could promote: known and not down.
        const usable = /\r\nflags\r\n\$\d+\r\nslave\r\n/.test(replicas);
        if (named === port && usable) return;
        if (Date.now() > deadline) throw new Error(`the sentinel names ${named} (not ${port}) or knows no usable replica within ${timeoutMs} ms: ${replicas}`);
        await sleep(50);
      }
    },
    stop: () => server.stop(),
  };
  await eventuallyTrue(async () => (await masterPort().catch(() => undefined)) === options.master.port, `the sentinel on port ${server.port} names port ${options.master.port}`);
  return sentinel;
}

/** A master, its replica and one sentinel watching them: what the Sentinel tests fail over. */
export interface SentinelSet {
  readonly master: RedisServer;
  readonly replica: RedisServer;
  readonly sentinel: RedisSentinel;
  stop(): Promise<void>;
}

/**
 * Starts a SentinelSet, every server with `password` (the sentinel with its own), over TLS only when `tls` is given,
 * and resolves once the replica is in sync and the sentinel names the master with a replica it could promote.
 */
export async function startSentinelSet(options: {
  readonly password: string;
  readonly sentinelPassword: string;
  readonly downAfterMs: number;
  readonly tls?: RedisTlsFiles;
  readonly authClients?: boolean;
}): Promise<SentinelSet> {
  const secure = options.tls === undefined ? {} : { tls: options.tls, authClients: options.authClients === true };
  // A demoted master resyncs in full (its last writes diverged): at once, not after the default 5 s wait for others.
  const sync = ['--repl-diskless-sync-delay', '0'];
  const started: { stop(): Promise<void> }[] = [];
  try {
    const master = await startRedis({ ...secure, password: options.password, args: sync });
    started.push(master);
    const replica = await startRedis({ ...secure, password: options.password, args: [...sync, '--replicaof', HOST, String(master.port)] });
    started.push(replica);
    await waitReplicating(replica, master.port);
    const sentinel = await startRedisSentinel({ master, downAfterMs: options.downAfterMs, password: options.sentinelPassword, masterPassword: options.password, ...secure });
    started.push(sentinel);
    await sentinel.waitMaster(master.port);
    return { master, replica, sentinel, stop: async () => { await sentinel.stop(); await Promise.all([master.stop(), replica.stop()]); } };
  } catch (error) {
    await Promise.all(started.map((server) => server.stop().catch(() => undefined)));
    throw error;
  }
}

async function answersPing(port: number): Promise<boolean> {
  try {
    // A server started with --requirepass answers NOAUTH: it is up all the same.
    return /^(\+PONG|-NOAUTH)/.test(await sendCommand(port, ['PING'], 500));
  } catch {
    return false;
  }
}

async function freePort(withBusPort: boolean): Promise<number> {
  for (;;) {
    const port = await bindAndRelease(0);
    if (!withBusPort) return port;
    // The cluster bus listens on port + 10000, which must exist and be free too.
    if (port + 10000 <= 65535 && (await canBind(port + 10000))) return port;
  }
}

function bindAndRelease(port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, HOST, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      server.close(() => resolve(bound));
    });
  });
}

async function canBind(port: number): Promise<boolean> {
  try {
    await bindAndRelease(port);
    return true;
  } catch {
    return false;
  }
}

function run(command: string, args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', (error) => reject(new Error(`cannot run ${command} (set REDIS_CLI_BIN?): ${error.message}`)));
    child.once('close', (code, signal) => resolve({ code: code ?? (signal === null ? -1 : 128), output }));
  });
}

async function eventuallyTrue(check: () => Promise<boolean>, what: string, timeoutMs = STARTUP_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
