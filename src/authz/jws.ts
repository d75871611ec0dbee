// String.prototype.isWellFormed (Node >= 20, package.json engines) is typed in ES2024's lib; the target stays ES2022.
/// <reference lib="es2024.string" />
import { constants, verify, type AsymmetricKeyDetails, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';
import type { JWTPayload, ProtectedHeaderParameters } from 'jose';
import { excerpt, iJsonFault } from '../config/json-text.js';
import type { JwtAlgorithm, JwtProviderSettings } from './config.js';
import type { MaybePromise } from './types.js';

/**
 * The checks jose's jwtVerify makes on a compact JWT, made here on the token decoded once (decodeJws) and the key
 * jose picked, with the signature checked by node:crypto's one-shot `verify`. jose v6 verifies only through
 * WebCrypto, a thread-pool job per token that cost an RS256 token about twice the CPU of `crypto.verify` with 50 in
 * flight and 3–5× alone (docs/benchmarks.md); `crypto.verify` with a callback uses the same pool for ≈ 15 % more
 * CPU, which Scheme `onThreadPool` spends where the verify is slow enough to pay for it. jose still selects the JWKS
 * key for the header and imports it. The rules below are jose's (RFC 7515 crit, RFC 7797 b64, RFC 7519 claims);
 * test/unit/authz/jws.test.ts holds them to jose's verdicts token by token. Two are stricter than jose, as Envoy's
 * jwt_authn is (test/e2e/jwt-peer.test.ts): the header and claims must be I-JSON, and aud a string or strings. One
 * is stricter than both: jti must be a non-empty string, so that revocation can name it.
 */

/** Why a token is refused: a reason code for logs and explain, and a detail for a human. */
export interface Refusal {
  readonly reason: string;
  readonly detail: string;
}

/** What an `alg` asks of node:crypto, and which keys may answer for it (RFC 7518 §3, RFC 8037 §3.1). */
interface Scheme {
  /** Digest for crypto.verify; null for EdDSA, whose digest is part of the scheme. */
  readonly digest: 'sha256' | 'sha384' | 'sha512' | null;
  readonly keyType: 'rsa' | 'ec' | 'ed25519';
  /** EC only: the one curve the alg names, as node:crypto calls it. */
  readonly curve?: string;
  readonly options?: Omit<VerifyKeyObjectInput, 'key'>;
  /**
   * Verified on libuv's thread pool rather than on the event loop. An ECDSA or EdDSA verify takes 50–75 µs here, and
   * the hand-off leaves 14–20 µs of it on the event loop: uncached ES256 and EdDSA Checks reached 1.2–1.25× the
   * throughput for the same CPU per Check. An RSA verify (public exponent 65537) takes ≈ 20 µs, too little for the
   * hand-off to pay: on the pool an uncached RS256 Check cost 15–36 µs more CPU and gained nothing on Node 20, and
   * about 24 µs more on Node 26 (docs/benchmarks.md, "2026-12-03 14:58–15:35 UTC", "RSA on the thread pool measured
   * again").
   */
  readonly onThreadPool: boolean;
}

const rsa = (digest: Scheme['digest']): Scheme => ({ digest, keyType: 'rsa', onThreadPool: false });
// RFC 7518 §3.5: the salt is as long as the digest, and nothing else verifies.
const pss = (digest: Scheme['digest']): Scheme => ({ digest, keyType: 'rsa', onThreadPool: false, options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } });
// JWS carries ECDSA signatures as r || s (IEEE P1363), not DER.
const ecdsa = (digest: Scheme['digest'], curve: string): Scheme => ({ digest, keyType: 'ec', curve, onThreadPool: true, options: { dsaEncoding: 'ieee-p1363' } });
const eddsa: Scheme = { digest: null, keyType: 'ed25519', onThreadPool: true };

const SCHEMES: Readonly<Record<JwtAlgorithm, Scheme>> = {
  RS256: rsa('sha256'), RS384: rsa('sha384'), RS512: rsa('sha512'),
  PS256: pss('sha256'), PS384: pss('sha384'), PS512: pss('sha512'),
  ES256: ecdsa('sha256', 'prime256v1'), ES384: ecdsa('sha384', 'secp384r1'), ES512: ecdsa('sha512', 'secp521r1'),
  EdDSA: eddsa, Ed25519: eddsa,
};
/** RFC 7518 §3.3; jose refuses shorter RSA keys too. */
const MIN_RSA_BITS = 2048;
/**
 * Longer moduli and larger public exponents are refused: the issuer chooses the key, but anyone can send a token
 * with its kid and a garbage signature, and each costs one verify on the event loop. At 2048 bits and e = 65537 that
 * is ≈ 20 µs; a 16384-bit modulus took 2–5 ms, a 3071-bit exponent on a 3072-bit modulus 7 ms (OpenSSL bounds the
 * exponent only above 3072 bits): a few dozen forged tokens a second would hold the event loop. Go's crypto/rsa
 * refuses exponents over 2^31 − 1 too.
 */
