// Differential test of `portcullis explain` against the live Check service: random requests, each sent as a Check
// over gRPC to a real server and run through explain with the same config, must get the same answer (status, reason,
// message, policy, caller, each method's outcome, headers set and removed, dynamic metadata). Issue #5: explain
// answers "why was I denied?", so it must say what the server did. EXPLAIN_SEED=n replays one seed; a failure names
// its seed and request.

import assert from 'node:assert/strict';
import { createHash, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import { explain } from '../../../src/cli/authz-commands.js';
import { eventually, startTestApp, type TestApp } from '../../support/app.js';
import { headerMap, metadataOf, type CheckArgs, type WireCheckResponse } from '../../support/authz-client.js';
import { startIdentityProvider, type IdentityProvider } from '../../support/identity-provider.js';
import { keyPairFor } from '../../support/key-pairs.js';
import { prng } from '../../support/prng.js';
import { sendCommand, startRedis, type RedisServer } from '../../support/redis-server.js';
import { systemClock } from '../../../src/shared/clock.js';
import { RedisRevocationList } from '../../../src/store/revocation-list.js';
import { createRedisClient } from '../../../src/store/redis-client.js';

const ISSUER = 'https://issuer.test';
const OTHER_ISSUER = 'https://other.test';
const sha = (k: string): string => createHash('sha256').update(k).digest('hex');
const KEYS = {
  gold: 'pk_diff-gold-0000000000000000000000000000000',
  plain: 'pk_diff-plain-000000000000000000000000000000',
  disabled: 'pk_diff-disabled-000000000000000000000000000',
  revoked: 'pk_diff-revoked-0000000000000000000000000000',
  unknown: 'pk_diff-unknown-0000000000000000000000000000',
};
const KEYS_FILE = [
  `- { id: gold-1, sha256: ${sha(KEYS.gold)}, owner: acme, tier: gold, scopes: [orders:read, partner:read], roles: [writer] }`,
  `- { id: plain-1, sha256: ${sha(KEYS.plain)}, owner: bob }`,
  `- { id: off-1, sha256: ${sha(KEYS.disabled)}, owner: carol, disabled: true }`,
  `- { id: gone-1, sha256: ${sha(KEYS.revoked)}, owner: dave }`,
].join('\n');

/**
 * Two providers share an issuer (main and partner, which reads other claims), one has an issuer of its own, and one
 * is the real HTTP issuer (JWKS over HTTP, introspection).
 */
function authzSection(idp: IdentityProvider): string {
  return `timeout_ms: 500
client_ip: { trusted_hops: 1 }
api_keys: { header: x-api-key, query: api_key, file: ./keys.yaml }
jwt:
  providers:
    - { name: main, issuer: "${ISSUER}", audiences: [orders-api], jwks: { file: ./main.json }, required_claims: [sub] }
    - { name: partner, issuer: "${ISSUER}", audiences: [partner-api], jwks: { file: ./main.json }, claims: { subject: client_id, scopes: scp } }
    - { name: other, issuer: "${OTHER_ISSUER}", audiences: [orders-api], jwks: { file: ./other.json } }
    - { name: idp, issuer: "${idp.issuer}", audiences: [orders-api], jwks: { uri: "${idp.jwksUrl}" } }
introspection: { url: "${idp.introspectionUrl}", client_id: gateway, client_secret_file: ./secret }
mtls: { trusted: [10.9.0.0/16] }
revocation: { enabled: true, refresh_ms: 100 }
default_policy: deny
policies:
  - name: public
    match: { path_prefix: /public }
    authenticate: [anonymous]
  - name: orders-read
    match: { path_prefix: /api/orders, methods: [GET, HEAD] }
    authenticate: [jwt, api_key]
    require: { scopes: [orders:read] }
  - name: orders-write
    match: { path_prefix: /api/orders, methods: [POST, DELETE] }
    authenticate: [jwt:main, jwt:other]
    require: { roles: [writer], claims: { org: [acme, globex] } }
  - name: partner
    match: { path_prefix: /partner }
    authenticate: [jwt:partner, api_key]
    require: { scopes: [partner:read] }
  - name: any-token
    match: { path_prefix: /tokens }
    authenticate: [jwt]
  - name: admin
    match: { path_prefix: /admin }
    authenticate: [mtls]
    require: { principals: ["spiffe://example.org/ops"] }
    ip_allow: [10.0.0.0/8]
  - name: health
    match: { path: /internal/health }
    authenticate: [anonymous]
    ip_allow: [192.168.0.0/16, "2001:db8::/32"]
  - name: opaque
    match: { path_prefix: /opaque }
    authenticate: [introspection, api_key]
  - name: routed
    authenticate: [api_key, jwt:idp]`;
}

interface Signer {
  readonly privateKey: KeyObject;
  readonly kid: string;
}

/** A small fixed set of credentials per run, reused across requests so the server's caches warm up as in life. */
async function tokens(main: Signer, other: Signer, idp: IdentityProvider): Promise<Record<string, string>> {
  const now = Math.floor(Date.now() / 1000);
  const sign = (signer: Signer, claims: Record<string, unknown>): Promise<string> => new SignJWT({ iat: now, exp: now + 600, ...claims })
    .setProtectedHeader({ alg: 'RS256', kid: signer.kid }).sign(signer.privateKey);
  return {
    reader: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: 'user-reader', scope: 'orders:read' }),
    writer: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: 'user-writer', scope: 'orders:read orders:write', roles: ['writer'], org: 'acme' }),
    wrongOrg: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: 'user-wrong', roles: ['writer'], org: 'initech' }),
    // Valid for main and for partner alike: the two read different claims from it.
    both: await sign(main, { iss: ISSUER, aud: ['orders-api', 'partner-api'], sub: 'user-both', client_id: 'partner-app', scope: 'orders:read', scp: ['partner:read'] }),
    partnerOnly: await sign(main, { iss: ISSUER, aud: 'partner-api', client_id: 'partner-only', scp: 'partner:read' }),
    expired: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: 'user-old', scope: 'orders:read', exp: now - 600, iat: now - 1200 }),
    early: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: 'user-early', scope: 'orders:read', nbf: now + 600 }),
    wrongAud: await sign(main, { iss: ISSUER, aud: 'billing', sub: 'user-aud', scope: 'orders:read' }),
    noSub: await sign(main, { iss: ISSUER, aud: 'orders-api', scope: 'orders:read' }),
    blankSub: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: ' admin', scope: 'orders:read' }),
    revokedJti: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: 'user-revoked', scope: 'orders:read', jti: 'jti-revoked' }),
    liveJti: await sign(main, { iss: ISSUER, aud: 'orders-api', sub: 'user-live', scope: 'orders:read', jti: 'jti-live' }),
    other: await sign(other, { iss: OTHER_ISSUER, aud: 'orders-api', sub: 'user-other', roles: ['writer'], org: 'globex' }),
    forged: await sign(other, { iss: ISSUER, aud: 'orders-api', sub: 'user-forged', scope: 'orders:read' }),
    unknownIssuer: await sign(main, { iss: 'https://nobody.test', aud: 'orders-api', sub: 'user-x' }),
    idp: await idp.token({ sub: 'user-idp', scope: 'orders:read' }),
    garbage: 'not.a.jwt',
  };
}

