import assert from 'node:assert/strict';
import { constants, createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import type { JwtAlgorithm, JwtProviderSettings } from '../../../src/authz/config.js';
import { MAX_CANDIDATE_KEYS, staticKeySource, type KeySource } from '../../../src/authz/jwks.js';
import { claimsRefusal, decodeJws, headerRefusal, keyRefusal, shown, signatureRefusal, signatureVerifies } from '../../../src/authz/jws.js';
import { evaluateJwt } from '../../../src/authz/jwt.js';
import { ExpiringLru } from '../../../src/authz/lru.js';
import type { Outcome } from '../../../src/authz/types.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { keyPair } from '../../support/key-pairs.js';
import { authzSettings, countingObserver, input } from './support.js';

const NOW_S = 1_700_000_000;
const ISSUER = 'https://issuer.example';
const SKEW = 30;

/** One key pair per alg family, with a JWK for the JWKS and a signer that knows the alg's encoding. */
function pair(alg: JwtAlgorithm, kid: string, generate: () => { privateKey: KeyObject; publicKey: KeyObject }) {
  const { privateKey, publicKey } = generate();
  const jwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk };
}
type Pair = ReturnType<typeof pair>;
const rsa = (bits: number) => () => keyPair({ type: 'rsa', modulusLength: bits });
const ec = (namedCurve: string) => () => keyPair({ type: 'ec', namedCurve });
const PAIRS: Pair[] = [
  pair('RS256', 'rs', rsa(2048)),
  pair('PS256', 'ps', rsa(2048)),
  pair('ES256', 'es256', ec('P-256')),
  pair('ES384', 'es384', ec('P-384')),
  pair('ES512', 'es512', ec('P-521')),
  pair('EdDSA', 'ed', () => keyPair({ type: 'ed25519' })),
];
const SHORT_RSA = pair('RS256', 'short', rsa(1024));
/** Same kid as the RS256 key, not in the JWKS: its signatures must never verify. */
const IMPOSTOR = pair('RS256', 'rs', rsa(2048));

