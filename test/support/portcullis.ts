// Runs the built Portcullis (`node bin/portcullis.js serve --config <file>`) as a child process, the way operators run
// it. Needs `npm run build` first (bin/portcullis.js imports dist/src/cli/main.js).

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { PORTCULLIS_NODE_FLAGS } from '../../src/server/node-flags.js';
import { loadYamlFile, repoRoot, runCommand, type CommandResult, type HostPort } from './envoy.js';

export interface PortcullisInstance {
  /** host:port of the gRPC server, or `unix:/path` for a Unix socket, as logged in "portcullis listening". */
  grpcAddress: string;
  /** grpcAddress split (throws for a Unix socket address: see grpcSocket). */
  readonly grpc: HostPort;
  /** The socket's path when serving on a Unix socket (server.grpc.address: unix:…); undefined for host:port. */
  grpcSocket: string | undefined;
  /** http://host:port of the admin server. */
  adminUrl: string;
  /** The portcullis.yaml it was started with (a test may rewrite it to exercise reloads). */
  configFile: string;
  /** http://host:port of the composer listener, when server.http is set. */
  httpUrl: string | undefined;
  /** The pino JSON lines logged so far, parsed (lines that are not JSON are kept as `{ raw }`). */
  logs(): Record<string, unknown>[];
  /** Raw stdout + stderr so far. */
  output(): string;
  /** The Portcullis process (benchmarks read its CPU time from /proc). */
  readonly pid: number | undefined;
  /** SIGTERM and wait for exit (SIGKILL after 10s). Resolves to the exit code (null if killed by a signal). */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit: a crash, no draining. */
  kill(): Promise<void>;
}

export interface StartPortcullisOptions {
  /** Default 15s. */
  readyTimeoutMs?: number;
  /**
   * Send stdout (the JSON log) to this file instead of a pipe to this process. For benchmarks: with a pipe, every
   * log line (one per Check at info) wakes this process, which is also the load generator, and is kept in its heap.
   * The file is read only when logs() or output() is called, and while waiting for "portcullis listening".
   */
  logFile?: string;
  /** Node flags for the Portcullis process only (a benchmark's `--trace-gc`, `--cpu-prof`), after runtimeFlags. */
  nodeArgs?: readonly string[];
  /** The flags Portcullis is shipped with (PORTCULLIS_NODE_FLAGS, the default); a benchmark's A/B run may drop them. */
  runtimeFlags?: readonly string[];
  /** Serve this portcullis.yaml (a ConfigMap-style link, say) instead of writing `config` to a temp file. */
  configFile?: string;
  /** The process's working directory (default: the repository); a relative configFile is relative to it. */
  cwd?: string;
  /** Added to this process's environment (NODE_EXTRA_CA_CERTS, say). */
  env?: Readonly<Record<string, string>>;
  /**
   * Run under util-linux's `prlimit --nofile=N:N` (the pid stays Portcullis'): its file descriptor limit, and its
   * workers'. Soft and hard, as Node raises its soft limit to the hard one at start-up.
   */
  fdLimit?: number;
}

/** bin/portcullis.js, or the node script named by PORTCULLIS_BIN (to run the tests against another build). */
export function portcullisBin(): string {
  const override = process.env['PORTCULLIS_BIN'];
  if (override !== undefined && override !== '') return override;
  const bin = path.join(repoRoot(), 'bin', 'portcullis.js');
  if (!existsSync(bin)) throw new Error(`${bin} is missing`);
  if (!existsSync(path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error('dist/src/cli/main.js is missing: run `npm run build` first');
  }
  return bin;
}

/** The temp dirs writeConfig made, removed when the test process exits (a caller need not clean up). */
const configDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of configDirs) rmSync(dir, { recursive: true, force: true });
});

/** Writes a config object as YAML into a fresh temp dir; relative paths in it are then relative to that dir. */
export function writeConfig(config: object): { file: string; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-config-'));
  configDirs.add(dir);
  const file = path.join(dir, 'portcullis.yaml');
  writeFileSync(file, stringifyYaml(config));
  return { file, dir };
}

/** `portcullis validate --config file`. */
export function validatePortcullisConfig(file: string): Promise<CommandResult> {
  return runCommand(process.execPath, [portcullisBin(), 'validate', '--config', file]);
}

/**
 * Starts Portcullis with `config` (an object written as YAML to a temp file; use absolute paths for `descriptors`)
 * and resolves once it logged "portcullis listening".
 */
