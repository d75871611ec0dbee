import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { httpDateMs, imfFixdateMs } from '../../../src/shared/http-date.js';

// The three forms and what Date.parse would have read is in retry-after.test.ts' table; here, what is told apart.
const NOV_6_1994 = Date.UTC(1994, 10, 6, 8, 49, 37);

describe('imfFixdateMs: the IMF-fixdate alone', () => {
  const cases: [text: string, expected: number | undefined][] = [
    ['Sun, 06 Nov 1994 08:49:37 GMT', NOV_6_1994],
    ['  Sun, 06 Nov 1994 08:49:37 GMT ', NOV_6_1994],
    ['Sunday, 06-Nov-94 08:49:37 GMT', undefined],
    ['Sun Nov  6 08:49:37 1994', undefined],
    ['1994-11-06T08:49:37Z', undefined],
    ['Sun, 31 Feb 1994 08:49:37 GMT', undefined],
    ['1', undefined],
  ];
  for (const [text, expected] of cases) it(JSON.stringify(text), () => assert.equal(imfFixdateMs(text), expected));
});

describe('httpDateMs: every form RFC 9110 §5.6.7 names, nothing else', () => {
  const now = Date.UTC(2026, 11, 7);
  const cases: [text: string | undefined, expected: number | undefined][] = [
    ['Sun, 06 Nov 1994 08:49:37 GMT', NOV_6_1994],
    ['Sunday, 06-Nov-94 08:49:37 GMT', NOV_6_1994],
    ['Sun Nov  6 08:49:37 1994', NOV_6_1994],
    // A two-digit year more than 50 years ahead is the past century's.
    ['Monday, 06-Nov-76 08:49:37 GMT', Date.UTC(2076, 10, 6, 8, 49, 37)],
    ['Monday, 06-Nov-77 08:49:37 GMT', Date.UTC(1977, 10, 6, 8, 49, 37)],
    ['2026-12-07T00:00:00Z', undefined],
    ['0', undefined],
    [undefined, undefined],
  ];
  for (const [text, expected] of cases) it(String(text), () => assert.equal(httpDateMs(text, now), expected));
});
