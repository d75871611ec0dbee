import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retryAfterMs } from '../../../src/shared/retry-after.js';

// Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date.
const NOW_MS = Date.UTC(1994, 10, 6, 8, 49, 37);

describe('retryAfterMs (RFC 9110 §10.2.3)', () => {
  // [header as sent, ms from NOW_MS (undefined: not a Retry-After, the caller's own delay applies)]
  const rows: [string | undefined, number | undefined][] = [
    [undefined, undefined],
    ['', undefined],
    ['3', 3000],
    [' 3 ', 3000],
    ['0', 0],
    ['007', 7000],
    ['999999', 999_999_000],
    ['9'.repeat(400), Number.POSITIVE_INFINITY],
    ['-5', undefined],
    ['+5', undefined],
    ['1.5', undefined],
    ['1e3', undefined],
    ['0x10', undefined],
    ['3 seconds', undefined],
    ['soon', undefined],
    ['NaN', undefined],
    ['Infinity', undefined],
    ['1', 1000],
    // The three HTTP-date forms, 10 s ahead.
    ['Sun, 06 Nov 1994 08:49:47 GMT', 10_000],
    ['Sunday, 06-Nov-94 08:49:47 GMT', 10_000],
    ['Sun Nov  6 08:49:47 1994', 10_000],
    ['Sun, 06 Nov 1994 09:49:37 GMT', 3_600_000],
    ['Sun, 06 Nov 1994 08:49:37 GMT', 0],
    // In the past: no wait asked.
    ['Sun, 06 Nov 1994 08:49:36 GMT', 0],
    ['Thu, 01 Jan 1970 00:00:00 GMT', 0],
    ['Sat, 05 Nov 1994 08:49:37 GMT', 0],
    // Far ahead: as said (the caller caps it).
    ['Fri, 31 Dec 9999 23:59:59 GMT', Date.UTC(9999, 11, 31, 23, 59, 59) - NOW_MS],
    // RFC 850's two-digit year: 94 is 1994 here, not 2094.
    ['Sunday, 06-Nov-94 08:49:37 GMT', 0],
    // A leap second is a time of day.
    ['Sun, 06 Nov 1994 08:49:60 GMT', 23_000],
    // Not HTTP-dates: other zones, ISO 8601, no zone, bad fields, what Date.parse would take.
    ['Sun, 06 Nov 1994 08:49:47 UTC', undefined],
    ['Sun, 06 Nov 1994 08:49:47 +0000', undefined],
    ['1994-11-06T08:49:47Z', undefined],
    ['Sun, 06 Nov 1994 08:49:47', undefined],
    ['Sun, 31 Feb 1994 08:49:47 GMT', undefined],
    ['Sun, 06 Foo 1994 08:49:47 GMT', undefined],
    ['Sun, 06 Nov 1994 24:00:00 GMT', undefined],
    ['Sun, 6 Nov 1994 08:49:47 GMT', undefined],
    ['Nov 6 1994', undefined],
    ['Sun, 06 Nov 1994 08:49:47 GMT, Sun, 06 Nov 1994 08:49:47 GMT', undefined],
    ['3, 3', undefined],
  ];
  for (const [header, expected] of rows) {
    it(`${JSON.stringify(header)?.slice(0, 60)} → ${String(expected)}`, () => assert.equal(retryAfterMs(header, NOW_MS), expected));
  }
});