export async function startPortcullis(
  config: object,
  options: StartPortcullisOptions = {},
): Promise<PortcullisInstance> {
  const bin = portcullisBin();
  const { file, dir } = options.configFile === undefined ? writeConfig(config) : { file: options.configFile, dir: undefined };
  const logFd = options.logFile === undefined ? undefined : openSync(options.logFile, 'w');
  const node = [process.execPath, ...(options.runtimeFlags ?? PORTCULLIS_NODE_FLAGS), ...(options.nodeArgs ?? []), bin, 'serve', '--config', file];
  const command = options.fdLimit === undefined ? node : ['prlimit', `--nofile=${options.fdLimit}:${options.fdLimit}`, '--', ...node];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: options.cwd ?? repoRoot(),
    env: { ...process.env, ...options.env },
    stdio: ['ignore', logFd ?? 'pipe', 'pipe'],
  });
  if (logFd !== undefined) closeSync(logFd);

  let output = '';
  const logs: Record<string, unknown>[] = [];
  let pending = '';
  let onLine: ((line: Record<string, unknown>) => void) | undefined;
  const collect = (chunk: string): void => {
    output += chunk;
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (text.trim() === '') continue;
      const line = parseLogLine(text);
      logs.push(line);
      onLine?.(line);
    }
  };
  /** With logFile: collects what the file gained since the last call. */
  const readLogFile = fileTail(options.logFile, collect);
  child.stdout?.setEncoding('utf8').on('data', collect);
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));

  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));

  const stop = async (): Promise<number | null> => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      void exited.then(() => clearTimeout(timer));
    }
    const code = await exited;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    return code;
  };

  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  const poll = readLogFile === undefined ? undefined : setInterval(readLogFile, 20);
  let listening: Record<string, unknown>;
  try {
    listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "portcullis listening" line within ${timeoutMs}ms`)), timeoutMs);
      const found = logs.find(isListeningLine);
      if (found !== undefined) {
        clearTimeout(timer);
        resolve(found);
        return;
      }
      onLine = (line) => {
        if (!isListeningLine(line)) return;
        clearTimeout(timer);
        resolve(line);
      };
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`portcullis exited with code ${code} before listening`));
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`portcullis did not start: ${reason}\n--- portcullis output ---\n${output}`);
  } finally {
    onLine = undefined;
    clearInterval(poll);
  }

  const grpcAddress = String(listening['grpcAddress']);
  const adminAddress = String(listening['adminAddress']);
  const httpAddress = listening['httpAddress'];
  const grpcSocket = grpcAddress.startsWith('unix:') ? grpcAddress.slice('unix:'.length) : undefined;
  return {
    grpcAddress,
    get grpc() {
      return splitHostPort(grpcAddress);
    },
    grpcSocket,
    adminUrl: `http://${adminAddress}`,
    configFile: file,
    httpUrl: typeof httpAddress === 'string' ? `http://${httpAddress}` : undefined,
    logs: () => {
      readLogFile?.();
      return logs;
    },
    output: () => {
      readLogFile?.();
      return output;
    },
    pid: child.pid,
    stop,
    async kill(): Promise<void> {
      if (!gone) child.kill('SIGKILL');
      await exited;
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads `file` from where the last call stopped and hands the new text to `collect`; undefined without a file. */
function fileTail(file: string | undefined, collect: (text: string) => void): (() => void) | undefined {
  if (file === undefined) return undefined;
  const decoder = new TextDecoder();
  const buffer = Buffer.alloc(64 * 1024);
  let offset = 0;
  return () => {
    const fd = openSync(file, 'r');
    try {
      let n: number;
      while ((n = readSync(fd, buffer, 0, buffer.length, offset)) > 0) {
        offset += n;
        collect(decoder.decode(buffer.subarray(0, n), { stream: true }));
      }
    } finally {
      closeSync(fd);
    }
  };
}

function isListeningLine(line: Record<string, unknown>): boolean {
  return line['msg'] === 'portcullis listening';
}

function parseLogLine(text: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // not JSON: kept raw below
  }
  return { raw: text };
}

/** "127.0.0.1:8081" or "[::1]:8081" → { host, port }. */
export function splitHostPort(address: string): HostPort {
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    throw new Error(`not a host:port address: ${address}`);
  }
  return { host: match[1], port: Number(match[2]) };
}

/** envoy/portcullis.yaml with free ports, the shipped descriptor directory (absolute) and the given Redis. */
export function shippedPortcullisConfig(redisUrl: string | undefined, options: { apiKeysFile?: string } = {}): Record<string, unknown> {
  const config = loadYamlFile('envoy/portcullis.yaml');
  const ratelimit = config['ratelimit'] as Record<string, unknown>;
  const authz = config['authz'] as Record<string, unknown> | undefined;
  const apiKeys = authz?.['api_keys'] as Record<string, unknown> | undefined;
  const { redis: _exampleRedis, ...rest } = config;
  return {
    ...rest,
    server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
    ...(redisUrl === undefined ? {} : { redis: { url: redisUrl } }),
    ratelimit: { ...ratelimit, descriptors: path.join(repoRoot(), 'envoy', String(ratelimit['descriptors'])) },
    ...(authz === undefined ? {} : {
      authz: {
        ...authz,
        ...(apiKeys === undefined ? {} : { api_keys: { ...apiKeys, file: options.apiKeysFile ?? path.join(repoRoot(), 'envoy', String(apiKeys['file'])) } }),
      },
    }),
  };
}
