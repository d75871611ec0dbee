import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assemble, settle, type CallResult } from '../../../src/bff/assemble.js';
import type { BffCall, BffEndpoint } from '../../../src/bff/config.js';
import { parseStringTemplate } from '../../../src/bff/template.js';

const call = (fallback?: unknown): BffCall => ({
  name: 'orders',
  service: { name: 'orders', origin: 'http://o:1', basePath: '', maxConcurrency: 1 },
  path: parseStringTemplate('/orders'),
  query: [],
  headers: [],
  timeoutMs: 100,
  fallback: fallback === undefined ? undefined : { value: fallback as null },
  deps: [],
  pathInputs: [],
});

const OK: CallResult = { kind: 'ok', value: [1] };
const FAILED: CallResult = { kind: 'failed', reason: 'status', status: 500, detail: 'orders answered 500' };
const SKIPPED: CallResult = { kind: 'skipped', missing: 'orders[0].id' };

describe('settle', () => {
  const cases: { name: string; fallback?: unknown; result: CallResult; depDegraded?: boolean; want: ReturnType<typeof settle> }[] = [
    { name: 'success', result: OK, want: { value: [1], degraded: false, fatal: false } },
    { name: 'success after a degraded dependency', result: OK, depDegraded: true, want: { value: [1], degraded: false, fatal: false } },
    { name: 'failure with a fallback', fallback: [], result: FAILED, want: { value: [], degraded: true, fatal: false } },
    { name: 'failure with a null fallback', fallback: null, result: FAILED, want: { value: null, degraded: true, fatal: false } },
    { name: 'failure of a required call', result: FAILED, want: { value: undefined, degraded: true, fatal: true } },
    { name: 'skipped: nothing to fetch', fallback: null, result: SKIPPED, want: { value: null, degraded: false, fatal: false } },
    { name: 'skipped, required: nothing to fetch', result: SKIPPED, want: { value: null, degraded: false, fatal: false } },
    { name: 'skipped because a dependency degraded', fallback: 'x', result: SKIPPED, depDegraded: true, want: { value: 'x', degraded: true, fatal: false } },
    { name: 'skipped because a dependency degraded, required', result: SKIPPED, depDegraded: true, want: { value: null, degraded: true, fatal: true } },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(settle(call(c.fallback), c.result, c.depDegraded ?? false), c.want));
});

describe('assemble', () => {
  const endpoint = { respond: { kind: 'object', entries: [['recent', parseStringTemplate('{orders}')]] } } as unknown as BffEndpoint;
  it('renders the respond template', () => {
    assert.deepEqual(assemble(endpoint, new Map([['orders', [1]]]), []), { recent: [1] });
  });
  it('names the degraded parts in _degraded', () => {
    assert.deepEqual(assemble(endpoint, new Map([['orders', []]]), ['orders']), { recent: [], _degraded: ['orders'] });
  });
});
