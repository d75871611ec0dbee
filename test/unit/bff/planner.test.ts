import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planWaves } from '../../../src/bff/planner.js';

const deps = (spec: Record<string, string[]>): Map<string, string[]> => new Map(Object.entries(spec));

describe('planWaves', () => {
  const cases: { name: string; deps: Record<string, string[]>; waves: string[][] }[] = [
    { name: 'no calls', deps: {}, waves: [] },
    { name: 'independent calls share the first wave', deps: { user: [], orders: [], prefs: [] }, waves: [['user', 'orders', 'prefs']] },
    { name: 'a dependent call waits one wave', deps: { user: [], orders: [], details: ['orders'] }, waves: [['user', 'orders'], ['details']] },
    { name: 'declaration order does not matter', deps: { details: ['orders'], orders: [] }, waves: [['orders'], ['details']] },
    { name: 'a chain', deps: { c: ['b'], b: ['a'], a: [] }, waves: [['a'], ['b'], ['c']] },
    { name: 'a diamond', deps: { a: [], b: ['a'], c: ['a'], d: ['b', 'c'] }, waves: [['a'], ['b', 'c'], ['d']] },
    { name: 'waits for its latest dependency', deps: { a: [], b: ['a'], c: ['a', 'b'] }, waves: [['a'], ['b'], ['c']] },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(planWaves(deps(c.deps)), { ok: true, waves: c.waves }));
  }

  const cycles: { name: string; deps: Record<string, string[]>; cycle: string[] }[] = [
    { name: 'two calls waiting for each other', deps: { a: ['b'], b: ['a'] }, cycle: ['a', 'b', 'a'] },
    { name: 'a loop of three behind a good call', deps: { ok: [], x: ['ok', 'z'], y: ['x'], z: ['y'] }, cycle: ['x', 'z', 'y', 'x'] },
    { name: 'a call waiting for a cycle it is not part of', deps: { tail: ['a'], a: ['b'], b: ['a'] }, cycle: ['a', 'b', 'a'] },
  ];
  for (const c of cycles) {
    it(`rejects ${c.name}`, () => assert.deepEqual(planWaves(deps(c.deps)), { ok: false, cycle: c.cycle }));
  }
});
