import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Registry } from 'prom-client';
import { EventEmitter } from 'node:events';
import { collectNodeMetrics, createLogMetrics, createMemoryStoreMetrics, createMetrics } from '../../../src/observability/metrics.js';

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

describe('the gRPC TLS certificate expiry', () => {
  it('is not exported before a certificate is loaded: a plaintext listener has none (0 would read as expired)', async () => {
    const registry = new Registry();
    const metrics = createMetrics(registry, 100);
    assert.doesNotMatch(await registry.metrics(), /portcullis_grpc_tls_certificate_expiry_timestamp_seconds/);
    metrics.grpcTls.certificateLoaded(new Date(Date.UTC(2027, 0, 1)), false);
    assert.match(await registry.metrics(), /^portcullis_grpc_tls_certificate_expiry_timestamp_seconds 1798761600$/m);
  });
});

describe('every gauge across workers (the supervisor merges each by its aggregator)', () => {
  /** What an operator reads for a supervisor of n workers: the worst process, the sum, or one value for all. */
  const expected: Record<string, string> = {
    // What a per-process limit bounds (ulimit -n, -v, -d; V8's heap limit): the fullest process, the tightest limit.
    portcullis_process_open_fds: 'max',
    portcullis_process_max_fds: 'min',
    portcullis_process_virtual_memory_bytes: 'max',
    portcullis_process_heap_bytes: 'max',
    portcullis_nodejs_heap_size_total_bytes: 'max',
    portcullis_nodejs_heap_size_used_bytes: 'max',
    portcullis_nodejs_external_memory_bytes: 'max',
    portcullis_nodejs_heap_space_size_total_bytes: 'max',
    portcullis_nodejs_heap_space_size_used_bytes: 'max',
    portcullis_nodejs_heap_space_size_available_bytes: 'min',
    portcullis_nodejs_heap_size_limit_bytes: 'min',
    // Every call on a process waits behind its loop: the slowest process (the quickest sample for min).
    portcullis_nodejs_eventloop_lag_seconds: 'max',
    portcullis_nodejs_eventloop_lag_min_seconds: 'min',
    portcullis_nodejs_eventloop_lag_max_seconds: 'max',
    portcullis_nodejs_eventloop_lag_mean_seconds: 'max',
    portcullis_nodejs_eventloop_lag_stddev_seconds: 'max',
    portcullis_nodejs_eventloop_lag_p50_seconds: 'max',
    portcullis_nodejs_eventloop_lag_p90_seconds: 'max',
    portcullis_nodejs_eventloop_lag_p99_seconds: 'max',
    // What the instance holds as a whole.
    portcullis_process_resident_memory_bytes: 'sum',
    portcullis_nodejs_active_handles: 'sum',
    portcullis_nodejs_active_requests: 'sum',
    portcullis_nodejs_active_resources: 'sum',
    portcullis_memory_store_keys: 'sum',
    // One value for all, or none.
    portcullis_nodejs_version_info: 'first',
    portcullis_process_start_time_seconds: 'omit',
    portcullis_config_last_success_timestamp_seconds: 'min',
    portcullis_config_last_failure_timestamp_seconds: 'max',
    // The certificate that expires first is the one to renew.
    portcullis_grpc_tls_certificate_expiry_timestamp_seconds: 'min',
  };

  it('each gauge Portcullis registers carries the rule chosen for it; a new one fails here until one is chosen', async () => {
    const registry = new Registry();
    collectNodeMetrics(registry);
    // The certificate expiry gauge appears with the first certificate (server.grpc.tls).
    createMetrics(registry, 100).grpcTls.certificateLoaded(new Date(), false);
    createMemoryStoreMetrics(registry);
    const gauges = (await registry.getMetricsAsJSON()).filter((m) => String(m.type) === 'gauge');
    const linuxOnly = ['portcullis_process_open_fds', 'portcullis_process_max_fds', 'portcullis_process_virtual_memory_bytes', 'portcullis_process_heap_bytes'];
    const expectedHere = Object.keys(expected).filter((name) => process.platform === 'linux' || !linuxOnly.includes(name));
    assert.deepEqual(gauges.map((g) => g.name).sort(), expectedHere.sort());
    for (const gauge of gauges) assert.equal(gauge.aggregator, expected[gauge.name], gauge.name);
  });

  it('counters and histograms stay summed (/metrics on the admin port shows the sum over workers)', async () => {
    const registry = new Registry();
    collectNodeMetrics(registry);
    createMetrics(registry, 100);
    createMemoryStoreMetrics(registry);
    const others = (await registry.getMetricsAsJSON()).filter((m) => String(m.type) !== 'gauge');
    assert.ok(others.length > 20);
    for (const metric of others) assert.equal(metric.aggregator, 'sum', `${metric.type} ${metric.name}`);
  });

  it('merged, two workers read as the fuller one for descriptors and heap, the slower one for lag, summed for memory', async () => {
    if (process.platform !== 'linux') return; // the descriptor gauges read /proc
    const worker = async (fds: number, heap: number, p99: number, rss: number) => {
      const registry = new Registry();
      collectNodeMetrics(registry);
      const json = await registry.getMetricsAsJSON();
      const set = (name: string, value: number): void => {
        const metric = json.find((m) => m.name === name);
        assert.ok(metric !== undefined, name);
        metric.values = [{ value, labels: {} }];
      };
      set('portcullis_process_open_fds', fds);
      set('portcullis_process_max_fds', 1024);
      set('portcullis_nodejs_heap_size_used_bytes', heap);
      set('portcullis_nodejs_eventloop_lag_p99_seconds', p99);
      set('portcullis_process_resident_memory_bytes', rss);
      return json;
    };
    const merged = await AggregatorRegistry.aggregate([await worker(900, 30e6, 0.012, 100e6), await worker(40, 90e6, 0.3, 120e6)]).metrics();
    assert.match(merged, /^portcullis_process_open_fds 900$/m);
    assert.match(merged, /^portcullis_process_max_fds 1024$/m);
    assert.match(merged, /^portcullis_nodejs_heap_size_used_bytes 90000000$/m);
    assert.match(merged, /^portcullis_nodejs_eventloop_lag_p99_seconds 0\.3$/m);
    assert.match(merged, /^portcullis_process_resident_memory_bytes 220000000$/m);
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
