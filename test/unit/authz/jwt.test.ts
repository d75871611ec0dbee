import assert from 'node:assert/strict';
import { createHmac, sign as cryptoSign } from 'node:crypto';
import { describe, it } from 'node:test';
import { exportJWK, exportSPKI, SignJWT, type JWK } from 'jose';
import { AuthzService } from '../../../src/authz/service.js';
import type { Decision } from '../../../src/authz/types.js';
import { MemoryRevocationList } from '../../../src/store/revocation-list.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { keyPairFor } from '../../support/key-pairs.js';
import { authzSettings, countingObserver, fakeHttp, input } from './support.js';

const NOW_S = 1_700_000_000;
const ISSUER = 'https://issuer.example';
const OTHER = 'https://other.example';

async function keyPair(alg: 'RS256' | 'ES256' | 'EdDSA', kid: string) {
  const { privateKey, publicKey } = keyPairFor(alg);
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk };
}
type Pair = Awaited<ReturnType<typeof keyPair>>;

function token(pair: Pair, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'user-1', scope: 'orders:read orders:write', tier: 'gold', iss: ISSUER, aud: 'orders-api', iat: NOW_S, exp: NOW_S + 600, ...claims })
    .setProtectedHeader({ alg: pair.alg, kid: pair.kid, ...header })
    .sign(pair.privateKey);
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
/** A JWS signed by hand, for headers jose refuses to produce. */
function handSigned(pair: Pair, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const signingInput = `${b64(header)}.${b64(payload)}`;
  const signature = cryptoSign('sha256', Buffer.from(signingInput), pair.privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}
const claims = { sub: 'user-1', iss: ISSUER, aud: 'orders-api', iat: NOW_S, exp: NOW_S + 600 };

const section = (jwks: string, extra = ''): string => `jwt:
  providers:
    - name: main
      issuer: ${ISSUER}
      audiences: [orders-api]
      algorithms: [RS256, ES256, EdDSA]
      jwks: ${jwks}
      clock_skew_seconds: 30
      refetch_cooldown_seconds: 30
      required_claims: [sub]
    - name: other
      issuer: ${OTHER}
      audiences: [orders-api]
      jwks: { file: ./other.json }
  cache_max_entries: 100
${extra}policies:
  - name: orders
    match: { path_prefix: /api }
    authenticate: [jwt:main]
    require: { scopes: [orders:read] }
  - name: any
    match: { path_prefix: /any }
    authenticate: [jwt]`;

async function setup(opts: { remote?: Record<string, () => unknown>; extra?: string } = {}) {
  const [rsa, ec, ed, otherRsa] = await Promise.all([keyPair('RS256', 'rsa-1'), keyPair('ES256', 'ec-1'), keyPair('EdDSA', 'ed-1'), keyPair('RS256', 'rsa-1')]);
  const clock = new FakeClock(NOW_S * 1000);
  const observer = countingObserver();
  const http = fakeHttp(opts.remote ?? {});
  const revocation = new MemoryRevocationList(clock);
  const service = new AuthzService({ clock, revocation, http, observer });
  const jwks = opts.remote ? '{ uri: http://keys.test/jwks.json }' : '{ file: ./jwks.json }';
  const files = new Map([
    ['/etc/portcullis/jwks.json', JSON.stringify({ keys: [rsa.jwk, ec.jwk, ed.jwk] })],
    ['/etc/portcullis/other.json', JSON.stringify({ keys: [otherRsa.jwk] })],
  ]);
  const snapshot = service.prepare(authzSettings(section(jwks, opts.extra)), files);
  const check = async (bearer: string | undefined, path = '/api/x', signal = AbortSignal.timeout(2000)): Promise<Decision> =>
    service.check(input({ rawPath: path, headers: bearer === undefined ? {} : { authorization: bearer } }), snapshot, signal);
  return { rsa, ec, ed, otherRsa, clock, observer, http, revocation, service, check, files };
}

const reasonOf = (d: Decision): string => {
  if (d.allow) return 'allowed';
  const attempt = d.attempts[0]?.outcome;
  return attempt && (attempt.kind === 'invalid' || attempt.kind === 'unavailable') ? attempt.reason : d.reason;
};

describe('JWT evaluator', () => {
  it('accepts RS256, ES256 and EdDSA tokens of the configured provider and maps the claims', async () => {
    const s = await setup();
    for (const pair of [s.rsa, s.ec, s.ed]) {
      const d = await s.check(`Bearer ${await token(pair)}`);
      assert.ok(d.allow, `${pair.alg}: ${JSON.stringify(d)}`);
      assert.equal(d.identity.subject, 'user-1');
      assert.equal(d.identity.tier, 'gold');
      assert.deepEqual(d.identity.scopes, ['orders:read', 'orders:write']);
      assert.equal(d.grant.dynamicMetadata['provider'], 'main');
    }
    const lower = await s.check(`bearer ${await token(s.rsa)}`);
    assert.ok(lower.allow, 'scheme is case-insensitive');
  });

  it('a numeric tier claim is the tier written as text; other types name none', async () => {
    const s = await setup();
    for (const [tier, expected] of [[2, '2'], [1.5, '1.5'], ['', undefined], [true, undefined], [['gold'], undefined], [{ t: 1 }, undefined]] as const) {
      const d = await s.check(`Bearer ${await token(s.rsa, { tier })}`);
      assert.ok(d.allow, JSON.stringify(tier));
      assert.equal(d.identity.tier, expected, JSON.stringify(tier));
    }
  });

  it('scopes: split on every whitespace run, arrays too, so the policy checks what x-user-scopes carries', async () => {
    const s = await setup();
    // [scope claims, scopes seen, allowed on a policy requiring orders:read]
    const rows: [Record<string, unknown>, string[], boolean][] = [
      [{ scope: 'orders:read\torders:write' }, ['orders:read', 'orders:write'], true],
      [{ scope: 'orders:read\nadmin' }, ['orders:read', 'admin'], true],
      [{ scope: ['orders:read admin', 'x'] }, ['orders:read', 'admin', 'x'], true],
      [{ scope: ['orders:read\tadmin'] }, ['orders:read', 'admin'], true],
      [{ scope: undefined, scp: ['orders:read', 'write'] }, ['orders:read', 'write'], true],
      [{ scope: [1, 'orders:read'] }, ['orders:read'], true],
      [{ scope: 'orders:readx admin' }, ['orders:readx', 'admin'], false],
    ];
    for (const [scopeClaims, scopes, allowed] of rows) {
      const d = await s.check(`Bearer ${await token(s.rsa, scopeClaims)}`);
      assert.equal(d.allow, allowed, JSON.stringify(scopeClaims));
      if (!d.allow) continue;
      assert.deepEqual(d.identity.scopes, scopes, JSON.stringify(scopeClaims));
      assert.equal(new Map(d.grant.headers.map(([n, v]) => [n, v])).get('x-user-scopes'), scopes.join(' '));
      assert.equal(d.grant.dynamicMetadata['scopes'], scopes.join(' '));
    }
  });

  it('the attack table: every row is a 401 with its reason', async () => {
    const s = await setup();
    const good = await token(s.rsa);
    const [h, p] = good.split('.');
    const spki = await exportSPKI(s.rsa.publicKey);
    const hsInput = `${b64({ alg: 'HS256', kid: 'rsa-1' })}.${b64(claims)}`;
    const hs256 = `${hsInput}.${createHmac('sha256', spki).update(hsInput).digest('base64url')}`;
    const rows: [string, string | undefined, string][] = [
      ['alg none, empty signature', `Bearer ${b64({ alg: 'none' })}.${b64(claims)}.`, 'jwt_malformed'],
      ['alg none with a signature', `Bearer ${b64({ alg: 'none' })}.${b64(claims)}.c2ln`, 'jwt_alg_not_allowed'],
      ['unknown crit header', `Bearer ${handSigned(s.rsa, { alg: 'RS256', kid: 'rsa-1', crit: ['x-magic'], 'x-magic': 1 }, claims)}`, 'jwt_unsupported'],
      ['HS256 signed with the RSA public key', `Bearer ${hs256}`, 'jwt_alg_not_allowed'],
      ['kid with a path', `Bearer ${await token(s.rsa, {}, { kid: '../../../../etc/passwd' })}`, 'jwt_unknown_key'],
      ['kid with a URL', `Bearer ${await token(s.rsa, {}, { kid: 'http://evil.example/jwks.json' })}`, 'jwt_unknown_key'],
      ['jku header ignored, key unknown', `Bearer ${await token(await keyPair('RS256', 'evil'), {}, { jku: 'http://evil.example/jwks.json' })}`, 'jwt_unknown_key'],
      ['signature by another key with our kid', `Bearer ${await token(s.otherRsa)}`, 'jwt_bad_signature'],
      ['tampered payload', `Bearer ${h}.${b64({ ...claims, sub: 'admin' })}.${good.split('.')[2]}`, 'jwt_bad_signature'],
      ['expired (past skew)', `Bearer ${await token(s.rsa, { exp: NOW_S - 31 })}`, 'jwt_expired'],
      ['not yet valid (past skew)', `Bearer ${await token(s.rsa, { nbf: NOW_S + 31 })}`, 'jwt_not_yet_valid'],
      ['wrong audience', `Bearer ${await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setIssuer(ISSUER).setAudience('billing').setExpirationTime(NOW_S + 60).sign(s.rsa.privateKey)}`, 'jwt_wrong_audience'],
      ['unknown issuer', `Bearer ${await token(s.rsa, { iss: 'https://evil.example' })}`, 'jwt_unknown_issuer'],
      ['token of another provider on a jwt:main route', `Bearer ${await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setIssuer(OTHER).setAudience('orders-api').setExpirationTime(NOW_S + 60).sign(s.otherRsa.privateKey)}`, 'jwt_unknown_issuer'],
      ['no exp', `Bearer ${handSigned(s.rsa, { alg: 'RS256', kid: 'rsa-1' }, { sub: 'u', iss: ISSUER, aud: 'orders-api' })}`, 'jwt_claim_invalid'],
      ['no sub (required claim)', `Bearer ${handSigned(s.rsa, { alg: 'RS256', kid: 'rsa-1' }, { iss: ISSUER, aud: 'orders-api', exp: NOW_S + 60 })}`, 'jwt_claim_invalid'],
      ['blank sub', `Bearer ${await token(s.rsa, { sub: '  ' })}`, 'jwt_claim_invalid'],
      ['sub with a leading space (a header would carry it as admin)', `Bearer ${await token(s.rsa, { sub: ' admin' })}`, 'jwt_claim_invalid'],
      ['sub with a trailing tab', `Bearer ${await token(s.rsa, { sub: 'admin\t' })}`, 'jwt_claim_invalid'],
      ['sub with a line break', `Bearer ${await token(s.rsa, { sub: 'user-1\nx-user-id: admin' })}`, 'jwt_claim_invalid'],
      ['sub too long for a header', `Bearer ${await token(s.rsa, { sub: 'u'.repeat(4097) })}`, 'jwt_claim_invalid'],
      ['oversized', `Bearer ${'a'.repeat(9000)}.${p}.x`, 'token_oversized'],
      ['non-UTF-8 bytes (Envoy sends !)', `Bearer ${h}.${p}!!.sig`, 'jwt_malformed'],
      ['not three parts', 'Bearer abc.def', 'jwt_malformed'],
      ['garbage base64', 'Bearer aaaa.bbbb.cccc', 'jwt_malformed'],
      ['two Authorization headers', `Bearer ${good},Bearer ${good}`, 'token_malformed'],
      ['Bearer without a token', 'Bearer ', 'token_malformed'],
    ];
    for (const [name, bearer, reason] of rows) {
      const d = await s.check(bearer);
      assert.equal(d.allow, false, name);
      assert.equal(reasonOf(d), reason, name);
      assert.ok(!d.allow && d.status === 401 && d.bearerError === 'invalid_token', name);
    }
    const missing = await s.check(undefined);
    assert.ok(!missing.allow && missing.status === 401 && missing.reason === 'missing_credentials' && missing.bearerError === 'invalid_request');
    const basic = await s.check('Basic dXNlcjpwYXNz');
    assert.ok(!basic.allow && basic.reason === 'missing_credentials');
  });

  it('skew: a token expired less than clock_skew_seconds ago still passes', async () => {
    const s = await setup();
    assert.ok((await s.check(`Bearer ${await token(s.rsa, { exp: NOW_S - 20 })}`)).allow);
    assert.ok((await s.check(`Bearer ${await token(s.rsa, { nbf: NOW_S + 20 })}`)).allow);
  });

  it('a valid token without the required scope is 403', async () => {
    const s = await setup();
    const d = await s.check(`Bearer ${await token(s.rsa, { scope: 'billing:read' })}`);
    assert.ok(!d.allow && d.status === 403 && d.reason === 'forbidden');
  });

  it('a policy allowing every provider accepts the other provider', async () => {
    const s = await setup();
    const other = await new SignJWT({ sub: 'u2' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' }).setIssuer(OTHER).setAudience('orders-api').setExpirationTime(NOW_S + 60).sign(s.otherRsa.privateKey);
    const d = await s.check(`Bearer ${other}`, '/any');
    assert.ok(d.allow && d.identity.provider === 'other');
  });

  it('verified tokens are cached until exp, then verified again; revocation applies to cached tokens', async () => {
    const s = await setup({ extra: 'revocation: { enabled: true }\n' });
    const t = await token(s.rsa, { exp: NOW_S + 100, jti: 'tok-1' });
    assert.ok((await s.check(`Bearer ${t}`)).allow);
    assert.ok((await s.check(`Bearer ${t}`)).allow);
    assert.equal(s.observer.counts.get('cache:jwt:hit'), 1);
    assert.equal(s.service.cacheEntries().jwt, 1);
    s.clock.advance(131_000); // past exp + skew
    const d = await s.check(`Bearer ${t}`);
    assert.equal(reasonOf(d), 'jwt_expired');
    const t2 = await token(s.rsa, { jti: 'tok-2' });
    assert.ok((await s.check(`Bearer ${t2}`)).allow);
    await s.revocation.revoke('jti', 'tok-2', (NOW_S + 1000) * 1000);
    assert.equal(reasonOf(await s.check(`Bearer ${t2}`)), 'jwt_revoked');
  });

  it('10,000 distinct garbage tokens leave the cache empty; 300 valid ones stay within cache_max_entries', async () => {
    const s = await setup();
    const [h] = (await token(s.rsa)).split('.');
    for (let i = 0; i < 10_000; i++) {
      const d = await s.check(`Bearer ${h}.${b64({ ...claims, n: i })}.${Buffer.from(String(i)).toString('base64url')}`);
      assert.equal(d.allow, false);
    }
    assert.equal(s.service.cacheEntries().jwt, 0);
    for (let i = 0; i < 300; i++) assert.ok((await s.check(`Bearer ${await token(s.ed, { n: i })}`)).allow);
    assert.equal(s.service.cacheEntries().jwt, 100);
  });
});

describe('JWT cache with providers sharing an issuer', () => {
  // main and partner share an issuer and keys but read other claims: one token valid for both names another caller
  // through each. A cached verification must answer as verifying again would (as `portcullis explain` does, cold).
  const shared = `jwt:
  providers:
    - { name: main, issuer: "${ISSUER}", audiences: [orders-api], jwks: { file: ./jwks.json } }
    - { name: partner, issuer: "${ISSUER}", audiences: [partner-api], jwks: { file: ./jwks.json }, claims: { subject: client_id, scopes: scp } }
policies:
  - { name: any, match: { path_prefix: /any }, authenticate: [jwt] }
  - { name: partner, match: { path_prefix: /partner }, authenticate: ["jwt:partner"] }`;

  async function services() {
    const rsa = await keyPair('RS256', 'rsa-1');
    const files = new Map([['/etc/portcullis/jwks.json', JSON.stringify({ keys: [rsa.jwk] })]]);
    const make = () => {
      const clock = new FakeClock(NOW_S * 1000);
      const observer = countingObserver();
      const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http: fakeHttp({}), observer });
      const snapshot = service.prepare(authzSettings(shared), files);
      return { observer, check: async (token: string, path: string) => service.check(input({ rawPath: path, headers: { authorization: `Bearer ${token}` } }), snapshot, AbortSignal.timeout(2000)) };
    };
    const answer = (d: Decision): string => (d.allow ? `${d.identity.subject} via ${d.identity.provider}` : `${d.status} ${d.attempts.map((a) => (a.outcome.kind === 'invalid' ? a.outcome.reason : a.outcome.kind)).join(',')}`);
    return { rsa, make, answer };
  }

  it('a token cached on one route answers on another as a cold cache would', async () => {
    const { rsa, make, answer } = await services();
    const both = await token(rsa, { aud: ['orders-api', 'partner-api'], sub: 'user-main', client_id: 'partner-app', scp: 'x' });
    const partnerOnly = await token(rsa, { aud: 'partner-api', client_id: 'partner-only' });
    for (const [tok, order] of [[both, ['/any', '/partner', '/any']], [both, ['/partner', '/any', '/partner']], [partnerOnly, ['/partner', '/any', '/any']]] as const) {
      const warm = make();
      for (const path of order) {
        const cold = answer(await make().check(tok, path));
        assert.equal(answer(await warm.check(tok, path)), cold, `${path} after ${order.join(' ')}`);
      }
    }
    assert.equal(answer(await make().check(both, '/any')), 'user-main via main');
    assert.equal(answer(await make().check(both, '/partner')), 'partner-app via partner');
  });

  it('a token the providers tried first refused is still answered from the cache', async () => {
    const { rsa, make } = await services();
    const partnerOnly = await token(rsa, { aud: 'partner-api', client_id: 'partner-only' });
    const warm = make();
    assert.ok((await warm.check(partnerOnly, '/any')).allow);
    assert.ok((await warm.check(partnerOnly, '/any')).allow);
    assert.ok((await warm.check(partnerOnly, '/partner')).allow);
    assert.equal(warm.observer.counts.get('cache:jwt:hit'), 2);
  });
});

describe('JWKS from a URI', () => {
  it('starts without keys (issuer down: 503, not a crash), then serves once the issuer is up', async () => {
    let up = false;
    let jwks: unknown;
    const s = await setup({ remote: { 'http://keys.test/jwks.json': () => { if (!up) throw new Error('ECONNREFUSED'); return jwks; } } });
    jwks = { keys: [s.rsa.jwk] };
    const t = await token(s.rsa);
    const d = await s.check(`Bearer ${t}`);
    assert.ok(!d.allow && d.status === 503 && reasonOf(d) === 'jwks_unavailable');
    up = true;
    s.clock.advance(31_000); // past the refetch cooldown
    assert.ok((await s.check(`Bearer ${t}`)).allow);
    s.service.close();
  });

  it('unknown kids: one refetch per cooldown however many random kids arrive; new kids found after rotation', async () => {
    let jwks: unknown;
    const s = await setup({ remote: { 'http://keys.test/jwks.json': () => jwks } });
    jwks = { keys: [s.rsa.jwk] };
    s.clock.advance(30_000); // the fetch at start saw no document yet
    assert.ok((await s.check(`Bearer ${await token(s.rsa)}`)).allow);
    s.clock.advance(30_000);
    const fetchesBefore = s.http.calls.length;
    for (let i = 0; i < 50; i++) assert.equal(reasonOf(await s.check(`Bearer ${await token(s.rsa, {}, { kid: `random-${i}` })}`)), 'jwt_unknown_key');
    assert.equal(s.http.calls.length - fetchesBefore, 1, 'one refetch for 50 unknown kids');
    jwks = { keys: [s.rsa.jwk, s.ec.jwk] };
    s.clock.advance(30_000);
    assert.ok((await s.check(`Bearer ${await token(s.ec)}`)).allow, 'rotated-in key found by the refetch');
    s.service.close();
  });

  it('garbage JWKS on refetch: cached keys keep working; a slow issuer never holds a Check past its deadline', async () => {
    let mode: 'good' | 'garbage' | 'hang' = 'good';
    let jwks: unknown;
    const s = await setup({ remote: { 'http://keys.test/jwks.json': () => (mode === 'good' ? jwks : mode === 'garbage' ? { keys: 'nope' } : new Promise(() => undefined)) } });
    jwks = { keys: [s.rsa.jwk] };
    s.clock.advance(30_000); // the fetch at start saw no document yet
    const t = await token(s.rsa);
    assert.ok((await s.check(`Bearer ${t}`)).allow);
    mode = 'garbage';
    s.clock.advance(31_000);
    // A key the issuer may have rotated in cannot be judged while its documents are unreadable: 503, not 401.
    assert.equal(reasonOf(await s.check(`Bearer ${await token(s.ec)}`)), 'jwks_unavailable');
    assert.ok((await s.check(`Bearer ${await token(s.rsa, { n: 2 })}`)).allow, 'old keys still serve');
    assert.ok((s.observer.counts.get('jwks:main:error') ?? 0) >= 1);
    mode = 'hang';
    s.clock.advance(31_000);
    const started = Date.now();
    const deadline = new AbortController();
    setTimeout(() => deadline.abort(), 100); // ref'd: the hanging fetch alone would let the event loop end
    const d = await s.check(`Bearer ${await token(s.ec, { n: 3 })}`, '/api/x', deadline.signal);
    assert.equal(d.allow, false);
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    s.service.close();
  });

  it('a key the issuer withdraws stops vouching for tokens it verified earlier; a refresh with the same keys keeps the cache', async () => {
    let jwks: unknown;
    const s = await setup({ remote: { 'http://keys.test/jwks.json': () => jwks } });
    jwks = { keys: [s.rsa.jwk, s.ec.jwk] };
    s.clock.advance(30_000); // the fetch at start saw no document yet
    const [rsaToken, ecToken] = [await token(s.rsa), await token(s.ec)];
    assert.ok((await s.check(`Bearer ${rsaToken}`)).allow);
    assert.ok((await s.check(`Bearer ${ecToken}`)).allow);
    const hits = (): number => s.observer.counts.get('cache:jwt:hit') ?? 0;
    /** A refetch now: an unknown kid past the cooldown (the background refresh runs on real time). */
    const refetch = async (n: number): Promise<void> => {
      s.clock.advance(31_000);
      const fetches = s.http.calls.length;
      assert.equal(reasonOf(await s.check(`Bearer ${await token(s.rsa, {}, { kid: `unknown-${n}` })}`)), 'jwt_unknown_key');
      assert.equal(s.http.calls.length, fetches + 1, 'refetched');
    };
    // A refresh that brings the same keys: both stay cached.
    await refetch(1);
    const before = hits();
    assert.ok((await s.check(`Bearer ${rsaToken}`)).allow);
    assert.equal(hits() - before, 1, 'same keys: still a cache hit');
    // The issuer withdraws the RSA key: the cached RSA token is verified again, and refused.
    jwks = { keys: [s.ec.jwk] };
    await refetch(2);
    assert.equal(reasonOf(await s.check(`Bearer ${rsaToken}`)), 'jwt_unknown_key');
    assert.ok((await s.check(`Bearer ${ecToken}`)).allow, 'a token of a key still published passes (verified again once)');
    s.service.close();
  });

  it('a JWKS that holds no usable key on refetch is a failed refresh: the last good keys keep serving', async () => {
    let jwks: unknown;
    const s = await setup({ remote: { 'http://keys.test/jwks.json': () => jwks } });
    jwks = { keys: [s.rsa.jwk] };
    s.clock.advance(30_000); // the fetch at start saw no document yet
    assert.ok((await s.check(`Bearer ${await token(s.rsa)}`)).allow);
    const errorsBefore = s.observer.counts.get('jwks:main:error') ?? 0;
    jwks = { keys: [{ kty: 'RSA', kid: 'rsa-1' }] };
    s.clock.advance(31_000);
    assert.equal(reasonOf(await s.check(`Bearer ${await token(s.ec)}`)), 'jwks_unavailable', 'the refetch failed: an unknown key cannot be judged');
    assert.equal((s.observer.counts.get('jwks:main:error') ?? 0) - errorsBefore, 1, 'counted as a failed refresh');
    assert.ok((await s.check(`Bearer ${await token(s.rsa, { n: 2 })}`)).allow, 'old keys still serve');
    s.service.close();
  });

  it('OIDC discovery: issuer must match, jwks_uri followed', async () => {
    const [rsa] = await Promise.all([keyPair('RS256', 'k')]);
    const clock = new FakeClock(NOW_S * 1000);
    const http = fakeHttp({
      'https://issuer.example/.well-known/openid-configuration': () => ({ issuer: ISSUER, jwks_uri: 'https://issuer.example/keys' }),
      'https://issuer.example/keys': () => ({ keys: [rsa.jwk] }),
    });
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer: countingObserver() });
    const settings = authzSettings(`jwt:\n  providers:\n    - { name: main, issuer: "${ISSUER}", audiences: [orders-api], jwks: { oidc_discovery: "${ISSUER}" } }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [jwt] }`);
    const snapshot = service.prepare(settings, new Map());
    const d = await service.check(input({ headers: { authorization: `Bearer ${await token(rsa)}` } }), snapshot, AbortSignal.timeout(2000));
    assert.ok(d.allow, JSON.stringify(d));
    service.close();
  });

  it("OIDC discovery: the document must name the provider's issuer, wherever discovery is read (OIDC Discovery §4.3)", async () => {
    const rsa = await keyPair('RS256', 'k');
    const DISCOVERY = 'https://discovery.example';
    // [provider issuer, oidc_discovery, issuer the document names, allowed]
    const rows: [string, string, string, boolean][] = [
      [ISSUER, ISSUER, ISSUER, true],
      [ISSUER, DISCOVERY, ISSUER, true],
      [ISSUER, DISCOVERY, DISCOVERY, false],
      [ISSUER, ISSUER, OTHER, false],
      [`${ISSUER}/`, `${ISSUER}/`, `${ISSUER}/`, true],
    ];
    for (const [issuer, discovery, named, allowed] of rows) {
      const clock = new FakeClock(NOW_S * 1000);
      const http = fakeHttp({
        [`${discovery.replace(/\/$/, '')}/.well-known/openid-configuration`]: () => ({ issuer: named, jwks_uri: 'https://keys.example/jwks' }),
        'https://keys.example/jwks': () => ({ keys: [rsa.jwk] }),
      });
      const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http, observer: countingObserver() });
      const settings = authzSettings(`jwt:\n  providers:\n    - { name: main, issuer: "${issuer}", audiences: [orders-api], jwks: { oidc_discovery: "${discovery}" } }\npolicies:\n  - { name: p, match: { path_prefix: / }, authenticate: [jwt] }`);
      const snapshot = service.prepare(settings, new Map());
      const d = await service.check(input({ headers: { authorization: `Bearer ${await token(rsa, { iss: issuer })}` } }), snapshot, AbortSignal.timeout(2000));
      assert.equal(d.allow, allowed, `${issuer} ${discovery} ${named}: ${JSON.stringify(d)}`);
      service.close();
    }
  });

  it('a JWKS file that is not a JWKS is a config error naming the file and line', async () => {
    const clock = new FakeClock(0);
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http: fakeHttp({}), observer: countingObserver() });
    const settings = authzSettings(`jwt:\n  providers:\n    - { name: main, issuer: i, audiences: [a], jwks: { file: ./jwks.json } }`);
    const rows: [string, RegExp][] = [
      ['not json', /jwks\.json: invalid JSON at column 1: .* \(line 1\)$/],
      ['{"keys": [\n  {"kty": "RSA"}\n  {"kty": "EC"}\n]}', /jwks\.json: invalid JSON at column 3: .* \(line 3\)$/],
      ['{"keys": 3}', /jwks\.json: not a usable JWKS: .* \(line 1\)$/],
      ['{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', /jwks\.json: not a usable JWKS: JWKS holds no public signing key: key #0 is of key type oct, .* \(line 1\)$/],
      ['{"keys": [{"kty": "RSA", "kid": "k1"}]}', /jwks\.json: not a usable JWKS: JWKS holds no usable public signing key: key 'k1' cannot be imported: .* \(line 1\)$/],
    ];
    for (const [text, message] of rows) assert.throws(() => service.prepare(settings, new Map([['/etc/portcullis/jwks.json', text]])), message, text);
  });
});
