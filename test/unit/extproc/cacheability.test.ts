import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  answersNotModified, currentAgeSeconds, ifNoneMatchHits, lookupOutcome, needsRefreshLock, notModifiedSince, parseCacheControl, requestCacheDecision,
  servable, staleWindowSeconds, storeDecision, type RefreshLock,
} from '../../../src/extproc/cacheability.js';
import type { HeaderList } from '../../../src/extproc/headers.js';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const TTLS = new Map([[200, 300], [404, 60]]);
const h = (o: Record<string, string>): HeaderList => Object.entries(o);

describe('parseCacheControl', () => {
  it('reads names case-insensitively, unquotes values, ignores empty parts', () => {
    assert.deepEqual([...parseCacheControl('Public, MAX-AGE=60, , s-maxage="30", no-cache="set-cookie"')], [
      ['public', true], ['max-age', '60'], ['s-maxage', '30'], ['no-cache', 'set-cookie'],
    ]);
  });
});

describe('requestCacheDecision', () => {
  const table: [string, Record<string, string>, { lookup: boolean; store: boolean; reason: string | undefined }][] = [
    ['GET', {}, { lookup: true, store: true, reason: undefined }],
    ['HEAD', {}, { lookup: true, store: false, reason: undefined }],
    ['POST', {}, { lookup: false, store: false, reason: 'method' }],
    ['GET', { 'cache-control': 'no-store' }, { lookup: false, store: false, reason: 'request no-store' }],
    ['GET', { 'cache-control': 'no-cache' }, { lookup: false, store: true, reason: 'request no-cache' }],
    ['GET', { 'cache-control': 'max-age=0' }, { lookup: false, store: true, reason: 'request no-cache' }],
    ['GET', { pragma: 'no-cache' }, { lookup: false, store: true, reason: 'request no-cache' }],
    ['GET', { pragma: 'no-cache', 'cache-control': 'max-age=5' }, { lookup: true, store: true, reason: undefined }],
    ['GET', { range: 'bytes=0-1' }, { lookup: false, store: false, reason: 'range' }],
    ['GET', { 'cache-control': 'max-age=0, max-age=60' }, { lookup: false, store: true, reason: 'request no-cache' }],
  ];
  for (const [method, headers, expected] of table) {
    it(`${method} ${JSON.stringify(headers)}`, () => {
      const d = requestCacheDecision(method, h(headers));
      assert.deepEqual({ lookup: d.lookup, store: d.store, reason: d.reason }, expected);
    });
  }
  it('notes only-if-cached', () => assert.equal(requestCacheDecision('GET', h({ 'cache-control': 'only-if-cached' })).onlyIfCached, true));
  // RFC 9111 §5.2.1.1: request max-age=N refuses an entry older than N seconds, however fresh.
  const ages: [string, string | undefined, number, number, boolean][] = [
    ['no max-age, fresh', undefined, 10, 100, true],
    ['no max-age, stale', undefined, 100, 100, false],
    ['max-age=5, age 10', 'max-age=5', 10, 100, false],
    ['max-age=5, age 5', 'max-age=5', 5, 100, true],
    ['max-age=5, age 0', 'max-age=5', 0, 100, true],
    ['max-age=500 does not extend a lifetime of 100', 'max-age=500', 100, 100, false],
    ['an unparseable max-age is ignored', 'max-age=soon', 10, 100, true],
  ];
  for (const [name, cc, age, lifetime, expected] of ages) {
    it(`serves a stored response: ${name}`, () => {
      const d = requestCacheDecision('GET', h(cc === undefined ? {} : { 'cache-control': cc }));
      assert.equal(servable(age, lifetime, d), expected);
    });
  }
});