/** A slow answer: past the Check's deadline (timeout_ms 500: 400 ms to wait), so both must answer 503. */
const SLOW_MS = 1500;

const introspection = (token: string): Record<string, unknown> | Promise<Record<string, unknown>> => {
  if (token.startsWith('opaque-slow-')) return new Promise((resolve) => setTimeout(() => resolve({ active: true, sub: 'svc-slow' }), SLOW_MS));
  if (token === 'opaque-good') return { active: true, sub: 'svc-1', scope: 'orders:read', tier: 'silver' };
  if (token === 'opaque-revoked') return { active: true, sub: 'svc-2', jti: 'jti-revoked' };
  return { active: false };
};

interface Sample {
  readonly args: CheckArgs;
  /** The same request as explain's flags. */
  readonly header: string[];
}

/** One random request: paths with normalization tricks, every kind of credential, spoofed headers, proxies. */
function randomRequest(rand: () => number, creds: Record<string, string>, id: string): Sample {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const chance = (p: number): boolean => rand() < p;
  const method = pick(['GET', 'GET', 'POST', 'DELETE', 'HEAD', 'PUT', 'get', 'PROPFIND', 'OPTIONS']);
  const base = pick(['/public', '/api/orders', '/partner', '/tokens', '/admin', '/internal/health', '/opaque', '/elsewhere', '/', '/publicity']);
  const trick = pick([
    '', '', '/1', '/', '//x', '/../admin', '/%2e%2e/admin', '/%2E%2e/api/orders', '/./x', '/a/../../internal/health', '/%61dmin',
    '/caf%c3%a9', '/café', '/%7euser', '/x%2fy', '/x%5c', '/..;/admin', ';x', '/%zz', '/%C0%AE', '\\x', '/%41%42',
  ]);
  const apiKey = pick(Object.values(KEYS));
  const query = pick([
    '', '', '', `?api_key=${apiKey}`, `?x=1&api_key=${apiKey}`, `?API_KEY=${apiKey}`, `?api%5Fkey=${apiKey}`,
    `?api_key=${apiKey}&api_key=${apiKey}`, '?a=b', '?api_key=', `?api_key=${encodeURIComponent(apiKey)}#frag`,
  ]);
  const headers: [string, string][] = [['x-request-id', id]];
  // A slow opaque token is new each time: the server's call outlives its Check and caches the answer.
  const bearer = (): string => pick(['Bearer ', 'bearer ', 'BEARER  ']) + (chance(0.15) ? `opaque-slow-${id}` : pick([...Object.values(creds), 'opaque-good', 'opaque-revoked', 'opaque-bad']));
  if (chance(0.55)) headers.push(['authorization', bearer()]);
  if (chance(0.05)) headers.push(['authorization', bearer()]);
  if (chance(0.05)) headers.push(['authorization', pick(['Basic Zm9vOmJhcg==', 'Bearer', 'Bearer a b', ''])]);
  if (chance(0.3)) headers.push(['x-api-key', pick([...Object.values(KEYS), '', 'pk_short'])]);
  if (chance(0.03)) headers.push(['x-api-key', KEYS.gold]);
  // Spoofed identity headers: always overwritten or removed.
  if (chance(0.2)) headers.push([pick(['x-user-id', 'x-auth-method', 'x-client-tier', 'x-user-scopes', 'x-api-key-id']), 'spoofed']);
  if (chance(0.35)) {
    headers.push(['x-forwarded-for', pick(['10.1.2.3', '192.168.7.7', '203.0.113.9, 10.1.2.3', '192.168.1.1, 203.0.113.9', ' ', 'garbage', '2001:db8::5', '10.0.0.1, 192.168.0.9, 127.0.0.1'])]);
  }
  if (chance(0.3)) {
    headers.push(['x-forwarded-client-cert', pick([
      'By=spiffe://gw;URI=spiffe://example.org/ops',
      'By=spiffe://gw;URI=spiffe://example.org/dev',
      'URI=spiffe://example.org/dev,By=spiffe://gw;URI=spiffe://example.org/ops',
      'URI=spiffe://example.org/ops,By=spiffe://gw;URI="spiffe://example.org/dev',
      'Subject="CN=ops";DNS=ops.example.org',
      'URI= admin',
    ])]);
  }
  const args: CheckArgs = {
    method,
    path: base + trick + query,
    sourceAddress: pick(['127.0.0.1', '10.9.0.4', '10.1.2.3', '192.168.1.20', '203.0.113.7', '::ffff:10.9.0.5', '2001:db8::1']),
    principal: chance(0.2) ? pick(['spiffe://example.org/ops', 'spiffe://example.org/dev', ' ops']) : '',
    context: chance(0.15) ? { policy: pick(['routed', 'public', 'nope', '']) } : {},
  };
  // Envoy hands ext_authz one value per header name, repeated headers comma-joined; explain takes them one -H each.
  const joined = new Map<string, string>();
  for (const [name, value] of headers) joined.set(name, joined.has(name) ? `${joined.get(name)},${value}` : value);
  return { args: { ...args, headers: Object.fromEntries(joined) }, header: headers.map(([name, value]) => `${name}: ${value}`) };
}

