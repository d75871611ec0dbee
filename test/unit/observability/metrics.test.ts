import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import { EventEmitter } from 'node:events';
import { createLogMetrics, createMetrics } from '../../../src/observability/metrics.js';

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