describe('storeDecision', () => {
  const date = new Date(NOW).toUTCString();
  /** `Sunday, 06-Nov-94 08:49:37 GMT` */
  const rfc850 = (ms: number): string => {
    const d = new Date(ms);
    const day = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'][d.getUTCDay()];
    const [, dd, mon, yyyy, time] = d.toUTCString().split(' ');
    return `${day}, ${dd}-${mon}-${yyyy!.slice(2)} ${time} GMT`;
  };
  const table: [string, number, Record<string, string>, boolean, string | number][] = [
    ['route TTL without response freshness', 200, {}, false, 300],
    ['per-status TTL', 404, {}, false, 60],
    ['status not listed', 500, {}, false, 'status 500'],
    ['max-age shortens', 200, { 'cache-control': 'max-age=30' }, false, 30],
    ['max-age cannot lengthen', 200, { 'cache-control': 'max-age=9999' }, false, 300],
    ['s-maxage beats max-age', 200, { 'cache-control': 'max-age=30, s-maxage=10' }, false, 10],
    // RFC 9111 §4.2.1: of a repeated directive the first occurrence counts.
    ['a repeated max-age: the first counts', 200, { 'cache-control': 'max-age=10, max-age=3600' }, false, 10],
    ['Expires - Date', 200, { date, expires: new Date(NOW + 120_000).toUTCString() }, false, 120],
    ['invalid Expires is expired', 200, { expires: '0' }, false, 'stale'],
    // Not an HTTP-date, however well Date.parse reads it: invalid, so already expired (RFC 9111 §5.3).
    ['an ISO date as Expires is expired', 200, { date, expires: new Date(NOW + 120_000).toISOString() }, false, 'stale'],
    ['Expires in the obsolete RFC 850 form counts', 200, { date, expires: rfc850(NOW + 120_000) }, false, 120],
    ['an ISO Date is no date: no apparent age', 200, { 'cache-control': 'max-age=100', date: new Date(NOW - 30_000).toISOString() }, false, 100],
    ['max-age=0', 200, { 'cache-control': 'max-age=0' }, false, 'stale'],
    ['Age counts against the lifetime', 200, { 'cache-control': 'max-age=100', age: '40' }, false, 60],
    ['an old Date counts against the lifetime', 200, { 'cache-control': 'max-age=100', date: new Date(NOW - 30_000).toUTCString() }, false, 70],
    ['no-store', 200, { 'cache-control': 'no-store' }, false, 'no-store'],
    ['private', 200, { 'cache-control': 'private, max-age=60' }, false, 'private'],
    ['no-cache', 200, { 'cache-control': 'no-cache' }, false, 'no-cache'],
    ['Set-Cookie', 200, { 'set-cookie': 'a=b' }, false, 'set-cookie'],
    ['Vary: *', 200, { vary: 'accept, *' }, false, 'vary *'],
    ['shared entry for a credentialed request', 200, {}, true, 'authorization'],
    ['shared entry allowed by public', 200, { 'cache-control': 'public' }, true, 300],
    ['shared entry allowed by s-maxage', 200, { 'cache-control': 's-maxage=20' }, true, 20],
    // RFC 9111 §4.2.1: invalid freshness information is read as stale, not as absent (which would let the route's
    // TTL stand in for what the origin tried to say). s-maxage overrides max-age in a shared cache, so a valid one
    // makes an invalid max-age irrelevant.
    ['an invalid max-age is stale', 200, { 'cache-control': 'max-age=soon' }, false, 'invalid freshness'],
    ['a negative max-age is stale', 200, { 'cache-control': 'max-age=-1' }, false, 'invalid freshness'],
    ['an empty max-age is stale', 200, { 'cache-control': 'max-age' }, false, 'invalid freshness'],
    ['an invalid s-maxage is stale', 200, { 'cache-control': 's-maxage=x, max-age=60' }, false, 'invalid freshness'],
    ['a valid s-maxage overrides an invalid max-age', 200, { 'cache-control': 's-maxage=20, max-age=x' }, false, 20],
    ['a quoted max-age is read', 200, { 'cache-control': 'max-age="30"' }, false, 30],
  ];
  // RFC 9111 §3: without explicit freshness (max-age, s-maxage, Expires) or `public`, only a heuristically cacheable
  // status (RFC 9110 §15.1) may be stored; the route's TTL is then the heuristic.
  const byStatus: [string, number, Record<string, string>, string | number][] = [
    ['302 listed, no freshness', 302, {}, 'no explicit freshness'],
    ['307 listed, no freshness', 307, {}, 'no explicit freshness'],
    ['500 listed, no freshness', 500, {}, 'no explicit freshness'],
    ['302 with max-age', 302, { 'cache-control': 'max-age=30' }, 30],
    ['302 with s-maxage', 302, { 'cache-control': 's-maxage=30' }, 30],
    ['302 with Expires', 302, { date, expires: new Date(NOW + 40_000).toUTCString() }, 40],
    ['302 with public: the route TTL is the heuristic', 302, { 'cache-control': 'public' }, 300],
    ...[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 451, 501].map((s): [string, number, Record<string, string>, number] => [`${s} is heuristically cacheable`, s, {}, 300]),
  ];
  const allListed = new Map([302, 307, 500, 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 451, 501].map((s) => [s, 300]));
  for (const [name, status, headers, expected] of byStatus) {
    it(name, () => {
      const d = storeDecision({ status, headers: h(headers), ttlSecondsByStatus: allListed, sharedWithCredentials: false, nowMs: NOW });
      if (typeof expected === 'string') assert.deepEqual(d, { store: false, reason: expected });
      else assert.equal(d.store && d.ttlSeconds, expected);
    });
  }
  for (const [name, status, headers, shared, expected] of table) {
    it(name, () => {
      const d = storeDecision({ status, headers: h(headers), ttlSecondsByStatus: TTLS, sharedWithCredentials: shared, nowMs: NOW });
      if (typeof expected === 'string') assert.deepEqual(d, { store: false, reason: expected });
      else assert.equal(d.store && d.ttlSeconds, expected);
    });
  }
  it('206 is never stored even when listed', () => {
    assert.deepEqual(storeDecision({ status: 206, headers: [], ttlSecondsByStatus: new Map([[206, 10]]), sharedWithCredentials: false, nowMs: NOW }), { store: false, reason: 'partial content' });
  });
  it('304 is never stored even when listed', () => {
    assert.deepEqual(storeDecision({ status: 304, headers: [], ttlSecondsByStatus: new Map([[304, 10]]), sharedWithCredentials: false, nowMs: NOW }), { store: false, reason: 'not modified' });
  });
});

