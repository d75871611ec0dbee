import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptRequestId, continueTrace, formatTraceparent, parseTraceparent } from '../../../src/extproc/ids.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';

/** Deterministic "random" hex: a counter, so every generated id is distinct and known. */
function counterHex(): (bytes: number) => string {
  let n = 0;
  return (bytes) => (++n).toString(16).padStart(bytes * 2, '0');
}

describe('parseTraceparent', () => {
  const table: [string | undefined, ReturnType<typeof parseTraceparent>][] = [
    [`00-${T}-${P}-01`, { traceId: T, parentId: P, flags: '01' }],
    [`00-${T}-${P}-00`, { traceId: T, parentId: P, flags: '00' }],
    [` 00-${T}-${P}-01 `, { traceId: T, parentId: P, flags: '01' }],
    // OWS is any run of SP and HTAB (W3C test suite, test_traceparent_ows_handling); nothing else is.
    [`\t 00-${T}-${P}-01 \t`, { traceId: T, parentId: P, flags: '01' }],
    [`\u00a000-${T}-${P}-01`, undefined],
    [`00-${T}-${P}-01\u00a0`, undefined],
    [`\ufeff00-${T}-${P}-01`, undefined],
    [`00-${T}-${P}-01\u000b`, undefined],
    [`01-${T}-${P}-01-extra`, { traceId: T, parentId: P, flags: '01' }],
    [`cc-${T}-${P}-09`, { traceId: T, parentId: P, flags: '09' }],
    [`00-${T}-${P}-01-extra`, undefined],
    [`01-${T}-${P}-01x`, undefined],
    [`ff-${T}-${P}-01`, undefined],
    [`00-${T.toUpperCase()}-${P}-01`, undefined],
    [`00-${'0'.repeat(32)}-${P}-01`, undefined],
    [`00-${T}-${'0'.repeat(16)}-01`, undefined],
    [`00-${T}-${P}-0g`, undefined],
    [`00-${T}-${P}-01, 00-${T}-${P}-01`, undefined],
    [`cc-${T}-${P}-01, cc-${T}-${P}-01`, undefined],
    [`00_${T}-${P}-01`, undefined],
    [`00-${T.slice(1)}-${P}-01`, undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [input, expected] of table) {
    it(`${JSON.stringify(input)} → ${expected ? 'valid' : 'invalid'}`, () => assert.deepEqual(parseTraceparent(input), expected));
  }
});

describe('continueTrace', () => {
  it('keeps the trace id and flags of a valid traceparent, with a new span id, and keeps tracestate', () => {
    const trace = continueTrace([`00-${T}-${P}-01`], 'a=1,b=2', counterHex());
    assert.deepEqual(trace, { traceId: T, spanId: '0000000000000001', parentSpanId: P, flags: '01', tracestate: 'a=1,b=2', started: false });
    assert.equal(formatTraceparent(trace), `00-${T}-0000000000000001-01`);
  });

  it('re-emits a higher version as 00 and keeps only defined flag bits', () => {
    const trace = continueTrace([`01-${T}-${P}-ff-more`], undefined, counterHex());
    assert.equal(formatTraceparent(trace), `00-${T}-0000000000000001-03`);
  });

  it('starts a new sampled trace and drops tracestate when traceparent is absent or invalid', () => {
    for (const input of [[], ['garbage'], [`00-${'0'.repeat(32)}-${P}-01`]]) {
      const trace = continueTrace(input, 'a=1', counterHex());
      assert.equal(trace.started, true);
      assert.equal(trace.tracestate, undefined);
      assert.equal(trace.parentSpanId, undefined);
      assert.equal(trace.flags, '01');
      assert.match(formatTraceparent(trace), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    }
  });

  // The traceparent header's lines: exactly one may be continued (RFC 9110 §5.3; W3C test_traceparent_duplicated).
  const lines: [string, string[], string | undefined][] = [
    ['none', [], undefined],
    ['one', [`00-${T}-${P}-01`], T],
    ['the same line twice', [`00-${T}-${P}-01`, `00-${T}-${P}-01`], undefined],
    ['two versions 00', [`00-${T}-${P}-01`, `00-${'1'.repeat(32)}-${P}-01`], undefined],
    // Joined, the first one's future field would take in the second.
    ['a higher version with a field after the flags, then another', [`cc-${T}-${P}-01-x`, `00-${'1'.repeat(32)}-${P}-01`], undefined],
    ['a higher version with a field after the flags, then garbage', [`01-${T}-${P}-01-`, 'garbage'], undefined],
    // One line is one value: a higher version's unknown fields are not read, commas or not.
    ['one line of a higher version whose field holds a comma', [`cc-${T}-${P}-01-x, 00-${'1'.repeat(32)}-${P}-01`], T],
  ];
  for (const [name, input, kept] of lines) {
    it(`traceparent lines: ${name} → ${kept ? 'continued' : 'new trace'}`, () => {
      const trace = continueTrace(input, 'a=1', counterHex());
      assert.equal(trace.started, kept === undefined);
      if (kept !== undefined) assert.equal(trace.traceId, kept);
    });
  }

  it('redraws all-zero ids', () => {
    const draws = ['0000000000000000', 'aaaaaaaaaaaaaaaa', '0'.repeat(32), 'b'.repeat(32)];
    const trace = continueTrace([], undefined, () => draws.shift()!);
    assert.equal(trace.spanId, 'aaaaaaaaaaaaaaaa');
    assert.equal(trace.traceId, 'b'.repeat(32));
  });
});

describe('acceptRequestId', () => {
  const table: [string | undefined, string | undefined][] = [
    ['3f1c2a9e-1b2c-4d3e-8f90-a1b2c3d4e5f6', '3f1c2a9e-1b2c-4d3e-8f90-a1b2c3d4e5f6'],
    ['  abc  ', 'abc'],
    ['\tabc\t', 'abc'],
    ['abc\u00a0', undefined],
    ['', undefined],
    ['has space', undefined],
    ['x'.repeat(201), undefined],
    ['caf\u00e9', undefined],
    [undefined, undefined],
  ];
  for (const [input, expected] of table) it(`${JSON.stringify(input)}`, () => assert.equal(acceptRequestId(input), expected));
});
