import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IntrospectionBreaker } from '../../../src/authz/introspection.js';
import { UnreadableBodyError } from '../../../src/authz/ports.js';
import { AuthzService } from '../../../src/authz/service.js';
import type { Decision } from '../../../src/authz/types.js';
import { MemoryRevocationList } from '../../../src/store/revocation-list.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { authzSettings, countingObserver, fakeHttp, input } from './support.js';

const URL = 'https://idp.example/introspect';
const NOW_MS = 1_700_000_000_000;

function setup(answer: (form?: Record<string, string>, headers?: Record<string, string>) => unknown, onFailure = 'deny') {
  const clock = new FakeClock(NOW_MS);
  const observer = countingObserver();
  const http = fakeHttp({ [URL]: answer });
  const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer, random: () => 0 });
  const settings = authzSettings(`introspection: { url: "${URL}", client_id: gateway, client_secret_file: ./secret, cache_seconds: 60, on_failure: ${onFailure} }
api_keys: { file: ./keys.yaml }
policies:
  - { name: p, match: { path_prefix: / }, authenticate: [introspection, api_key], require: { scopes: [read] } }`);
  const files = new Map([['/etc/portcullis/secret', 's3cret\n'], ['/etc/portcullis/keys.yaml', '[]']]);
  const snapshot = service.prepare(settings, files);
  const check = async (token: string): Promise<Decision> => service.check(input({ headers: { authorization: `Bearer ${token}` } }), snapshot, AbortSignal.timeout(1000));
  return { clock, observer, http, check, service, settings, files };
}

