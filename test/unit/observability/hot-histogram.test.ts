import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { HotHistogram } from '../../../src/observability/hot-histogram.js';
import { prng } from '../../support/prng.js';

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.5];

/** The same observations into a prom-client Histogram and a HotHistogram, each in its own registry. */
function pair(labelNames: string[]): { hot: HotHistogram; reference: Histogram; hotRegistry: Registry; referenceRegistry: Registry } {
  const hotRegistry = new Registry();
  const referenceRegistry = new Registry();
  const config = { name: 'd_seconds', help: 'Time to answer.', labelNames, buckets: BUCKETS };
  return {
    hot: new HotHistogram({ ...config, registers: [hotRegistry] }),
    reference: new Histogram({ ...config, registers: [referenceRegistry] }),
    hotRegistry,
    referenceRegistry,
  };
}

describe('HotHistogram', () => {
  it('scrapes exactly as prom-client\'s Histogram given the same observations, labelled or not', async () => {
    const random = prng(7);
    for (const labelNames of [[], ['phase']]) {
      const { hot, reference, hotRegistry, referenceRegistry } = pair(labelNames);
      const phases = labelNames.length === 0 ? [{}] : [{ phase: 'request_headers' }, { phase: 'response_headers' }];
      const observers = phases.map((labels) => hot.bind(labels));
      if (labelNames.length > 0) hot.bind({ phase: 'never_observed' });
      // Bounds themselves, values between, zero, and values above every bound.
      const values = [0, ...BUCKETS, 0.7, 12, ...Array.from({ length: 500 }, () => random() ** 4)];
      values.forEach((v, i) => {
        const at = i % phases.length;
        observers[at]!.observe(v);
        reference.observe(phases[at]!, v);
      });
      assert.equal(await hotRegistry.metrics(), await referenceRegistry.metrics(), `labels ${labelNames.join(',')}`);
      assert.deepEqual(await hotRegistry.getMetricsAsJSON(), await referenceRegistry.getMetricsAsJSON());
    }
  });

  it('an unlabelled histogram shows zeros before any observation, as prom-client does; reset empties it', async () => {
    const { hot, reference, hotRegistry, referenceRegistry } = pair([]);
    const observer = hot.bind();
    assert.equal(await hotRegistry.metrics(), await referenceRegistry.metrics());
    observer.observe(0.003);
    reference.observe(0.003);
    assert.match(await hotRegistry.metrics(), /d_seconds_count 1/);
    hotRegistry.resetMetrics();
    referenceRegistry.resetMetrics();
    reference.zero({}); // prom-client's reset drops the series; an unlabelled HotHistogram keeps it at zero
    assert.equal(await hotRegistry.metrics(), await referenceRegistry.metrics());
  });

  it('sums across workers the way the cluster aggregation sums prom-client histograms', async () => {
    const workers = [pair(['phase']), pair(['phase'])];
    workers.forEach(({ hot, reference }, w) => {
      const observer = hot.bind({ phase: 'request_headers' });
      for (let i = 0; i <= w * 3; i++) {
        observer.observe(0.0002 * (i + 1));
        reference.observe({ phase: 'request_headers' }, 0.0002 * (i + 1));
      }
    });
    const hot = AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.hotRegistry.getMetricsAsJSON())));
    const reference = AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => w.referenceRegistry.getMetricsAsJSON())));
    assert.equal(await hot.metrics(), await reference.metrics());
    assert.match(await hot.metrics(), /d_seconds_count\{phase="request_headers"\} 5/);
  });
});