const DIGEST: Record<string, string | null> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };
function signWith(p: Pair, alg: string, input: Buffer): Buffer {
  // An Ed25519 key signs only EdDSA, whatever alg the header claims.
  if (p.jwk.kty === 'OKP') return sign(null, input, p.privateKey);
  const digest = DIGEST[alg.slice(2)] ?? 'sha256';
  if (alg.startsWith('PS')) return sign(digest, input, { key: p.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
  if (alg.startsWith('ES')) return sign(digest, input, { key: p.privateKey, dsaEncoding: 'ieee-p1363' });
  return sign(digest, input, p.privateKey);
}
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
/** A compact JWS signed by hand, so headers and claims can be anything jose would refuse to produce. */
function jws(p: Pair, header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}, signAs = p.alg as string): string {
  const input = `${b64({ alg: p.alg, kid: p.kid, ...header })}.${b64({ sub: 'user-1', iss: ISSUER, aud: 'orders-api', iat: NOW_S, exp: NOW_S + 600, ...claims })}`;
  return `${input}.${signWith(p, signAs, Buffer.from(input)).toString('base64url')}`;
}

function provider(extra = ''): JwtProviderSettings {
  const settings = authzSettings(`jwt:
  providers:
    - name: main
      issuer: ${ISSUER}
      audiences: [orders-api, billing-api]
      algorithms: [RS256, PS256, ES256, ES384, ES512, EdDSA]
      jwks: { file: ./jwks.json }
      clock_skew_seconds: ${SKEW}
      required_claims: [sub]
${extra}policies:
  - { name: any, match: { path_prefix: / }, authenticate: [jwt] }`);
  return settings.jwt!.providers[0]!;
}
const JWKS = { keys: [...PAIRS, SHORT_RSA].map((p) => p.jwk) };
/** The same keys without `alg` members: only kty and crv then tie a key to an alg. */
const JWKS_WITHOUT_ALG = { keys: JWKS.keys.map(({ alg: _alg, ...jwk }) => jwk) };
/** Each alg paired with another its key might be misused under. */
const SWAPPED: Record<string, string> = { RS256: 'PS256', PS256: 'RS256', ES256: 'ES384', ES384: 'ES256', ES512: 'ES256', EdDSA: 'ES256' };

/**
 * One key source per JWKS for the whole file, as a server holds one per provider: keys found for an earlier token's
 * alg and kid are the ones a later token with that header gets (jwks.ts), also when the later one is forged.
 */
const keySources = new WeakMap<object, KeySource>();

/**
 * Portcullis' verdict: the JWT evaluator with its cache off, at NOW_S. Asked twice, so the second answer comes with
 * the header's keys already found (synchronously); both must agree.
 */
async function ours(settings: JwtProviderSettings, token: string, jwks: { keys: JWK[] } = JWKS): Promise<Outcome> {
  let keys = keySources.get(jwks);
  if (keys === undefined) keySources.set(jwks, (keys = staticKeySource(jwks)));
  const deps = {
    providers: [{ settings, keys }],
    cache: new ExpiringLru<never>(0),
    generation: 'g',
    maxTokenBytes: 8192,
    clock: new FakeClock(NOW_S * 1000),
    observer: countingObserver(),
    isRevoked: () => false,
  };
  const ask = () => evaluateJwt(input({ headers: { authorization: `Bearer ${token}` } }), undefined, deps, AbortSignal.timeout(2000));
  const first = await ask();
  assert.deepEqual(await ask(), first, 'the same verdict once the keys for this header are known');
  return first;
}

/** jose's verdict on the same token under the same rules: the reference implementation. */
async function jose(settings: JwtProviderSettings, token: string, jwks = JWKS): Promise<string | undefined> {
  try {
    // jose compares iat with the clock only under a maximum age, and then requires iat: for a token that has one, an
    // age of a thousand years checks that it is not ahead of the clock (beyond the tolerance) and bounds nothing else.
    const hasIat = decodeJwt(token).iat !== undefined;
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      ...(hasIat ? { maxTokenAge: '1000 years' } : {}),
      issuer: settings.issuer,
      audience: [...settings.audiences],
      algorithms: [...settings.algorithms],
      clockTolerance: settings.clockSkewSeconds,
      currentDate: new Date(NOW_S * 1000),
      requiredClaims: [...settings.requiredClaims],
      ...(settings.type ? { typ: settings.type } : {}),
    });
    return typeof payload.sub === 'string' ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

/** Deterministic variety for the mutation rows (xorshift). */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Every row: a token and whether it must be accepted (undefined: jose decides); our verdict is held to jose's. */
type Row = [name: string, token: string, accepted: boolean | undefined];
function rows(): Row[] {
  const out: Row[] = [];
  for (const p of PAIRS) {
    const good = jws(p);
    const [h, c, sig] = good.split('.') as [string, string, string];
    const otherKid = PAIRS[(PAIRS.indexOf(p) + 1) % PAIRS.length]!.kid;
    out.push(
      [`${p.alg} valid`, good, true],
      [`${p.alg} tampered claims`, `${h}.${b64({ sub: 'admin', iss: ISSUER, aud: 'orders-api', exp: NOW_S + 600 })}.${sig}`, false],
      [`${p.alg} signature cut short`, `${h}.${c}.${sig.slice(0, -4)}`, false],
      [`${p.alg} signature one byte longer`, `${h}.${c}.${Buffer.concat([Buffer.from(sig, 'base64url'), Buffer.of(0)]).toString('base64url')}`, false],
      [`${p.alg} signature all zeros`, `${h}.${c}.${Buffer.alloc(Buffer.from(sig, 'base64url').length).toString('base64url')}`, false],
      [`${p.alg} signature of another token`, `${h}.${c}.${jws(p, {}, { sub: 'user-2' }).split('.')[2]}`, false],
      [`${p.alg} key used under ${SWAPPED[p.alg]}, which its JWK alg forbids`, jws(p, { alg: SWAPPED[p.alg] }, {}, SWAPPED[p.alg]), false],
      [`${p.alg} header alg not allowed`, jws(p, { alg: 'RS512' }), false],
      [`${p.alg} unknown kid`, jws(p, { kid: 'nobody' }), false],
      [`${p.alg} signed by its key, kid of another`, jws(p, { kid: otherKid }), false],
    );
    const draw = random(p.alg.length * 7919);
    for (let i = 0; i < 12; i++) {
      const at = Math.floor(draw() * good.length);
      const flipped = good[at] === '.' ? good : `${good.slice(0, at)}${good[at] === 'A' ? 'B' : 'A'}${good.slice(at + 1)}`;
      if (flipped !== good) out.push([`${p.alg} character ${at} changed`, flipped, undefined]);
    }
  }
  const rs = PAIRS[0]!;
  out.push(
    ['RSA key of 1024 bits', jws(SHORT_RSA), false],
    ['key not in the JWKS, same kid', jws(IMPOSTOR), false],
    ['exp exactly at now - skew', jws(rs, {}, { exp: NOW_S - SKEW }), false],
    ['exp one second later', jws(rs, {}, { exp: NOW_S - SKEW + 1 }), true],
    ['exp a string', jws(rs, {}, { exp: String(NOW_S + 600) }), false],
    ['nbf exactly at now + skew', jws(rs, {}, { nbf: NOW_S + SKEW }), true],
    ['nbf one second later', jws(rs, {}, { nbf: NOW_S + SKEW + 1 }), false],
    ['nbf a string', jws(rs, {}, { nbf: 'now' }), false],
    ['iat a string', jws(rs, {}, { iat: 'yesterday' }), false],
    ['iat exactly at now + skew', jws(rs, {}, { iat: NOW_S + SKEW }), true],
    ['iat one second later', jws(rs, {}, { iat: NOW_S + SKEW + 1 }), false],
    ['iat a day ahead', jws(rs, {}, { iat: NOW_S + 86400 }), false],
    ['no exp', jws(rs, {}, { exp: undefined }), false],
    ['no sub (required)', jws(rs, {}, { sub: undefined }), false],
    ['aud a list holding one of ours', jws(rs, {}, { aud: ['other', 'billing-api'] }), true],
    ['aud a list holding none of ours', jws(rs, {}, { aud: ['other'] }), false],
    ['aud missing', jws(rs, {}, { aud: undefined }), false],
    ['aud a number', jws(rs, {}, { aud: 7 }), false],
    ['aud an empty list', jws(rs, {}, { aud: [] }), false],
    ['iss of another issuer', jws(rs, {}, { iss: 'https://evil.example' }), false],
    ['iss with a trailing slash', jws(rs, {}, { iss: `${ISSUER}/` }), false],
    ['crit b64 with b64 true', jws(rs, { crit: ['b64'], b64: true }), true],
    ['crit b64 with b64 false', jws(rs, { crit: ['b64'], b64: false }), false],
    ['crit b64 without b64', jws(rs, { crit: ['b64'] }), false],
    ['crit names an unknown extension', jws(rs, { crit: ['exp'], exp: 1 }), false],
    ['crit an empty list', jws(rs, { crit: [] }), false],
    ['crit a string', jws(rs, { crit: 'b64', b64: true }), false],
    ['b64 false without crit (ignored)', jws(rs, { b64: false }), true],
    ['alg missing', jws(rs, { alg: undefined }, {}, 'RS256'), false],
    ['alg none', `${b64({ alg: 'none' })}.${b64({ sub: 'u', iss: ISSUER, aud: 'orders-api', exp: NOW_S + 60 })}.c2ln`, false],
    ['claims a JSON list', `${b64({ alg: 'RS256', kid: 'rs' })}.${b64([1])}.${jws(rs).split('.')[2]}`, false],
  );
  return out;
}

describe('JWS checks held to jose', () => {
  it('every row gets the verdict it should, and the verdict jose gives', async () => {
    const settings = provider();
    for (const [name, token, expected] of rows()) {
      const [outcome, reference] = await Promise.all([ours(settings, token), jose(settings, token)]);
      const accepted = outcome.kind === 'success';
      assert.equal(accepted, reference !== undefined, `${name}: ours ${JSON.stringify(outcome)}, jose ${reference === undefined ? 'refused' : 'accepted'}`);
      if (expected !== undefined) assert.equal(accepted, expected, name);
      if (accepted) assert.equal(outcome.identity.subject, reference);
    }
  });

  it('a JWKS without alg members: a key verifies only the algs of its family and curve, as in jose', async () => {
    const settings = provider();
    for (const p of PAIRS) {
      const swapped = SWAPPED[p.alg]!;
      // An RSA key serves RS256 and PS256 alike when its JWK does not pin one; an EC key only its own curve's alg.
      const expected = p.jwk.kty === 'RSA';
      for (const [name, token, accepted] of [[`${p.alg} as itself`, jws(p), true], [`${p.alg} key under ${swapped}`, jws(p, { alg: swapped }, {}, swapped), expected]] as const) {
        const [outcome, reference] = await Promise.all([ours(settings, token, JWKS_WITHOUT_ALG), jose(settings, token, JWKS_WITHOUT_ALG)]);
        assert.equal(outcome.kind === 'success', accepted, `${name}: ${JSON.stringify(outcome)}`);
        assert.equal(reference !== undefined, accepted, `jose: ${name}`);
      }
    }
  });

  it('a header without kid that matches several keys (a rotation): each is tried, at most MAX_CANDIDATE_KEYS', async () => {
    const settings = provider();
    // RS256 is verified on the event loop, ES256 on the thread pool: both walk the candidates the same way.
    for (const [alg, keys] of [['RS256', rsa(2048)], ['ES256', ec('P-256')]] as const) {
      const rotation = Array.from({ length: MAX_CANDIDATE_KEYS + 1 }, (_, i) => pair(alg, `r${i}`, keys));
      const jwks = { keys: rotation.map(({ jwk: { kid: _kid, ...jwk } }) => jwk) };
      for (const [i, p] of rotation.entries()) {
        const outcome = await ours(settings, jws(p, { kid: undefined }), jwks);
        assert.equal(outcome.kind === 'success', i < MAX_CANDIDATE_KEYS, `${alg} signed by key ${i}: ${JSON.stringify(outcome)}`);
      }
      const stranger = await ours(settings, jws(pair(alg, 'stranger', keys), { kid: undefined }), jwks);
      assert.equal(stranger.kind === 'invalid' && stranger.reason, 'jwt_bad_signature', alg);
    }
  });

  it('typ: compared as a media type, case-insensitive, application/ implied', async () => {
    const settings = provider('      type: at+jwt\n');
    const rs = PAIRS[0]!;
    const cases: [Record<string, unknown>, boolean][] = [
      [{ typ: 'at+jwt' }, true], [{ typ: 'AT+JWT' }, true], [{ typ: 'application/at+jwt' }, true],
      [{ typ: 'JWT' }, false], [{}, false], [{ typ: 7 }, false],
    ];
    for (const [header, expected] of cases) {
      const token = jws(rs, header);
      const [outcome, reference] = await Promise.all([ours(settings, token), jose(settings, token)]);
      assert.equal(outcome.kind === 'success', expected, JSON.stringify(header));
      assert.equal(reference !== undefined, expected, `jose: ${JSON.stringify(header)}`);
    }
  });
});

describe('JWS decision functions', () => {
  const settings = provider();
  it('headerRefusal: crit and alg, table', () => {
    const table: [Record<string, unknown>, string | undefined][] = [
      [{ alg: 'RS256' }, undefined],
      [{ alg: 'RS256', crit: ['b64'], b64: true }, undefined],
      [{ alg: 'RS256', crit: ['b64'], b64: false }, 'jwt_malformed'],
      [{ alg: 'RS256', crit: ['zip'] }, 'jwt_unsupported'],
      [{ alg: 'RS256', crit: [''] }, 'jwt_malformed'],
      [{ alg: 'RS256', crit: [] }, 'jwt_malformed'],
      [{ alg: 'HS256' }, 'jwt_alg_not_allowed'],
      [{ alg: 'none' }, 'jwt_alg_not_allowed'],
      [{ alg: 'rs256' }, 'jwt_alg_not_allowed'],
      [{}, 'jwt_malformed'],
      [{ alg: 7 }, 'jwt_malformed'],
    ];
    for (const [header, reason] of table) assert.equal(headerRefusal(header as never, settings.algorithms)?.reason, reason, JSON.stringify(header));
  });

  it('claimsRefusal: reasons, table', () => {
    const base = { sub: 'u', iss: ISSUER, aud: 'orders-api', exp: NOW_S + 60 };
    const table: [Record<string, unknown>, string | undefined][] = [
      [base, undefined],
      [{ ...base, iss: 'x' }, 'jwt_wrong_issuer'],
      [{ ...base, iss: undefined }, 'jwt_wrong_issuer'],
      [{ ...base, aud: 'x' }, 'jwt_wrong_audience'],
      [{ ...base, aud: undefined }, 'jwt_wrong_audience'],
      [{ ...base, sub: undefined }, 'jwt_claim_invalid'],
      [{ ...base, exp: undefined }, 'jwt_claim_invalid'],
      [{ ...base, exp: NOW_S - SKEW }, 'jwt_expired'],
      [{ ...base, exp: '1' }, 'jwt_claim_invalid'],
      [{ ...base, nbf: NOW_S + SKEW + 1 }, 'jwt_not_yet_valid'],
      [{ ...base, iat: null }, 'jwt_claim_invalid'],
      [{ ...base, iat: NOW_S + SKEW }, undefined],
      [{ ...base, iat: NOW_S + SKEW + 1 }, 'jwt_not_yet_valid'],
      [{ ...base, jti: 'abc' }, undefined],
      // Not revocable: `portcullis revoke --jti 12345` names the string. jose and Envoy take these.
      [{ ...base, jti: 12345 }, 'jwt_claim_invalid'],
      [{ ...base, jti: '' }, 'jwt_claim_invalid'],
      [{ ...base, jti: ['a'] }, 'jwt_claim_invalid'],
      [{ ...base, aud: ['x', 'orders-api'] }, undefined],
      // RFC 7519 §4.1.3: strings only. jose takes the list for its matching item; Envoy's jwt_authn refuses it.
      [{ ...base, aud: [1, 'orders-api'] }, 'jwt_wrong_audience'],
      [{ ...base, aud: ['orders-api', null] }, 'jwt_wrong_audience'],
      [{ ...base, aud: [['orders-api']] }, 'jwt_wrong_audience'],
    ];
    for (const [claims, reason] of table) {
      const payload = JSON.parse(JSON.stringify(claims)) as Record<string, unknown>;
      assert.equal(claimsRefusal(settings, { alg: 'RS256' }, payload, NOW_S)?.reason, reason, JSON.stringify(claims));
    }
  });

  it('keyRefusal, signatureVerifies, signatureRefusal: a key answers only for its own alg', async () => {
    const data = Buffer.from('signing input');
    for (const p of PAIRS) {
      for (const alg of settings.algorithms) {
        const fits = keyRefusal(alg, p.publicKey) === undefined;
        const sameFamily = (alg.startsWith('RS') || alg.startsWith('PS')) ? p.jwk.kty === 'RSA' : alg === p.alg || (alg === 'EdDSA' && p.alg === 'EdDSA');
        assert.equal(fits, sameFamily, `${p.alg} key for ${alg}`);
      }
      const verified = signatureVerifies(p.alg, p.publicKey, data, signWith(p, p.alg, data));
      // RSA answers on the event loop; ECDSA and EdDSA on the thread pool (jws.ts, Scheme.onThreadPool).
      assert.equal(verified instanceof Promise, !p.alg.startsWith('RS') && !p.alg.startsWith('PS'), `${p.alg} on the thread pool`);
      assert.equal(await verified, true, p.alg);
      assert.equal(await signatureVerifies(p.alg, p.publicKey, Buffer.from('other input'), signWith(p, p.alg, data)), false, `${p.alg} other input`);
      assert.equal(await signatureVerifies(p.alg, p.publicKey, data, Buffer.alloc(3)), false, `${p.alg} short signature`);
    }
    assert.equal(keyRefusal('RS256', SHORT_RSA.publicKey)?.reason, 'jwt_unknown_key');
    const [rs, , es] = PAIRS as [Pair, Pair, Pair];
    const signed = signWith(rs, 'RS256', data);
    const table: [string, KeyObject[], string | undefined][] = [
      ['the signer', [rs.publicKey], undefined],
      ['another RSA key, then the signer', [IMPOSTOR.publicKey, rs.publicKey], undefined],
      ['another RSA key', [IMPOSTOR.publicKey], 'jwt_bad_signature'],
      ['an EC key', [es.publicKey], 'jwt_unknown_key'],
      ['an EC key, then another RSA key', [es.publicKey, IMPOSTOR.publicKey], 'jwt_bad_signature'],
      ['no key', [], 'jwt_unknown_key'],
    ];
    for (const [name, keys, reason] of table) assert.equal((await signatureRefusal('RS256', keys, data, signed))?.reason, reason, name);
    assert.equal(keyRefusal('RS256', PAIRS[0]!.privateKey)?.reason, 'jwt_unknown_key');
  });
});

describe('keyRefusal: RSA keys whose verify costs milliseconds are refused (a forged token per verify)', () => {
  const n2048 = Buffer.from(PAIRS[0]!.jwk.n!, 'base64url');
  /** An odd modulus of exactly `bits` bits (not a product of primes: it never verifies, but imports and costs as one). */
  const modulus = (bits: number): Buffer => {
    const bytes = Buffer.alloc(Math.ceil(bits / 8), 0x5b);
    bytes[0] = 1 << ((bits - 1) % 8) | 1;
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) | 1, bytes.length - 1);
    return bytes;
  };
  const exponent = (e: bigint): Buffer => Buffer.from(e.toString(16).padStart(Math.ceil(e.toString(16).length / 2) * 2, '0'), 'hex');
  const key = (n: Buffer, e: bigint): KeyObject => createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: exponent(e).toString('base64url') }, format: 'jwk' });
  // [name, key, refused]
  const rows: [string, () => KeyObject, boolean][] = [
    ['2048 bits, e = 65537', () => key(n2048, 65537n), false],
    ['2048 bits, e = 3', () => key(n2048, 3n), false],
    ['2048 bits, e = 2^31 - 1', () => key(n2048, 2n ** 31n - 1n), false],
    ['8192 bits', () => key(modulus(8192), 65537n), false],
    ['1024 bits', () => SHORT_RSA.publicKey, true],
    ['8200 bits', () => key(modulus(8200), 65537n), true],
    ['16384 bits (2–5 ms a verify)', () => key(modulus(16384), 65537n), true],
    ['2048 bits, e = 2^31 + 1', () => key(n2048, 2n ** 31n + 1n), true],
    ['2048 bits, a 2047-bit e (2 ms a verify)', () => key(n2048, 2n ** 2046n + 1n), true],
    ['2048 bits, e even', () => key(n2048, 65536n), true],
    ['2048 bits, e = 1', () => key(n2048, 1n), true],
  ];
  for (const [name, make, refused] of rows) {
    it(`${name}: ${refused ? 'refused' : 'taken'}`, () => {
      const refusal = keyRefusal('RS256', make());
      assert.equal(refusal?.reason, refused ? 'jwt_unknown_key' : undefined, JSON.stringify(refusal));
      if (refused) assert.equal(keyRefusal('PS256', make())?.reason, 'jwt_unknown_key');
    });
  }
});

