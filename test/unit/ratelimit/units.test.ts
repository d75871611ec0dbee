import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UNIT_NUMBERS, parseUnit, secondsUntilWindowEnd, unitFromNumber, windowStart } from '../../../src/ratelimit/units.js';

describe('units', () => {
  const parse: [string, string | undefined][] = [
    ['second', 'SECOND'], ['Minute', 'MINUTE'], ['HOUR', 'HOUR'], ['dAy', 'DAY'], ['week', 'WEEK'], ['month', 'MONTH'], ['YEAR', 'YEAR'],
    ['', undefined], ['unknown', undefined], ['UNKNOWN', undefined], ['seconds', undefined], ['ms', undefined], ['constructor', undefined],
    ['__proto__', undefined], ['toString', undefined],
  ];
  for (const [text, unit] of parse) {
    it(`parseUnit(${JSON.stringify(text)}) is ${unit}`, () => assert.equal(parseUnit(text), unit));
  }

  it('wire numbers follow rls.proto (WEEK is 7)', () => {
    assert.deepEqual(UNIT_NUMBERS, { UNKNOWN: 0, SECOND: 1, MINUTE: 2, HOUR: 3, DAY: 4, MONTH: 5, YEAR: 6, WEEK: 7 });
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map(unitFromNumber), [undefined, 'SECOND', 'MINUTE', 'HOUR', 'DAY', 'MONTH', 'YEAR', 'WEEK', undefined]);
  });

  const windows: [number, number, number, number][] = [
    // now, window, start, seconds until the end
    [1234, 1, 1234, 1],
    [1234, 60, 1200, 26],
    [1200, 60, 1200, 60],
    [1_000_000, 3600, 997_200, 800],
    [1_000_000, 86_400, 950_400, 36_800],
    [0, 604_800, 0, 604_800],
  ];
  for (const [now, window, start, left] of windows) {
    it(`window of ${window}s at ${now}: starts at ${start}, ends in ${left}s`, () => {
      assert.equal(windowStart(now, window), start);
      assert.equal(secondsUntilWindowEnd(now, window), left);
    });
  }
});
