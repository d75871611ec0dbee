// Differential test of Portcullis' JWT validation against a peer that makes the same checks: Envoy's own
// envoy.filters.http.jwt_authn, in the real Envoy. One Envoy, two listeners in front of one upstream: `jwt_authn`
// (local JWKS file, issuer, audiences, clock skew, forward: false, a requirement that refuses missing and invalid
// tokens) and `ext_authz` (Portcullis, one JWT provider with the same JWKS file and rules, `authenticate: [jwt]`). Every
// token of the corpus goes to both; allow is 200, deny anything else. Where the two disagree EXPECTED says why
// (mostly Portcullis refusing what Envoy takes; the few the other way round each with the RFC that allows it). A
// disagreement not listed fails. The seeded part replays with JWT_PEER_SEED=<the seed printed>.

import assert from 'node:assert/strict';
import { constants, createHmac, createPublicKey, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWK } from 'jose';
import { repoRoot, startEnvoy, type EnvoyInstance } from '../support/envoy.js';
import { keyPair, type KeyPairKind } from '../support/key-pairs.js';
import { startPortcullis, type PortcullisInstance } from '../support/portcullis.js';
import { prng } from '../support/prng.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { awayFromWindowEdge } from '../support/windows.js';

const ISSUER = 'https://issuer.example';
const AUDIENCES = ['orders-api', 'billing-api'];
const SKEW = 30;
// A fixed seed by default, so CI runs the corpus it was checked with; JWT_PEER_SEED=<n> explores (or replays) another.
const SEED = Number(process.env['JWT_PEER_SEED'] ?? 1);

interface Signer {
  readonly alg: string;
  readonly kid: string | undefined;
  readonly privateKey: KeyObject;
  readonly jwk: JWK;
}

function signer(alg: string, kid: string | undefined, kind: KeyPairKind, jwkAlg: string | undefined = alg): Signer {
  const { privateKey, publicKey } = keyPair(kind);
  const jwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), use: 'sig' };
  if (kid !== undefined) jwk.kid = kid;
  if (jwkAlg !== undefined) jwk.alg = jwkAlg;
  return { alg, kid, privateKey, jwk };
}

const DIGEST: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };
/** `alg`'s signature of `input` under `key`, whatever key it is (the forgeries need a key misused). */
function signBytes(alg: string, key: KeyObject, input: Buffer): Buffer {
  if (key.asymmetricKeyType === 'ed25519') return sign(null, input, key);
  const digest = DIGEST[alg.slice(2)] ?? 'sha256';
  if (alg.startsWith('PS')) return sign(digest, input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST });
  if (alg.startsWith('ES')) return sign(digest, input, { key, dsaEncoding: 'ieee-p1363' });
  return sign(digest, input, key);
}

const b64 = (v: string | Buffer): string => Buffer.from(v).toString('base64url');
const json = (v: unknown): string => b64(JSON.stringify(v));

interface Row {
  readonly name: string;
  /** The request's header lines after the request line (Host and Connection are added). */
  readonly headers?: readonly string[];
  /** Shorthand: `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** The request target; default /. */
  readonly target?: string;
  /** For seeded rows, which EXPECTED cannot name. */
  readonly expected?: Expected;
}

/**
 * Where the two may disagree, and why: Envoy's verdict (`either` where a seeded row may land on both sides) and
 * Portcullis'. Each reason was checked against the RFC and Envoy's behaviour; where Portcullis was the one at fault
 * it was fixed instead (bearer.ts: RFC 6750 spacing; jws.ts: I-JSON, aud of strings only).
 */
interface Expected {
  readonly envoy: 'allow' | 'deny' | 'either';
  readonly portcullis: 'allow' | 'deny';
  readonly why: string;
}
const STRICTER = (why: string): Expected => ({ envoy: 'allow', portcullis: 'deny', why });
const LOOSER = (why: string): Expected => ({ envoy: 'deny', portcullis: 'allow', why });
const NUMERIC_DATE = 'RFC 7519 §2: a NumericDate is any JSON number, and jose takes it. Envoy keeps iat, nbf and exp as uint64 and refuses '
  + 'what does not fit (below 0, from 2^64). Taking it widens nothing: an iat or nbf before 1970 restricts nothing, and an exp '
  + 'however far ahead is what the issuer signed (a cached verification is redone at least hourly, revocation applies).';
const IAT_AHEAD = 'RFC 7519 §4.1.6 leaves iat\'s use to the verifier; #5 checks it with the skew, as nbf, so a token issued ahead of the '
  + 'clock is refused. Envoy checks only nbf and exp.';
const CRIT = 'RFC 7515 §4.1.11: a crit naming what the verifier does not understand (or not a non-empty list) must be refused; '
  + 'Envoy ignores crit.';