describe('keyRefusal: an RSA key with e = 1 verifies any signature that is its own padded digest', () => {
  it('a token forged for such a key is refused, at load and at verify', async () => {
    const n = Buffer.from(PAIRS[0]!.jwk.n!, 'base64url');
    const jwk = { kty: 'RSA', n: n.toString('base64url'), e: 'AQ', kid: 'e1' };
    const data = Buffer.from('eyJhbGciOiJSUzI1NiIsImtpZCI6ImUxIn0.eyJzdWIiOiJhZG1pbiJ9');
    // RSASSA-PKCS1-v1_5 with e = 1: the signature is the encoded message itself.
    const digestInfo = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), createHash('sha256').update(data).digest()]);
    const forged = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(n.length - 3 - digestInfo.length, 0xff), Buffer.from([0]), digestInfo]);
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    assert.equal(verify('sha256', data, key, forged), true, 'node:crypto takes the forgery');
    assert.equal((await signatureRefusal('RS256', [key], data, forged))?.reason, 'jwt_unknown_key');
    assert.throws(() => staticKeySource({ keys: [jwk] }), /key 'e1' is an RSA key whose public exponent is not an odd number from 3/);
  });
});

describe('Stricter than jose: refused here, taken by jose (and refused by Envoy\'s jwt_authn, test/e2e/jwt-peer.test.ts)', () => {
  const rs = PAIRS[0]!;
  /** Header and claims as JSON text, signed as written. */
  const signedText = (headerText: string, claimsText: string): string => {
    const input = `${Buffer.from(headerText).toString('base64url')}.${Buffer.from(claimsText).toString('base64url')}`;
    return `${input}.${signWith(rs, 'RS256', Buffer.from(input)).toString('base64url')}`;
  };
  const header = JSON.stringify({ alg: 'RS256', kid: 'rs' });
  const claims = JSON.stringify({ sub: 'user-1', iss: ISSUER, aud: 'orders-api', iat: NOW_S, exp: NOW_S + 600 });
  const table: [name: string, token: string, reason: string][] = [
    ['sub twice: jose names the last', signedText(header, claims.replace('}', ',"sub":"admin"}')), 'jwt_malformed'],
    ['exp twice, past then future', signedText(header, claims.replace('{', `{"exp":${NOW_S - 3600},`)), 'jwt_malformed'],
    ['aud twice, another then ours', signedText(header, claims.replace('{', '{"aud":"admin-api",')), 'jwt_malformed'],
    ['sub twice, once escaped', signedText(header, claims.replace('}', ',"s\\u0075b":"admin"}')), 'jwt_malformed'],
    ['a member twice in a nested object', signedText(header, claims.replace('}', ',"org":{"id":"a","id":"b"}}')), 'jwt_malformed'],
    ['alg twice in the header, none then RS256', signedText(header.replace('{', '{"alg":"none",'), claims), 'jwt_malformed'],
    ['kid twice in the header', signedText(header.replace('}', ',"kid":"rs"}'), claims), 'jwt_malformed'],
    ['a claim with a lone surrogate escape', signedText(header, claims.replace('}', ',"org":"acme\\ud800"}')), 'jwt_malformed'],
    ['exp 1e400 (Infinity to JSON.parse)', signedText(header, claims.replace(/"exp":\d+/, '"exp":1e400')), 'jwt_malformed'],
    ['a claim of 400 digits', signedText(header, claims.replace('}', `,"n":${'9'.repeat(400)}}`)), 'jwt_malformed'],
    ['aud a list holding a number and ours', jws(rs, {}, { aud: [1, 'orders-api'] }), 'jwt_wrong_audience'],
  ];
  for (const [name, token, reason] of table) {
    it(name, async () => {
      const settings = provider();
      assert.notEqual(await jose(settings, token), undefined, 'jose takes it');
      const outcome = await ours(settings, token);
      assert.equal(outcome.kind === 'invalid' ? outcome.reason : outcome.kind, reason);
    });
  }
  it('the same names in different objects, and the same text as a name and a value, are fine', async () => {
    const token = signedText(header, claims.replace('}', ',"a":{"sub":"x","b":{"sub":"y"}},"c":[{"sub":1},{"sub":2}],"x":"sub"}'));
    assert.equal((await ours(provider(), token)).kind, 'success');
  });
});

