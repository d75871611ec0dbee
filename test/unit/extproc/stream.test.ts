// The per-stream state machine with a fake clock and the memory store: freshness and age over time, Vary, request
// directives, and what a stream that ends early leaves behind.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import type { HeaderList } from '../../../src/extproc/headers.js';
import { FailureStreak } from '../../../src/shared/failure-streak.js';
import { ExtprocStream, needsResponsePhase } from '../../../src/extproc/stream.js';
import type { ExtprocObserver, ProcessingAnswer, ProcessingMessage } from '../../../src/extproc/types.js';
import type { CacheStore } from '../../../src/store/cache-store.js';
import { MemoryCacheStore } from '../../../src/store/memory-cache-store.js';
import { FakeClock } from '../../fakes/fake-clock.js';

const settings = parsePortcullisConfig(`
extproc:
  routes:
    - name: c
      match: { path_prefix: /c }
      cache: { ttl_seconds: { "200": 100, "404": 100 }, public: true }
    - name: per-caller
      match: { path_prefix: /mine }
      cache: { ttl_seconds: { "200": 100 } }
    - name: stale-ok
      match: { path_prefix: /s }
      cache: { ttl_seconds: { "200": 100 }, public: true, stale_while_revalidate_seconds: 30 }
`, '/tmp/portcullis.yaml').extproc;

const silent = { child: () => silent, debug: () => undefined, info: () => undefined, warn: () => undefined };
const observer = { stream: () => undefined, message: () => undefined, cache: () => undefined, cacheError: () => undefined, validationFailed: () => undefined, ambiguousPath: () => undefined, askedBody: () => undefined };

function harness(streamObserver: ExtprocObserver = observer, cache: CacheStore = new MemoryCacheStore(1 << 20)) {
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  let n = 0;
  const open = () => new ExtprocStream({
    settings, cache, cacheHealth: new FailureStreak(), clock, observer: streamObserver, log: silent, routeHint: undefined,
    randomHex: (bytes) => (++n).toString(16).padStart(bytes * 2, '0'),
  });
  const send = (s: ExtprocStream, message: ProcessingMessage): Promise<ProcessingAnswer> => s.handle({ message, identity: undefined, attributes: {} });
  const get = (path: string, extra: HeaderList = []) => ({ kind: 'request_headers' as const, headers: [[':method', 'GET'], [':path', path], [':authority', 'h'], ...extra] as HeaderList, endOfStream: true });
  /** A full miss that stores `body` with the given response headers. */
  const store = async (path: string, headers: HeaderList, body = 'cached', requestExtra: HeaderList = []) => {
    const s = open();
    await send(s, get(path, requestExtra));
    const r = await send(s, { kind: 'response_headers', headers: [[':status', '200'], ...headers], endOfStream: false });
    await send(s, { kind: 'response_body', body: Buffer.from(body), endOfStream: true });
    return r;
  };
  const lookup = async (path: string, extra: HeaderList = []) => send(open(), get(path, extra));
  return { clock, open, send, get, store, lookup };
}

const header = (a: ProcessingAnswer, name: string): string | undefined =>
  a.kind === 'immediate' ? a.headers.set.find((s) => s.name === name)?.value : undefined;