describe('introspection evaluator (RFC 7662)', () => {
  it('posts the token with client credentials; active true allows with sub and scopes; cached until exp', async () => {
    let seen: { form?: Record<string, string>; headers?: Record<string, string> } = {};
    const s = setup((form, headers) => {
      seen = { form, headers };
      return { status: 200, body: { active: true, sub: 'svc-1', scope: 'read write', exp: NOW_MS / 1000 + 30, tier: 'pro' } };
    });
    const d = await s.check('opaque-token-1');
    assert.ok(d.allow && d.identity.subject === 'svc-1' && d.identity.method === 'introspection' && d.identity.tier === 'pro');
    assert.deepEqual(seen.form, { token: 'opaque-token-1', token_type_hint: 'access_token' });
    assert.equal(seen.headers?.['authorization'], `Basic ${Buffer.from('gateway:s3cret').toString('base64')}`);
    assert.ok((await s.check('opaque-token-1')).allow);
    assert.equal(s.http.calls.length, 1, 'second check from the cache');
    s.clock.advance(31_000); // past exp, before cache_seconds
    await s.check('opaque-token-1');
    assert.equal(s.http.calls.length, 2, 'cache entry ended at exp');
  });

  it('active false denies 401 (and is cached for cache_seconds)', async () => {
    const s = setup(() => ({ status: 200, body: { active: false } }));
    const d = await s.check('revoked');
    assert.ok(!d.allow && d.status === 401 && d.reason === 'invalid_credentials');
    await s.check('revoked');
    assert.equal(s.http.calls.length, 1);
  });

  it('an active answer whose subject is blank or not fit for a header is inactive: 401', async () => {
    for (const sub of [' ', ' root', 'root\t', 'svc\r\nx-user-id: root', 'x'.repeat(4097)]) {
      const s = setup(() => ({ status: 200, body: { active: true, sub } }));
      const d = await s.check('t');
      assert.ok(!d.allow && d.status === 401 && d.reason === 'invalid_credentials', JSON.stringify(sub));
    }
  });

  it('scopes are enforced on cached answers too', async () => {
    const s = setup(() => ({ status: 200, body: { active: true, sub: 'x', scope: 'write' } }));
    for (let i = 0; i < 2; i++) {
      const d = await s.check('t');
      assert.ok(!d.allow && d.status === 403);
    }
  });

  it('scopes: a string split on every whitespace run, or an array, as for JWTs; x-user-scopes carries what was checked', async () => {
    // [scope, scopes seen (undefined: refused for lack of read)]
    const rows: [unknown, string[] | undefined][] = [
      ['read write', ['read', 'write']],
      ['read\twrite', ['read', 'write']],
      ['write\u00a0 read', ['write', 'read']],
      [['read', 'write'], ['read', 'write']],
      [['read write', 'admin'], ['read', 'write', 'admin']],
      [['readwrite'], undefined],
    ];
    for (const [i, [scope, scopes]] of rows.entries()) {
      const s = setup(() => ({ status: 200, body: { active: true, sub: 'x', scope } }));
      const d = await s.check(`scopes-${i}`);
      assert.equal(d.allow, scopes !== undefined, JSON.stringify(scope));
      if (!d.allow) continue;
      assert.deepEqual(d.identity.scopes, scopes);
      assert.equal(new Map(d.grant.headers.map(([n, v]) => [n, v])).get('x-user-scopes'), scopes!.join(' '));
    }
  });

  it('down or garbage: 503 when no other method succeeds, counted; on_failure error makes it a gRPC error', async () => {
    for (const answer of [() => { throw new Error('ECONNREFUSED'); }, () => ({ status: 500, body: undefined }), () => ({ status: 200, body: { active: 'yes' } })]) {
      const s = setup(answer);
      const d = await s.check('t');
      assert.ok(!d.allow && d.status === 503 && d.reason === 'unavailable', JSON.stringify(d));
      assert.equal(s.observer.counts.get('introspection_error'), 1);
    }
    const s = setup(() => { throw new Error('down'); }, 'error');
    await assert.rejects(s.check('t'), { code: 'PC_AUTHZ_UNAVAILABLE' });
  });

  it('an answer that cannot be read says why: 503, counted, the detail for the log; a good answer after it is reported', async () => {
    // [answer, detail]
    const rows: [{ status: number; body: unknown }, RegExp][] = [
      [{ status: 401, body: { error: 'invalid_client' } }, /^introspection endpoint answered 401: it refuses the gateway's client credentials \(client_id, client_secret_file\)$/],
      [{ status: 403, body: undefined }, /answered 403: it refuses the gateway's client credentials/],
      [{ status: 302, body: undefined }, /^introspection endpoint answered 302$/],
      [{ status: 200, body: ['active', true] }, /^introspection answer is not a JSON object$/],
      [{ status: 200, body: { active: 'true', sub: 'svc', scope: 'read' } }, /^introspection answer has no boolean active \(active: "true"\)$/],
      [{ status: 200, body: { sub: 'svc', scope: 'read' } }, /no boolean active \(active: \(none\)\)$/],
      [{ status: 200, body: { active: true, sub: 'svc', exp: '1700000030' } }, /exp that is not a number/],
    ];
    for (const [answer, detail] of rows) {
      const details: string[] = [];
      const s = setup(() => answer);
      const observer = { ...s.observer, introspectionError: (d: string) => void details.push(d) };
      const snapshot = s.service.prepare(s.settings, s.files);
      const d = await s.service.check(input({ headers: { authorization: 'Bearer t' } }), { ...snapshot, introspection: { ...snapshot.introspection!, observer } }, AbortSignal.timeout(1000));
      assert.ok(!d.allow && d.status === 503, JSON.stringify(d));
      assert.equal(details.length, 1);
      assert.match(details[0]!, detail);
    }
    const s = setup(() => ({ status: 200, body: { active: false } }));
    await s.check('t');
    assert.equal(s.observer.counts.get('introspection_answered'), 1);
    await s.check('t');
    assert.equal(s.observer.counts.get('introspection_answered'), 1, 'an answer from the cache is not the endpoint answering');
  });

  it('a call in flight answers only for the config that made it: a new endpoint gets its own call', async () => {
    const OTHER = 'https://other-idp.example/introspect';
    let release = (): void => undefined;
    const clock = new FakeClock(NOW_MS);
    const http = fakeHttp({
      [URL]: () => new Promise((resolve) => (release = () => resolve({ status: 200, body: { active: true, sub: 'old-idp-user', scope: 'read' } }))),
      [OTHER]: () => ({ status: 200, body: { active: false } }),
    });
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer: countingObserver() });
    const snapshotFor = (url: string) => service.prepare(authzSettings(`introspection: { url: "${url}", client_id: g, client_secret_file: ./s }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`), new Map([['/etc/portcullis/s', 'x']]));
    const request = input({ headers: { authorization: 'Bearer shared-token' } });
    const first = service.check(request, snapshotFor(URL), AbortSignal.timeout(2000));
    const second = await service.check(request, snapshotFor(OTHER), AbortSignal.timeout(2000));
    release();
    assert.ok(!second.allow && second.status === 401, 'the new endpoint said inactive');
    assert.ok((await first).allow);
    assert.deepEqual(http.calls, [URL, OTHER]);
  });

  it('an answer cached under one endpoint is not used once the config names another', async () => {
    const OTHER = 'https://other-idp.example/introspect';
    const clock = new FakeClock(NOW_MS);
    const http = fakeHttp({ [URL]: () => ({ status: 200, body: { active: true, sub: 'u', scope: 'read' } }), [OTHER]: () => ({ status: 200, body: { active: false } }) });
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer: countingObserver() });
    const snapshotFor = (url: string) => service.prepare(authzSettings(`introspection: { url: "${url}", client_id: g, client_secret_file: ./s, cache_seconds: 300 }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`), new Map([['/etc/portcullis/s', 'x']]));
    const request = input({ headers: { authorization: 'Bearer cached-token' } });
    assert.ok((await service.check(request, snapshotFor(URL), AbortSignal.timeout(2000))).allow);
    assert.ok((await service.check(request, snapshotFor(URL), AbortSignal.timeout(2000))).allow, 'cached');
    const moved = await service.check(request, snapshotFor(OTHER), AbortSignal.timeout(2000));
    assert.ok(!moved.allow && moved.status === 401);
    assert.deepEqual(http.calls, [URL, OTHER]);
  });

  it('an answer cached under one claim mapping is read again once claims.tier names another field', async () => {
    const clock = new FakeClock(NOW_MS);
    const http = fakeHttp({ [URL]: () => ({ status: 200, body: { active: true, sub: 'u', tier: 'gold', plan: 'free' } }) });
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer: countingObserver() });
    const snapshotFor = (tierClaim: string) => service.prepare(authzSettings(`introspection: { url: "${URL}", client_id: g, client_secret_file: ./s, cache_seconds: 300, claims: { tier: ${tierClaim} } }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`), new Map([['/etc/portcullis/s', 'x']]));
    const request = input({ headers: { authorization: 'Bearer cached-token' } });
    const tierOf = async (tierClaim: string) => {
      const decision = await service.check(request, snapshotFor(tierClaim), AbortSignal.timeout(2000));
      return decision.allow ? decision.identity.tier : `denied ${decision.status}`;
    };
    assert.equal(await tierOf('tier'), 'gold');
    assert.equal(await tierOf('tier'), 'gold', 'cached');
    assert.equal(await tierOf('plan'), 'free');
    assert.deepEqual(http.calls, [URL, URL]);
  });

  it('a hanging server is bounded by the Check deadline', async () => {
    const clock = new FakeClock(NOW_MS);
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http: fakeHttp({ [URL]: () => new Promise(() => undefined) }), observer: countingObserver() });
    const snapshot = service.prepare(authzSettings(`introspection: { url: "${URL}", client_id: g, client_secret_file: ./s }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`), new Map([['/etc/portcullis/s', 'x']]));
    const deadline = new AbortController();
    setTimeout(() => deadline.abort(), 80);
    const started = Date.now();
    const d = await service.check(input({ headers: { authorization: 'Bearer t' } }), snapshot, deadline.signal);
    assert.ok(!d.allow && d.status === 503);
    assert.ok(Date.now() - started < 1000);
  });
});

