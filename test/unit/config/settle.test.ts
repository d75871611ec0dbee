import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readSettled } from '../../../src/config/settle.js';

/** Reads return these keys in turn (the last one repeats); returns what was read, how often, and the pauses. */
async function run(keys: readonly string[], known: string, settleMs = 100, maxRereads = 5) {
  let reads = 0;
  const sleeps: number[] = [];
  const read = async () => ({ key: keys[Math.min(reads, keys.length - 1)]!, result: reads++ });
  const got = await readSettled(read, { known, settleMs, maxRereads, sleep: async (ms) => void sleeps.push(ms) });
  return { key: got.key, reads, sleeps: sleeps.length, result: got.result };
}

describe('readSettled', () => {
  const rows: { name: string; keys: string[]; known: string; settleMs?: number; want: { key: string; reads: number } }[] = [
    { name: 'unchanged files: one read, no pause', keys: ['a'], known: 'a', want: { key: 'a', reads: 1 } },
    { name: 'a finished change: read twice, applied', keys: ['b', 'b'], known: 'a', want: { key: 'b', reads: 2 } },
    { name: 'a truncated file, then its whole text: the cut state is never returned', keys: ['cut', 'b', 'b'], known: 'a', want: { key: 'b', reads: 3 } },
    { name: 'an empty file then the old text back (a rewrite of the same text): no change', keys: ['error:empty', 'a', 'a'], known: 'a', want: { key: 'a', reads: 3 } },
    { name: 'an error that stays: reported after it agrees with itself', keys: ['error:x', 'error:x'], known: 'a', want: { key: 'error:x', reads: 2 } },
    { name: 'settle_ms 0: the first read, as before', keys: ['cut', 'b'], known: 'a', settleMs: 0, want: { key: 'cut', reads: 1 } },
    { name: 'files that never settle: the last read after maxRereads', keys: ['1', '2', '3', '4', '5', '6', '7', '8'], known: 'a', want: { key: '6', reads: 6 } },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const got = await run(row.keys, row.known, row.settleMs);
      assert.deepEqual({ key: got.key, reads: got.reads }, row.want);
      assert.equal(got.sleeps, got.reads - 1, 'one pause before every read after the first');
      assert.equal(got.result, got.reads - 1, 'the result of the last read is returned');
    });
  }
});
