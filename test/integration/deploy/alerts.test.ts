// The alerting rules (deploy/prometheus/alerts.yml) with Prometheus' own tools (Debian's prometheus package, which
// scripts/setup.sh installs): `promtool check rules`, and `promtool test rules` on deploy/prometheus/tests/ (each
// alert silent on an idle and on a busy healthy gateway, pending then firing on its failure). Then what promtool
// cannot see: every metric an alert or a test series names exists (Portcullis' on the /metrics of a real
// `portcullis serve`, a single process or a supervisor of two workers; Envoy's among those the dashboard reads and
// ENVOY_METRICS_ALERTS_ADD, which the e2e test finds in Envoy's output), every
// alert has a test that fires it, and the docs, prometheus.yml and docker-compose.yml agree with the file.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { repoRoot } from '../../support/envoy.js';
import { makeTestCertificates } from '../../support/grpc-tls.js';
import { shippedPortcullisConfig, startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { ENVOY_METRICS_ALERTS_ADD, PORTCULLIS_SUPERVISOR_METRICS, dashboardQueries, metricNames, runTool, shippedAlertRules } from '../../support/prometheus.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

const RULES = 'deploy/prometheus/alerts.yml';
const TESTS = 'deploy/prometheus/tests/alerts.test.yml';
const read = (file: string): string => readFileSync(path.join(repoRoot(), file), 'utf8');

type RuleTests = {
  rule_files: string[];
  tests: { input_series: { series: string; values: string }[]; alert_rule_test?: { eval_time: string; alertname: string; exp_alerts?: unknown[] }[] }[];
};

/** alerts.yml and its tests copied into a temp dir (the tests name the rules as ../alerts.yml), the rules edited. */
async function testRulesEdited(edit: (rules: { groups: { rules: Record<string, unknown>[] }[] }) => void): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-rules-'));
  try {
    const rules = parse(read(RULES)) as { groups: { rules: Record<string, unknown>[] }[] };
    edit(rules);
    writeFileSync(path.join(dir, 'alerts.yml'), stringify(rules));
    mkdirSync(path.join(dir, 'tests'));
    writeFileSync(path.join(dir, 'tests', 'alerts.test.yml'), read(TESTS));
    return await runTool('promtool', ['test', 'rules', path.join(dir, 'tests', 'alerts.test.yml')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('alerting rules', () => {
  it('promtool check rules accepts deploy/prometheus/alerts.yml, and rejects a broken rule (the check is real)', async () => {
    const result = await runTool('promtool', ['check', 'rules', path.join(repoRoot(), RULES)]);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /SUCCESS: \d+ rules found/);
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-rules-'));
    try {
      writeFileSync(path.join(dir, 'alerts.yml'), 'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum by (job (up)\n        for: 1m\n');
      assert.notEqual((await runTool('promtool', ['check', 'rules', path.join(dir, 'alerts.yml')])).code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('promtool test rules: each alert fires on its failure after its for:, and none on a healthy gateway', async () => {
    const result = await runTool('promtool', ['test', 'rules', path.join(repoRoot(), TESTS)]);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /SUCCESS/);
  });

  it('the rule tests can fail: without the for: durations, or with a threshold moved, they do', async () => {
    const noFor = await testRulesEdited((rules) => rules.groups.forEach((g) => g.rules.forEach((r) => delete r['for'])));
    assert.notEqual(noFor.code, 0, noFor.output);
    const lag = await testRulesEdited((rules) => {
      const rule = rules.groups.flatMap((g) => g.rules).find((r) => r['alert'] === 'PortcullisEventLoopLag');
      assert.ok(rule !== undefined);
      const expr = String(rule['expr']);
      rule['expr'] = expr.replace('> 0.1', '> 0.01');
      assert.notEqual(rule['expr'], expr);
    });
    assert.notEqual(lag.code, 0, lag.output);
    assert.match(lag.output, /PortcullisEventLoopLag/);
  });

  it('every alert has for:, a severity, what to look at and a runbook section in docs/gateway.md', () => {
    const rules = shippedAlertRules();
    assert.ok(rules.length >= 10, `${rules.length} alerts`);
    assert.equal(new Set(rules.map((r) => r.alert)).size, rules.length, 'one rule per alert name');
    const headings = new Set([...read('docs/gateway.md').matchAll(/^#{2,6} (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-')));
    for (const rule of rules) {
      assert.match(rule.for ?? '', /^\d+[smh]$/, `${rule.alert}: for:`);
      assert.ok(['warning', 'critical'].includes(rule.labels?.['severity'] ?? ''), `${rule.alert}: severity`);
      assert.ok((rule.annotations?.['summary'] ?? '').length > 10, `${rule.alert}: summary`);
      assert.ok((rule.annotations?.['description'] ?? '').length > 40, `${rule.alert}: description`);
      const runbook = /^docs\/gateway\.md#([a-z0-9_-]+)$/.exec(rule.annotations?.['runbook_url'] ?? '');
      assert.ok(runbook !== null, `${rule.alert}: runbook_url ${rule.annotations?.['runbook_url']}`);
      assert.ok(headings.has(runbook[1]!), `${rule.alert}: docs/gateway.md has no section #${runbook[1]}`);
    }
  });

  it('every alert is tested firing, and silent in the healthy groups (all alerts checked, none expected)', () => {
    const names = shippedAlertRules().map((r) => r.alert);
    const tests = parse(read(TESTS)) as RuleTests;
    assert.deepEqual(tests.rule_files, ['../alerts.yml']);
    const fired = new Set(tests.tests.flatMap((t) => t.alert_rule_test ?? []).filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname));
    assert.deepEqual(names.filter((n) => !fired.has(n)), [], 'alerts no test fires');
    assert.deepEqual([...fired].filter((n) => !names.includes(n)), [], 'tests of alerts that do not exist');
    const healthy = tests.tests.filter((t) => {
      const checks = t.alert_rule_test ?? [];
      return checks.every((c) => (c.exp_alerts ?? []).length === 0) && names.every((n) => checks.some((c) => c.alertname === n));
    });
    assert.ok(healthy.length >= 2, 'an idle and a busy healthy gateway, every alert checked silent');
  });

  it('prometheus.yml loads the rules and docker-compose mounts them beside it', () => {
    const config = parse(read('deploy/prometheus/prometheus.yml')) as { rule_files?: string[] };
    assert.deepEqual(config.rule_files, ['alerts.yml']);
    const compose = parse(read('docker-compose.yml')) as { services: { prometheus: { volumes: string[] } } };
    const volumes = compose.services.prometheus.volumes;
    assert.ok(volumes.includes('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro'), volumes.join(', '));
    for (const file of config.rule_files ?? []) {
      assert.ok(volumes.includes(`./deploy/prometheus/${file}:/etc/prometheus/${file}:ro`), `${file} not mounted: ${volumes.join(', ')}`);
    }
  });

  describe('metric names', () => {
    let portcullis: PortcullisInstance | undefined;
    // The supervisor's own series (worker restarts, workers running and configured) exist only with workers. Both
    // serve TLS: the certificate expiry exists only with server.grpc.tls.
    let supervisor: PortcullisInstance | undefined;
    let redis: RedisServer | undefined;
    let certs: string | undefined;
    before(async () => {
      certs = mkdtempSync(path.join(tmpdir(), 'pc-alerts-certs-'));
      const { server: cert_file, serverKey: key_file } = makeTestCertificates(certs);
      const withTls = (config: Record<string, unknown>, workers: number): Record<string, unknown> => {
        const server = config['server'] as { grpc: object };
        return { ...config, server: { ...server, grpc: { ...server.grpc, tls: { cert_file, key_file } }, workers } };
      };
      portcullis = await startPortcullis(withTls(shippedPortcullisConfig(undefined), 1));
      redis = await startRedis();
      supervisor = await startPortcullis(withTls(shippedPortcullisConfig(redis.url), 2), { readyTimeoutMs: 60_000 });
    });
    after(async () => {
      await portcullis?.stop();
      await supervisor?.stop();
      await redis?.stop();
      if (certs !== undefined) rmSync(certs, { recursive: true, force: true });
    });

    /** Names in the alert expressions and in the test series: a misspelt one would be misspelt in both. */
    const used = (): { where: string; name: string }[] => [
      ...shippedAlertRules().flatMap((r) => metricNames(r.expr).map((name) => ({ where: r.alert, name }))),
      ...(parse(read(TESTS)) as RuleTests).tests.flatMap((t) => t.input_series.map((s) => ({ where: TESTS, name: s.series.replace(/\{.*$/, '') }))),
    ];

    it('every Portcullis metric they read is on a real portcullis serve\'s /metrics, one process or workers: 2', async () => {
      const expositions = await Promise.all([portcullis!, supervisor!].map(async (p) => (await fetch(`${p.adminUrl}/metrics`)).text()));
      const families = new Map(expositions.flatMap((text) => [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const)));
      const supervisorOnly = [...(expositions[1]!.matchAll(/^# TYPE (\S+) /gm))].map((m) => m[1]!).filter((name) => !expositions[0]!.includes(`# TYPE ${name} `));
      assert.deepEqual(supervisorOnly.sort(), [...PORTCULLIS_SUPERVISOR_METRICS].sort(), 'the series only a supervisor exports');
      const known = (name: string): boolean => families.has(name) || families.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram';
      const names = used().filter((u) => u.name.startsWith('portcullis_'));
      assert.ok(names.length >= 10);
      assert.deepEqual([...new Set(names.filter((u) => !known(u.name)).map((u) => `${u.where}: ${u.name}`))], [], 'metrics Portcullis does not export');
    });

    it('every Envoy metric they read is one the dashboard reads, or one the e2e test finds in Envoy\'s output', () => {
      const dashboard: unknown = JSON.parse(read('deploy/grafana/dashboards/portcullis.json'));
      const queries = dashboardQueries(dashboard, { rate: '1m', interval: '15s', range: '5m' });
      const envoy = new Set([...queries.flatMap((q) => metricNames(q.expr)).filter((n) => n.startsWith('envoy_')), ...ENVOY_METRICS_ALERTS_ADD]);
      const names = used().filter((u) => u.name.startsWith('envoy_'));
      assert.ok(names.length >= 5);
      assert.deepEqual([...new Set(names.filter((u) => !envoy.has(u.name)).map((u) => `${u.where}: ${u.name}`))], [], 'Envoy metrics neither the dashboard nor the e2e test vouches for');
      // Nothing but Portcullis', Envoy's and Prometheus' own `up`.
      const others = used().filter((u) => !/^(portcullis|envoy)_/.test(u.name)).map((u) => u.name);
      assert.deepEqual([...new Set(others)], ['up']);
    });
  });
});