describe('introspection: answers read like a JWT', () => {
  const S = NOW_MS / 1000;
  let n = 0;
  /** A service whose revocation list says `state` for every jti but `revoked`, which it holds as revoked. */
  function revocable(body: Record<string, unknown>, state: boolean | undefined, onUnavailable = 'deny', onFailure = 'deny') {
    const clock = new FakeClock(NOW_MS);
    const revocation = {
      isRevoked: (kind: string, id: string) => (kind === 'jti' && id === 'revoked' ? true : state),
      revoke: () => Promise.resolve(0), lift: () => Promise.resolve(false), entries: () => Promise.resolve([]),
      start: () => undefined, close: () => Promise.resolve(),
    };
    const service = new AuthzService({ clock, revocation, http: fakeHttp({ [URL]: () => ({ status: 200, body }) }), observer: countingObserver() });
    const settings = authzSettings(`introspection: { url: "${URL}", client_id: g, client_secret_file: ./s, on_failure: ${onFailure} }
revocation: { enabled: true, on_unavailable: ${onUnavailable} }
policies:
  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`);
    const snapshot = service.prepare(settings, new Map([['/etc/portcullis/s', 'x']]));
    const token = `read-like-a-jwt-${n++}`;
    return async (): Promise<string> => {
      const d = await service.check(input({ headers: { authorization: `Bearer ${token}` } }), snapshot, AbortSignal.timeout(1000));
      return d.allow ? 'allow' : `${d.status} ${d.attempts.map((a) => ('reason' in a.outcome ? a.outcome.reason : a.outcome.kind)).join(',')}`;
    };
  }

  // [answer, revocation state of other jtis, revocation.on_unavailable, introspection.on_failure, expected (twice: fresh and cached)]
  const rows: [Record<string, unknown>, boolean | undefined, string, string, string][] = [
    [{ jti: 'revoked' }, false, 'deny', 'deny', '401 token_revoked'],
    [{ jti: 'revoked' }, undefined, 'allow', 'deny', '401 token_revoked'],
    [{ jti: 'other' }, false, 'deny', 'deny', 'allow'],
    [{ jti: 'other' }, undefined, 'deny', 'deny', '503 revocation_unavailable'],
    [{ jti: 'other' }, undefined, 'deny', 'error', '503 revocation_unavailable'],
    [{ jti: 'other' }, undefined, 'allow', 'deny', 'allow'],
    [{}, undefined, 'deny', 'deny', 'allow'],
    [{ nbf: S + 60 }, false, 'deny', 'deny', '401 token_inactive'],
    [{ nbf: S - 60, exp: S + 60 }, false, 'deny', 'deny', 'allow'],
    [{ exp: S - 1 }, false, 'deny', 'deny', '401 token_inactive'],
    [{ exp: String(S - 100) }, false, 'deny', 'deny', '503 introspection_unavailable'],
    [{ exp: null }, false, 'deny', 'deny', '503 introspection_unavailable'],
    [{ nbf: String(S + 3600) }, false, 'deny', 'deny', '503 introspection_unavailable'],
    [{ nbf: [S] }, false, 'deny', 'deny', '503 introspection_unavailable'],
  ];
  for (const [extra, state, onUnavailable, onFailure, expected] of rows) {
    it(`${JSON.stringify(extra)}, revocation ${String(state)}, on_unavailable ${onUnavailable}, on_failure ${onFailure}: ${expected}`, async () => {
      const check = revocable({ active: true, sub: 'u', ...extra }, state, onUnavailable, onFailure);
      assert.equal(await check(), expected);
      assert.equal(await check(), expected, 'again (cached answer)');
    });
  }

  it('malformed exp with on_failure error: gRPC UNAVAILABLE, as any unreadable answer', async () => {
    await assert.rejects(revocable({ active: true, sub: 'u', exp: 'soon' }, false, 'deny', 'error')(), { code: 'PC_AUTHZ_UNAVAILABLE' });
  });

  it('a token refused for nbf is accepted once nbf has passed (the refusal is not cached past nbf)', async () => {
    const clock = new FakeClock(NOW_MS);
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http: fakeHttp({ [URL]: () => ({ status: 200, body: { active: true, sub: 'u', nbf: S + 5 } }) }), observer: countingObserver() });
    const snapshot = service.prepare(authzSettings(`introspection: { url: "${URL}", client_id: g, client_secret_file: ./s }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`), new Map([['/etc/portcullis/s', 'x']]));
    const check = async () => (await service.check(input({ headers: { authorization: 'Bearer not-yet' } }), snapshot, AbortSignal.timeout(1000))).allow;
    assert.equal(await check(), false);
    clock.advance(6000);
    assert.equal(await check(), true);
  });
});