const EMPTY_PART = 'RFC 7515 §7.1: a compact JWS is exactly three parts; Envoy splits on dots skipping empty parts, so it reads these as the token.';
const EXPECTED: Readonly<Record<string, Expected>> = {
  'exp exactly now - skew': STRICTER('RFC 7519 §4.1.4: the token is valid before exp, not at it (jose: exp <= now - skew is expired); '
    + 'Envoy refuses only exp < now - skew. One second, on the strict side.'),
  'nbf negative': LOOSER(NUMERIC_DATE),
  'iat negative': LOOSER(NUMERIC_DATE),
  'exp 1e300': LOOSER(NUMERIC_DATE),
  'exp 2^64': LOOSER(NUMERIC_DATE),
  'iat future, beyond the skew': STRICTER(IAT_AHEAD),
  'iat a day ahead': STRICTER(IAT_AHEAD),
  'iat a float': STRICTER(`${IAT_AHEAD} (The odd values are exp's, ten minutes ahead; a float is a NumericDate like any number.)`),
  'sub missing': STRICTER('Portcullis names the caller (x-user-id) from the subject claim; a token without one names nobody.'),
  'kid ""': STRICTER('An empty kid is a kid that names no key (jose); Envoy reads it as no kid at all and tries every key.'),
  'crit b64 with b64 false (payload still encoded)': STRICTER('RFC 7797 §7: a JWT payload is always base64url-encoded, so b64 false is refused; Envoy ignores b64 and crit.'),
  'crit names an unknown extension': STRICTER(CRIT),
  'crit names a registered header (kid)': STRICTER(CRIT),
  'crit an empty list': STRICTER(CRIT),
  'crit a string': STRICTER(CRIT),
  'signature padded with =': STRICTER('RFC 7515 §2: base64url without padding; Envoy\'s decoder takes the padding.'),
  'a trailing dot': STRICTER(EMPTY_PART),
  'a leading dot': STRICTER(EMPTY_PART),
  'two dots between header and payload': STRICTER(EMPTY_PART),
  'claims with a byte order mark': LOOSER('RFC 8259 §8.1: a parser may ignore a byte order mark, and jose\'s (and this) decoder does; the claims read the same either way.'),
  'header with a byte order mark': LOOSER('RFC 8259 §8.1, as for the claims.'),
  'claims with a trailing comma': STRICTER('Not JSON (RFC 8259); Envoy\'s JSON parser is lenient.'),
  'claims with single quotes': STRICTER('Not JSON (RFC 8259); Envoy\'s JSON parser is lenient.'),
  'claims nested 200 deep': LOOSER('Envoy\'s JSON parser stops at 100 levels. The nesting is well-formed JSON that every parser reads alike; '
    + 'max_token_bytes bounds it (a few thousand levels, which JSON.parse handles).'),
  'a 9 KiB token': STRICTER('jwt.max_token_bytes (8192): a bound on what an unverified caller makes Portcullis decode.'),
  'a 32 KiB token': STRICTER('jwt.max_token_bytes (8192).'),
  'scheme bearer': LOOSER('RFC 9110 §11.1: the auth scheme is case-insensitive; Envoy matches the literal prefix "Bearer ".'),
  'scheme BEARER': LOOSER('RFC 9110 §11.1, as above.'),
  'scheme BeArEr': LOOSER('RFC 9110 §11.1, as above.'),
  'RS256 by a 1024-bit RSA key of the JWKS': STRICTER('RFC 7518 §3.3: RSA keys of 2048 bits or more (jose refuses shorter keys too).'),
  'RS256 by an RSA key of the JWKS with use enc': STRICTER('RFC 7517 §4.2: a key whose use is enc is not for signatures; Envoy ignores use.'),
  'RS256 by the key without kid, token with a kid it does not have': STRICTER('A kid names one key (jose matches it exactly); '
    + 'Envoy lets a key without kid answer for any kid.'),
  'two Authorization headers, Basic then valid': STRICTER('Two Authorization headers are refused as ambiguous (docs/authz.md); Envoy tries the one that says Bearer.'),
  'token in the access_token query parameter': STRICTER('Portcullis reads bearer tokens from the Authorization header only: a token in a URL ends up in logs '
    + '(RFC 6750 §2.3, RFC 9700 §2.5). Envoy reads access_token by default.'),
  'garbage in the access_token query parameter, token in the header': LOOSER('access_token is no credential location to Portcullis (above), '
    + 'so it is a query parameter like any other; Envoy verifies every token it finds, and refuses this one.'),
};