describe('ExtprocStream cache over time', () => {
  it('serves until the freshness lifetime ends, with a growing age', async () => {
    const h = harness();
    await h.store('/c/a', [['cache-control', 'max-age=10']]);
    h.clock.advance(4_000);
    const hit = await h.lookup('/c/a');
    assert.equal(hit.kind, 'immediate');
    assert.equal(header(hit, 'age'), '4');
    h.clock.advance(6_000);
    assert.equal((await h.lookup('/c/a')).kind, 'request_headers', 'stale at 10 s');
  });

  it('request max-age=N: an entry older than N seconds goes to the origin, and the fresh answer replaces it', async () => {
    const h = harness();
    await h.store('/c/news', [], 'old news');
    h.clock.advance(10_000);
    assert.equal((await h.lookup('/c/news', [['cache-control', 'max-age=5']])).kind, 'request_headers', 'age 10 > max-age 5');
    assert.equal(header(await h.lookup('/c/news', [['cache-control', 'max-age=10']]), 'age'), '10', 'age 10 <= max-age 10');
    await h.store('/c/news', [], 'new news', [['cache-control', 'max-age=5']]);
    const hit = await h.lookup('/c/news', [['cache-control', 'max-age=5']]);
    assert.equal(hit.kind === 'immediate' && hit.body.toString(), 'new news');
  });

  it('counts the Age the upstream reported', async () => {
    const h = harness();
    await h.store('/c/aged', [['age', '7']]);
    assert.equal(header(await h.lookup('/c/aged'), 'age'), '7');
  });

  it('serves only a request whose Vary headers match the stored ones', async () => {
    const h = harness();
    await h.store('/c/v', [['vary', 'Accept-Language']], 'de', [['accept-language', 'de']]);
    assert.equal((await h.lookup('/c/v', [['accept-language', 'de']])).kind, 'immediate');
    assert.equal((await h.lookup('/c/v', [['accept-language', 'en']])).kind, 'request_headers');
    assert.equal((await h.lookup('/c/v')).kind, 'request_headers');
  });

  it('request no-cache goes to the origin and refreshes the entry', async () => {
    const h = harness();
    await h.store('/c/n', [], 'old');
    const r = await h.store('/c/n', [], 'new', [['cache-control', 'no-cache']]);
    assert.equal(r.kind === 'response_headers' && r.mutation.set.find((s) => s.name === 'x-cache-status')?.value, 'BYPASS');
    const hit = await h.lookup('/c/n');
    assert.equal(hit.kind === 'immediate' && hit.body.toString(), 'new');
  });

  it('a cached 404 with an ETag is served as the 404 to a matching If-None-Match, never 304', async () => {
    const h = harness();
    const s = h.open();
    await h.send(s, h.get('/c/gone'));
    await h.send(s, { kind: 'response_headers', headers: [[':status', '404'], ['etag', '"e404"']], endOfStream: false });
    await h.send(s, { kind: 'response_body', body: Buffer.from('not found'), endOfStream: true });
    for (const inm of ['"e404"', '*']) {
      const hit = await h.lookup('/c/gone', [['if-none-match', inm]]);
      assert.equal(hit.kind === 'immediate' && `${hit.status} ${hit.body.toString()}`, '404 not found', inm);
    }
    await h.store('/c/here', [['etag', '"e200"']]);
    const notModified = await h.lookup('/c/here', [['if-none-match', '"e200"']]);
    assert.equal(notModified.kind === 'immediate' && notModified.status, 304);
  });

  // RFC 9111 §4.3.2: the stored Last-Modified, else the stored Date, else the time it was stored.
  it('answers If-Modified-Since with 304 from the stored Last-Modified, else its Date, else the time stored', async () => {
    const h = harness();
    const stored = (stamp: string): [string, string][] => [['if-modified-since', stamp]];
    const status = (a: ProcessingAnswer): number | string => (a.kind === 'immediate' ? a.status : a.kind);
    await h.store('/c/lm', [['last-modified', 'Mon, 01 Jan 2024 00:00:00 GMT'], ['date', 'Thu, 01 Jan 2026 00:00:00 GMT']]);
    assert.equal(status(await h.lookup('/c/lm', stored('Mon, 01 Jan 2024 00:00:00 GMT'))), 304);
    assert.equal(status(await h.lookup('/c/lm', stored('Sun, 31 Dec 2023 00:00:00 GMT'))), 200);
    await h.store('/c/date', [['date', 'Wed, 31 Dec 2025 23:59:00 GMT']]);
    assert.equal(status(await h.lookup('/c/date', stored('Wed, 31 Dec 2025 23:59:00 GMT'))), 304);
    assert.equal(status(await h.lookup('/c/date', stored('Wed, 31 Dec 2025 23:58:59 GMT'))), 200);
    await h.store('/c/none', []);
    assert.equal(status(await h.lookup('/c/none', stored('Thu, 01 Jan 2026 00:00:00 GMT'))), 304);
    assert.equal(status(await h.lookup('/c/none', stored('Wed, 31 Dec 2025 23:59:59 GMT'))), 200);
  });

  it('only-if-cached answers 504 on a miss', async () => {
    const h = harness();
    const r = await h.lookup('/c/none', [['cache-control', 'only-if-cached']]);
    assert.equal(r.kind === 'immediate' && r.status, 504);
  });

  it('a shared (public) entry is not stored for a request with credentials unless the response allows it', async () => {
    const h = harness();
    await h.store('/c/auth', [], 'x', [['authorization', 'Bearer t']]);
    assert.equal((await h.lookup('/c/auth')).kind, 'request_headers');
    await h.store('/c/auth', [['cache-control', 'public, max-age=60']], 'x', [['authorization', 'Bearer t']]);
    assert.equal((await h.lookup('/c/auth')).kind, 'immediate');
  });

  it('a stream aborted before the body completes stores nothing', async () => {
    const h = harness();
    const s = h.open();
    await h.send(s, { kind: 'request_headers', headers: [[':method', 'GET'], [':path', '/c/abort'], [':authority', 'h']], endOfStream: true });
    await h.send(s, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
    await h.send(s, { kind: 'response_body', body: Buffer.from('part'), endOfStream: false });
    s.abort('cancelled');
    await h.send(s, { kind: 'response_body', body: Buffer.from('rest'), endOfStream: true });
    assert.equal((await h.lookup('/c/abort')).kind, 'request_headers');
  });

  it('asks for BUFFERED_PARTIAL when the response length is unknown, BUFFERED when known', async () => {
    const h = harness();
    const unknown = await h.store('/c/len1', []);
    assert.equal(unknown.kind === 'response_headers' && unknown.modeOverride?.responseBody, 'BUFFERED_PARTIAL');
    const known = await h.store('/c/len2', [['content-length', '6']]);
    assert.deepEqual(known.kind === 'response_headers' && known.modeOverride, { requestBody: 'NONE', responseBody: 'BUFFERED', responseHeaders: 'SEND' });
  });
});

describe('stale-while-revalidate: one request refreshes an expired entry, the others are served it stale', () => {
  const mark = (a: ProcessingAnswer): string | undefined =>
    a.kind === 'immediate' ? header(a, 'x-cache-status') : a.kind === 'response_headers' ? a.mutation.set.find((s) => s.name === 'x-cache-status')?.value : a.kind;
  /** Opens a stream whose request goes on to the origin; returns it to finish later. */
  const counting = () => {
    const results: string[] = [];
    return { results, observer: { ...observer, cache: (r: string) => void results.push(r) } };
  };

  it('within the window: the first request goes to the origin (MISS), the rest are STALE with their age; the refresh makes it fresh', async () => {
    const c = counting();
    const h = harness(c.observer);
    await h.store('/s/a', [['cache-control', 'max-age=10']], 'old');
    h.clock.advance(12_000);
    const refresher = h.open();
    const first = await h.send(refresher, h.get('/s/a'));
    assert.equal(first.kind, 'request_headers', 'the first goes to the origin');
    for (let i = 0; i < 3; i++) {
      const stale = await h.lookup('/s/a');
      assert.equal(stale.kind === 'immediate' && stale.body.toString(), 'old');
      assert.equal(mark(stale), 'STALE');
      assert.equal(header(stale, 'age'), '12');
      assert.equal(stale.kind === 'immediate' && stale.details, 'portcullis_cache_stale');
      assert.equal(header(stale, 'warning'), undefined, 'no Warning header (obsolete, RFC 9111 §5.5)');
    }
    const answered = await h.send(refresher, { kind: 'response_headers', headers: [[':status', '200'], ['cache-control', 'max-age=10']], endOfStream: false });
    assert.equal(mark(answered), 'MISS');
    await h.send(refresher, { kind: 'response_body', body: Buffer.from('new'), endOfStream: true });
    const fresh = await h.lookup('/s/a');
    assert.equal(fresh.kind === 'immediate' && `${fresh.body.toString()} ${header(fresh, 'x-cache-status')} ${header(fresh, 'age')}`, 'new HIT 0');
    assert.deepEqual(c.results, ['miss', 'stored', 'stale', 'stale', 'stale', 'miss', 'stored', 'hit'], 'a miss is counted at the response');
  });

  it('the refresh goes without the client\'s validators, so the origin answers in full and the entry is stored', async () => {
    const h = harness();
    await h.store('/s/v', [['cache-control', 'max-age=10'], ['etag', '"v1"']], 'old');
    h.clock.advance(11_000);
    const refresh = await h.lookup('/s/v', [['if-none-match', '"v1"'], ['if-modified-since', 'Thu, 01 Jan 2026 00:00:00 GMT']]);
    assert.deepEqual(refresh.kind === 'request_headers' && refresh.mutation.remove.filter((n) => n.startsWith('if-')).sort(), ['if-modified-since', 'if-none-match']);
    const other = await h.lookup('/s/v', [['if-none-match', '"v1"']]);
    assert.equal(other.kind === 'immediate' && `${other.status} ${header(other, 'x-cache-status')}`, '304 STALE', 'a stale entry answers a conditional too');
    const plainMiss = await h.lookup('/s/none', [['if-none-match', '"v1"']]);
    assert.deepEqual(plainMiss.kind === 'request_headers' && plainMiss.mutation.remove.filter((n) => n.startsWith('if-')), [], 'only a refresh drops them');
  });

  it('a refresh that stores nothing hands the lock on when refresh_lock_ms passes', async () => {
    const h = harness();
    await h.store('/s/b', [['cache-control', 'max-age=10']], 'old');
    h.clock.advance(10_000);
    const refresher = h.open();
    assert.equal((await h.send(refresher, h.get('/s/b'))).kind, 'request_headers');
    await h.send(refresher, { kind: 'response_headers', headers: [[':status', '500']], endOfStream: true });
    assert.equal(mark(await h.lookup('/s/b')), 'STALE', 'lock still held');
    h.clock.advance(settings.cache.refreshLockMs);
    assert.equal((await h.lookup('/s/b')).kind, 'request_headers', 'the next request takes the lock again');
    assert.equal(mark(await h.lookup('/s/b')), 'STALE');
  });

  it('past the window, or on a route without one, every request goes to the origin', async () => {
    const h = harness();
    await h.store('/s/c', [['cache-control', 'max-age=10']]);
    await h.store('/c/c', [['cache-control', 'max-age=10, stale-while-revalidate=60']]);
    h.clock.advance(15_000);
    for (let i = 0; i < 2; i++) assert.equal((await h.lookup('/c/c')).kind, 'request_headers', 'the route grants no window');
    h.clock.advance(25_000);
    for (let i = 0; i < 2; i++) assert.equal((await h.lookup('/s/c')).kind, 'request_headers', '40 s: past 10 + 30');
  });

  it('never stale for must-revalidate, a request max-age, nor past the response\'s shorter grant', async () => {
    const h = harness();
    await h.store('/s/mr', [['cache-control', 'max-age=10, must-revalidate']]);
    await h.store('/s/short', [['cache-control', 'max-age=10, stale-while-revalidate=5']]);
    await h.store('/s/ma', [['cache-control', 'max-age=10']]);
    h.clock.advance(16_000);
    for (let i = 0; i < 2; i++) {
      assert.equal((await h.lookup('/s/mr')).kind, 'request_headers');
      assert.equal((await h.lookup('/s/short')).kind, 'request_headers');
      assert.equal((await h.lookup('/s/ma', [['cache-control', 'max-age=600']])).kind, 'request_headers');
    }
    assert.equal(mark(await h.lookup('/s/ma')), 'request_headers', 'the first without max-age takes the lock');
    assert.equal(mark(await h.lookup('/s/ma')), 'STALE');
  });

  it('HEAD and only-if-cached are served stale and leave the lock to a GET that will store', async () => {
    const h = harness();
    await h.store('/s/h', [['cache-control', 'max-age=10']]);
    h.clock.advance(11_000);
    const headStale = await h.send(h.open(), { kind: 'request_headers', headers: [[':method', 'HEAD'], [':path', '/s/h'], [':authority', 'h']], endOfStream: true });
    assert.equal(mark(headStale), 'STALE');
    assert.equal(mark(await h.lookup('/s/h', [['cache-control', 'only-if-cached']])), 'STALE');
    assert.equal((await h.lookup('/s/h')).kind, 'request_headers', 'the GET takes the lock');
  });

  it('a store that fails the lock serves stale and counts the error', async () => {
    const errors: string[] = [];
    const memory = new MemoryCacheStore(1 << 20);
    const failing: CacheStore = Object.assign(Object.create(memory) as CacheStore, { tryLock: () => Promise.reject(new Error('down')) });
    const h = harness({ ...observer, cacheError: (op: string) => void errors.push(op) }, failing);
    await h.store('/s/f', [['cache-control', 'max-age=10']]);
    h.clock.advance(11_000);
    assert.equal(mark(await h.lookup('/s/f')), 'STALE');
    assert.deepEqual(errors, ['lock']);
  });
});

describe('ExtprocStream cache keys', () => {
  const cacheStatus = (a: ProcessingAnswer): string | undefined =>
    a.kind === 'response_headers' ? a.mutation.set.find((s) => s.name === 'x-cache-status')?.value : undefined;

  it('the debug line about a path not in normal form leaves its query out (it may carry credentials)', async () => {
    const lines: unknown[] = [];
    const recording = { child: () => recording, debug: (o: unknown) => void lines.push(o), info: () => undefined, warn: () => undefined };
    const s = new ExtprocStream({ settings, cache: new MemoryCacheStore(1 << 20), cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: recording, routeHint: undefined, randomHex: (b) => '1'.repeat(b * 2) });
    await s.handle({ message: { kind: 'request_headers', headers: [[':method', 'GET'], [':path', '/c/x/../a?api_key=SECRET&access_token=T'], [':authority', 'h']], endOfStream: true }, identity: undefined, attributes: {} });
    assert.ok(lines.some((l) => JSON.stringify(l).includes('/c/x/../a')), JSON.stringify(lines));
    assert.ok(!JSON.stringify(lines).includes('SECRET'), JSON.stringify(lines));
  });

  it('a path not in normal form neither fills nor reads the cache: the upstream serves it as sent', async () => {
    const h = harness();
    for (const odd of ['/c/x/../a', '/c/%2e%2e/c/a', '/c/./a']) {
      assert.equal(cacheStatus(await h.store(odd, [], 'planted')), 'BYPASS', odd);
      assert.equal((await h.lookup('/c/a')).kind, 'request_headers', `${odd} left nothing under /c/a`);
    }
    await h.store('/c/a', [], 'real');
    assert.equal((await h.lookup('/c/a')).kind, 'immediate');
    assert.equal((await h.lookup('/c/x/../a')).kind, 'request_headers');
  });

  it('a host with its default port is the host: a PUT through one spelling invalidates what a GET through the other stored', async () => {
    const h = harness();
    const at = (host: string, method: string) => ({ kind: 'request_headers' as const, headers: [[':method', method], [':path', '/c/item'], [':authority', host], [':scheme', 'http']] as HeaderList, endOfStream: method === 'GET' });
    const s = h.open();
    await h.send(s, at('shop:80', 'GET'));
    await h.send(s, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
    await h.send(s, { kind: 'response_body', body: Buffer.from('v1'), endOfStream: true });
    assert.equal((await h.send(h.open(), at('Shop', 'GET'))).kind, 'immediate', 'shop:80 and Shop are one host');
    const put = h.open();
    await h.send(put, at('shop', 'PUT'));
    await h.send(put, { kind: 'response_headers', headers: [[':status', '204']], endOfStream: true });
    assert.equal((await h.send(h.open(), at('shop:80', 'GET'))).kind, 'request_headers', 'invalidated');
  });

  it('the values of a repeated query parameter are keyed in request order; other parameters in any order', async () => {
    const h = harness();
    await h.store('/c/items?id=1&id=2&x=0', [], 'item 1');
    assert.equal((await h.lookup('/c/items?id=2&id=1&x=0')).kind, 'request_headers');
    assert.equal((await h.lookup('/c/items?x=0&id=1&id=2')).kind, 'immediate');
  });

  it('a second request_headers on a stream starts over: the first request\'s cache key does not carry over', async () => {
    const h = harness();
    const s = h.open();
    await h.send(s, h.get('/c/home'));
    // On a cached route, but not a cache candidate itself (no-store): before the fix, its response went under /c/home.
    await h.send(s, h.get('/c/account', [['cache-control', 'no-store']]));
    await h.send(s, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
    await h.send(s, { kind: 'response_body', body: Buffer.from('account'), endOfStream: true });
    assert.equal((await h.lookup('/c/home')).kind, 'request_headers');
  });

  it('anonymous callers (ext_authz identity user_id=anonymous) are keyed by their credentials, not shared', async () => {
    const h = harness();
    const anonymous = { user_id: 'anonymous', auth_method: 'anonymous' };
    const exchange = async (extra: HeaderList, body?: string): Promise<ProcessingAnswer> => {
      const s = h.open();
      const first = await s.handle({ message: h.get('/mine/feed', extra), identity: anonymous, attributes: {} });
      if (body === undefined) return first;
      await s.handle({ message: { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false }, identity: anonymous, attributes: {} });
      await s.handle({ message: { kind: 'response_body', body: Buffer.from(body), endOfStream: true }, identity: anonymous, attributes: {} });
      return first;
    };
    await exchange([['authorization', 'Bearer victim'], ['cookie', 'session=victim']], 'victim data');
    assert.equal((await exchange([])).kind, 'request_headers', 'a caller without credentials does not get it');
    assert.equal((await exchange([['cookie', 'session=other']])).kind, 'request_headers');
    assert.equal((await exchange([['authorization', 'Bearer victim'], ['cookie', 'session=victim']])).kind, 'immediate');
  });

  it('a per-caller entry is keyed by every value of a repeated credential header', async () => {
    const h = harness();
    await h.store('/mine/profile', [], 'alice', [['cookie', 'theme=dark'], ['cookie', 'session=alice']]);
    assert.equal((await h.lookup('/mine/profile', [['cookie', 'theme=dark'], ['cookie', 'session=bob']])).kind, 'request_headers');
    assert.equal((await h.lookup('/mine/profile', [['cookie', 'theme=dark'], ['cookie', 'session=alice']])).kind, 'immediate');
  });
});

describe('invalidation on a route Envoy names (x-portcullis-route)', () => {
  const hinted = parsePortcullisConfig(`
extproc:
  routes:
    - name: catalog
      match: { path_prefix: /catalog }
      cache: { ttl_seconds: { "200": 300 }, public: true }
`, '/tmp/portcullis.yaml').extproc;
  // Lookups and stores use the route Envoy names; a successful unsafe request on it must invalidate the same entries.
  const table: [string, string, string | undefined, boolean][] = [
    ['PUT answered 200, same hint, a path the route\'s match does not cover', 'PUT', 'catalog', true],
    ['DELETE answered 200, same hint', 'DELETE', 'catalog', true],
    ['POST answered 200, no hint: path matching finds no cached route', 'POST', undefined, false],
  ];
  for (const [name, method, hint, invalidated] of table) {
    it(name, async () => {
      const cache = new MemoryCacheStore(1 << 20);
      const open = (routeHint: string | undefined) => new ExtprocStream({
        settings: hinted, cache, cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: silent, routeHint, randomHex: (bytes) => '1'.repeat(bytes * 2),
      });
      const send = (s: ExtprocStream, message: ProcessingMessage) => s.handle({ message, identity: undefined, attributes: {} });
      const request = (m: string) => ({ kind: 'request_headers' as const, headers: [[':method', m], [':path', '/v2/products/1'], [':authority', 'shop']] as HeaderList, endOfStream: true });
      const get = open('catalog');
      await send(get, request('GET'));
      await send(get, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
      await send(get, { kind: 'response_body', body: Buffer.from('price=10'), endOfStream: true });
      const unsafe = open(hint);
      await send(unsafe, request(method));
      await send(unsafe, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: true });
      const after = await send(open('catalog'), request('GET'));
      assert.equal(after.kind, invalidated ? 'request_headers' : 'immediate');
    });
  }
});

describe('the response phase: asked for only where it has work', () => {
  const compiled = (requestId: string, tracing = '') => parsePortcullisConfig(`
extproc:
  request_id: ${requestId}
  ${tracing}
  routes:
    - { name: plain, match: { path_prefix: /plain } }
    - { name: tagged, match: { path_prefix: /tagged }, headers: { response: { set: { x-served-by: gw } } } }
    - { name: appended, match: { path_prefix: /appended }, headers: { response: { append: { vary: accept } } } }
    - { name: stripped, match: { path_prefix: /stripped }, headers: { response: { remove: [server] } } }
    - { name: requests-only, match: { path_prefix: /requests-only }, headers: { request: { set: { x-a: b } } } }
    - { name: cached, match: { path_prefix: /cached, methods: [GET, HEAD] }, cache: { ttl_seconds: { "200": 10 } } }
    - { name: checked, match: { path_prefix: /checked }, validate: { max_body_bytes: 10 } }
`, '/tmp/portcullis.yaml').extproc;
  const envoyEchoes = compiled('{ echo: envoy }');
  const routeOf = (s: typeof envoyEchoes, name: string) => s.routes.find((r) => r.name === name);

  const table: [string, typeof envoyEchoes, string | undefined, boolean, boolean][] = [
    ['Portcullis echoes the request id (the default)', compiled('{}'), undefined, false, true],
    ['a mirrored trace id goes on every response', compiled('{ echo: envoy }', 'tracing: { mirror: { trace_id: x-trace-id } }'), undefined, false, true],
    ['Envoy echoes, no route', envoyEchoes, undefined, false, false],
    ['a route with nothing for the response', envoyEchoes, 'plain', false, false],
    ['request header rules only', envoyEchoes, 'requests-only', false, false],
    ['body validation only', envoyEchoes, 'checked', false, false],
    ['a response header to set', envoyEchoes, 'tagged', false, true],
    ['a response header to append', envoyEchoes, 'appended', false, true],
    ['a response header to remove', envoyEchoes, 'stripped', false, true],
    ['a cached route (mark, store)', envoyEchoes, 'cached', false, true],
    ['an unsafe request to invalidate a cached path', envoyEchoes, undefined, true, true],
  ];
  for (const [name, settings, route, invalidates, expected] of table) {
    it(`${name}: ${expected ? 'needed' : 'skipped'}`, () => {
      assert.equal(needsResponsePhase(settings, route === undefined ? undefined : routeOf(settings, route), invalidates), expected);
    });
  }

  const answerFor = async (method: string, path: string, headers: HeaderList = [], routeHint?: string) => {
    const stream = new ExtprocStream({
      settings: envoyEchoes, cache: new MemoryCacheStore(1 << 20), cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: silent, routeHint,
      randomHex: (bytes) => '1'.repeat(bytes * 2),
    });
    const answer = await stream.handle({ message: { kind: 'request_headers', headers: [[':method', method], [':path', path], [':authority', 'h'], ...headers], endOfStream: false }, identity: undefined, attributes: {} });
    assert.equal(answer.kind, 'request_headers');
    return answer.kind === 'request_headers' ? answer.modeOverride : undefined;
  };

  it('the request_headers answer carries the decision as mode_override', async () => {
    assert.deepEqual(await answerFor('GET', '/elsewhere'), { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: 'SKIP' });
    assert.deepEqual(await answerFor('POST', '/checked', [['transfer-encoding', 'chunked']]), { requestBody: 'BUFFERED', responseBody: 'NONE', responseHeaders: 'SKIP', requestTrailers: 'SEND' },
      'a body to validate: its trailers too, which end a body that arrives without end_of_stream');
    assert.deepEqual(await answerFor('GET', '/cached/a'), { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: 'SEND' }, 'response headers asked for: the shipped configs skip them unless asked');
    assert.deepEqual(await answerFor('DELETE', '/cached/a'), { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: 'SEND' }, 'a successful DELETE invalidates the path: response headers asked for');
    assert.deepEqual(await answerFor('PUT', '/v2/a', [], 'cached'), { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: 'SEND' }, 'on a cached route Envoy named, whatever the path: response headers asked for');
    assert.deepEqual(await answerFor('PUT', '/v2/a', [], 'plain'), { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: 'SKIP' }, 'a named route without a cache');
  });
});

describe('template variables are only the built-ins and the identity\'s own fields', () => {
  // `constructor` and `__proto__` are valid variable names; an object literal answers them from Object.prototype
  // ("function Object() { [native code] }"), where a missing variable must set no header at all.
  const settings = parsePortcullisConfig(`
extproc:
  routes:
    - name: t
      headers: { request: { set: { x-ctor: "{constructor}", x-proto: "u-{__proto__}", x-user: "{user_id}" } } }
`, '/tmp/portcullis.yaml').extproc;
  const setOn = async (identity: Record<string, string> | undefined) => {
    const stream = new ExtprocStream({
      settings, cache: new MemoryCacheStore(1 << 20), cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: silent, routeHint: undefined,
      randomHex: (bytes) => '1'.repeat(bytes * 2),
    });
    const answer = await stream.handle({ message: { kind: 'request_headers', headers: [[':method', 'GET'], [':path', '/a'], [':authority', 'h']], endOfStream: true }, identity, attributes: {} });
    assert.equal(answer.kind, 'request_headers');
    return answer.kind === 'request_headers' ? Object.fromEntries(answer.mutation.set.map((s) => [s.name, s.value])) : {};
  };

  it('a missing variable named like an Object.prototype member sets no header', async () => {
    const identities: (Record<string, string> | undefined)[] = [undefined, {}, { user_id: 'u1' }];
    for (const identity of identities) {
      const set = await setOn(identity);
      assert.equal(set['x-ctor'], undefined, JSON.stringify(identity));
      assert.equal(set['x-proto'], undefined, JSON.stringify(identity));
    }
  });

  it('an identity field of that name is used as any other', async () => {
    const set = await setOn({ constructor: 'c1', user_id: 'u1' } as Record<string, string>);
    assert.equal(set['x-ctor'], 'c1');
    assert.equal(set['x-user'], 'u1');
  });
});


describe('trace context from the request headers (W3C Trace Context)', () => {
  const T1 = '12345678901234567890123456789011';
  const T2 = '12345678901234567890123456789012';
  const P = '1234567890123456';
  const sent = async (headers: HeaderList) => {
    const stream = new ExtprocStream({
      settings, cache: new MemoryCacheStore(1 << 20), cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: silent, routeHint: undefined,
      randomHex: (bytes) => 'a'.repeat(bytes * 2),
    });
    const answer = await stream.handle({ message: { kind: 'request_headers', headers: [[':method', 'GET'], [':path', '/x'], [':authority', 'h'], ...headers], endOfStream: true }, identity: undefined, attributes: {} });
    assert.equal(answer.kind, 'request_headers');
    return answer.kind === 'request_headers' ? answer.mutation : { set: [], remove: [] };
  };

  it('two traceparent headers are no valid traceparent: a new trace starts and tracestate is dropped', async () => {
    // The W3C test suite's test_traceparent_duplicated: neither trace id may be continued.
    const m = await sent([['traceparent', `00-${T1}-${P}-01`], ['traceparent', `00-${T2}-${P}-01`], ['tracestate', 'a=1']]);
    assert.equal(m.set.find((s) => s.name === 'traceparent')?.value, `00-${'a'.repeat(32)}-${'a'.repeat(16)}-01`);
    assert.ok(m.remove.includes('tracestate'));
  });

  it('two traceparent headers, the first of a higher version with a field after the flags: still a new trace', async () => {
    // Joined as one value, `cc-…-01-x, 00-…` reads as a higher version whose extra field holds the second line.
    const m = await sent([['traceparent', `cc-${T1}-${P}-01-x`], ['traceparent', `00-${T2}-${P}-01`], ['tracestate', 'a=1']]);
    assert.equal(m.set.find((s) => s.name === 'traceparent')?.value, `00-${'a'.repeat(32)}-${'a'.repeat(16)}-01`);
    assert.ok(m.remove.includes('tracestate'));
  });

  it('one valid traceparent is continued and tracestate, sent in two lines, is left alone', async () => {
    const m = await sent([['traceparent', `00-${T1}-${P}-00`], ['tracestate', 'a=1'], ['tracestate', 'b=2']]);
    assert.equal(m.set.find((s) => s.name === 'traceparent')?.value, `00-${T1}-${'a'.repeat(16)}-00`);
    assert.ok(!m.remove.includes('tracestate'));
    assert.equal(m.set.find((s) => s.name === 'tracestate'), undefined);
  });
});

describe('a 304 from the origin is never stored, even when the route lists 304', () => {
  const listed = parsePortcullisConfig(`
extproc:
  routes:
    - name: c
      match: { path_prefix: /c }
      cache: { ttl_seconds: { "200": 100, "304": 100 }, public: true }
`, '/tmp/portcullis.yaml').extproc;

  it('a conditional request\'s 304 does not answer the next, unconditional request', async () => {
    const cache = new MemoryCacheStore(1 << 20);
    const open = () => new ExtprocStream({
      settings: listed, cache, cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: silent, routeHint: undefined,
      randomHex: (bytes) => '1'.repeat(bytes * 2),
    });
    const get = (extra: HeaderList): ProcessingMessage => ({ kind: 'request_headers', headers: [[':method', 'GET'], [':path', '/c/page'], [':authority', 'h'], ...extra], endOfStream: true });
    const conditional = open();
    await conditional.handle({ message: get([['if-none-match', '"v1"']]), identity: undefined, attributes: {} });
    await conditional.handle({ message: { kind: 'response_headers', headers: [[':status', '304'], ['etag', '"v1"']], endOfStream: true }, identity: undefined, attributes: {} });
    const next = await open().handle({ message: get([]), identity: undefined, attributes: {} });
    assert.equal(next.kind === 'immediate' ? `served a stored ${next.status}` : next.kind, 'request_headers');
  });
});

describe('x-request-id from the request headers', () => {
  const sent = async (headers: HeaderList) => {
    const stream = new ExtprocStream({
      settings, cache: new MemoryCacheStore(1 << 20), cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: silent, routeHint: undefined,
      randomHex: (bytes) => 'a'.repeat(bytes * 2), newRequestId: () => 'generated',
    });
    const answer = await stream.handle({ message: { kind: 'request_headers', headers: [[':method', 'GET'], [':path', '/x'], [':authority', 'h'], ...headers], endOfStream: true }, identity: undefined, attributes: {} });
    return answer.kind === 'request_headers' ? answer.mutation.set.filter((s) => s.name === 'x-request-id').map((s) => `${s.value}${s.append ? ' (append)' : ''}`) : [];
  };
  const table: [string, HeaderList, string[]][] = [
    ['one sane id is kept as sent', [['x-request-id', 'abc-1']], []],
    ['none: one is created', [], ['generated']],
    ['not a sane token: replaced', [['x-request-id', 'has space']], ['generated']],
    // The upstream must see the one id the logs and the response carry, not both.
    ['two ids: the first is kept and set alone', [['x-request-id', 'abc-1'], ['x-request-id', 'abc-2']], ['abc-1']],
  ];
  for (const [name, headers, expected] of table) it(name, async () => assert.deepEqual(await sent(headers), expected));
});

describe('a body held for validation is bounded by max_message_bytes', () => {
  // Envoy asked for BUFFERED sends the body as one message, at most max_message_bytes. One configured without
  // allow_mode_override streams it in chunks, and a route without max_body_bytes would hold the whole upload.
  const validating = parsePortcullisConfig(`
extproc:
  max_message_bytes: 4194304
  routes:
    - name: users
      validate: { json_schema: ./user.json }
`, '/tmp/portcullis.yaml', { schema: () => '{"type":"object"}' }).extproc;
  const open = () => new ExtprocStream({
    settings: validating, cache: new MemoryCacheStore(1 << 20), cacheHealth: new FailureStreak(), clock: new FakeClock(0), observer, log: silent, routeHint: undefined,
    randomHex: (bytes) => '1'.repeat(bytes * 2),
  });
  const chunk = Buffer.alloc(1 << 20, 0x20);
  const post = (s: ExtprocStream) => s.handle({ message: { kind: 'request_headers', headers: [[':method', 'POST'], [':path', '/u'], [':authority', 'h'], ['transfer-encoding', 'chunked']], endOfStream: false }, identity: undefined, attributes: {} });
  const send = (s: ExtprocStream, endOfStream: boolean) => s.handle({ message: { kind: 'request_body', body: chunk, endOfStream }, identity: undefined, attributes: {} });

  it('past max_message_bytes in chunks: 413, and nothing more is held', async () => {
    const s = open();
    assert.equal((await post(s)).kind, 'request_headers');
    const kinds: string[] = [];
    for (let i = 0; i < 5; i++) {
      const a = await send(s, false);
      kinds.push(a.kind === 'immediate' ? `immediate ${a.status}` : a.kind);
    }
    assert.deepEqual(kinds, ['request_body', 'request_body', 'request_body', 'request_body', 'immediate 413']);
  });

  it('a body of exactly max_message_bytes is still validated', async () => {
    const s = open();
    await post(s);
    for (let i = 0; i < 3; i++) await send(s, false);
    const last = await send(s, true);
    // Four MiB of spaces is no JSON document: the schema check ran (400), the size check did not refuse it.
    assert.equal(last.kind === 'immediate' ? last.status : last.kind, 400);
  });

  // Envoy that ignores mode_override never sends the body asked for: the stream just ends, the request unvalidated.
  const small = (s: ExtprocStream, endOfStream: boolean) => s.handle({ message: { kind: 'request_body', body: Buffer.from('{}'), endOfStream }, identity: undefined, attributes: {} });
  const cases: { name: string; run: (s: ExtprocStream) => Promise<unknown>; want: boolean; counted: string[] }[] = [
    { name: 'the headers answered, no body came', run: (s) => post(s), want: true, counted: ['never_came'] },
    { name: 'part of the body came', run: async (s) => { await post(s); await small(s, false); }, want: true, counted: ['never_came'] },
    { name: 'the whole body came and was validated', run: async (s) => { await post(s); await small(s, true); }, want: false, counted: ['received'] },
    { name: 'the body came, then trailers ended it', run: async (s) => { await post(s); await small(s, false); await s.handle({ message: { kind: 'request_trailers', trailers: [] }, identity: undefined, attributes: {} }); }, want: false, counted: ['received'] },
    { name: 'the body went past max_message_bytes (413)', run: async (s) => { await post(s); for (let i = 0; i < 5; i++) await send(s, false); }, want: false, counted: ['received'] },
    { name: 'a request without a body (end_of_stream on the headers)', run: (s) => s.handle({ message: { kind: 'request_headers', headers: [[':method', 'POST'], [':path', '/u'], [':authority', 'h']], endOfStream: true }, identity: undefined, attributes: {} }), want: false, counted: [] },
    { name: 'a GET (nothing to validate in a body)', run: (s) => s.handle({ message: { kind: 'request_headers', headers: [[':method', 'GET'], [':path', '/u'], [':authority', 'h']], endOfStream: true }, identity: undefined, attributes: {} }), want: false, counted: [] },
  ];
  for (const c of cases) {
    it(`endedWithoutAskedBody: ${c.name}`, async () => {
      const counted: string[] = [];
      const s = new ExtprocStream({
        settings: validating, cache: new MemoryCacheStore(1 << 20), cacheHealth: new FailureStreak(), clock: new FakeClock(0), log: silent, routeHint: undefined,
        observer: { ...observer, askedBody: (outcome) => counted.push(outcome) }, randomHex: (bytes) => '1'.repeat(bytes * 2),
      });
      await c.run(s);
      assert.equal(s.endedWithoutAskedBody(), c.want);
      assert.equal(s.endedWithoutAskedBody(), false, 'said once');
      assert.deepEqual(counted, c.counted);
    });
  }
});

describe('a validating route that caches answers from the cache before the body', () => {
  // A GET may carry a body the route's schema checks: the body is asked for, then the cache answers at once. The
  // request never reaches the upstream, so the stream's end is not a body that never came (an alert says Envoy is
  // misconfigured when one is counted).
  const both = parsePortcullisConfig(`
extproc:
  routes:
    - name: users
      validate: { json_schema: ./user.json }
      cache: { ttl_seconds: { "200": 100 }, public: true }
`, '/tmp/portcullis.yaml', { schema: () => '{"type":"object"}' }).extproc;
  const cases: { name: string; path: string; extra: HeaderList; stored: boolean; status: number }[] = [
    { name: 'a hit', path: '/u/1', extra: [], stored: true, status: 200 },
    { name: 'only-if-cached on a miss (504)', path: '/u/2', extra: [['cache-control', 'only-if-cached']], stored: false, status: 504 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const counted: string[] = [];
      const cache = new MemoryCacheStore(1 << 20);
      const open = () => new ExtprocStream({
        settings: both, cache, cacheHealth: new FailureStreak(), clock: new FakeClock(0), log: silent, routeHint: undefined,
        observer: { ...observer, askedBody: (outcome) => counted.push(outcome) }, randomHex: (bytes) => '1'.repeat(bytes * 2),
      });
      const send = (s: ExtprocStream, message: ProcessingMessage) => s.handle({ message, identity: undefined, attributes: {} });
      const headers = (endOfStream: boolean, extra: HeaderList = []): ProcessingMessage =>
        ({ kind: 'request_headers', headers: [[':method', 'GET'], [':path', c.path], [':authority', 'h'], ...extra], endOfStream });
      if (c.stored) {
        const first = open();
        await send(first, headers(true));
        await send(first, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
        await send(first, { kind: 'response_body', body: Buffer.from('ok'), endOfStream: true });
      }
      const s = open();
      const answer = await send(s, headers(false, [['content-type', 'application/json'], ...c.extra]));
      assert.equal(answer.kind === 'immediate' ? answer.status : answer.kind, c.status);
      assert.equal(s.endedWithoutAskedBody(), false);
      assert.deepEqual(counted, []);
    });
  }
});

// A path ext_authz's normalizer refuses is read differently by upstreams: `/api/orders;x` is `/api/orders` to Tomcat,
// `/api%2Forders` to one that decodes slashes, `/x/%252e%252e/api/orders` to one that decodes twice. Validation must
// not be skipped for it (src/extproc/route-choice.ts).
describe('a path upstreams read in different ways', () => {
  const ambiguous = parsePortcullisConfig(`
extproc:
  routes:
    - name: orders
      match: { path: /api/orders, methods: [POST] }
      validate: { required_headers: [x-client-version] }
      headers: { request: { set: { x-route: orders } } }
    - name: catalog
      match: { path_prefix: /catalog }
      cache: { ttl_seconds: { "200": 300 }, public: true }
`, '/tmp/portcullis.yaml').extproc;
  const counted: string[] = [];
  const open = (cache = new MemoryCacheStore(1 << 20)) => new ExtprocStream({
    settings: ambiguous, cache, cacheHealth: new FailureStreak(), clock: new FakeClock(0), log: silent, routeHint: undefined,
    observer: { ...observer, ambiguousPath: (action) => counted.push(action) }, randomHex: (bytes) => '1'.repeat(bytes * 2), newRequestId: () => 'rid',
  });
  const send = (s: ExtprocStream, message: ProcessingMessage) => s.handle({ message, identity: undefined, attributes: {} });
  const request = (method: string, path: string) => ({ kind: 'request_headers' as const, headers: [[':method', method], [':path', path], [':authority', 'shop']] as HeaderList, endOfStream: false });

  // path as sent, the reason in the problem (normalize-path.ts)
  const refused: [string, string][] = [
    ['/api/orders;x', 'semicolon (path parameter) in path'],
    ['/api/orders%3Bjsessionid=1', 'encoded semicolon (path parameter) in path'],
    ['/public/..;/api/orders', 'semicolon (path parameter) in path'],
    ['/api%2Forders', 'encoded slash or backslash in path'],
    ['/x/%252e%252e/api/orders', 'double-encoded percent-escape (%25 before two hex digits) in path'],
    ['/x/%C0%AE%C0%AE/api/orders', 'overlong UTF-8 escape in path'],
  ];
  for (const [path, reason] of refused) {
    it(`POST ${path} is answered 400 ambiguous-path, never passed on unvalidated`, async () => {
      counted.length = 0;
      const answer = await send(open(), request('POST', `${path}?q=1`));
      assert.equal(answer.kind, 'immediate');
      if (answer.kind !== 'immediate') return;
      assert.equal(answer.status, 400);
      assert.equal(answer.details, 'portcullis_validation_400');
      assert.equal(header(answer, 'content-type'), 'application/problem+json');
      const problem = JSON.parse(answer.body.toString()) as Record<string, unknown>;
      assert.deepEqual(problem, {
        type: 'urn:portcullis:problem:ambiguous-path', title: 'Request path is ambiguous', status: 400,
        detail: `${reason}: upstreams read this path in different ways`, instance: path, request_id: 'rid',
        errors: [{ location: 'path', name: '', message: `${reason}: upstreams read this path in different ways` }],
      });
      assert.deepEqual(counted, ['rejected']);
    });
  }

  it('passes a refused path no reading of which validates, with the route all readings take, and never caches it', async () => {
    counted.length = 0;
    const get = await send(open(), request('GET', '/api/orders;x'));
    assert.equal(get.kind, 'request_headers', 'orders validates POST only');
    assert.equal(get.kind === 'request_headers' && get.mutation.set.some((s) => s.name === 'x-route'), false);
    const cache = new MemoryCacheStore(1 << 20);
    const s = open(cache);
    await send(s, request('GET', '/catalog;jsessionid=1'));
    const r = await send(s, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
    assert.equal(r.kind === 'response_headers' && r.mutation.set.find((h) => h.name === 'x-cache-status')?.value, 'BYPASS');
    assert.deepEqual(counted, ['passed', 'passed']);
  });

  it('a successful POST to /catalog;x invalidates /catalog, which Tomcat read it as', async () => {
    const cache = new MemoryCacheStore(1 << 20);
    const get = open(cache);
    await send(get, { ...request('GET', '/catalog'), endOfStream: true });
    await send(get, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
    await send(get, { kind: 'response_body', body: Buffer.from('price=10'), endOfStream: true });
    assert.equal((await send(open(cache), { ...request('GET', '/catalog'), endOfStream: true })).kind, 'immediate', 'stored');
    const post = open(cache);
    await send(post, { ...request('POST', '/catalog;x'), endOfStream: true });
    await send(post, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: true });
    assert.equal((await send(open(cache), { ...request('GET', '/catalog'), endOfStream: true })).kind, 'request_headers');
  });
});

describe('match.ignore_case', () => {
  const folded = parsePortcullisConfig(`
extproc:
  routes:
    - name: orders
      match: { path: /api/orders, ignore_case: true }
      validate: { required_headers: [x-client-version] }
    - name: catalog
      match: { path_prefix: /Catalog, ignore_case: true }
      cache: { ttl_seconds: { "200": 300 }, public: true }
`, '/tmp/portcullis.yaml').extproc;
  const open = (cache: MemoryCacheStore) => new ExtprocStream({
    settings: folded, cache, cacheHealth: new FailureStreak(), clock: new FakeClock(0), log: silent, routeHint: undefined, observer, randomHex: (bytes) => '1'.repeat(bytes * 2),
  });
  const send = (s: ExtprocStream, message: ProcessingMessage) => s.handle({ message, identity: undefined, attributes: {} });
  const get = (path: string, method = 'GET') => ({ kind: 'request_headers' as const, headers: [[':method', method], [':path', path], [':authority', 'shop']] as HeaderList, endOfStream: true });

  it('/API/Orders is validated as /api/orders', async () => {
    const answer = await send(open(new MemoryCacheStore(1 << 20)), get('/API/Orders'));
    assert.equal(answer.kind === 'immediate' && answer.status, 400);
  });

  it('keys the cache on the folded path: /CATALOG/a is the entry of /catalog/a, and a PUT to either drops it', async () => {
    const cache = new MemoryCacheStore(1 << 20);
    const s = open(cache);
    await send(s, get('/catalog/a'));
    await send(s, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: false });
    await send(s, { kind: 'response_body', body: Buffer.from('a'), endOfStream: true });
    assert.equal((await send(open(cache), get('/CATALOG/a'))).kind, 'immediate');
    const put = open(cache);
    await send(put, get('/Catalog/A', 'PUT'));
    await send(put, { kind: 'response_headers', headers: [[':status', '200']], endOfStream: true });
    assert.equal((await send(open(cache), get('/catalog/a'))).kind, 'request_headers');
  });
});