describe('introspection: an endpoint that fails is left alone for a while', () => {
  it('IntrospectionBreaker: held off for a backoff after each failure, one probe after it, closed by an answer', () => {
    const clock = new FakeClock(0);
    const breaker = new IntrospectionBreaker(() => 0);
    let epoch = 0;
    // `call`: a call is let through (its epoch kept) or held; `fail`/`ok`: the call last let through ends so;
    // `stale fail`: a call let through before the last change of state fails; `wait ms`.
    const play = (script: readonly string[]): string[] => script.map((step) => {
      const [verb, arg] = step.split(' ');
      if (verb === 'wait') {
        clock.advance(Number(arg));
        return '';
      }
      if (verb === 'call') {
        const admitted = breaker.admit(clock.nowMs());
        if ('held' in admitted) return `held: ${admitted.held}`;
        epoch = admitted.epoch;
        return 'call';
      }
      if (verb === 'fail') breaker.failed(epoch, clock.nowMs(), 'answered 503');
      else if (verb === 'stale') breaker.failed(epoch - 1, clock.nowMs(), 'answered 503');
      else breaker.answered();
      const { failures, openUntilMs } = breaker.state;
      return failures === 0 ? 'closed' : `open ${openUntilMs - clock.nowMs()} ms after ${failures}`;
    });
    assert.deepEqual(play([
      'call', 'call', 'fail', 'call', 'wait 999', 'call',
      'wait 1', 'call', 'call', 'fail', 'wait 2000', 'call', 'fail',
      'stale', 'wait 4000', 'call', 'call', 'ok', 'call', 'call', 'fail', 'wait 1000', 'call', 'ok',
    ]), [
      'call', 'call', 'open 1000 ms after 1', 'held: answered 503', '', 'held: answered 503',
      '', 'call', 'held: answered 503', 'open 2000 ms after 2', '', 'call', 'open 4000 ms after 3',
      'open 4000 ms after 3', '', 'call', 'held: answered 503', 'closed', 'call', 'call', 'open 1000 ms after 1', '', 'call', 'closed',
    ]);
  });

  it('concurrent Checks with one token share one call', async () => {
    let release = (): void => undefined;
    const s = setup(() => new Promise((resolve) => (release = () => resolve({ status: 200, body: { active: true, sub: 'u', scope: 'read' } }))));
    const checks = Array.from({ length: 20 }, () => s.check('one-token'));
    await new Promise((resolve) => setImmediate(resolve));
    release();
    for (const d of await Promise.all(checks)) assert.ok(d.allow);
    assert.equal(s.http.calls.length, 1);
  });

  it('refusing the credentials (401): one call, then every Check gets on_failure at once without a call, counted, until the backoff ends', async () => {
    let status = 401;
    const s = setup(() => ({ status, body: status === 200 ? { active: true, sub: 'u', scope: 'read' } : undefined }));
    const denied = async (token: string): Promise<void> => {
      const d = await s.check(token);
      assert.ok(!d.allow && d.status === 503, JSON.stringify(d));
    };
    // [ms to wait, Checks (distinct tokens), calls the endpoint gets]
    // Checks at once (Promise.all): the first after a backoff is the probe, the others are held until it ends. The
    // very first call is made alone: before any failure, concurrent calls for distinct tokens all go out.
    const rows: [number, number, number][] = [[0, 1, 1], [0, 50, 0], [999, 50, 0], [1, 50, 1], [1999, 10, 0], [1, 10, 1], [4000, 10, 1]];
    let calls = 0;
    let checks = 0;
    for (const [wait, count, expected] of rows) {
      s.clock.advance(wait);
      await Promise.all(Array.from({ length: count }, (_, i) => denied(`t-${checks + i}`)));
      checks += count;
      assert.equal(s.http.calls.length - calls, expected, `after ${wait} ms more`);
      calls = s.http.calls.length;
    }
    assert.equal(s.observer.counts.get('introspection_error'), checks, 'each Check counted');
    status = 200;
    s.clock.advance(7999);
    await denied('still-held');
    assert.equal(s.http.calls.length, calls, 'the last failure holds it off for 8 s');
    s.clock.advance(1);
    assert.ok((await s.check('probe')).allow);
    assert.ok((await s.check('next')).allow);
    assert.equal(s.http.calls.length, calls + 2);
    assert.equal(s.observer.counts.get('introspection_answered'), 2);
  });

  it('a Check held off answers synchronously, and with on_failure error is a gRPC error as before', async () => {
    const s = setup(() => { throw new Error('connect ECONNREFUSED'); }, 'error');
    await assert.rejects(s.check('first'), { code: 'PC_AUTHZ_UNAVAILABLE' });
    const snapshot = s.service.prepare(s.settings, s.files);
    assert.throws(() => s.service.check(input({ headers: { authorization: 'Bearer second' } }), snapshot, AbortSignal.timeout(1000)), { code: 'PC_AUTHZ_UNAVAILABLE' });
    assert.equal(s.http.calls.length, 1);
  });

  it('a burst of calls that all fail at once is one failure: the backoff starts at 1 s, not doubled per call', async () => {
    let fail = (): void => undefined;
    const failed = new Promise<void>((resolve) => (fail = resolve));
    const s = setup(async () => {
      await failed;
      throw new Error('connect ETIMEDOUT');
    });
    const burst = Array.from({ length: 30 }, (_, i) => s.check(`burst-${i}`));
    await new Promise((resolve) => setImmediate(resolve));
    fail();
    await Promise.all(burst);
    assert.equal(s.http.calls.length, 30);
    s.clock.advance(1000);
    await s.check('after');
    assert.equal(s.http.calls.length, 31, 'called again after 1 s');
  });

  it('an answer about one token that cannot be read does not hold off the others; the same endpoint kept over a reload keeps its backoff, new credentials end it', async () => {
    let answer: () => unknown = () => { throw new UnreadableBodyError('response JSON nested deeper than 32'); };
    const s = setup(() => answer());
    for (const [i, body] of [undefined, { active: 'yes' }, { active: true, sub: 'u', exp: 'soon' }].entries()) {
      await s.check(`unreadable-${i}`);
      answer = () => ({ status: 200, body });
    }
    await s.check('last-unreadable');
    answer = () => ({ status: 200, body: { active: true, sub: 'u', scope: 'read' } });
    assert.ok((await s.check('fine')).allow);
    assert.equal(s.http.calls.length, 5, 'every token was asked about');
    answer = () => ({ status: 503, body: undefined });
    await s.check('down');
    const calls = s.http.calls.length;
    const check = async (snapshot: ReturnType<typeof s.service.prepare>, token: string) => s.service.check(input({ headers: { authorization: `Bearer ${token}` } }), snapshot, AbortSignal.timeout(1000));
    answer = () => ({ status: 200, body: { active: true, sub: 'u', scope: 'read' } });
    const reloaded = await check(s.service.prepare(s.settings, s.files), 'reloaded');
    assert.ok(!reloaded.allow && reloaded.status === 503);
    assert.equal(s.http.calls.length, calls, 'the same endpoint and credentials: still held off');
    const fixed = await check(s.service.prepare(s.settings, new Map([...s.files, ['/etc/portcullis/secret', 'new-secret\n']])), 'fixed');
    assert.ok(fixed.allow);
    assert.equal(s.http.calls.length, calls + 1);
  });
});