/** What both must agree on, from the server's CheckResponse and its decision log line. */
interface Answer {
  readonly allow: boolean;
  readonly status: number;
  readonly reason: string;
  readonly message: string;
  readonly policy: string;
  /** The caller: on an allow, and on a forbidden deny (a valid credential the require clauses refused). */
  readonly caller: string | undefined;
  /** Each method tried: `method:outcome`, the outcome a refusal's reason. */
  readonly attempts: readonly string[];
  readonly set: readonly string[];
  readonly removed: readonly string[];
  readonly metadata: Record<string, string>;
}

const HTTP_STATUS: Readonly<Record<string, number>> = { BadRequest: 400, Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503 };

function serverAnswer(response: WireCheckResponse, line: Record<string, unknown>): Answer {
  const allow = response.status?.code === 0 || response.status?.code === undefined;
  const code = response.denied_response?.status?.code;
  const body = allow ? {} : JSON.parse(response.denied_response?.body ?? '{}') as { error?: string; message?: string };
  return {
    allow,
    status: allow ? 200 : typeof code === 'number' ? code : HTTP_STATUS[code ?? ''] ?? -1,
    reason: allow ? 'allowed' : body.error ?? '',
    message: allow ? '' : body.message ?? '',
    policy: String(line['policy']),
    caller: line['identity'] === undefined ? undefined : `${String(line['identity'])} (${String(line['auth_method'])})`,
    attempts: line['attempts'] as string[],
    set: Object.entries(headerMap(response.ok_response?.headers)).map(([k, v]) => `${k}: ${v}`),
    removed: [...(response.ok_response?.headers_to_remove ?? []), ...(response.ok_response?.query_parameters_to_remove ?? []).map((q) => `?${q}`)],
    metadata: metadataOf(response),
  };
}