// RFC 5861 §3 within RFC 9111 §4.2.4: the route grants a stale window, the response can shorten or forbid it.
describe('staleWindowSeconds', () => {
  const table: [string, string, number, number][] = [
    ['the route\'s window when the response says nothing', 'max-age=60', 30, 30],
    ['off on the route: none, whatever the response grants', 'max-age=60, stale-while-revalidate=30', 0, 0],
    ['the response\'s shorter grant', 'max-age=60, stale-while-revalidate=10', 30, 10],
    ['a longer grant cannot lengthen the route\'s', 'max-age=60, stale-while-revalidate=3600', 30, 30],
    ['stale-while-revalidate=0 forbids it', 'max-age=60, stale-while-revalidate=0', 30, 0],
    ['must-revalidate forbids it', 'max-age=60, must-revalidate', 30, 0],
    ['must-revalidate beats a grant', 'max-age=60, must-revalidate, stale-while-revalidate=10', 30, 0],
    ['proxy-revalidate forbids it', 'max-age=60, proxy-revalidate, stale-while-revalidate=10', 30, 0],
    ['s-maxage forbids the route\'s window (it carries proxy-revalidate)', 's-maxage=60', 30, 0],
    ['s-maxage with the response\'s own grant', 's-maxage=60, stale-while-revalidate=10', 30, 10],
    ['a grant that is not delta-seconds grants nothing', 'max-age=60, stale-while-revalidate=soon', 30, 0],
    ['a negative grant grants nothing', 'max-age=60, stale-while-revalidate=-5', 30, 0],
    ['a quoted grant is read', 'max-age=60, stale-while-revalidate="10"', 30, 10],
  ];
  for (const [name, cc, route, expected] of table) {
    it(name, () => assert.equal(staleWindowSeconds(parseCacheControl(cc), route), expected));
  }
  it('storeDecision carries the window; the store keeps the entry ttl + window', () => {
    const d = storeDecision({ status: 200, headers: h({ 'cache-control': 'max-age=60, stale-while-revalidate=10', age: '5' }), ttlSecondsByStatus: TTLS, sharedWithCredentials: false, nowMs: NOW, staleWhileRevalidateSeconds: 30 });
    assert.deepEqual(d, { store: true, ttlSeconds: 55, initialAgeSeconds: 5, lifetimeSeconds: 60, staleWhileRevalidateSeconds: 10 });
    const off = storeDecision({ status: 200, headers: [], ttlSecondsByStatus: TTLS, sharedWithCredentials: false, nowMs: NOW });
    assert.equal(off.store && off.staleWhileRevalidateSeconds, 0, 'no route window: none');
  });
});

describe('lookupOutcome', () => {
  const plain = requestCacheDecision('GET', []);
  const head = requestCacheDecision('HEAD', []);
  const maxAge = requestCacheDecision('GET', h({ 'cache-control': 'max-age=500' }));
  const onlyIfCached = requestCacheDecision('GET', h({ 'cache-control': 'only-if-cached' }));
  // name, age, lifetime, window, request, lock the stream found → asks for the lock, outcome
  const table: [string, number, number, number, typeof plain, RefreshLock, boolean, string][] = [
    ['fresh', 9, 10, 30, plain, 'unasked', false, 'fresh'],
    ['fresh with no window', 9, 10, 0, plain, 'unasked', false, 'fresh'],
    ['expired with no window', 10, 10, 0, plain, 'unasked', false, 'miss'],
    ['stale, the lock taken: this request refreshes', 10, 10, 30, plain, 'taken', true, 'stale-refresh'],
    ['stale, the lock held by another: served stale', 10, 10, 30, plain, 'held', true, 'stale-servable'],
    ['stale, the lock call failed: served stale', 39, 10, 30, plain, 'failed', true, 'stale-servable'],
    ['at the window\'s last second', 39, 10, 30, plain, 'held', true, 'stale-servable'],
    ['past the window', 40, 10, 30, plain, 'unasked', false, 'miss'],
    ['HEAD: its response stores nothing, so it never refreshes', 12, 10, 30, head, 'unasked', false, 'stale-servable'],
    ['only-if-cached never reaches the origin: served stale', 12, 10, 30, onlyIfCached, 'unasked', false, 'stale-servable'],
    // RFC 9111 §5.2.1.1: a request max-age (without max-stale) refuses a stale response.
    ['request max-age refuses a stale entry', 12, 10, 30, maxAge, 'unasked', false, 'miss'],
    ['request max-age takes a fresh one', 9, 10, 30, maxAge, 'unasked', false, 'fresh'],
  ];
  for (const [name, age, lifetime, window, request, lock, asks, expected] of table) {
    it(name, () => {
      const found = { ageSeconds: age, lifetimeSeconds: lifetime, staleWhileRevalidateSeconds: window, request };
      assert.equal(needsRefreshLock(found), asks, 'asks for the lock');
      assert.equal(lookupOutcome(found, lock), expected);
    });
  }
});

