// The observability deliverable with real parts: the gateway (real Envoy, Portcullis with the shipped configs on a
// real redis-server, the sample services), a real Prometheus (Debian's package) running the shipped
// deploy/prometheus/prometheus.yml with the test's targets and a 1 s scrape interval, traffic that produces every
// thing the dashboard shows (allowed requests, 401/403 from ext_authz, 403 from the /admin allow-list, 429s, cache
// MISS and HIT), then every target of the Grafana dashboard evaluated by Prometheus: a panel whose PromQL names a
// metric or label that does not exist is empty, and fails here. Also `promtool check metrics` on Portcullis' /metrics.
//
// The traffic comes in two rounds with a scrape between: a counter Envoy or Portcullis creates at its first event
// (the 429 and denial counters) enters Prometheus with that first value, which rate() cannot see as an increase.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ENABLED_FILTERS } from '../../src/gateway/filters.js';
import { eventually } from '../support/app.js';
import { repoRoot } from '../support/envoy.js';
import { send, startGateway, type Gateway } from '../support/gateway.js';
import { dashboardQueries, runTool, shippedPrometheusConfig, startPrometheus, type PrometheusInstance } from '../support/prometheus.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';

type Sample = { metric: Record<string, string>; value: number };
/** What a panel target's result must look like after the traffic: undefined when it does, else why not. */
type Expectation = (samples: Sample[]) => string | undefined;

const total = (samples: Sample[]): number => samples.reduce((sum, s) => sum + s.value, 0);
const positive: Expectation = (s) => (total(s) > 0 ? undefined : `expected > 0, got ${total(s)}`);
const zero: Expectation = (s) => (total(s) === 0 ? undefined : `expected 0, got ${total(s)}`);
const between = (low: number, high: number): Expectation => (s) =>
  s.every((x) => x.value > low && x.value < high) ? undefined : `expected each in (${low}, ${high}), got ${s.map((x) => x.value).join(', ')}`;
const seriesPositive = (label: string, ...values: string[]): Expectation => (s) => {
  const bad = values.filter((v) => !(total(s.filter((x) => x.metric[label] === v)) > 0));
  return bad.length === 0 ? undefined : `expected ${label}=${bad.join(', ')} > 0 in ${JSON.stringify(s)}`;
};

/** Panel title and refId → the value the traffic below must produce. Targets not listed must be non-empty and finite. */
const EXPECTED: Readonly<Record<string, Expectation>> = {
  'Requests per second A': seriesPositive('envoy_http_conn_manager_prefix', 'http'),
  'Requests per second B': seriesPositive('envoy_response_code_class', '2', '4'),
  'Rate limited (429) per second A': positive,
  'Rate limited (429) per second B': seriesPositive('domain', 'gateway'),
  'Rate limited (429) per second C': zero,
  'Denials per second A': positive,
  'Denials per second B': zero,
  'Denials per second C': positive,
  'Response cache hit ratio A': between(0, 1),
  'Portcullis latency A': between(0, 1),
  'Portcullis latency B': between(0, 1),
  'Portcullis latency C': between(0, 2),
};

/** Fresh API keys (hashes in a keys file): each key and owner its own, so no per-key or per-user budget is shared. */
function testKeys(names: readonly string[]) {
  const keys = names.map((id) => ({ id, key: `pk_test_${randomBytes(24).toString('base64url')}` }));
  const yaml = stringify(keys.map((k) => ({ id: k.id, sha256: createHash('sha256').update(k.key).digest('hex'), owner: `owner-${k.id}`, tier: 'test' })));
  return { yaml, header: (id: string) => ({ 'x-api-key': keys.find((k) => k.id === id)!.key }) };
}

