// deploy/prometheus/prometheus.yml through Prometheus' own checker (`promtool check config`, Debian's prometheus
// package, which scripts/setup.sh installs): the file docker-compose mounts, any rules files it names, and the copy
// the e2e test runs (test/e2e/observability.test.ts). promtool missing fails the test with how to install it.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { repoRoot } from '../../support/envoy.js';
import { runTool, shippedPrometheusConfig } from '../../support/prometheus.js';

const checkConfig = async (config: object | string): Promise<{ code: number; output: string }> => {
  const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-promtool-'));
  try {
    const file = path.join(dir, 'prometheus.yml');
    writeFileSync(file, typeof config === 'string' ? config : stringify(config));
    return await runTool('promtool', ['check', 'config', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

describe('promtool check config', () => {
  it('accepts deploy/prometheus/prometheus.yml and the rules files it names', async () => {
    const result = await runTool('promtool', ['check', 'config', path.join(repoRoot(), 'deploy/prometheus/prometheus.yml')]);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /SUCCESS/);
  });

  it('accepts the copy the e2e test runs (the test\'s targets, a 1 s scrape interval)', async () => {
    const result = await checkConfig(shippedPrometheusConfig({ envoy: '127.0.0.1:9902', portcullis: '127.0.0.1:9091' }));
    assert.equal(result.code, 0, result.output);
  });

  it('rejects a broken config (the check is real)', async () => {
    const result = await checkConfig('global: { scrape_interval: 5 }\nscrape_configs:\n  - job_name: envoy\n    static_configs: [{ targets: ["envoy"] }]\n    metrics_pth: /stats/prometheus\n');
    assert.notEqual(result.code, 0, result.output);
  });
});
