import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGcTraceLine, summarizeGc } from '../../../bench/support/gc-trace.js';

describe('--trace-gc-nvp lines', () => {
  // Real lines, shortened where marked: Node 24.22.3's V8 (key=value) and Node 26.12.1's (JSON).
  const table: [string, string, ReturnType<typeof parseGcTraceLine>][] = [
    [
      'a scavenge, key=value',
      '[17998:0x132ff000:0]       46 ms: pause=0.9 mutator=7.2 gc=s reduce_memory=0 interleaved=0 time_to_safepoint=0.00 heap.prologue=0.00 allocated=782312 promoted=538752',
      { kind: 's', pauseMs: 0.9, promotedBytes: 538752 },
    ],
    [
      'a mark-compact, key=value (no promoted field)',
      '[17998:0x132ff000:0]      482 ms: pause=20.4 mutator=213.6 gc=mc reduce_memory=0 time_to_safepoint=0.00',
      { kind: 'mc', pauseMs: 20.4, promotedBytes: 0 },
    ],
    [
      'a scavenge, JSON',
      '[18366:0x15594000:0]      748 ms: GC: {"pause":1.508,"mutator":663.345,"gc":"s","reduce_memory":false,"promoted":501592,"new_space_survived":178424}',
      { kind: 's', pauseMs: 1.508, promotedBytes: 501592 },
    ],
    [
      'a mark-compact, JSON',
      '[18366:0x15594000:0]     1211 ms: GC: {"pause":3.483,"mutator":18.686,"gc":"mc","reduce_memory":false}',
      { kind: 'mc', pauseMs: 3.483, promotedBytes: 0 },
    ],
    ['a log line of the process', '{"level":30,"time":1765111111111,"msg":"portcullis listening","gc":"none"}', undefined],
    ['a JSON line cut short', '[1:0x1:0]  5 ms: GC: {"pause":1.5,"gc":"s","prom', undefined],
    ['a key=value line without a pause', '[1:0x1:0]  5 ms: gc=s promoted=10', undefined],
  ];
  for (const [name, line, expected] of table) {
    it(name, () => assert.deepEqual(parseGcTraceLine(line), expected));
  }
});

describe('summarizeGc', () => {
  it('counts scavenges and mark-compacts, promotion per call, the median scavenge pause and the longest pause', () => {
    const summary = summarizeGc(
      [
        { kind: 's', pauseMs: 1, promotedBytes: 1000 },
        { kind: 's', pauseMs: 3, promotedBytes: 3000 },
        { kind: 'mc', pauseMs: 25, promotedBytes: 0 },
        { kind: 's', pauseMs: 2, promotedBytes: 0 },
        { kind: 'mms', pauseMs: 40, promotedBytes: 0 },
      ],
      100,
    );
    assert.deepEqual(summary, { scavenges: 3, scavengeMedianPauseMs: 2, promotedBytesPerCall: 40, markCompacts: 1, maxPauseMs: 40 });
  });

  it('a window without collections or calls reads zero, not NaN', () => {
    assert.deepEqual(summarizeGc([], 0), { scavenges: 0, scavengeMedianPauseMs: 0, promotedBytesPerCall: 0, markCompacts: 0, maxPauseMs: 0 });
  });
});