describe('age and conditionals', () => {
  it('age is the initial age plus whole seconds resident', () => {
    assert.equal(currentAgeSeconds(NOW, 5, NOW + 2_999), 7);
    assert.equal(currentAgeSeconds(NOW, 0, NOW - 1000), 0);
  });
  const table: [string | undefined, string | undefined, boolean][] = [
    ['"a"', '"a"', true], ['W/"a"', '"a"', true], ['"a"', 'W/"a"', true], ['"b", "a"', '"a"', true],
    ['*', '"a"', true], ['"b"', '"a"', false], [undefined, '"a"', false], ['"a"', undefined, false],
    // A comma is an etagc (RFC 9110 §8.8.3): the list is split into entity-tags, not at every comma.
    ['"x", "a,b"', '"a,b"', true], ['W/"a,b"', '"a,b"', true], ['"a,b"', '"a"', false], ['"b", "a"', 'a', false],
    ['"a,*,b"', '"z"', false],
  ];
  for (const [inm, etag, expected] of table) it(`If-None-Match ${inm} vs ${etag}`, () => assert.equal(ifNoneMatchHits(inm, etag), expected));
  // RFC 9110 §13.2.1: a precondition counts only where the response without it would be 2xx.
  const byStatus: [number, string, boolean][] = [
    [200, '"a"', true], [203, '*', true], [204, '"a"', true], [200, '"b"', false],
    [301, '"a"', false], [404, '"a"', false], [404, '*', false], [410, '"a"', false], [500, '*', false],
  ];
  for (const [status, inm, expected] of byStatus) {
    it(`a stored ${status} with ETag "a", If-None-Match ${inm}: ${expected ? '304' : `served as ${status}`}`, () => {
      assert.equal(answersNotModified(status, { ifNoneMatch: inm, ifModifiedSince: undefined }, { etag: '"a"', lastModifiedMs: NOW }), expected);
    });
  }
  // RFC 9111 §4.3.2 with RFC 9110 §13.1.3: If-Modified-Since is evaluated against the stored Last-Modified (the
  // caller falls back to Date, then the time stored) only without If-None-Match, and only when it is one valid date.
  const stamp = (offsetS: number): string => new Date(NOW + offsetS * 1000).toUTCString();
  const since: [string, string | undefined, number, boolean][] = [
    ['modified before the date', stamp(10), NOW, true],
    ['modified at the date', stamp(0), NOW, true],
    ['modified after the date', stamp(-10), NOW, false],
    ['no If-Modified-Since', undefined, NOW, false],
    ['not a date', 'yesterday', NOW, false],
    ['two dates (two header lines, joined)', `${stamp(10)}, ${stamp(20)}`, NOW, false],
    ['a date not in IMF-fixdate form is ignored', 'Sunday, 06-Nov-94 08:49:37 GMT', Date.parse('1990-01-01T00:00:00Z'), false],
  ];
  for (const [name, ims, lastModifiedMs, expected] of since) {
    it(`If-Modified-Since: ${name}`, () => assert.equal(notModifiedSince(ims, lastModifiedMs), expected));
  }
  const combined: [string, number, string | undefined, string | undefined, boolean][] = [
    ['If-Modified-Since alone, not modified', 200, undefined, stamp(10), true],
    ['If-Modified-Since alone, modified', 200, undefined, stamp(-10), false],
    ['If-None-Match wins over If-Modified-Since (no match)', 200, '"b"', stamp(10), false],
    ['If-None-Match wins over If-Modified-Since (match)', 200, '"a"', stamp(-10), true],
    ['a stored 404 is served as itself', 404, undefined, stamp(10), false],
  ];
  for (const [name, status, inm, ims, expected] of combined) {
    it(`conditional: ${name}`, () => {
      assert.equal(answersNotModified(status, { ifNoneMatch: inm, ifModifiedSince: ims }, { etag: '"a"', lastModifiedMs: NOW }), expected);
    });
  }
});