const MAX_RSA_BITS = 8192;
const MAX_RSA_EXPONENT = 2n ** 31n - 1n;

/**
 * A key's details, read once per key: `asymmetricKeyDetails` is a native getter that builds a new object (and a
 * BigInt) on every read, and an uncached token read it twice, ≈ 2.5 µs of its ≈ 45 in process. A KeyObject never
 * changes, and a WeakMap lets a key that is dropped go.
 */
const detailsByKey = new WeakMap<KeyObject, AsymmetricKeyDetails>();
function detailsOf(key: KeyObject): AsymmetricKeyDetails {
  let details = detailsByKey.get(key);
  if (details === undefined) {
    details = Object.freeze({ ...key.asymmetricKeyDetails });
    detailsByKey.set(key, details);
  }
  return details;
}

/** Why an RSA public key is not one to verify with, or undefined (its length and public exponent, above). */
export function rsaKeyFault(key: KeyObject): string | undefined {
  const details = detailsOf(key);
  const bits = details.modulusLength ?? 0;
  const e = details.publicExponent ?? 0n;
  if (bits < MIN_RSA_BITS) return `is an RSA key of ${bits} bits, under ${MIN_RSA_BITS}`;
  if (bits > MAX_RSA_BITS) return `is an RSA key of ${bits} bits, over ${MAX_RSA_BITS}`;
  if (e < 3n || e % 2n === 0n || e > MAX_RSA_EXPONENT) return `is an RSA key whose public exponent is not an odd number from 3 to 2^31 - 1`;
  return undefined;
}

const malformed = (detail: string): Refusal => ({ reason: 'jwt_malformed', detail });

/**
 * A value from an unverified token, for a refusal's detail (logged, printed by explain): a string quoted and cut at 100
 * characters, anything else by its kind. The token chose it: it may be long, or an object nested thousands deep.
 */
export function shown(value: unknown): string {
  if (typeof value === 'string') return excerpt(value);
  if (value === undefined) return '(none)';
  if (value === null) return 'null';
  return Array.isArray(value) ? '(a list)' : typeof value === 'object' ? '(an object)' : `(a ${typeof value})`;
}

/**
 * The protected header's fault under a provider's pinned algorithms, or undefined. `crit` may name only `b64`, and a
 * JWT's payload is always base64url-encoded (RFC 7797 §7), so `b64` can only be true.
 */
export function headerRefusal(header: ProtectedHeaderParameters, algorithms: readonly JwtAlgorithm[]): Refusal | undefined {
  const { crit } = header;
  if (crit !== undefined) {
    if (!Array.isArray(crit) || crit.length === 0 || crit.some((name) => typeof name !== 'string' || name === '')) return malformed('crit must be a list of header names');
    const unknown = crit.find((name) => name !== 'b64');
    if (unknown !== undefined) return { reason: 'jwt_unsupported', detail: `critical header ${shown(unknown)} is not understood` };
    if (header.b64 !== true) return malformed('a JWT payload must be base64url-encoded (b64 must be true)');
  }
  const { alg } = header;
  if (typeof alg !== 'string' || alg === '') return malformed('alg header missing');
  if (!(algorithms as readonly string[]).includes(alg)) return { reason: 'jwt_alg_not_allowed', detail: `alg ${shown(alg)} is not allowed for this provider` };
  return undefined;
}

/** Why `key` cannot verify `alg`, or undefined: a key of another family or curve, or an RSA key rsaKeyFault refuses. */
export function keyRefusal(alg: JwtAlgorithm, key: KeyObject): Refusal | undefined {
  const scheme = SCHEMES[alg];
  if (key.type !== 'public' || key.asymmetricKeyType !== scheme.keyType || (scheme.curve !== undefined && detailsOf(key).namedCurve !== scheme.curve)) {
    return { reason: 'jwt_unknown_key', detail: `the selected key (${key.asymmetricKeyType ?? key.type}) cannot verify ${alg}` };
  }
  if (scheme.keyType === 'rsa') {
    const fault = rsaKeyFault(key);
    if (fault !== undefined) return { reason: 'jwt_unknown_key', detail: `the selected key ${fault}` };
  }
  return undefined;
}