function explainAnswer(out: string): Answer {
  const lines = out.split('\n');
  const decision = lines.find((l) => l.startsWith('decision: ')) ?? '';
  const allow = /^decision: ALLOW as (.*) \((\w+)\)$/.exec(decision);
  const deny = /^decision: DENY (\d+) (\w+): (.*)$/.exec(decision);
  const policyLine = /^policy: {3}(\S+) \(chosen by/.exec(lines.find((l) => l.startsWith('policy:')) ?? '');
  const caller = /^ {2}caller {2}(.*)$/m.exec(out);
  const metadata = /^ {2}dynamic metadata \(envoy\.filters\.http\.ext_authz\): (.*)$/m.exec(out);
  return {
    allow: allow !== null,
    status: allow ? 200 : Number(deny?.[1] ?? -1),
    reason: allow ? 'allowed' : deny?.[2] ?? `(no decision line: ${out})`,
    message: allow ? '' : deny?.[3] ?? '',
    policy: policyLine?.[1] ?? '',
    caller: allow ? `${allow[1]} (${allow[2]})` : caller?.[1],
    attempts: lines.flatMap((l) => {
      const m = /^ {2}\d+\. (\S+)\s+(\S+)\s+(.*)$/.exec(l);
      if (m === null) return [];
      return [`${m[1]}:${m[2] === 'invalid' || m[2] === 'unavailable' ? m[3]!.slice(0, m[3]!.indexOf(':')) : m[2]}`];
    }),
    set: lines.flatMap((l) => /^ {2}set {5}(.*)$/.exec(l)?.[1] ?? []),
    removed: lines.flatMap((l) => /^ {2}remove {2}(.*)$/.exec(l)?.[1] ?? []),
    metadata: metadata ? JSON.parse(metadata[1]!) as Record<string, string> : {},
  };
}

describe('portcullis explain answers as the Check service does (seeded differential)', () => {
  let redis: RedisServer;
  let idp: IdentityProvider;
  let app: TestApp;
  let creds: Record<string, string>;

  before(async () => {
    [redis, idp] = await Promise.all([startRedis(), startIdentityProvider()]);
    idp.setIntrospection((token, authorization) => (authorization === `Basic ${Buffer.from('gateway:shh').toString('base64')}` ? introspection(token) : { active: false }));
    const main = { ...keyPairFor('RS256'), kid: 'main-1' };
    const other = { ...keyPairFor('RS256'), kid: 'other-1' };
    const jwks = async (signer: typeof main): Promise<string> => JSON.stringify({ keys: [{ ...(await exportJWK(signer.publicKey)), kid: signer.kid, alg: 'RS256', use: 'sig' }] });
    await sendCommand(redis.port, ['ZADD', '{portcullis:authz}:revoked:jti', String(Date.now() + 3_600_000), 'jti-revoked']);
    await sendCommand(redis.port, ['ZADD', '{portcullis:authz}:revoked:key', String(Date.now() + 3_600_000), 'gone-1']);
    await sendCommand(redis.port, ['INCR', '{portcullis:authz}:revoked:version']);
    app = await startTestApp({
      descriptors: {}, redisUrl: redis.url, authz: authzSection(idp),
      // The shared list serve reads with this config (sharedRevocationList), which explain reads too.
      revocation: new RedisRevocationList(createRedisClient({ url: redis.url }), { clock: systemClock, refreshMs: 100, maxStalenessMs: 5000 }),
      files: { 'keys.yaml': KEYS_FILE, 'main.json': await jwks(main), 'other.json': await jwks(other), secret: 'shh\n' },
    });
    creds = await tokens(main, other, idp);
    // The server's copy of the revocation list and its JWKS fetch are in: from here on it answers from what it holds.
    await eventually(async () => (await app.authz.check({ path: '/opaque', headers: { 'x-api-key': KEYS.revoked } })).denied_response?.body?.includes('invalid_credentials') === true, 5000, 'revocation list');
    await eventually(async () => (await app.authz.check({ path: '/tokens', headers: { authorization: `Bearer ${creds['idp']}` } })).status?.code === 0, 5000, 'JWKS over HTTP');
  });

  after(async () => {
    await app?.close();
    await idp?.stop();
    await redis?.stop();
  });

  const seeds = process.env['EXPLAIN_SEED'] === undefined ? [1, 2, 3] : [Number(process.env['EXPLAIN_SEED'])];
  for (const seed of seeds) {
    it(`seed ${seed}`, async () => {
      const rand = prng(seed);
      for (let i = 0; i < 100; i++) {
        const id = `seed-${seed}-${i}`;
        const { args, header } = randomRequest(rand, creds, id);
        const response = await app.authz.check(args);
        const line = app.logs().find((l) => l['msg'] === 'authz decision' && l['request_id'] === id);
        assert.ok(line !== undefined, `${id}: no decision log line`);
        let out = '';
        const code = await explain({
          config: app.file, method: args.method, path: args.path, header, sourceIp: args.sourceAddress,
          ...(args.principal ? { principal: args.principal } : {}), ...(args.context?.['policy'] !== undefined ? { policy: args.context['policy'] } : {}),
        }, (s) => (out += s));
        assert.equal(code, 0, out);
        assert.deepEqual(explainAnswer(out), serverAnswer(response, line),
          `seed ${seed} request #${i} (EXPLAIN_SEED=${seed} replays it): ${JSON.stringify(args)}\nexplain -H: ${JSON.stringify(header)}\n${out}`);
      }
    });
  }
});
