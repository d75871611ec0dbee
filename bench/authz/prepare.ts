// Writes everything bench/authz/run.sh needs into a directory: two Portcullis configs (verified-token cache on and
// off), keys.yaml, jwks.json, and one ghz data file per scenario (CheckRequests as protojson).
//
// Usage: node dist/bench/authz/prepare.js DIR INTROSPECTION_URL

import { createHash, sign, verify } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { keyPairFor } from '../../test/support/key-pairs.js';

const [dir = '/tmp/bench-authz', introspectionUrl = 'http://127.0.0.1:1/introspect'] = process.argv.slice(2);
mkdirSync(path.join(dir, 'ratelimit'), { recursive: true });
const ISSUER = 'https://bench.issuer';
const API_KEY = 'pk_bench_key_000000000000000000000000000000000';

// Not generateKeyPairSync's own KeyObjects: exporting those can deadlock Node 20 (see key-pairs.ts).
const pairs = { RS256: keyPairFor('RS256'), ES256: keyPairFor('ES256'), EdDSA: keyPairFor('EdDSA') };
const jwks = { keys: await Promise.all(Object.entries(pairs).map(async ([alg, p]) => ({ ...(await exportJWK(p.publicKey)), kid: alg, alg, use: 'sig' }))) };
writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify(jwks));
writeFileSync(path.join(dir, 'keys.yaml'), `- { id: bench, sha256: ${createHash('sha256').update(API_KEY).digest('hex')}, owner: bench, tier: gold, scopes: [read] }\n`);
writeFileSync(path.join(dir, 'secret'), 'bench-secret\n');

const config = (cache: number, port: number, admin: number): string => `server:
  grpc: { address: "127.0.0.1:${port}" }
  admin: { address: "127.0.0.1:${admin}" }
log: { level: warn }
ratelimit: { descriptors: ./ratelimit, reload: { enabled: false } }
authz:
  log_decisions: false
  api_keys: { header: x-api-key, file: ./keys.yaml }
  jwt:
    cache_max_entries: ${cache}
    providers:
      - { name: bench, issuer: "${ISSUER}", audiences: [bench-api], algorithms: [RS256, ES256, EdDSA], jwks: { file: ./jwks.json } }
  introspection: { url: "${introspectionUrl}", client_id: bench, client_secret_file: ./secret, cache_seconds: 3600, cache_max_entries: ${cache} }
  policies:
    - { name: keys, match: { path_prefix: /key }, authenticate: [api_key] }
    - { name: jwt, match: { path_prefix: /jwt }, authenticate: [jwt] }
    - { name: opaque, match: { path_prefix: /opaque }, authenticate: [introspection] }
`;
writeFileSync(path.join(dir, 'cached.yaml'), config(100000, Number(process.env['CACHED_PORT'] ?? 19301), 19311));
writeFileSync(path.join(dir, 'uncached.yaml'), config(0, Number(process.env['UNCACHED_PORT'] ?? 19302), 19312));

/** A CheckRequest like Envoy's: a dozen headers, the path, the peer. */
const request = (p: string, extra: Record<string, string>): unknown => ({
  attributes: {
    source: { address: { socket_address: { address: '10.1.2.3', port_value: 50000 } } },
    destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } },
    request: {
      http: {
        id: '1234567890', method: 'GET', path: p, host: 'api.bench', scheme: 'http', protocol: 'HTTP/1.1',
        headers: {
          ':authority': 'api.bench', ':method': 'GET', ':path': p, ':scheme': 'http', 'user-agent': 'bench/1.0', accept: '*/*',
          'x-forwarded-proto': 'http', 'x-request-id': '0b5c7f0e-9a0c-4b8f-9b9e-3f5d2c1a7e6d', 'x-envoy-expected-rq-timeout-ms': '15000', ...extra,
        },
      },
    },
  },
});
const now = Math.floor(Date.now() / 1000);
const token = (alg: keyof typeof pairs, n: number): Promise<string> =>
  new SignJWT({ sub: `user-${n}`, scope: 'read', iss: ISSUER, aud: 'bench-api', iat: now, exp: now + 86400 }).setProtectedHeader({ alg, kid: alg }).sign(pairs[alg].privateKey);

const write = (name: string, messages: unknown[]): void => writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(messages));
write('noop', [request('/key/x', { 'x-api-key': API_KEY })]);
write('apikey', [request('/key/x', { 'x-api-key': API_KEY })]);
for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
  const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => token(alg, i)));
  write(`jwt-${alg}`, tokens.map((t) => request('/jwt/x', { authorization: `Bearer ${t}` })));
}
write('introspection', Array.from({ length: 200 }, (_, i) => request('/opaque/x', { authorization: `Bearer opaque-${i}` })));

// Raw RS256 verify cost, for the "uncached RS256 ≥ 0.8 × 1/(no-op + verify)" goal.
const data = Buffer.from('x'.repeat(400));
const signature = sign('sha256', data, pairs.RS256.privateKey);
for (let i = 0; i < 500; i++) verify('sha256', data, pairs.RS256.publicKey, signature);
const n = 5000;
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) verify('sha256', data, pairs.RS256.publicKey, signature);
const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
writeFileSync(path.join(dir, 'verify-us.txt'), `${us.toFixed(1)}\n`);

// The same verify through WebCrypto, the path jose's jwtVerify takes (Portcullis uses crypto.verify, see
// src/authz/jws.ts): CPU µs per call (the work runs on libuv's thread pool, so process CPU time, not wall time), one
// call at a time.
const webKey = await crypto.subtle.importKey('jwk', pairs.RS256.publicKey.export({ format: 'jwk' }), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
for (let i = 0; i < 200; i++) await crypto.subtle.verify('RSASSA-PKCS1-v1_5', webKey, signature, data);
const cpu0 = process.cpuUsage();
for (let i = 0; i < n / 5; i++) await crypto.subtle.verify('RSASSA-PKCS1-v1_5', webKey, signature, data);
const cpu = process.cpuUsage(cpu0);
writeFileSync(path.join(dir, 'webcrypto-verify-us.txt'), `${((cpu.user + cpu.system) / (n / 5)).toFixed(1)}\n`);