describe('introspection: calls in flight are bounded (max_in_flight)', () => {
  function slow(maxInFlight: number, onFailure = 'deny') {
    const clock = new FakeClock(NOW_MS);
    const observer = countingObserver();
    const pending: (() => void)[] = [];
    const http = fakeHttp({ [URL]: () => new Promise((resolve) => pending.push(() => resolve({ status: 200, body: { active: true, sub: 'u', scope: 'read' } }))) });
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer, random: () => 0 });
    const settings = authzSettings(`introspection: { url: "${URL}", client_id: g, client_secret_file: ./s, max_in_flight: ${maxInFlight}, on_failure: ${onFailure} }
policies:
  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`);
    const files = new Map([['/etc/portcullis/s', 'x']]);
    let snapshot = service.prepare(settings, files);
    const check = (token: string) => service.check(input({ headers: { authorization: `Bearer ${token}` } }), snapshot, AbortSignal.timeout(5000));
    const release = async (): Promise<void> => {
      for (const answer of pending.splice(0)) answer();
      await new Promise((resolve) => setImmediate(resolve));
    };
    const reload = (yaml = settings) => void (snapshot = service.prepare(yaml, files));
    return { clock, observer, http, check, release, reload, settings };
  }

  it('a burst of distinct tokens past the bound: only max_in_flight calls; the rest get on_failure at once, counted as shed, not as errors', async () => {
    const s = slow(3);
    const burst = Array.from({ length: 10 }, (_, i) => s.check(`burst-${i}`));
    // The shed ones answer synchronously: no promise, nothing waited for.
    const shed = burst.filter((d) => !(d instanceof Promise)) as Decision[];
    assert.equal(shed.length, 7);
    for (const d of shed) {
      assert.ok(!d.allow && d.status === 503 && d.reason === 'unavailable', JSON.stringify(d));
      assert.match(d.attempts[0]!.outcome.detail, /not called: 3 calls to it under way already \(authz\.introspection\.max_in_flight\)/);
    }
    assert.equal(s.http.calls.length, 3);
    assert.equal(s.observer.counts.get('introspection_shed'), 7);
    assert.equal(s.observer.counts.get('introspection_error'), undefined, 'a slow endpoint has not failed');
    // Checks joining a call under way, and cached answers, need no new call: never shed.
    const joined = Array.from({ length: 5 }, () => s.check('burst-0'));
    assert.ok(joined.every((d) => d instanceof Promise));
    await s.release();
    for (const d of await Promise.all([...burst, ...joined])) assert.equal(d.allow, !shed.includes(d));
    assert.equal(s.http.calls.length, 3);
    for (let i = 0; i < 3; i++) assert.ok((s.check(`burst-${i}`) as Decision).allow, 'cached, synchronously');
    // Places are given back as calls end: the next tokens get calls.
    const next = Array.from({ length: 4 }, (_, i) => s.check(`next-${i}`));
    assert.equal(next.filter((d) => d instanceof Promise).length, 3);
    await s.release();
    await Promise.all(next);
    assert.equal(s.http.calls.length, 6);
    assert.equal(s.observer.counts.get('introspection_shed'), 8);
  });

  it('with on_failure error a shed Check is a gRPC error, as any introspection failure', () => {
    const s = slow(1, 'error');
    assert.ok(s.check('first') instanceof Promise);
    assert.throws(() => s.check('second'), { code: 'PC_AUTHZ_UNAVAILABLE', message: /max_in_flight/ });
    void s.release();
  });

  it('calls of an earlier config count until they end; a call that fails, or a client that throws, gives its place back', async () => {
    const s = slow(2);
    assert.ok(s.check('a') instanceof Promise);
    s.reload();
    assert.ok(s.check('b') instanceof Promise);
    assert.ok(!(s.check('c') instanceof Promise), 'a reload does not forget the call still under way');
    await s.release();
    const clock = new FakeClock(NOW_MS);
    let calls = 0;
    const http = { getJson: () => Promise.reject(new Error('unused')), postForm: () => { calls++; throw new Error('thrown, not rejected'); } };
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer: countingObserver(), random: () => 0 });
    const snapshot = service.prepare(authzSettings(`introspection: { url: "${URL}", client_id: g, client_secret_file: ./s, max_in_flight: 1 }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [introspection] }`), new Map([['/etc/portcullis/s', 'x']]));
    const d = await service.check(input({ headers: { authorization: 'Bearer t1' } }), snapshot, AbortSignal.timeout(1000));
    assert.ok(!d.allow && d.status === 503);
    assert.match(d.attempts[0]!.outcome.detail, /thrown, not rejected/);
    // The failure opened the breaker; once it is over the next token gets a call (its place was given back).
    clock.advance(1000);
    await service.check(input({ headers: { authorization: 'Bearer t2' } }), snapshot, AbortSignal.timeout(1000));
    assert.equal(calls, 2);
  });
});