/** A compact JWS taken apart: what the key source, the signature check and the claim checks each read. */
export interface DecodedJws {
  readonly header: ProtectedHeaderParameters;
  readonly payload: JWTPayload;
  /** The three encoded parts, as jose's key sources take them. */
  readonly parts: { readonly protected: string; readonly payload: string; readonly signature: string };
  /** `header.payload`, the bytes the signature covers. */
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One JSON object part of a token, or why not: a length of 1 mod 4 (atob refuses it; Buffer would drop the last
 * character), bytes that are not UTF-8 (jose's decoder is fatal), text that is not JSON, JSON that is not an object
 * (jose's decodeProtectedHeader and decodeJwt refuse all of these too), or JSON that is not I-JSON (iJsonFault), which
 * jose decodes and Portcullis refuses.
 */
function jsonObjectPart(encoded: string): Record<string, unknown> | string {
  const notJson = 'not a base64url-encoded JSON object';
  if (encoded.length % 4 === 1) return notJson;
  let text: string;
  let value: unknown;
  try {
    text = strictUtf8.decode(Buffer.from(encoded, 'base64url'));
    value = JSON.parse(text);
  } catch {
    return notJson;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return notJson;
  return iJsonFault(text) ?? (value as Record<string, unknown>);
}

/**
 * Protected headers decoded before, by their encoded text. An issuer signs every token with a handful of headers
 * (alg, kid, typ), so an uncached token's header is almost always one seen before: decoding it again cost ≈ 2.5 µs of
 * the ≈ 45 the token costs in process. Only headers that decode are kept (a refusal is decoded again), and at most
 * MAX_HEADERS, each under the token size limit: past that the oldest goes, so a flood of distinct headers costs a
 * bounded map. Frozen: every token with that header shares the object.
 */
const headersByText = new Map<string, Readonly<Record<string, unknown>>>();
const MAX_HEADERS = 64;
function protectedHeader(encoded: string): Readonly<Record<string, unknown>> | string {
  const known = headersByText.get(encoded);
  if (known !== undefined) return known;
  const header = jsonObjectPart(encoded);
  if (typeof header === 'string') return header;
  if (headersByText.size >= MAX_HEADERS) headersByText.delete(headersByText.keys().next().value!);
  const frozen = Object.freeze(header);
  headersByText.set(encoded, frozen);
  return frozen;
}

/**
 * A token that passed the compact shape check (three non-empty runs of base64url characters), decoded once, or why
 * it is malformed. jose's decoders accept and refuse the same tokens, JSON that is not I-JSON aside, which they take
 * and this refuses (test/unit/authz/jws.test.ts holds them to it), but each splits the token and decodes base64url
 * through atob and a loop per character. Decoding once through
 * Buffer took an uncached RS256 Check from 36 to 32 µs in process (docs/benchmarks.md, 2026-12-06).
 */
export function decodeJws(token: string): DecodedJws | Refusal {
  const [encodedHeader, encodedPayload, encodedSignature] = token.split('.') as [string, string, string];
  const header = protectedHeader(encodedHeader);
  if (typeof header === 'string') return malformed(`the protected header is ${header}`);
  const payload = jsonObjectPart(encodedPayload);
  if (typeof payload === 'string') return malformed(`the payload is ${payload}`);
  return {
    header,
    payload,
    parts: { protected: encodedHeader, payload: encodedPayload, signature: encodedSignature },
    // Base64url characters only, so the signing input is ASCII.
    signingInput: Buffer.from(token.slice(0, encodedHeader.length + 1 + encodedPayload.length), 'latin1'),
    signature: Buffer.from(encodedSignature, 'base64url'),
  };
}

const BAD_SIGNATURE: Refusal = { reason: 'jwt_bad_signature', detail: 'signature does not verify' };
export const NO_MATCHING_KEY: Refusal = { reason: 'jwt_unknown_key', detail: 'no signing key matches the token header' };

/**
 * The refusal when none of `keys` (the header's candidates) verifies the signature, or undefined when one does. A
 * key that cannot check the alg is skipped; the refusal says bad signature once any key could check it. A promise
 * only for the algs verified on the thread pool.
 */
export function signatureRefusal(alg: JwtAlgorithm, keys: readonly KeyObject[], signingInput: Buffer, signature: Buffer): MaybePromise<Refusal | undefined> {
  const from = (first: number, refusal: Refusal | undefined): MaybePromise<Refusal | undefined> => {
    for (let i = first; i < keys.length; i++) {
      const unfit = keyRefusal(alg, keys[i]!);
      if (unfit !== undefined) {
        refusal ??= unfit;
        continue;
      }
      const verified = signatureVerifies(alg, keys[i]!, signingInput, signature);
      if (verified instanceof Promise) return verified.then((valid) => (valid ? undefined : from(i + 1, BAD_SIGNATURE)));
      if (verified) return undefined;
      refusal = BAD_SIGNATURE;
    }
    return refusal ?? NO_MATCHING_KEY;
  };
  return from(0, undefined);
}

/**
 * True when `signature` is `alg`'s signature of `signingInput` under `key` (a key keyRefusal accepted): on the event
 * loop, or through a callback on the thread pool for the algs whose Scheme says so.
 */
export function signatureVerifies(alg: JwtAlgorithm, key: KeyObject, signingInput: Buffer, signature: Buffer): MaybePromise<boolean> {
  const scheme = SCHEMES[alg];
  const keyInput = scheme.options === undefined ? key : { key, ...scheme.options };
  // OpenSSL refuses some malformed signatures (a wrong length) by failing rather than answering false.
  if (!scheme.onThreadPool) {
    try {
      return verify(scheme.digest, signingInput, keyInput, signature);
    } catch {
      return false;
    }
  }
  return new Promise((resolve) => {
    try {
      verify(scheme.digest, signingInput, keyInput, signature, (error, valid) => resolve(error === null && valid));
    } catch {
      resolve(false);
    }
  });
}

/** RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively, `application/` implied when absent. */
const mediaType = (typ: string): string => (typ.includes('/') ? typ.toLowerCase() : `application/${typ.toLowerCase()}`);

/**
 * The verified payload's fault under a provider's rules at `nowS`, or undefined: typ, presence of iss, aud and the
 * required claims, issuer, audience (one of the provider's), jti's type, then nbf, exp and iat with the provider's
 * clock skew.
 */
export function claimsRefusal(settings: JwtProviderSettings, header: ProtectedHeaderParameters, payload: JWTPayload, nowS: number): Refusal | undefined {
  if (settings.type !== undefined && (typeof header.typ !== 'string' || mediaType(header.typ) !== mediaType(settings.type))) {
    return { reason: 'jwt_claim_invalid', detail: `typ header must be ${settings.type}` };
  }
  if (!Object.hasOwn(payload, 'iss')) return { reason: 'jwt_wrong_issuer', detail: 'claim iss missing' };
  if (!Object.hasOwn(payload, 'aud')) return { reason: 'jwt_wrong_audience', detail: 'claim aud missing' };
  for (const claim of settings.requiredClaims) {
    if (!Object.hasOwn(payload, claim)) return { reason: claim === 'nbf' ? 'jwt_not_yet_valid' : 'jwt_claim_invalid', detail: `claim ${claim} missing` };
  }
  if (payload.iss !== settings.issuer) return { reason: 'jwt_wrong_issuer', detail: 'claim iss is not the provider\'s issuer' };
  const { aud } = payload;
  // RFC 7519 §4.1.3: a string or a list of strings. jose takes a list holding other things too, when one item matches;
  // Envoy's jwt_authn refuses it, as a malformed claim should be.
  if (Array.isArray(aud) && !aud.every((a) => typeof a === 'string')) return { reason: 'jwt_wrong_audience', detail: 'claim aud must be a string or a list of strings' };
  const audienceMatches = typeof aud === 'string' ? settings.audiences.includes(aud) : Array.isArray(aud) && settings.audiences.some((a) => aud.includes(a));
  if (!audienceMatches) return { reason: 'jwt_wrong_audience', detail: 'claim aud names none of the provider\'s audiences' };
  // RFC 7519 §4.1.7: a string. A token whose jti is not one could not be revoked (`portcullis revoke --jti` names a
  // string), and would keep working after its number was revoked.
  if (payload.jti !== undefined && (typeof payload.jti !== 'string' || payload.jti === '')) return { reason: 'jwt_claim_invalid', detail: 'claim jti must be a non-empty string' };
  const skew = settings.clockSkewSeconds;
  for (const claim of ['iat', 'nbf', 'exp'] as const) {
    if (payload[claim] !== undefined && typeof payload[claim] !== 'number') return { reason: claim === 'nbf' ? 'jwt_not_yet_valid' : 'jwt_claim_invalid', detail: `claim ${claim} must be a number` };
  }
  if (payload.nbf !== undefined && payload.nbf > nowS + skew) return { reason: 'jwt_not_yet_valid', detail: 'claim nbf: token not valid yet' };
  if (payload.exp !== undefined && payload.exp <= nowS - skew) return { reason: 'jwt_expired', detail: 'token expired' };
  // RFC 7519 leaves iat's use to the verifier; #5 checks it with the skew, as nbf: a token issued ahead of the clock
  // comes from an issuer whose clock is wrong, or was minted to outlive a key rotation. jose checks it only when given
  // a maximum age, Envoy's jwt_authn not at all (test/e2e/jwt-peer.test.ts).
  if (payload.iat !== undefined && payload.iat > nowS + skew) return { reason: 'jwt_not_yet_valid', detail: 'claim iat: token issued in the future' };
  return undefined;
}
