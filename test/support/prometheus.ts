// A real Prometheus and promtool for the observability tests: Debian's `prometheus` package (scripts/setup.sh installs
// it), run directly, no container and no systemd. When a binary is missing the tests fail with a message that says
// how to get it: a tier that silently skips would look green without having run.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadYamlFile, repoRoot, type CommandResult } from './envoy.js';
import { freeLoopbackPort } from './gateway.js';

const MISSING = 'scripts/setup.sh installs it with Debian\'s prometheus package (apt-get install prometheus)';

/** Runs `bin` to completion with `input` on stdin; a missing binary is an error naming how to install it. */
export async function runTool(bin: 'prometheus' | 'promtool', args: readonly string[], input?: string): Promise<CommandResult> {
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stdin.on('error', () => {});
  child.stdin.end(input ?? '');
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' ? new Error(`${bin} is not installed: ${MISSING}`) : error));
    child.once('close', (exitCode) => resolve(exitCode ?? 128));
  });
  return { code, output };
}

/**
 * deploy/prometheus/prometheus.yml with every job's targets replaced by the test's (by job name) and a shorter
 * scrape interval: the shipped jobs and metrics paths are the ones exercised.
 */
export function shippedPrometheusConfig(targets: Readonly<Record<string, string>>, scrapeInterval = '1s'): Record<string, unknown> {
  const config = structuredClone(loadYamlFile('deploy/prometheus/prometheus.yml'));
  const jobs = config['scrape_configs'] as { job_name: string; static_configs: { targets: string[] }[] }[];
  const missing = Object.keys(targets).filter((name) => !jobs.some((job) => job.job_name === name));
  if (missing.length > 0) throw new Error(`deploy/prometheus/prometheus.yml has no job ${missing.join(', ')}`);
  for (const job of jobs) {
    const address = targets[job.job_name];
    if (address === undefined) throw new Error(`no test target for job ${job.job_name}`);
    job.static_configs = [{ targets: [address] }];
  }
  config['global'] = { ...(config['global'] as object), scrape_interval: scrapeInterval, evaluation_interval: scrapeInterval };
  // Relative to deploy/prometheus/, not to the temp dir the copy is written to (an unmatched glob loads no rules).
  const ruleFiles = (config['rule_files'] as string[] | undefined) ?? [];
  if (ruleFiles.length > 0) config['rule_files'] = ruleFiles.map((file) => path.resolve(repoRoot(), 'deploy/prometheus', file));
  return config;
}

export interface PrometheusInstance {
  url: string;
  /** An instant query at now: the result vector (or the error Prometheus gave). */
  query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** When each active target was last scraped (ms since the epoch), by job. */
  lastScrapes(): Promise<{ job: string; health: string; lastScrapeMs: number; lastError: string }[]>;
  /** The alerting rules loaded, each with its state (inactive, pending, firing), health and active alerts. */
  alertingRules(): Promise<LoadedAlertRule[]>;
  output(): string;
  stop(): Promise<void>;
}

export interface LoadedAlertRule {
  name: string;
  state: 'inactive' | 'pending' | 'firing';
  /** ok, err, or unknown before the first evaluation. */
  health: string;
  lastError?: string;
  alerts: { labels: Record<string, string>; state: string }[];
}