describe('Prometheus and the Grafana dashboard over the real gateway', () => {
  let redis: RedisServer | undefined;
  let gateway: Gateway | undefined;
  let prometheus: PrometheusInstance | undefined;
  const keys = testKeys(['plain', 'cache-1', 'cache-2', 'export-1', 'export-2', 'export-3']);
  const keysDir = mkdtempSync(path.join(tmpdir(), 'portcullis-observability-keys-'));

  before(async () => {
    writeFileSync(path.join(keysDir, 'keys.yaml'), keys.yaml);
    redis = await startRedis();
    gateway = await startGateway({ redisUrl: redis.url, filters: ENABLED_FILTERS, apiKeysFile: path.join(keysDir, 'keys.yaml') });
    // Envoy as docker-compose has Prometheus scrape it: through the metrics listener, not the admin interface.
    prometheus = await startPrometheus(shippedPrometheusConfig({
      envoy: `127.0.0.1:${gateway.port('metrics')}`,
      portcullis: new URL(gateway.portcullis.adminUrl).host,
    }));
  });

  after(async () => {
    await prometheus?.stop();
    await gateway?.stop();
    await redis?.stop();
    rmSync(keysDir, { recursive: true, force: true });
  });

  const gw = (): Gateway => {
    if (gateway === undefined) throw new Error('gateway not started');
    return gateway;
  };
  const prom = (): PrometheusInstance => {
    if (prometheus === undefined) throw new Error('prometheus not started');
    return prometheus;
  };
  const http = (pathname: string, options: Parameters<typeof send>[2] = {}) => send(gw().port('http'), pathname, options);

  /** Allowed requests, every kind of denial, a cache MISS then HIT, and /api/export (10 a minute) until a 429. */
  const traffic = async (round: number): Promise<void> => {
    for (let i = 0; i < 5; i += 1) assert.equal((await http('/api/users/1')).status, 200);
    // Round 2's only ext_authz denial is on /admin, a direct response: the denial panel must count it without an
    // upstream cluster (Envoy's per-cluster ext_authz stats miss it).
    if (round === 1) assert.equal((await http('/api/orders')).status, 401, 'no credential');
    const forbidden = await http('/admin/stats', { localAddress: '127.0.0.1', headers: keys.header('plain') });
    assert.equal(forbidden.json?.['error'], 'forbidden', `ext_authz: no admin role (${forbidden.status})`);
    const outside = await http('/admin/stats', { localAddress: '127.0.0.2' });
    assert.equal(outside.status, 403, 'the /admin allow-list');
    assert.match(outside.body, /RBAC/);
    const cacheKey = keys.header(`cache-${round}`);
    assert.equal((await http('/api/catalog/featured', { headers: cacheKey })).headers['x-cache-status'], 'MISS');
    await eventually(async () => (await http('/api/catalog/featured', { headers: cacheKey })).headers['x-cache-status'] === 'HIT', 5000, 'a cache HIT');
    let limited = false;
    // 11 at most, but a minute boundary during the loop starts a new window.
    for (let i = 0; i < 25 && !limited; i += 1) {
      const reply = await http('/api/export', { headers: keys.header(`export-${(i % 3) + 1}`) });
      assert.ok(reply.status === 200 || reply.status === 429, `${reply.status} ${reply.body}`);
      limited = reply.status === 429;
    }
    assert.ok(limited, 'a 429 from the export limit');
  };

  /** Resolves once Prometheus scraped every target, successfully, after `since`. */
  const scrapedAfter = (since: number) => eventually(async () => {
    const targets = await prom().lastScrapes();
    return targets.length === 2 && targets.every((t) => t.health === 'up' && t.lastScrapeMs > since);
  }, 15_000, 'a successful scrape of envoy and portcullis');

  it('every panel of the dashboard shows data, and the values the traffic implies', async () => {
    await scrapedAfter(Date.now());
    await traffic(1);
    await scrapedAfter(Date.now());
    await traffic(2);

    const dashboard: unknown = JSON.parse(readFileSync(path.join(repoRoot(), 'deploy/grafana/dashboards/portcullis.json'), 'utf8'));
    // Grafana's $__rate_interval with a 1 s scrape interval is 4 s; the test's points are a minute old at most.
    const queries = dashboardQueries(dashboard, { rate: '1m', interval: '15s', range: '5m' });
    assert.ok(queries.length >= 10, `${queries.length} targets`);
    for (const name of Object.keys(EXPECTED)) {
      assert.ok(queries.some((q) => `${q.panel} ${q.refId}` === name), `the dashboard has no target ${name}`);
    }
    let problems: string[] = [];
    // Envoy publishes histograms every 5 s (stats_flush_interval) and Prometheus scrapes every second.
    await eventually(async () => {
      problems = [];
      for (const q of queries) {
        const samples = await prom().query(q.expr);
        const name = `${q.panel} ${q.refId}`;
        if (samples.length === 0) problems.push(`${name}: empty: ${q.expr}`);
        else if (!samples.every((s) => Number.isFinite(s.value))) problems.push(`${name}: not a number: ${JSON.stringify(samples)}: ${q.expr}`);
        else {
          const wrong = EXPECTED[name]?.(samples);
          if (wrong !== undefined) problems.push(`${name}: ${wrong}: ${q.expr}`);
        }
      }
      return problems.length === 0;
    }, 20_000, 'every panel').catch(() => assert.fail(problems.join('\n')));
  });

  it('promtool check metrics finds nothing to report in Portcullis\' /metrics (after that traffic)', async () => {
    const metrics = await (await fetch(`${gw().portcullis.adminUrl}/metrics`)).text();
    for (const family of ['portcullis_ratelimit_decisions_total', 'portcullis_authz_checks_total', 'portcullis_extproc_cache_total']) {
      assert.match(metrics, new RegExp(`^${family}\\{`, 'm'), `${family} has samples`);
    }
    const result = await runTool('promtool', ['check', 'metrics'], metrics);
    assert.equal(result.code, 0, result.output);
    assert.equal(result.output.trim(), '');
  });
});