describe('introspection: a 429 or 503 with Retry-After', () => {
  // [status, Retry-After, ms until the next call (random 0: the backoff's own first delay is 1000)]
  const rows: [number, string | undefined, number][] = [
    [429, undefined, 1000],
    [429, '3', 3000],
    [503, '3', 3000],
    [503, '0', 1000],
    [429, 'garbage', 1000],
    [429, '-3', 1000],
    [429, '999999', 30_000],
    [503, new Date(NOW_MS + 10_000).toUTCString(), 10_000],
    [503, new Date(NOW_MS - 10_000).toUTCString(), 1000],
  ];
  for (const [status, retryAfter, waitMs] of rows) {
    it(`${status}, Retry-After ${String(retryAfter)}: not called again for ${waitMs} ms`, async () => {
      let answer = { status, body: undefined as unknown, retryAfter };
      const s = setup(() => answer);
      await s.check('first');
      assert.equal(s.http.calls.length, 1);
      s.clock.advance(waitMs - 1);
      const held = await s.check('held');
      assert.ok(!held.allow && held.status === 503);
      assert.equal(s.http.calls.length, 1, 'held off');
      s.clock.advance(1);
      answer = { status: 200, body: { active: true, sub: 'u', scope: 'read' }, retryAfter: undefined };
      assert.ok((await s.check('after')).allow);
      assert.equal(s.http.calls.length, 2);
    });
  }

  it('a probe answered 429 with Retry-After waits as asked, or the next backoff if longer', async () => {
    const s = setup(() => ({ status: 429, body: undefined, retryAfter: '3' }));
    await s.check('t0');
    // How long each failure holds calls off: max(the backoff's 1 s, 2 s, 4 s, 8 s; the 3 s asked).
    for (const holdMs of [3000, 3000, 4000, 8000]) {
      const calls = s.http.calls.length;
      s.clock.advance(holdMs - 1);
      await s.check(`held-${holdMs}-${calls}`);
      assert.equal(s.http.calls.length, calls, `held off for ${holdMs} ms`);
      s.clock.advance(1);
      await s.check(`probe-${holdMs}-${calls}`);
      assert.equal(s.http.calls.length, calls + 1);
    }
  });
});
