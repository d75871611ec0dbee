// The observability deliverable with real parts: the gateway (real Envoy, Portcullis with the shipped configs on a
// real redis-server, the sample services), a real Prometheus (Debian's package) running the shipped
// deploy/prometheus/prometheus.yml with the test's targets and a 1 s scrape interval, traffic that produces every
// thing the dashboard shows (allowed requests, 401/403 from ext_authz, 403 from the /admin allow-list, 429s, cache
// MISS and HIT, a JWT verified then found in the verified-token cache, JWKS refreshes failing, a validation failure,
// a 429 from the local over-limit cache, a broken config reload then a good one), then every target of the Grafana
// dashboard evaluated by Prometheus: a panel whose PromQL names a metric or label that does not exist is empty, and
// fails here. Also `promtool check metrics` on Portcullis' /metrics, and the alerting rules (deploy/prometheus/alerts.yml,
// which the same Prometheus loads): each reads metrics that exist, evaluates without an error, and is not active after
// that traffic; a rejected config edit makes PortcullisConfigRejected pending. Then Envoy's ext_proc counters, which
// that gateway never moves, from two more Envoys whose processor is down or too slow (EnvoyExtProcFailing pending).
//
// The shipped gateway uses no JWT, validation or local cache: the test adds them to its Portcullis config (a JWT
// provider on a test issuer accepted by the `orders` policy, a `validate` route on /api/search,
// ratelimit.local_cache) so that those panels show what they are for.
//
// A target that ends in `or vector(0)` (a labelled counter Portcullis creates at its first event, such as store
// errors) shows 0 whatever it names: each metric a target names must therefore be one Portcullis declares on
// /metrics (every family has its # TYPE line from the start) or one Prometheus holds from Envoy.
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
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { ENABLED_FILTERS } from '../../src/gateway/filters.js';
import { eventually } from '../support/app.js';
import { at, byName, extprocBootstrap, list, record, repoRoot, startEnvoy, type EnvoyInstance } from '../support/envoy.js';
import { freeLoopbackPort, send, startGateway, type Gateway } from '../support/gateway.js';
import { startIdentityProvider, type IdentityProvider } from '../support/identity-provider.js';
import {
  PORTCULLIS_SUPERVISOR_METRICS, PORTCULLIS_TLS_METRICS, dashboardQueries, metricNames, runTool, shippedAlertRules, shippedPrometheusConfig, startPrometheus, type PrometheusInstance,
} from '../support/prometheus.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

type Sample = { metric: Record<string, string>; value: number };
/** What a panel target's result must look like after the traffic: undefined when it does, else why not. */
type Expectation = (samples: Sample[]) => string | undefined;

const total = (samples: Sample[]): number => samples.reduce((sum, s) => sum + s.value, 0);
const positive: Expectation = (s) => (total(s) > 0 ? undefined : `expected > 0, got ${total(s)}`);
const zero: Expectation = (s) => (total(s) === 0 ? undefined : `expected 0, got ${total(s)}`);
const between = (low: number, high: number): Expectation => (s) =>
  s.every((x) => x.value > low && x.value < high) ? undefined : `expected each in (${low}, ${high}), got ${s.map((x) => x.value).join(', ')}`;
/** Each value in [low, high): a gauge or quantile that may well be 0. */
const within = (low: number, high: number): Expectation => (s) =>
  s.every((x) => x.value >= low && x.value < high) ? undefined : `expected each in [${low}, ${high}), got ${s.map((x) => x.value).join(', ')}`;
const seriesPositive = (label: string, ...values: string[]): Expectation => (s) => {
  const bad = values.filter((v) => !(total(s.filter((x) => x.metric[label] === v)) > 0));
  return bad.length === 0 ? undefined : `expected ${label}=${bad.join(', ')} > 0 in ${JSON.stringify(s)}`;
};
/** Every series has one of `values` as its `label`: nothing the traffic did not cause. */
const seriesOnly = (label: string, ...values: string[]): Expectation => (s) => {
  const other = s.filter((x) => !values.includes(x.metric[label] ?? ''));
  return other.length === 0 ? undefined : `expected only ${label}=${values.join('|')}, got ${JSON.stringify(other)}`;
};
const all = (...checks: Expectation[]): Expectation => (s) => checks.map((check) => check(s)).find((wrong) => wrong !== undefined);
const MiB = 1024 * 1024;

