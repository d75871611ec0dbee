import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { HotCounter } from '../../../src/observability/hot-counter.js';

const valueOf = async (registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> => {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
};

describe('HotCounter', () => {
  it('bound series reach the scrape with their sums, once: a second scrape adds nothing new', async () => {
    const registry = new Registry();
    const hot = new HotCounter({ name: 't_total', help: 'h', labelNames: ['policy', 'reason'], registers: [registry] });
    const a = hot.bind({ policy: 'p', reason: 'allowed' });
    const b = hot.bind({ policy: 'p', reason: 'forbidden' });
    for (let i = 0; i < 1000; i++) a.inc();
    b.inc(5);
    assert.equal(await valueOf(registry, 't_total', { reason: 'allowed' }), 1000);
    assert.equal(await valueOf(registry, 't_total', { reason: 'forbidden' }), 5);
    a.inc();
    assert.equal(await valueOf(registry, 't_total', { reason: 'allowed' }), 1001);
    assert.equal(await valueOf(registry, 't_total', { reason: 'forbidden' }), 5);
    assert.match(await registry.metrics(), /t_total\{policy="p",reason="allowed"\} 1001/);
  });

  it('a series never incremented is not shown; direct incs on the counter still count beside bound ones', async () => {
    const registry = new Registry();
    const hot = new HotCounter({ name: 'u_total', help: 'h', labelNames: ['result'], registers: [registry] });
    hot.bind({ result: 'idle' });
    const hit = hot.bind({ result: 'hit' });
    hit.inc();
    hot.counter.inc({ result: 'hit' }, 2);
    assert.equal(await valueOf(registry, 'u_total', { result: 'idle' }), undefined);
    assert.equal(await valueOf(registry, 'u_total', { result: 'hit' }), 3);
  });
});