describe('JWT validation: Portcullis (ext_authz) and Envoy jwt_authn give the same verdicts', () => {
  let dir: string;
  let upstream: Upstream;
  let portcullis: PortcullisInstance;
  let envoy: EnvoyInstance;
  const keys = {
    rs: signer('RS256', 'rs', { type: 'rsa', modulusLength: 2048 }),
    rs2: signer('RS256', 'rs2', { type: 'rsa', modulusLength: 2048 }),
    es: signer('ES256', 'es', { type: 'ec', namedCurve: 'P-256' }),
    ed: signer('EdDSA', 'ed', { type: 'ed25519' }),
  };
  /** Not in the JWKS. */
  const stranger = signer('RS256', 'rs', { type: 'rsa', modulusLength: 2048 });
  /** In the JWKS, but each unfit in its own way. */
  const odd = {
    short: signer('RS256', 'short', { type: 'rsa', modulusLength: 1024 }),
    p384: signer('ES256', 'p384', { type: 'ec', namedCurve: 'P-384' }, undefined),
    enc: signer('RS256', 'enc', { type: 'rsa', modulusLength: 2048 }, undefined),
    nokid: signer('RS256', undefined, { type: 'rsa', modulusLength: 2048 }),
  };
  odd.enc.jwk.use = 'enc';
  const jwks = { keys: [...Object.values(keys), ...Object.values(odd)].map((k) => k.jwk) };

  before(async () => {
    console.log(`jwt-peer seed ${SEED} (JWT_PEER_SEED=${SEED} replays it)`);
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-jwt-peer-'));
    const jwksFile = path.join(dir, 'jwks.json');
    writeFileSync(jwksFile, JSON.stringify(jwks));
    upstream = await startUpstream();
    portcullis = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors: path.join(repoRoot(), 'envoy', 'authz', 'ratelimit') },
      authz: {
        default_policy: 'deny',
        log_decisions: false,
        jwt: { providers: [{ name: 'peer', issuer: ISSUER, audiences: AUDIENCES, algorithms: ['RS256', 'ES256', 'EdDSA'], jwks: { file: jwksFile }, clock_skew_seconds: SKEW }] },
        policies: [{ name: 'any', match: { path_prefix: '/' }, authenticate: ['jwt'] }],
      },
    });
    envoy = await startEnvoy(peerBootstrap(upstream, portcullis.grpc, jwksFile));
  });
  after(async () => {
    await envoy?.stop();
    await portcullis?.stop();
    await upstream?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Each row sent to both listeners: a line per row, and the lines of the disagreements not listed in EXPECTED. */
  const compare = async (rows: readonly Row[]): Promise<{ lines: string[]; surprises: string[] }> => {
    const lines: string[] = [];
    const surprises: string[] = [];
    for (const row of rows) {
      const [viaEnvoy, viaPortcullis] = [await send(envoy.listenerPort('jwt_authn'), row), await send(envoy.listenerPort('ext_authz'), row)];
      const verdict = { envoy: viaEnvoy === 200 ? 'allow' : 'deny', portcullis: viaPortcullis === 200 ? 'allow' : 'deny' } as const;
      const expected = row.expected ?? EXPECTED[row.name];
      const line = `${row.name}: envoy ${viaEnvoy}, portcullis ${viaPortcullis}`;
      lines.push(expected === undefined ? line : `${line} (listed: ${expected.why})`);
      const asListed = expected !== undefined && (expected.envoy === 'either' ? verdict.envoy === verdict.portcullis || verdict.envoy === 'allow' : expected.envoy === verdict.envoy) && expected.portcullis === verdict.portcullis;
      if (expected === undefined ? verdict.envoy !== verdict.portcullis : !asListed) surprises.push(line);
    }
    return { lines, surprises };
  };

  it('every token of the corpus: the same verdict from both, or a listed difference', async () => {
    const { lines, surprises } = await compare(await corpus(keys, odd, stranger, Math.floor(Date.now() / 1000), prng(SEED)));
    console.log(lines.join('\n'));
    assert.deepEqual(surprises, [], `seed ${SEED}`);
  });

  it('exp and nbf at the edges of the skew, to the second', async () => {
    // Both read the wall clock in whole seconds: the rows are made and sent within one second, else tried again.
    for (let attempt = 1; ; attempt++) {
      await awayFromWindowEdge(1, 0.8);
      const nowS = Math.floor(Date.now() / 1000);
      const edge = (name: string, claims: Record<string, unknown>): Row => {
        const input = `${json({ alg: 'ES256', kid: 'es' })}.${json({ sub: 'user-1', iss: ISSUER, aud: 'orders-api', exp: nowS + 600, ...claims })}`;
        return { name, token: `${input}.${b64(signBytes('ES256', keys.es.privateKey, Buffer.from(input)))}` };
      };
      const rows = [
        edge('exp exactly now - skew', { exp: nowS - SKEW }),
        edge('exp a second later', { exp: nowS - SKEW + 1 }),
        edge('nbf exactly now + skew', { nbf: nowS + SKEW }),
        edge('nbf a second later', { nbf: nowS + SKEW + 1 }),
      ];
      const { lines, surprises } = await compare(rows);
      if (Math.floor(Date.now() / 1000) !== nowS && attempt < 5) continue;
      console.log(lines.join('\n'));
      assert.deepEqual(surprises, []);
      return;
    }
  });
});