/** Panel title and refId → the value the traffic below must produce; every target of the dashboard has one. */
const EXPECTED: Readonly<Record<string, Expectation>> = {
  // Gateway overview.
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
  'Portcullis latency D': between(0, 1),
  'Portcullis latency E': between(0, 1),
  'Outlier ejections and circuit breakers A': zero,
  'Outlier ejections and circuit breakers B': zero,
  'Outlier ejections and circuit breakers C': within(0, 1000),
  // ext_authz: allowed requests, the 401 (round 1) and 403 on /admin, a JWT missed then found twice.
  'Checks per second A': all(seriesPositive('decision', 'allow', 'deny'), seriesOnly('decision', 'allow', 'deny')),
  'Check latency A': between(0, 1),
  'Check latency B': between(0, 1),
  'Denials by reason A': all(seriesPositive('reason', 'forbidden'), seriesOnly('reason', 'forbidden', 'missing_credentials')),
  'Denials by policy A': all(seriesPositive('policy', 'admin'), seriesOnly('policy', 'admin', 'orders')),
  'Verified-token cache hit ratio A': all(between(0, 1), seriesOnly('cache', 'jwt')),
  'ext_authz dependency and service errors A': all(seriesPositive('provider', 'idp'), seriesOnly('provider', 'idp')),
  'ext_authz dependency and service errors B': zero,
  'ext_authz dependency and service errors C': zero,
  'ext_authz dependency and service errors D': zero,
  'ext_authz dependency and service errors E': zero,
  // ext_proc: every request's headers, the cached route's responses, a refused /api/search.
  'ProcessingRequests per second A': seriesPositive('phase', 'request_headers', 'response_headers'),
  'ProcessingRequest latency A': between(0, 1),
  'ProcessingRequest latency B': between(0, 1),
  'Validation failures A': all(seriesPositive('status', '400'), seriesOnly('status', '400')),
  'ext_proc errors A': zero,
  'ext_proc errors B': zero,
  'ext_proc errors C': zero,
  'ext_proc errors D': zero,
  // Rate limit service: OK and OVER_LIMIT answers, the repeat after a 429 answered from the local cache.
  'Rate limit decisions A': all(seriesPositive('code', 'OK', 'OVER_LIMIT'), seriesOnly('code', 'OK', 'OVER_LIMIT')),
  'Rate limit store and service errors A': zero,
  'Rate limit store and service errors B': zero,
  'Local over-limit cache hits A': positive,
  'Metric label overflow A': zero,
  'Metric label overflow B': zero,
  'Metric label overflow C': zero,
  // The process: a broken reload and a good one in each round, the last a few seconds ago.
  'Config reloads A': all(seriesPositive('result', 'success', 'error'), seriesOnly('result', 'success', 'error')),
  'Running config age A': between(0, 60),
  'CPU A': between(0, 4),
  'Memory A': between(MiB, 4096 * MiB),
  'Memory B': between(MiB, 4096 * MiB),
  'Memory C': between(MiB, 4096 * MiB),
  // V8's default limit is a share of the memory it sees: from about 0.5 GiB (a small container) up to 4 GiB.
  'Memory D': between(256 * MiB, 8192 * MiB),
  'Event loop lag A': within(0, 1),
  'Event loop lag B': within(0, 1),
  'Event loop lag C': within(0, 2),
  'Open file descriptors A': between(5, 100_000),
  'Open file descriptors B': between(0, 1),
  'Log lines dropped A': zero,
};

