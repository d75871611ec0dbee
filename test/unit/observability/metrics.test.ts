import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import { EventEmitter } from 'node:events';
import { collectNodeMetrics, createLogMetrics, createMetrics } from '../../../src/observability/metrics.js';

describe('metrics across workers', () => {
  it('the config load timestamp is the oldest worker\'s, not a sum', async () => {
    const workers = [1_796_574_600, 1_796_574_684].map((seconds) => {
      const registry = new Registry();
      createMetrics(registry, 100).configLastSuccess.set(seconds);
      return registry;
    });
    const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    assert.match(await merged.metrics(), /^portcullis_config_last_success_timestamp_seconds 1796574600$/m);
  });

  it('the last rejected reload is the newest worker\'s: the alert compares it with the oldest success', async () => {
    const workers = [0, 1_796_574_684].map((seconds) => {
      const registry = new Registry();
      createMetrics(registry, 100).configLastFailure.set(seconds);
      return registry;
    });
    const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())));
    assert.match(await merged.metrics(), /^portcullis_config_last_failure_timestamp_seconds 1796574684$/m);
  });
});

describe('log lines dropped', () => {
  it('every line the stdout destination drops is counted', async () => {
    const registry = new Registry();
    const destination = new EventEmitter();
    createLogMetrics(registry, destination);
    for (let i = 0; i < 3; i++) destination.emit('drop', '{"msg":"authz decision"}\n');
    assert.match(await registry.metrics(), /^portcullis_log_lines_dropped_total 3$/m);
  });
});

describe('Node metrics', () => {
  it('follow Prometheus naming: no gauge ends in _total (promtool check metrics), the per-type gauges stay', async () => {
    const registry = new Registry();
    collectNodeMetrics(registry);
    const metrics = await registry.getMetricsAsJSON();
    const names = metrics.map((m) => m.name);
    for (const metric of metrics) {
      assert.ok(metric.name.startsWith('portcullis_'), metric.name);
      if (String(metric.type) !== 'counter') assert.doesNotMatch(metric.name, /_total$/, `${metric.type} ${metric.name}`);
    }
    for (const name of ['portcullis_nodejs_active_handles', 'portcullis_nodejs_active_requests', 'portcullis_process_cpu_seconds_total']) {
      assert.ok(names.includes(name), `${name} missing from ${names.join(', ')}`);
    }
  });
});