describe('decodeJws: the tokens jose decodes, decoded alike', () => {
  const part = (bytes: number[] | string): string => Buffer.from(typeof bytes === 'string' ? bytes : Uint8Array.from(bytes)).toString('base64url');
  const header = b64({ alg: 'RS256', kid: 'rs' });
  const claims = b64({ sub: 'user-1', iss: ISSUER });
  const json = (text: string): number[] => [...Buffer.from(text)];
  /**
   * JSON whose encoding ends on a whole 4-character group, plus one character: a length of 1 mod 4, which no base64
   * encoding has. Buffer alone would drop the extra character and decode the JSON.
   */
  const oneMod4 = (text: string): string => `${part(text.padEnd(Math.ceil(text.length / 3) * 3, ' '))}A`;
  /** What jose's own decoders make of a token: the header and payload, or undefined where either throws. */
  const joseDecodes = (token: string): unknown => {
    try {
      return { header: decodeProtectedHeader(token), payload: decodeJwt(token) };
    } catch {
      return undefined;
    }
  };
  const table: [name: string, header: string, payload: string, decodes: boolean][] = [
    ['plain', header, claims, true],
    ['a payload 1 mod 4 long (atob refuses it)', header, oneMod4('{"sub":"user-1"}'), false],
    ['a header 1 mod 4 long', oneMod4('{"alg":"RS256"}'), claims, false],
    ['non-zero bits after the last byte', header, part('{"a":1}').replace(/.$/, (c) => (c === 'Q' ? 'R' : 'Q')), true],
    ['bytes that are not UTF-8', header, part([0x7b, 0xff, 0x7d]), false],
    ['an overlong UTF-8 encoding', header, part(json('{"a":"').concat(0xc0, 0xaf, ...json('"}'))), false],
    ['a UTF-16 surrogate in UTF-8', header, part(json('{"a":"').concat(0xed, 0xa0, 0x80, ...json('"}'))), false],
    ['a byte-order mark before the JSON', header, part([0xef, 0xbb, 0xbf, ...json('{"a":1}')]), true],
    ['non-ASCII claims', header, part('{"sub":"Jürgen ✓"}'), true],
    ['a list', header, part('[1]'), false],
    ['null', header, part('null'), false],
    ['a number', header, part('7'), false],
    ['a string', part('"RS256"'), claims, false],
    ['not JSON', header, part('{sub:1}'), false],
    ['a __proto__ member stays a member', part('{"__proto__":{"alg":"none"},"alg":"RS256"}'), claims, true],
  ];
  for (const [name, h, p, decodes] of table) {
    it(name, () => {
      const token = `${h}.${p}.c2ln`;
      const ours = decodeJws(token);
      const reference = joseDecodes(token);
      assert.equal(reference !== undefined, decodes, `jose ${reference === undefined ? 'refused' : 'decoded'} it`);
      assert.deepEqual('reason' in ours ? undefined : { header: ours.header, payload: ours.payload }, reference);
      if ('reason' in ours) assert.equal(ours.reason, 'jwt_malformed');
    });
  }

  it('JSON with a byte changed at random, 2,000 times: decoded exactly when jose decodes it', () => {
    const next = random(0x5eed);
    for (let i = 0; i < 2000; i++) {
      // Mostly JSON-looking text with a byte changed, so both kinds of verdict come up.
      const text = json(JSON.stringify({ alg: 'RS256', n: i, s: 'é' }));
      text[Math.floor(next() * text.length)] = Math.floor(next() * 256);
      const token = `${part(text)}.${next() < 0.5 ? claims : part(text)}.c2ln`;
      const ours = decodeJws(token);
      assert.deepEqual('reason' in ours ? undefined : { header: ours.header, payload: ours.payload }, joseDecodes(token), token);
    }
  });

  it('a header seen before is the same frozen header, before and after 200 others pushed it out', () => {
    const decoded = (h: string): Record<string, unknown> => {
      const ours = decodeJws(`${h}.${claims}.c2ln`);
      assert.ok(!('reason' in ours));
      return ours.header as Record<string, unknown>;
    };
    const first = decoded(header);
    assert.ok(Object.isFrozen(first));
    assert.equal(decoded(header), first);
    for (let i = 0; i < 200; i++) assert.deepEqual(decoded(b64({ alg: 'RS256', kid: `k${i}` })), { alg: 'RS256', kid: `k${i}` });
    assert.deepEqual(decoded(header), { alg: 'RS256', kid: 'rs' });
    // A refused header is never kept: refused again, as often as it comes.
    for (let i = 0; i < 2; i++) assert.equal((decodeJws(`${part('{"alg":"RS256","alg":"ES256"}')}.${claims}.c2ln`) as { reason: string }).reason, 'jwt_malformed');
  });
});

describe('shown: token values in refusal details', () => {
  const deep = JSON.parse('['.repeat(4000) + ']'.repeat(4000)) as unknown;
  const rows: [string, unknown, string][] = [
    ['a string, quoted', 'https://issuer.example', '"https://issuer.example"'],
    ['a long string, cut at 100', 'x'.repeat(5000), JSON.stringify(`${'x'.repeat(100)}…`)],
    ['a number', 42, '(a number)'],
    ['an object nested 4,000 deep, by its kind', deep, '(a list)'],
    ['an object', { a: 1 }, '(an object)'],
    ['null', null, 'null'],
    ['absent', undefined, '(none)'],
  ];
  for (const [name, value, text] of rows) it(name, () => assert.equal(shown(value), text));
});