/** Envoy counters created at their first event, which the traffic never causes: Prometheus cannot know the name. */
const ENVOY_AT_FIRST_EVENT: ReadonlySet<string> = new Set(['envoy_cluster_ratelimit_failure_mode_allowed']);

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
  let idp: IdentityProvider | undefined;
  const keys = testKeys(['plain', 'cache-1', 'cache-2', 'export-1', 'export-2', 'export-3']);
  const keysDir = mkdtempSync(path.join(tmpdir(), 'portcullis-observability-keys-'));

  before(async () => {
    writeFileSync(path.join(keysDir, 'keys.yaml'), keys.yaml);
    redis = await startRedis();
    idp = await startIdentityProvider();
    const provider = idp;
    gateway = await startGateway({
      redisUrl: redis.url, filters: ENABLED_FILTERS, apiKeysFile: path.join(keysDir, 'keys.yaml'),
      adjustPortcullisConfig: (config) => {
        const ratelimit = config['ratelimit'] as Record<string, unknown>;
        const authz = config['authz'] as Record<string, unknown> & { policies: Record<string, unknown>[] };
        const extproc = config['extproc'] as Record<string, unknown> & { routes: unknown[] };
        return {
          ...config,
          ratelimit: { ...ratelimit, local_cache: { enabled: true } },
          authz: {
            ...authz,
            // Refreshed every second: once the issuer is down, failures every second for the JWKS panel.
            jwt: { providers: [{ name: 'idp', issuer: provider.issuer, audiences: ['orders-api'], jwks: { uri: provider.jwksUrl }, refresh_seconds: 1 }] },
            policies: authz.policies.map((p) => (p['name'] === 'orders' ? { ...p, authenticate: [...(p['authenticate'] as string[]), 'jwt'] } : p)),
          },
          extproc: { ...extproc, routes: [{ name: 'search', match: { path_prefix: '/api/search' }, validate: { required_query_params: ['q'] } }, ...extproc.routes] },
        };
      },
    });
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
    await idp?.stop();
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
  const issuer = (): IdentityProvider => {
    if (idp === undefined) throw new Error('identity provider not started');
    return idp;
  };
  const http = (pathname: string, options: Parameters<typeof send>[2] = {}) => send(gw().port('http'), pathname, options);

  const logged = (msg: string): number => gw().portcullis.logs().filter((line) => line['msg'] === msg).length;

  /** A config edit with an unknown key (rejected, the last good config stays), then the file as it was (loaded). */
  const brokenThenGoodReload = async (): Promise<void> => {
    const file = gw().portcullis.configFile;
    const good = readFileSync(file, 'utf8');
    const rejected = logged('config rejected; keeping the last good config');
    writeFileSync(file, `${good}\nnot_a_setting: 1\n`);
    await eventually(() => logged('config rejected; keeping the last good config') > rejected, 10_000, 'the broken config rejected');
    const loaded = logged('config loaded');
    writeFileSync(file, good);
    await eventually(() => logged('config loaded') > loaded, 10_000, 'the config loaded again');
  };

  /**
   * A reload gone wrong and put right, allowed requests, every kind of denial, a JWT verified then taken from the
   * cache, a validation failure, a cache MISS then HIT, and /api/export (10 a minute) until a 429, then once more
   * (answered from the local over-limit cache).
   */
  const traffic = async (round: number): Promise<void> => {
    await brokenThenGoodReload();
    for (let i = 0; i < 5; i += 1) assert.equal((await http('/api/users/1')).status, 200);
    const bearer = { authorization: `Bearer ${await issuer().token({ sub: `jwt-user-${round}` })}` };
    for (let i = 0; i < 2; i += 1) assert.equal((await http('/api/orders', { headers: bearer })).status, 200, 'a JWT on /api/orders');
    // From now on every JWKS refresh fails; the key set already fetched keeps verifying.
    issuer().setMode('down');
    const invalid = await http('/api/search');
    assert.equal(invalid.status, 400, `validation: no q (${invalid.body})`);
    assert.match(String(invalid.headers['content-type']), /problem\+json/);
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
    // Answered from the local over-limit cache, unless a new minute began (then the other round's repeat counts).
    const again = await http('/api/export', { headers: keys.header('export-1') });
    assert.ok(again.status === 429 || again.status === 200, `${again.status} ${again.body}`);
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
    const targets = queries.map((q) => `${q.panel} ${q.refId}`);
    assert.equal(new Set(targets).size, targets.length, 'panel titles and refIds name one target each');
    assert.deepEqual(targets.filter((t) => !(t in EXPECTED)), [], 'targets without an expected value in EXPECTED');
    assert.deepEqual(Object.keys(EXPECTED).filter((t) => !targets.includes(t)), [], 'EXPECTED names targets the dashboard does not have');

    const known = await metricExists();
    const unknown = queries.flatMap((q) => metricNames(q.expr).filter((name) => !known(name)).map((name) => `${q.panel} ${q.refId}: ${name}`));
    assert.deepEqual(unknown, [], 'metrics neither Portcullis nor Envoy exports');

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

  /**
   * Whether a metric exists: Portcullis declares its families from the start (a supervisor's own series only with
   * workers, which this single process has not: the integration test finds those), Envoy's are in Prometheus.
   */
  const metricExists = async (): Promise<(name: string) => boolean> => {
    const exposition = await (await fetch(`${gw().portcullis.adminUrl}/metrics`)).text();
    const families = new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const envoyNames = new Set((await prom().query('count by (__name__) ({__name__=~"envoy_.+"})')).map((s) => s.metric['__name__']));
    return (name) => name.startsWith('portcullis_')
      ? families.has(name) || families.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram' || PORTCULLIS_SUPERVISOR_METRICS.includes(name) || PORTCULLIS_TLS_METRICS.includes(name)
      : envoyNames.has(name) || ENVOY_AT_FIRST_EVENT.has(name);
  };

  it('the alerting rules load, read only metrics that exist, and none is active on the gateway after that traffic', async () => {
    const shipped = shippedAlertRules();
    const known = await metricExists();
    const unknown = shipped.flatMap((r) => metricNames(r.expr).filter((name) => !known(name)).map((name) => `${r.alert}: ${name}`));
    assert.deepEqual(unknown, [], 'alerts on metrics neither Portcullis nor Envoy exports');

    // Every rule evaluated without an error. None can fire within this test (the shortest for: is a minute); an
    // active one is an expression true on a healthy gateway. Latency and event loop lag depend on the machine's load;
    // the test's issuer is down, so idp's JWKS refreshes fail (pending unless a success is still in the window).
    const mayBePending: Readonly<Record<string, (labels: Record<string, string>) => boolean>> = {
      PortcullisCheckSlow: () => true,
      PortcullisProcessingSlow: () => true,
      PortcullisEventLoopLag: () => true,
      PortcullisJwksRefreshFailing: (labels) => labels['provider'] === 'idp',
    };
    let problems: string[] = [];
    await eventually(async () => {
      const rules = await prom().alertingRules();
      problems = [
        ...shipped.filter((r) => !rules.some((loaded) => loaded.name === r.alert)).map((r) => `${r.alert} not loaded`),
        ...rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: health ${r.health} ${r.lastError ?? ''}`),
        ...rules.filter((r) => r.state !== 'inactive' && !(r.state === 'pending' && r.alerts.every((a) => mayBePending[r.name]?.(a.labels) === true)))
          .map((r) => `${r.name}: ${r.state} ${JSON.stringify(r.alerts.map((a) => a.labels))}`),
      ];
      return problems.length === 0;
    }, 10_000, 'every rule evaluated, none active').catch(() => assert.fail(problems.join('\n')));
  });

  it('PortcullisConfigRejected goes pending while the config files are rejected, and inactive once put right', async () => {
    const file = gw().portcullis.configFile;
    const good = readFileSync(file, 'utf8');
    const state = async (): Promise<string | undefined> => (await prom().alertingRules()).find((r) => r.name === 'PortcullisConfigRejected')?.state;
    assert.equal(await state(), 'inactive');
    const rejected = logged('config rejected; keeping the last good config');
    try {
      writeFileSync(file, `${good}\nnot_a_setting: 1\n`);
      await eventually(() => logged('config rejected; keeping the last good config') > rejected, 10_000, 'the broken config rejected');
      await eventually(async () => (await state()) === 'pending', 10_000, 'PortcullisConfigRejected pending');
    } finally {
      writeFileSync(file, good);
    }
    await eventually(async () => (await state()) === 'inactive', 10_000, 'PortcullisConfigRejected inactive after the good reload');
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

/**
 * EnvoyExtProcFailing reads Envoy's ext_proc counters, which the gateway above never moves: here two real Envoys
 * (envoy/extproc.yaml, failing open as the shipped gateway does) whose processor is down (nothing listens: the stream
 * fails) or never answers (each message times out after 0.2 s). Their admin /stats/prometheus shows which counter
 * counts which failure, and a Prometheus with the shipped rules scraping both sees the alert go pending for each.
 */
describe('EnvoyExtProcFailing over real Envoys whose ext_proc processor is down or too slow', () => {
  let upstream: Upstream | undefined;
  let silent: Http2Server | undefined;
  const envoys: { down?: EnvoyInstance; slow?: EnvoyInstance } = {};
  let prometheus: PrometheusInstance | undefined;

  /** envoy/extproc.yaml with its processor at `port`, failing open like the shipped gateway's ext_proc filter. */
  const failingOpen = (port: number): Record<string, unknown> => {
    const bootstrap = extprocBootstrap({ upstream: { host: '127.0.0.1', port: upstream!.port }, portcullis: { host: '127.0.0.1', port } });
    const listener = record(list(at(bootstrap, 'static_resources', 'listeners'))[0]);
    const hcm = record(at(byName(list(record(list(listener['filter_chains'])[0])['filters']), 'envoy.filters.network.http_connection_manager'), 'typed_config'));
    record(at(byName(list(hcm['http_filters']), 'envoy.filters.http.ext_proc'), 'typed_config'))['failure_mode_allow'] = true;
    return bootstrap;
  };

  before(async () => {
    upstream = await startUpstream();
    // Accepts the gRPC stream and never answers a message.
    silent = createHttp2Server();
    silent.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    });
    await new Promise<void>((resolve) => silent!.listen(0, '127.0.0.1', resolve));
    envoys.down = await startEnvoy(failingOpen(await freeLoopbackPort()));
    envoys.slow = await startEnvoy(failingOpen((silent.address() as AddressInfo).port));
    const config = shippedPrometheusConfig({ envoy: new URL(envoys.down.adminUrl).host, portcullis: `127.0.0.1:${await freeLoopbackPort()}` });
    const envoyJob = (config['scrape_configs'] as { job_name: string; static_configs: { targets: string[] }[] }[]).find((job) => job.job_name === 'envoy')!;
    envoyJob.static_configs = [{ targets: [new URL(envoys.down.adminUrl).host, new URL(envoys.slow.adminUrl).host] }];
    prometheus = await startPrometheus(config);
  });

  after(async () => {
    await prometheus?.stop();
    await envoys.down?.stop();
    await envoys.slow?.stop();
    silent?.close();
    await upstream?.stop();
  });

  /** Envoy's ext_proc counters as Prometheus scrapes them, by metric name (the listener's stat prefix is `ingress`). */
  const extprocCounters = async (envoy: EnvoyInstance): Promise<Record<string, number>> => {
    const text = await (await fetch(`${envoy.adminUrl}/stats/prometheus`)).text();
    return Object.fromEntries([...text.matchAll(/^(envoy_http_ext_proc_\w+)\{envoy_http_conn_manager_prefix="ingress"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  };

  it('counts a processor that is down in streams_failed and one too slow in message_timeouts, both failing open, and the alert goes pending', async () => {
    const down = envoys.down!;
    const slow = envoys.slow!;
    for (const envoy of [down, slow]) {
      const counters = await extprocCounters(envoy);
      // Created with the filter: 0 on an Envoy that has served nothing (no ratio then: the alert stays silent).
      for (const name of ['envoy_http_ext_proc_streams_started', 'envoy_http_ext_proc_streams_failed', 'envoy_http_ext_proc_message_timeouts', 'envoy_http_ext_proc_failure_mode_allowed']) {
        assert.equal(counters[name], 0, `${name} in ${JSON.stringify(counters)}`);
      }
    }
    const state = async (): Promise<{ state: string | undefined; instances: string[] }> => {
      const rule = (await prometheus!.alertingRules()).find((r) => r.name === 'EnvoyExtProcFailing');
      return { state: rule?.state, instances: (rule?.alerts ?? []).map((a) => a.labels['instance'] ?? '').sort() };
    };
    assert.equal((await state()).state, 'inactive');
    // Requests until both Envoys' failures are in two scrapes (rate() needs two points): each one goes on without
    // ext_proc to the upstream (failing open), answered 200.
    const expected = [down, slow].map((e) => new URL(e.adminUrl).host).sort();
    await eventually(async () => {
      for (const envoy of [down, slow]) {
        const reply = await fetch(`http://127.0.0.1:${envoy.listenerPort('ingress')}/api/items`);
        assert.equal(reply.status, 200, await reply.text());
      }
      const now = await state();
      return now.state === 'pending' && JSON.stringify(now.instances) === JSON.stringify(expected);
    }, 30_000, 'EnvoyExtProcFailing pending for both Envoys').catch(async (error: unknown) => assert.fail(`${(error as Error).message}: ${JSON.stringify(await state())}`));

    const [fromDown, fromSlow] = [await extprocCounters(down), await extprocCounters(slow)];
    assert.ok(fromDown['envoy_http_ext_proc_streams_failed']! > 0, JSON.stringify(fromDown));
    assert.equal(fromDown['envoy_http_ext_proc_message_timeouts'], 0, JSON.stringify(fromDown));
    assert.equal(fromDown['envoy_http_ext_proc_failure_mode_allowed'], fromDown['envoy_http_ext_proc_streams_failed'], JSON.stringify(fromDown));
    assert.ok(fromSlow['envoy_http_ext_proc_message_timeouts']! > 0, JSON.stringify(fromSlow));
    assert.equal(fromSlow['envoy_http_ext_proc_streams_failed'], 0, JSON.stringify(fromSlow));
    assert.equal(fromSlow['envoy_http_ext_proc_failure_mode_allowed'], fromSlow['envoy_http_ext_proc_message_timeouts'], JSON.stringify(fromSlow));
    for (const counters of [fromDown, fromSlow]) assert.ok(counters['envoy_http_ext_proc_streams_started']! > 0, JSON.stringify(counters));
  });
});
