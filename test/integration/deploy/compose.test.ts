// The container layout: docker-compose.yml is valid (`docker-compose config -q`, no daemon needed), its services are
// the ones Envoy's compose bootstrap and Prometheus talk to, the Dockerfile has the promised stages, and the
// Prometheus config and Grafana dashboard load and only query Portcullis metrics that exist.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { IMAGES } from '../../../src/gateway/render.js';
import { UPSTREAM_SERVICES } from '../../../src/gateway/topology.js';
import { repoRoot, runCommand } from '../../support/envoy.js';

const read = (file: string): string => readFileSync(path.join(repoRoot(), file), 'utf8');
type Json = Record<string, unknown>;

describe('docker-compose and observability files', () => {
  it('docker-compose config -q accepts docker-compose.yml', async () => {
    const result = await runCommand('docker-compose', ['-f', path.join(repoRoot(), 'docker-compose.yml'), 'config', '-q']);
    assert.equal(result.code, 0, `${result.output}\n(docker-compose comes from Debian's docker-compose package; scripts/setup.sh installs it)`);
  });

  it('docker-compose config -q rejects a broken compose file (the check is real)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-compose-'));
    try {
      writeFileSync(path.join(dir, 'docker-compose.yml'), 'services:\n  envoy:\n    image: x\n    ports: 8080\n    depends_on: { nope: 1 }\n');
      const result = await runCommand('docker-compose', ['-f', path.join(dir, 'docker-compose.yml'), 'config', '-q']);
      assert.notEqual(result.code, 0, result.output);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs every sample service, Portcullis, Redis, Envoy (pinned), Prometheus and Grafana', () => {
    const compose = parse(read('docker-compose.yml')) as { services: Record<string, Json> };
    const names = Object.keys(compose.services);
    for (const name of ['envoy', 'portcullis', 'redis', 'prometheus', 'grafana', ...UPSTREAM_SERVICES.map((s) => s.service)]) {
      assert.ok(names.includes(name), `service ${name} missing from ${names.join(', ')}`);
    }
    assert.equal(compose.services['envoy']?.['image'], IMAGES.envoy);
    const version = /^envoyproxy\/envoy:v(\d+\.\d+\.\d+)$/.exec(IMAGES.envoy)?.[1];
    assert.ok(version !== undefined, IMAGES.envoy);
    assert.ok(read('scripts/setup.sh').includes(`ENVOY_VERSION=${version}\n`), 'the image and the tested wheel are the same Envoy version');
    // Every host name in the compose bootstrap is a compose service.
    const hosts = [...read('envoy/envoy.compose.yaml').matchAll(/ address: ([a-z][a-z0-9-]*)\n/g)].map((m) => m[1]!);
    assert.ok(hosts.length > 0);
    for (const host of hosts) assert.ok(names.includes(host), `envoy.compose.yaml points at ${host}, not a service`);
  });

  it('a sample service shares a network with Envoy only: Portcullis, Redis and the monitoring are out of its reach', () => {
    const compose = parse(read('docker-compose.yml')) as { services: Record<string, { networks?: string[] }> };
    const networksOf = (name: string): string[] => compose.services[name]?.networks ?? ['default'];
    const samples = new Set(UPSTREAM_SERVICES.map((s) => s.service));
    for (const sample of samples) {
      for (const [name] of Object.entries(compose.services)) {
        if (name === sample || samples.has(name)) continue;
        const shared = networksOf(sample).filter((n) => networksOf(name).includes(n));
        if (name === 'envoy') assert.ok(shared.length > 0, `${sample} cannot reach envoy`);
        else assert.deepEqual(shared, [], `${sample} shares ${shared.join(', ')} with ${name}`);
      }
    }
    // What each control-plane service must reach.
    for (const [from, to] of [['envoy', 'portcullis'], ['portcullis', 'redis'], ['prometheus', 'envoy'], ['prometheus', 'portcullis'], ['grafana', 'prometheus']] as const) {
      assert.ok(networksOf(from).some((n) => networksOf(to).includes(n)), `${from} cannot reach ${to}`);
    }
  });

  it('builds Portcullis in stages: build, slim non-root runtime with a /readyz HEALTHCHECK, samples', () => {
    const dockerfile = read('Dockerfile');
    assert.match(dockerfile, /^FROM node:26-bookworm-slim AS build$/m);
    assert.match(dockerfile, /^FROM node:26-bookworm-slim AS runtime$/m);
    assert.match(dockerfile, /^FROM runtime AS samples$/m);
    const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime'), dockerfile.indexOf('AS samples'));
    assert.match(runtime, /^USER node$/m);
    assert.match(runtime, /^HEALTHCHECK [^\n]*\\\n[^\n]*\/readyz/m);
    assert.doesNotMatch(runtime, /npm (ci|install)/, 'no dev toolchain in the runtime stage');
  });

  it('Prometheus scrapes Envoy and Portcullis where compose runs them', () => {
    const config = parse(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[] };
    const jobs = Object.fromEntries(config.scrape_configs.map((j) => [j.job_name, j]));
    assert.deepEqual(jobs['envoy']?.static_configs[0]?.targets, ['envoy:9902']);
    assert.equal(jobs['envoy']?.metrics_path, '/stats/prometheus');
    assert.deepEqual(jobs['portcullis']?.static_configs[0]?.targets, ['portcullis:9091']);
    assert.equal(jobs['portcullis']?.metrics_path, '/metrics');
    const portcullisConfig = parse(read('envoy/portcullis.compose.yaml')) as { server: { admin: { address: string } } };
    assert.equal(portcullisConfig.server.admin.address, '0.0.0.0:9091');
  });

  it('the Grafana dashboard loads and has the promised panels over the provisioned data source', () => {
    type Panel = { type?: string; title: string; datasource: { uid: string }; targets: { expr: string }[]; panels?: Panel[] };
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/portcullis.json')) as { uid: string; panels: Panel[] };
    const datasource = parse(read('deploy/grafana/provisioning/datasources/prometheus.yaml')) as { datasources: { uid: string; jsonData?: { timeInterval?: string } }[] };
    // Rows group the panels (an expanded row's panels follow it; a collapsed one holds them).
    const panels = dashboard.panels.flatMap((p) => (p.type === 'row' ? p.panels ?? [] : [p]));
    const titles = panels.map((p) => p.title);
    for (const wanted of [/Requests/, /429/, /Denials/, /cache hit ratio/i, /Portcullis latency/, /Check latency/, /ProcessingRequest latency/, /Config reloads/, /Event loop/]) {
      assert.ok(titles.some((t) => wanted.test(t)), `no panel like ${wanted} in ${titles.join(', ')}`);
    }
    // Grafana's $__rate_interval is at least 4 scrape intervals of the data source: it must know Prometheus' interval.
    const prometheus = parse(read('deploy/prometheus/prometheus.yml')) as { global: { scrape_interval: string } };
    assert.equal(datasource.datasources[0]?.jsonData?.timeInterval, prometheus.global.scrape_interval);
    const metricsSource = read('src/observability/metrics.ts') + read('src/observability/extproc-metrics.ts');
    let checked = 0;
    for (const panel of panels) {
      assert.equal(panel.datasource.uid, datasource.datasources[0]?.uid);
      assert.ok(panel.targets.length > 0 && panel.targets.every((t) => t.expr.trim() !== ''), panel.title);
      for (const target of panel.targets) {
        // Node's process metrics (portcullis_process_*, portcullis_nodejs_*) are prom-client's: the e2e test reads them.
        for (const [name] of target.expr.matchAll(/portcullis_(?!process_|nodejs_)[a-z_]+?(?=_bucket|\{|\[|\)| )/g)) {
          checked += 1;
          assert.ok(metricsSource.includes(`'${name}'`), `dashboard uses ${name}, which src/observability/ does not define`);
        }
      }
    }
    assert.ok(checked >= 20, 'the panels query Portcullis metrics');
  });
});