/** Starts Prometheus with `config` on a free loopback port and a temp TSDB; resolves once /-/ready answers 200. */
export async function startPrometheus(config: object, readyTimeoutMs = 15_000): Promise<PrometheusInstance> {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, stringify(config));
  const port = await freeLoopbackPort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn('prometheus', [
    `--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let failed: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      failed = error.code === 'ENOENT' ? new Error(`prometheus is not installed: ${MISSING}`) : error;
      resolve();
    });
    child.once('close', () => resolve());
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const stop = async (): Promise<void> => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      void exited.then(() => clearTimeout(timer));
    }
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (gone) {
      await stop();
      throw failed ?? new Error(`prometheus exited before it was ready:\n${output}`);
    }
    try {
      if ((await fetch(`${url}/-/ready`)).status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within ${readyTimeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    async query(expr) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
      if (body.status !== 'success' || body.data === undefined) throw new Error(`${expr}: ${body.error ?? response.status}`);
      if (body.data.resultType !== 'vector') throw new Error(`${expr}: a ${body.data.resultType}, not an instant vector`);
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async lastScrapes() {
      const body = (await (await fetch(`${url}/api/v1/targets?state=active`)).json()) as {
        data: { activeTargets: { labels: Record<string, string>; health: string; lastScrape: string; lastError: string }[] };
      };
      return body.data.activeTargets.map((t) => ({ job: t.labels['job'] ?? '', health: t.health, lastScrapeMs: Date.parse(t.lastScrape), lastError: t.lastError }));
    },
    async alertingRules() {
      const body = (await (await fetch(`${url}/api/v1/rules?type=alert`)).json()) as { data: { groups: { rules: LoadedAlertRule[] }[] } };
      return body.data.groups.flatMap((group) => group.rules);
    },
    output: () => output,
    stop,
  };
}

/** A Grafana panel target's PromQL, with Grafana's variables replaced the way Grafana would for a short range. */
export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
}

/**
 * Every target of every panel (rows' nested panels too), with `$__rate_interval`, `$__interval`, `$__range` (and
 * their `${…}` / `[[…]]` forms) replaced by `intervals`, and each templating variable by its current value (`.*` for
 * "All"). A `$` left over is a variable nobody defines: an error, as it would be an empty panel in Grafana.
 */
export function dashboardQueries(dashboard: unknown, intervals: { rate: string; interval: string; range: string }): PanelQuery[] {
  const board = dashboard as {
    panels?: { title: string; targets?: { refId: string; expr?: string; hide?: boolean }[]; panels?: unknown[] }[];
    templating?: { list?: { name: string; current?: { value?: string | string[] } }[] };
  };
  const values = new Map<string, string>([
    ['__rate_interval', intervals.rate], ['__interval', intervals.interval], ['__range', intervals.range],
  ]);
  for (const variable of board.templating?.list ?? []) {
    const current = variable.current?.value;
    const list = Array.isArray(current) ? current : current === undefined ? [] : [current];
    values.set(variable.name, list.length === 0 || list.includes('$__all') ? '.*' : list.join('|'));
  }
  const substitute = (expr: string): string => expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => {
    const value = values.get(a ?? b ?? c ?? '');
    if (value === undefined) throw new Error(`undefined Grafana variable ${whole} in ${expr}`);
    return value;
  });
  const queries: PanelQuery[] = [];
  const visit = (panels: NonNullable<typeof board.panels>): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (target.hide === true) continue;
        if (target.expr === undefined || target.expr.trim() === '') throw new Error(`${panel.title} ${target.refId}: no expr`);
        queries.push({ panel: panel.title, refId: target.refId, expr: substitute(target.expr) });
      }
      visit((panel.panels ?? []) as NonNullable<typeof board.panels>);
    }
  };
  visit(board.panels ?? []);
  return queries;
}

/** The Portcullis and Envoy metric names a PromQL expression reads (label names in `by (…)` and matchers are not). */
export function metricNames(expr: string): string[] {
  const bare = expr.replace(/\{[^}]*\}/g, '').replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  return [...new Set(bare.match(/\b(?:portcullis|envoy)_[a-zA-Z0-9_:]*/g) ?? [])];
}

/** An alerting rule of deploy/prometheus/alerts.yml (recording rules are not used). */
export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Every alerting rule of the rule files deploy/prometheus/prometheus.yml names. */
export function shippedAlertRules(): AlertRule[] {
  const config = loadYamlFile('deploy/prometheus/prometheus.yml');
  const files = (config['rule_files'] as string[] | undefined) ?? [];
  return files.flatMap((file) => {
    const rules = loadYamlFile(path.join('deploy/prometheus', file)) as { groups: { rules: AlertRule[] }[] };
    return rules.groups.flatMap((group) => group.rules);
  });
}

/**
 * Envoy metrics the alerts read that no dashboard panel does. The e2e test (test/e2e/observability.test.ts) finds
 * each in Envoy 1.40's output, like the dashboard's, and sees the ext_proc ones count a processor that is down or
 * too slow; test/integration/deploy/alerts.test.ts allows no other.
 */
export const ENVOY_METRICS_ALERTS_ADD: readonly string[] = [
  'envoy_cluster_membership_healthy',
  'envoy_http_ext_proc_streams_started',
  'envoy_http_ext_proc_streams_failed',
  'envoy_http_ext_proc_message_timeouts',
  'envoy_http_ext_proc_failure_mode_allowed',
];

/**
 * Portcullis series only a supervisor (server.workers > 1) exports: the e2e gateway runs one process, so its check
 * takes these on trust; test/integration/deploy/alerts.test.ts finds each on a real supervisor's /metrics.
 */
export const PORTCULLIS_SUPERVISOR_METRICS: readonly string[] = ['portcullis_worker_restarts_total', 'portcullis_workers_running', 'portcullis_workers_configured'];

/**
 * Portcullis series only a TLS gRPC listener (server.grpc.tls) exports: the e2e gateway serves plaintext, so its check
 * takes these on trust; test/integration/deploy/alerts.test.ts serves TLS and finds each on a real /metrics.
 */
export const PORTCULLIS_TLS_METRICS: readonly string[] = ['portcullis_grpc_tls_certificate_expiry_timestamp_seconds'];