/** One HTTP/1.1 request written by hand (two Authorization headers, odd spacing, raw bytes); the status it got. */
function send(port: number, row: Row): Promise<number> {
  const headers = row.headers ?? (row.token === undefined ? [] : [`Authorization: Bearer ${row.token}`]);
  const head = Buffer.concat([
    Buffer.from(`GET ${row.target ?? '/'} HTTP/1.1\r\nHost: peer.test\r\nConnection: close\r\n`, 'latin1'),
    ...headers.map((h) => Buffer.from(`${h}\r\n`, 'latin1')),
    Buffer.from('\r\n'),
  ]);
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${row.name}`)));
    // The status line is all we read: waiting for the close would wait out Envoy's delayed_close_timeout (1 s).
    socket.on('data', (chunk: Buffer) => {
      response += chunk.toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(response);
      if (status === null) return;
      resolve(Number(status[1]));
      socket.destroy();
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`${row.name}: no status line in ${JSON.stringify(response.slice(0, 200))}`)));
    // Not end(): Envoy takes a half-closed connection for a closed one, and would not answer.
    socket.write(head);
  });
}

function peerBootstrap(upstream: Upstream, portcullis: { host: string; port: number }, jwksFile: string): Record<string, unknown> {
  const router = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
  const listener = (name: string, filter: object) => ({
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: name,
          route_config: { name, virtual_hosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'upstream' } }] }] },
          http_filters: [filter, router],
        },
      }],
    }],
  });
  const endpoint = (host: string, port: number) => ({ endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }] });
  return {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [
        listener('jwt_authn', {
          name: 'envoy.filters.http.jwt_authn',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
            providers: {
              peer: {
                issuer: ISSUER,
                audiences: AUDIENCES,
                local_jwks: { filename: jwksFile },
                forward: false,
                clock_skew_seconds: SKEW,
                // Portcullis always requires exp.
                require_expiration: true,
              },
            },
            rules: [{ match: { prefix: '/' }, requires: { provider_name: 'peer' } }],
          },
        }),
        listener('ext_authz', {
          name: 'envoy.filters.http.ext_authz',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
            transport_api_version: 'V3',
            grpc_service: { envoy_grpc: { cluster_name: 'portcullis', skip_envoy_headers: true }, timeout: '5s' },
            failure_mode_allow: false,
          },
        }),
      ],
      clusters: [
        { name: 'upstream', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'upstream', ...endpoint(upstream.host, upstream.port) } },
        {
          name: 'portcullis',
          type: 'STATIC',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: { cluster_name: 'portcullis', ...endpoint(portcullis.host, portcullis.port) },
        },
      ],
    },
  };
}

type Keys = Readonly<Record<'rs' | 'rs2' | 'es' | 'ed', Signer>>;

/** The corpus at `nowS`: tokens made with jose, tokens made by hand, and seeded mutations of valid ones. */
async function corpus(keys: Keys, odd: Readonly<Record<'short' | 'p384' | 'enc' | 'nokid', Signer>>, stranger: Signer, nowS: number, random: () => number): Promise<Row[]> {
  const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ sub: 'user-1', iss: ISSUER, aud: 'orders-api', iat: nowS, exp: nowS + 600, ...extra });
  /** A compact JWS signed by hand: header and claims are anything, the claims text too. */
  const hand = (s: Signer, header: Record<string, unknown> = {}, extra: Record<string, unknown> = {}, options: { payload?: string; signAs?: string; key?: KeyObject } = {}): string => {
    const h = { alg: s.alg, ...(s.kid === undefined ? {} : { kid: s.kid }), ...header };
    for (const [k, v] of Object.entries(h)) if (v === undefined) delete h[k as keyof typeof h];
    const input = `${json(h)}.${options.payload ?? json(claims(extra))}`;
    const alg = options.signAs ?? (typeof h.alg === 'string' ? h.alg : s.alg);
    return `${input}.${b64(signBytes(alg, options.key ?? s.privateKey, Buffer.from(input)))}`;
  };
  const rows: Row[] = [];
  const add = (name: string, token: string): void => void rows.push({ name, token });
  const { rs, rs2, es, ed } = keys;
  const header = (name: string, ...lines: string[]): void => void rows.push({ name, headers: lines });
  for (const s of Object.values(keys)) {
    add(`${s.alg} ${s.kid} valid (hand-signed)`, hand(s));
    add(`${s.alg} ${s.kid} valid (jose)`, await new SignJWT({ sub: 'user-1' }).setProtectedHeader({ alg: s.alg, kid: s.kid! }).setIssuer(ISSUER).setAudience('orders-api').setIssuedAt(nowS).setExpirationTime(nowS + 600).sign(s.privateKey));
  }
  const good = hand(rs);
  const [gh, gp, gs] = good.split('.') as [string, string, string];

  // Time claims, with the skew: margins of 10 s, so the seconds the requests take do not matter.
  add('exp an hour ago', hand(rs, {}, { exp: nowS - 3600 }));
  add('exp past, within the skew', hand(rs, {}, { exp: nowS - SKEW + 10 }));
  add('exp past, beyond the skew', hand(rs, {}, { exp: nowS - SKEW - 10 }));
  add('exp missing', hand(rs, {}, { exp: undefined }));
  add('nbf future, within the skew', hand(rs, {}, { nbf: nowS + SKEW - 10 }));
  add('nbf future, beyond the skew', hand(rs, {}, { nbf: nowS + SKEW + 10 }));
  add('nbf an hour ahead', hand(rs, {}, { nbf: nowS + 3600 }));
  add('iat future, within the skew', hand(rs, {}, { iat: nowS + SKEW - 10 }));
  add('iat future, beyond the skew', hand(rs, {}, { iat: nowS + SKEW + 10 }));
  add('iat a day ahead', hand(rs, {}, { iat: nowS + 86400 }));
  add('iat missing', hand(rs, {}, { iat: undefined }));
  const oddValues: [string, unknown][] = [
    ['a string', String(nowS + 600)], ['a float', nowS + 600.5], ['negative', -1], ['zero', 0], ['1e300', 1e300],
    ['2^64', 2 ** 64], ['null', null], ['true', true], ['an object', { value: nowS + 600 }], ['a list', [nowS + 600]],
  ];
  for (const [what, value] of oddValues) {
    add(`exp ${what}`, hand(rs, {}, { exp: value }));
    add(`nbf ${what}`, hand(rs, {}, { nbf: value }));
    add(`iat ${what}`, hand(rs, {}, { iat: value }));
  }
  add('nbf a float, past', hand(rs, {}, { nbf: nowS - 100.5 }));
  add('nbf a float beyond the skew', hand(rs, {}, { nbf: nowS + SKEW + 10.5 }));
  add('exp a float, past beyond the skew', hand(rs, {}, { exp: nowS - SKEW - 10.5 }));
  const text = (extra: string): string => JSON.stringify(claims()).replace(/}$/, `,${extra}}`).replace(/"exp":\d+,?/, '');
  add('exp written with an exponent', hand(rs, {}, {}, { payload: b64(text(`"exp":${(nowS + 600) / 1e9}e9`)) }));
  add('exp written with a fraction .0', hand(rs, {}, {}, { payload: b64(text(`"exp":${nowS + 600}.0`)) }));
  add('exp written as -0', hand(rs, {}, {}, { payload: b64(text('"exp":-0')) }));

  // Issuer and audience.
  add('iss of another issuer', hand(rs, {}, { iss: 'https://evil.example' }));
  add('iss missing', hand(rs, {}, { iss: undefined }));
  add('iss with a trailing slash', hand(rs, {}, { iss: `${ISSUER}/` }));
  add('iss in upper case', hand(rs, {}, { iss: ISSUER.toUpperCase() }));
  add('iss a list', hand(rs, {}, { iss: [ISSUER] }));
  add('iss a number', hand(rs, {}, { iss: 7 }));
  add('aud the second audience', hand(rs, {}, { aud: 'billing-api' }));
  add('aud of another service', hand(rs, {}, { aud: 'admin-api' }));
  add('aud a list holding ours', hand(rs, {}, { aud: ['admin-api', 'orders-api'] }));
  add('aud a list holding none of ours', hand(rs, {}, { aud: ['admin-api', 'x'] }));
  add('aud a list with a number and ours', hand(rs, {}, { aud: [1, 'orders-api'] }));
  add('aud missing', hand(rs, {}, { aud: undefined }));
  add('aud empty', hand(rs, {}, { aud: '' }));
  add('aud an empty list', hand(rs, {}, { aud: [] }));
  add('aud a number', hand(rs, {}, { aud: 7 }));
  add('aud with a trailing space', hand(rs, {}, { aud: 'orders-api ' }));
  add('aud an object', hand(rs, {}, { aud: { 'orders-api': true } }));
  add('sub missing', hand(rs, {}, { sub: undefined }));
  add('sub a number', hand(rs, {}, { sub: 42 }));

  // alg.
  add('alg none, no signature', `${json({ alg: 'none' })}.${gp}.`);
  add('alg none, with a signature', `${json({ alg: 'none', kid: 'rs' })}.${gp}.${gs}`);
  add('alg None', hand(rs, { alg: 'None' }, {}, { signAs: 'RS256' }));
  add('alg rs256 (lower case)', hand(rs, { alg: 'rs256' }, {}, { signAs: 'RS256' }));
  add('alg missing', hand(rs, { alg: undefined }, {}, { signAs: 'RS256' }));
  add('alg a number', hand(rs, { alg: 256 }, {}, { signAs: 'RS256' }));
  const hs = (secret: Buffer | string): string => {
    const input = `${json({ alg: 'HS256', kid: 'rs', typ: 'JWT' })}.${gp}`;
    return `${input}.${b64(createHmac('sha256', secret).update(input).digest())}`;
  };
  const rsPublic = createPublicKey({ key: rs.jwk as JsonWebKey, format: 'jwk' });
  add('HS256 with the RSA public key (PEM) as secret', hs(rsPublic.export({ type: 'spki', format: 'pem' }) as string));
  add('HS256 with the RSA public key (DER) as secret', hs(rsPublic.export({ type: 'spki', format: 'der' })));
  add('HS256 with the JWK n as secret', hs(String(rs.jwk.n)));
  add('RS512 header, RS256 key (JWK alg RS256)', hand(rs, { alg: 'RS512' }));
  add('PS256 header, RS256 key (JWK alg RS256)', hand(rs, { alg: 'PS256' }));
  add('ES384 header, P-256 key', hand(es, { alg: 'ES384' }));
  add('ES256 header, Ed25519 key', hand(ed, { alg: 'ES256' }, {}, { signAs: 'EdDSA' }));
  add('EdDSA header, kid of the P-256 key', hand(ed, { kid: 'es' }));
  add('Ed25519 header (not configured)', hand(ed, { alg: 'Ed25519' }));
  add('RS256 header, kid of the Ed25519 key', hand(rs, { kid: 'ed' }));

  // kid.
  add('kid unknown', hand(rs, { kid: 'nobody' }));
  add('kid of another RSA key', hand(rs, { kid: 'rs2' }));
  add('kid missing, one key of the alg (ES256)', hand(es, { kid: undefined }));
  add('kid missing, one key of the alg (EdDSA)', hand(ed, { kid: undefined }));
  add('kid missing, two keys of the alg, the first signed', hand(rs, { kid: undefined }));
  add('kid missing, two keys of the alg, the second signed', hand(rs2, { kid: undefined }));
  add('kid missing, signed by a stranger', hand(stranger, { kid: undefined }));
  add('kid of ours, signed by a stranger', hand(stranger));
  add('kid of ours, stranger key embedded (jwk)', hand(stranger, { jwk: stranger.jwk }));
  add('kid of ours, jku to elsewhere', hand(stranger, { jku: 'http://127.0.0.1:1/jwks.json' }));
  for (const kid of ['../rs', './rs', 'rs/../rs', '/rs', 'rs\u0000', 'rs ', ' rs', 'RS', '', 'rs\u200b', 'r\u0073']) add(`kid ${JSON.stringify(kid)}`, hand(rs, { kid }));
  add('kid a number', hand(rs, { kid: 1 }));
  add('kid null', hand(rs, { kid: null }));
  add('kid a list', hand(rs, { kid: ['rs'] }));

  // Keys of the JWKS that are unfit for the token.
  add('RS256 by a 1024-bit RSA key of the JWKS', hand(odd.short));
  add('ES256 (SHA-256) by a P-384 key of the JWKS without alg', hand(odd.p384));
  add('RS256 by an RSA key of the JWKS with use enc', hand(odd.enc));
  add('RS256 by the key without kid, token without kid', hand(odd.nokid));
  add('RS256 by the key without kid, token with a kid it does not have', hand(odd.nokid, { kid: 'anything' }));

  // Header extensions.
  add('crit b64 with b64 true', hand(rs, { crit: ['b64'], b64: true }));
  add('crit b64 with b64 false (payload still encoded)', hand(rs, { crit: ['b64'], b64: false }));
  add('crit b64 with b64 false, payload unencoded', (() => {
    const h = json({ alg: 'RS256', kid: 'rs', crit: ['b64'], b64: false });
    const payload = JSON.stringify(claims());
    return `${h}..${b64(signBytes('RS256', rs.privateKey, Buffer.from(`${h}.${payload}`)))}`;
  })());
  add('crit names an unknown extension', hand(rs, { crit: ['exp'], exp: nowS + 600 }));
  add('crit names a registered header (kid)', hand(rs, { crit: ['kid'] }));
  add('crit an empty list', hand(rs, { crit: [] }));
  add('crit a string', hand(rs, { crit: 'b64', b64: true }));
  add('b64 false without crit', hand(rs, { b64: false }));
  add('typ JWT', hand(rs, { typ: 'JWT' }));
  add('typ at+jwt', hand(rs, { typ: 'at+jwt' }));
  add('typ something else', hand(rs, { typ: 'application/foo' }));
  add('cty JWT (nested)', hand(rs, { cty: 'JWT' }));
  add('zip DEF', hand(rs, { zip: 'DEF' }));

  // base64url spelling.
  const padded = (part: string): string => part + '='.repeat((4 - (part.length % 4)) % 4);
  const std = (part: string): string => part.replaceAll('-', '+').replaceAll('_', '/');
  /** The last character with its unused low bits set: the same bytes, written differently. */
  const trailingBits = (part: string): string | undefined => {
    const unused = ({ 2: 4, 3: 2 } as Record<number, number>)[part.length % 4];
    if (unused === undefined) return undefined;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const value = alphabet.indexOf(part.at(-1)!);
    return part.slice(0, -1) + alphabet[value | ((1 << unused) - 1)];
  };
  add('signature padded with =', `${gh}.${gp}.${padded(gs)}`);
  add('header padded with =', `${padded(gh)}.${gp}.${gs}`);
  add('payload padded with =', `${gh}.${padded(gp)}.${gs}`);
  add('signature in base64 (+/)', `${gh}.${gp}.${std(gs)}`);
  for (const s of Object.values(keys)) {
    const [h, p, sig] = hand(s).split('.') as [string, string, string];
    const bits = trailingBits(sig);
    if (bits !== undefined) add(`${s.alg} ${s.kid}: signature with trailing bits set`, `${h}.${p}.${bits}`);
  }
  {
    // A header and payload whose lengths leave unused bits, with them set; signed as written.
    const h = trailingBits(json({ alg: 'RS256', kid: 'rs' })) ?? trailingBits(json({ alg: 'RS256', kid: 'rs', typ: 'JWT' }))!;
    const input = `${h}.${gp}`;
    add('header with trailing bits set, signed as written', `${input}.${b64(signBytes('RS256', rs.privateKey, Buffer.from(input)))}`);
  }
  {
    const p = json({ ...claims(), x: 'ab' });
    const p2 = trailingBits(p) ?? trailingBits(json({ ...claims(), x: 'abc' }))!;
    const input = `${gh}.${p2}`;
    add('payload with trailing bits set, signed as written', `${input}.${b64(signBytes('RS256', rs.privateKey, Buffer.from(input)))}`);
  }
  {
    // +/ in the signed parts: signed as written, so only the spelling is at fault.
    let i = 0;
    let h = std(json({ alg: 'RS256', kid: 'rs', x: '' }));
    while (!/[+/]/.test(h)) h = std(json({ alg: 'RS256', kid: 'rs', x: '?'.repeat(++i) }));
    const input = `${h}.${gp}`;
    add('header in base64 (+/), signed as written', `${input}.${b64(signBytes('RS256', rs.privateKey, Buffer.from(input)))}`);
  }
  add('a fourth part', `${good}.${gs}`);
  add('a trailing dot', `${good}.`);
  add('a leading dot', `.${good}`);
  add('two dots between header and payload', `${gh}..${gp}.${gs}`);
  add('signature empty', `${gh}.${gp}.`);
  add('payload empty', `${gh}..${gs}`);

  // JSON.
  const signedText = (headerText: string, payloadText: string, s: Signer = rs): string => {
    const input = `${b64(headerText)}.${b64(payloadText)}`;
    return `${input}.${b64(signBytes(s.alg, s.privateKey, Buffer.from(input)))}`;
  };
  const claimsText = JSON.stringify(claims());
  const rsHeader = JSON.stringify({ alg: 'RS256', kid: 'rs' });
  add('duplicate exp: past, then future', signedText(rsHeader, claimsText.replace('{', `{"exp":${nowS - 3600},`)));
  add('duplicate exp: future, then past', signedText(rsHeader, claimsText.replace('}', `,"exp":${nowS - 3600}}`)));
  add('duplicate aud: ours, then another', signedText(rsHeader, claimsText.replace('}', ',"aud":"admin-api"}')));
  add('duplicate aud: another, then ours', signedText(rsHeader, claimsText.replace('{', '{"aud":"admin-api",')));
  add('duplicate iss: ours, then another', signedText(rsHeader, claimsText.replace('}', ',"iss":"https://evil.example"}')));
  add('duplicate sub', signedText(rsHeader, claimsText.replace('}', ',"sub":"admin"}')));
  add('duplicate alg in the header: RS256, then none', signedText(rsHeader.replace('}', ',"alg":"none"}'), claimsText));
  add('duplicate alg in the header: none, then RS256', signedText(rsHeader.replace('{', '{"alg":"none",'), claimsText));
  add('duplicate kid in the header: unknown, then ours', signedText(rsHeader.replace('}', ',"kid":"rs"}').replace('"kid":"rs"', '"kid":"nobody"'), claimsText));
  add('claims with a byte order mark', signedText(rsHeader, `\ufeff${claimsText}`));
  add('header with a byte order mark', signedText(`\ufeff${rsHeader}`, claimsText));
  add('claims with whitespace around', signedText(rsHeader, ` \n${claimsText}\t`));
  add('claims followed by garbage', signedText(rsHeader, `${claimsText}x`));
  add('claims followed by a second object', signedText(rsHeader, `${claimsText}{}`));
  add('claims with a comment', signedText(rsHeader, claimsText.replace('{', '{/* c */')));
  add('claims with a trailing comma', signedText(rsHeader, claimsText.replace('}', ',}')));
  add('claims with single quotes', signedText(rsHeader, claimsText.replaceAll('"sub"', "'sub'")));
  add('claims a list', signedText(rsHeader, `[${claimsText}]`));
  add('claims a string', signedText(rsHeader, JSON.stringify(claimsText)));
  add('claims empty object', signedText(rsHeader, '{}'));
  add('claims nested 200 deep', signedText(rsHeader, claimsText.replace('}', `,"deep":${'['.repeat(200)}${']'.repeat(200)}}`)));
  add('claims nested 5000 deep', signedText(rsHeader, claimsText.replace('}', `,"deep":${'['.repeat(5000)}${']'.repeat(5000)}}`)));
  add('claims with a lone surrogate escape', signedText(rsHeader, claimsText.replace('}', ',"x":"\\ud800"}')));
  add('sub with a lone surrogate escape', signedText(rsHeader, claimsText.replace('"user-1"', '"user\\ud800"')));
  add('claims with an escaped NUL', signedText(rsHeader, claimsText.replace('}', ',"x":"a\\u0000b"}')));
  add('claims with a number 1e400', signedText(rsHeader, claimsText.replace('}', ',"x":1e400}')));
  add('exp 1e400', signedText(rsHeader, claimsText.replace(/"exp":\d+/, '"exp":1e400')));
  add('claims with a huge integer', signedText(rsHeader, claimsText.replace('}', `,"x":${'9'.repeat(400)}}`)));
  const nonUtf8 = (bytes: Buffer): string => {
    const input = `${json({ alg: 'RS256', kid: 'rs' })}.${b64(bytes)}`;
    return `${input}.${b64(signBytes('RS256', rs.privateKey, Buffer.from(input)))}`;
  };
  const withByte = (byte: Buffer, where: string): Buffer => { const t = Buffer.from(claimsText); const at = t.indexOf(where); return Buffer.concat([t.subarray(0, at), byte, t.subarray(at)]); };
  add('claims not UTF-8 (0xff in sub)', nonUtf8(withByte(Buffer.of(0xff), '-1"')));
  add('claims not UTF-8 (overlong /)', nonUtf8(withByte(Buffer.of(0xc0, 0xaf), '-1"')));
  add('claims not UTF-8 (encoded surrogate)', nonUtf8(withByte(Buffer.of(0xed, 0xa0, 0x80), '-1"')));
  add('claims in UTF-16', nonUtf8(Buffer.from(`\ufeff${claimsText}`, 'utf16le')));
  add('claims in latin1 (é in sub)', nonUtf8(Buffer.from(claimsText.replace('user-1', 'usér-1'), 'latin1')));
  add('claims UTF-8 (é in sub)', nonUtf8(Buffer.from(claimsText.replace('user-1', 'usér-1'), 'utf8')));

  // Size.
  const sized = (bytes: number): string => hand(rs, {}, { pad: 'x'.repeat(Math.max(0, Math.floor(((bytes - good.length) * 3) / 4))) });
  add('a 4 KiB token', sized(4096));
  add('an 8 KiB token (just under max_token_bytes with the scheme)', sized(8150));
  add('a 9 KiB token', sized(9216));
  add('a 32 KiB token', sized(32 * 1024));
  add('a 70 KiB token', sized(70 * 1024));

  // Where the token is, and how the Authorization header is spelled.
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) header(`scheme ${scheme}`, `Authorization: ${scheme} ${good}`);
  header('two spaces after Bearer', `Authorization: Bearer  ${good}`);
  header('a tab after Bearer', `Authorization: Bearer\t${good}`);
  header('no space after Bearer', `Authorization: Bearer${good}`);
  header('spaces around the value', `Authorization:   Bearer ${good}   `);
  header('a space inside the token', `Authorization: Bearer ${gh}. ${gp}.${gs}`);
  header('a space after the token, then garbage', `Authorization: Bearer ${good} x`);
  header('garbage glued after the token', `Authorization: Bearer ${good}!x`);
  header('a quote glued after the token', `Authorization: Bearer ${good}"`);
  header('the token in quotes', `Authorization: Bearer "${good}"`);
  header('no scheme', `Authorization: ${good}`);
  header('scheme Basic', `Authorization: Basic ${good}`);
  header('scheme DPoP', `Authorization: DPoP ${good}`);
  header('scheme Token', `Authorization: Token ${good}`);
  header('Bearer and nothing', 'Authorization: Bearer');
  header('Bearer and a space', 'Authorization: Bearer ');
  header('two tokens in one header', `Authorization: Bearer ${good}, Bearer ${good}`);
  header('two Authorization headers, both valid', `Authorization: Bearer ${good}`, `Authorization: Bearer ${good}`);
  header('two Authorization headers, valid then garbage', `Authorization: Bearer ${good}`, 'Authorization: Bearer garbage');
  header('two Authorization headers, garbage then valid', 'Authorization: Bearer garbage', `Authorization: Bearer ${good}`);
  header('two Authorization headers, valid then Basic', `Authorization: Bearer ${good}`, 'Authorization: Basic dXNlcjpwYXNz');
  header('two Authorization headers, Basic then valid', 'Authorization: Basic dXNlcjpwYXNz', `Authorization: Bearer ${good}`);
  header('two Authorization headers, valid then expired', `Authorization: Bearer ${good}`, `Authorization: Bearer ${hand(rs, {}, { exp: nowS - 3600 })}`);
  header('header name in lower case', `authorization: Bearer ${good}`);
  header('a non-ASCII byte after the token', `Authorization: Bearer ${good}\u00e9`);
  header('token in x-jwt-assertion', `x-jwt-assertion: ${good}`);
  header('token in a cookie', `Cookie: access_token=${good}`);
  header('token in Proxy-Authorization', `Proxy-Authorization: Bearer ${good}`);
  rows.push({ name: 'token in the access_token query parameter', target: `/?access_token=${good}` });
  rows.push({ name: 'token in the access_token query parameter and the header', target: `/?access_token=${good}`, headers: [`Authorization: Bearer ${good}`] });
  rows.push({ name: 'garbage in the access_token query parameter, token in the header', target: '/?access_token=garbage', headers: [`Authorization: Bearer ${good}`] });
  header('no Authorization header');

  // Seeded damage: one character of a valid token replaced, inserted or removed.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
  const originals = [good, hand(es), hand(ed)];
  for (let n = 0; n < 60; n++) {
    const original = originals[n % originals.length]!;
    const at = Math.floor(random() * original.length);
    const c = alphabet[Math.floor(random() * alphabet.length)]!;
    const op = Math.floor(random() * 3);
    const damaged = op === 0 ? original.slice(0, at) + c + original.slice(at + 1) : op === 1 ? original.slice(0, at) + c + original.slice(at) : original.slice(0, at) + original.slice(at + 1);
    if (damaged === original) continue;
    // Padding or an empty part: Envoy may read the damaged token as the original (EXPECTED above). A character outside
    // base64url and '.' ends the token for Envoy (it takes the longest run of them after the prefix): cut before the
    // signature's last character, the rest may decode to the same bytes under its lenient base64 (trailing bits).
    const lenient = /=|\.\.|^\.|\.$|[^A-Za-z0-9_.-]/.test(damaged)
      ? { envoy: 'either', portcullis: 'deny', why: 'padding, an empty part, or a character that ends the token for Envoy (see above)' } as const
      : undefined;
    rows.push({ name: `damage #${n}: ${['replace', 'insert', 'remove'][op]} at ${at} ${JSON.stringify(c)}`, token: damaged, ...(lenient && { expected: lenient }) });
  }
  return rows;
}
