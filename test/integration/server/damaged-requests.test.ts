// Damaged requests against the real gRPC server, all three services in one process. Each case starts from a
// well-formed request and damages it in one of two ways. In structure, before encoding: every field in turn removed,
// emptied, repeated or replaced by a hostile value (huge, empty, escapes, control characters, lone surrogates). In
// bytes, after encoding: bit flips, overwritten bytes, cuts, insertions and repeated slices, from a fixed seed;
// protobufjs decodes some of those into odd but valid messages (strings where messages were, wrong oneofs).
// Every call must be answered (a response or a status) before its deadline, no handler may fail internally (they log
// that at error level), and well-formed requests are served as before afterwards.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, SignJWT } from 'jose';
import {
  authorizationServiceDefinition,
  externalProcessorServiceDefinition,
  rateLimitServiceDefinition,
} from '../../../src/server/protos.js';
import { startTestApp, type TestApp } from '../../support/app.js';
import { headerMap, type WireCheckResponse } from '../../support/authz-client.js';
import { body, requestHeaders, responseHeaders } from '../../support/extproc-client.js';
import { keyPairFor } from '../../support/key-pairs.js';
import { prng } from '../../support/prng.js';
import { awayFromWindowEdge } from '../../support/windows.js';

const CASES_PER_SEED = 150;
const DEADLINE_MS = 3000;
const API_KEY = 'pk_hostile-bytes-key-000000000000000000000000';
const ISSUER = 'https://issuer.hostile.test';
/** source.principal is Envoy's word (a verified certificate), not a credential damage could forge: the policy pins it. */
const PRINCIPAL = 'spiffe://cluster.local/ns/a/sa/b';

/** One to four damages to `bytes`, chosen by `random`. */
function mutate(bytes: Buffer, random: () => number): Buffer {
  let out = Buffer.from(bytes);
  const at = (): number => Math.floor(random() * Math.max(out.length, 1));
  const byte = (): number => Math.floor(random() * 256);
  for (let n = 1 + Math.floor(random() * 4); n > 0; n--) {
    const kind = Math.floor(random() * 5);
    if (out.length === 0 || kind === 0) {
      const i = at();
      out = Buffer.concat([out.subarray(0, i), Buffer.from(Array.from({ length: 1 + Math.floor(random() * 8) }, byte)), out.subarray(i)]);
    } else if (kind === 1) {
      const i = at();
      out[i] = out[i]! ^ (1 << Math.floor(random() * 8));
    } else if (kind === 2) {
      out[at()] = byte();
    } else if (kind === 3) {
      out = out.subarray(0, at());
    } else {
      const from = at();
      const slice = out.subarray(from, from + 1 + Math.floor(random() * 32));
      const i = at();
      out = Buffer.concat([out.subarray(0, i), slice, slice, out.subarray(i)]);
    }
  }
  return out;
}

/** Values a handler may meet where it expects an ordinary string. */
const HOSTILE_VALUES: readonly unknown[] = [
  '', ' ', '%', '%zz', '%2e%2e/%2F..%2f', '/..//./../admin', '\u0000', 'a\r\nx-user-id: root', 'é\ud800', '🙂',
  'Bearer ', 'Bearer a.b.c', 'Basic Zm9vOmJhcg==', 'a'.repeat(70_000), '1e309', '-1', '18446744073709551616', 0, -1, 4294967295,
];

/**
 * Every copy of `request` with one damage to its structure: each leaf replaced by each hostile value, each field
 * removed, each array entry repeated and each array emptied.
 */
function* damages(request: object): Generator<object> {
  const places: { path: (string | number)[]; value: unknown }[] = [];
  const walk = (node: unknown, path: (string | number)[]): void => {
    if (node === null || typeof node !== 'object' || Buffer.isBuffer(node)) return;
    for (const [key, child] of Object.entries(node)) {
      const at = [...path, Array.isArray(node) ? Number(key) : key];
      places.push({ path: at, value: child });
      walk(child, at);
    }
  };
  walk(request, []);
  const edit = (path: (string | number)[], change: (parent: Record<string | number, unknown>, key: string | number) => void): object => {
    const copy = structuredClone(request) as Record<string | number, unknown>;
    const parent = path.slice(0, -1).reduce<Record<string | number, unknown>>((node, key) => node[key] as Record<string | number, unknown>, copy);
    change(parent, path.at(-1)!);
    return copy;
  };
  for (const { path, value } of places) {
    yield edit(path, (parent, key) => (Array.isArray(parent) ? parent.splice(Number(key), 1) : delete parent[key]));
    if (Array.isArray(value)) yield edit(path, (parent, key) => ((parent[key] as unknown[]).length = 0));
    if (typeof path.at(-1) === 'number') yield edit(path, (parent, key) => (parent as unknown as unknown[]).splice(Number(key), 0, parent[key]));
    for (const value of HOSTILE_VALUES) yield edit(path, (parent, key) => (parent[key] = value));
  }
}

const identity = (b: Buffer): Buffer => b;

interface Answer {
  readonly error: grpc.ServiceError | null;
  readonly response?: Buffer | undefined;
}

function rawUnary(client: grpc.Client, method: string, request: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, identity, identity, request, { deadline: Date.now() + DEADLINE_MS }, (error, response) => resolve({ error, response }));
  });
}

/** A Process stream that sends `messages`, half-closes, and settles with the final status. */
function rawStream(client: grpc.Client, messages: readonly Buffer[]): Promise<Answer> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest('/envoy.service.ext_proc.v3.ExternalProcessor/Process', identity, identity, new grpc.Metadata(), {
      deadline: Date.now() + DEADLINE_MS,
    });
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.on('status', (status: grpc.StatusObject) => resolve({ error: status.code === grpc.status.OK ? null : (status as grpc.ServiceError) }));
    for (const message of messages) call.write(message);
    call.end();
  });
}

describe('damaged requests (authz, ratelimit and ext_proc on one server)', () => {
  let app: TestApp;
  let client: grpc.Client;
  let token: string;
  const { publicKey, privateKey } = keyPairFor('ES256');

  before(async () => {
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    token = await new SignJWT({ scope: 'orders:read' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(ISSUER).setAudience('orders-api').setSubject('user-7').setIssuedAt().setExpirationTime('1h').sign(privateKey);
    app = await startTestApp({
      descriptors: {
        'd.yaml': [
          'domain: d',
          'descriptors:',
          '  - key: user',
          '    rate_limit: { unit: minute, requests_per_unit: 1000000 }',
          '  - key: path',
          '    descriptors:',
          '      - key: method',
          '        rate_limit: { unit: second, requests_per_unit: 1000000 }',
          '',
        ].join('\n'),
      },
      authz: `default_policy: deny
api_keys: { header: x-api-key, query: api_key, file: ./keys.yaml }
jwt:
  providers:
    - { name: main, issuer: "${ISSUER}", audiences: [orders-api], algorithms: [ES256], jwks: { file: ./jwks.json } }
mtls: { trusted: [10.0.0.0/8] }
policies:
  - { name: public, match: { path_prefix: /public }, authenticate: [anonymous] }
  - { name: orders, match: { path_prefix: /api/orders, methods: [GET, POST] }, authenticate: [jwt, api_key], require: { scopes: [orders:read] } }
  - { name: internal, match: { path_prefix: /internal }, authenticate: [mtls], require: { principals: ["${PRINCIPAL}"] } }`,
      extproc: `request_id: { header: x-request-id }
routes:
  - name: users
    match: { path_prefix: /api/users }
    headers: { request: { set: { x-user: "{user_id}" } } }
    validate: { content_types: [application/json], max_body_bytes: 256, json_schema: ./user.json, required_query_params: [v] }
    cache: { ttl_seconds: { "200": 60 } }`,
      files: {
        'keys.yaml': `- { id: k, sha256: ${createHash('sha256').update(API_KEY).digest('hex')}, owner: o, tier: gold, scopes: [orders:read] }\n`,
        'jwks.json': JSON.stringify({ keys: [jwk] }),
        'user.json': JSON.stringify({ type: 'object', required: ['name'], properties: { name: { type: 'string' } } }),
      },
    });
    client = new grpc.Client(app.grpcAddress, grpc.credentials.createInsecure());
  });
  after(async () => {
    client?.close();
    await app?.close();
  });

  /** Handler failures are logged at error level (pino 50) as "Check failed", "ShouldRateLimit failed", … */
  const internalFailures = (): string[] =>
    app.logs().filter((line) => Number(line['level']) >= 50).map((line) => JSON.stringify(line));

  const checkRequest = (path: string, headers: Record<string, string>, principal = ''): object => ({
    attributes: {
      source: { address: { socket_address: { address: '203.0.113.4', port_value: 40000 } }, principal },
      destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } },
      request: {
        http: {
          id: '1', method: 'GET', path, host: 'api.test', scheme: 'https', protocol: 'HTTP/2',
          headers: Object.entries({ ':method': 'GET', ':path': path, ':authority': 'api.test', ...headers }).map(([key, value]) => ({ key, value })),
        },
      },
      context_extensions: path.startsWith('/public') ? [{ key: 'policy', value: 'public' }] : [],
    },
  });

  /**
   * Sends every structural damage of every seed (a sequence of messages) and CASES_PER_SEED byte-damaged copies
   * through `send`; returns how many were answered with each status.
   */
  async function assault(
    seeds: readonly object[][],
    serialize: (message: object) => Buffer,
    send: (messages: Buffer[]) => Promise<Answer>,
    seed: number,
    inspect: (answer: Answer, seedIndex: number) => void = () => undefined,
  ): Promise<Map<string, number>> {
    const random = prng(seed);
    const codes = new Map<string, number>();
    const sendOne = async (sent: Buffer[], seedIndex: number): Promise<void> => {
      const answer = await send(sent);
      const { error } = answer;
      assert.notEqual(error?.code, grpc.status.DEADLINE_EXCEEDED, `no answer within ${DEADLINE_MS} ms to ${sent.map((m) => m.toString('hex')).join(' ')}`);
      const code = error === null ? 'OK' : `${grpc.status[error.code]!}: ${error.details.slice(0, 40)}`;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      inspect(answer, seedIndex);
    };
    for (const [seedIndex, messages] of seeds.entries()) {
      const encoded = messages.map(serialize);
      // The others go as they were: a damaged message is met in the middle of a stream, too.
      const replacing = (victim: number, damaged: Buffer): Buffer[] => encoded.map((m, j) => (j === victim ? damaged : m));
      for (const [victim, message] of messages.entries()) {
        for (const damaged of damages(message)) {
          let bytes: Buffer;
          try {
            bytes = serialize(damaged);
          } catch {
            continue; // not a message the protos can carry
          }
          await sendOne(replacing(victim, bytes), seedIndex);
        }
      }
      for (let i = 0; i < CASES_PER_SEED; i++) {
        const victim = Math.floor(random() * messages.length);
        await sendOne(replacing(victim, mutate(encoded[victim]!, random)), seedIndex);
      }
    }
    assert.deepEqual(internalFailures(), [], 'a handler failed internally');
    return codes;
  }

  it('Authorization/Check: every damaged request is answered, none fails internally, a good one still passes', async (t) => {
    const definition = authorizationServiceDefinition()['Check']!;
    const serialize = definition.requestSerialize;
    const seeds = [
      checkRequest('/api/orders/1?api_key=' + API_KEY, {}),
      checkRequest('/api/orders/1', { 'x-api-key': API_KEY, 'x-user-id': 'spoofed' }),
      checkRequest('/api/orders/1', { authorization: `Bearer ${token}` }),
      checkRequest('/internal/jobs', {}, PRINCIPAL),
      checkRequest('/public/x', { 'x-forwarded-for': '198.51.100.1, 10.0.0.2' }),
    ].map((request) => [request]);
    const check = (bytes: Buffer): Promise<Answer> => rawUnary(client, '/envoy.service.auth.v3.Authorization/Check', bytes);
    /** The x-user-id an allow sends upstream; undefined for a denial or an error. */
    const caller = ({ response }: Answer): string | undefined => {
      const decoded = response === undefined ? undefined : (definition.responseDeserialize(response) as WireCheckResponse);
      return decoded?.status?.code === 0 ? (headerMap(decoded.ok_response?.headers)['x-user-id'] ?? '(none)') : undefined;
    };
    // Each seed reaches its identity method and is allowed, so the damage lands on a path that goes deep.
    const callers: string[] = [];
    for (const [request] of seeds) callers.push(caller(await check(serialize(request!))) ?? assert.fail(`seed denied: ${JSON.stringify(request)}`));
    assert.deepEqual(callers, ['o', 'o', 'user-7', PRINCIPAL, 'anonymous']);

    // Damage cannot forge a credential: an allowed damaged request names its seed's caller, never another one.
    let allows = 0;
    const codes = await assault(seeds, serialize, ([m]) => check(m!), 0xa17, (answer, seedIndex) => {
      const named = caller(answer);
      if (named === undefined) return;
      allows++;
      assert.equal(named, callers[seedIndex], `a damaged request of seed ${seedIndex} was allowed as another caller`);
    });
    assert.ok(allows > 0);
    t.diagnostic(JSON.stringify([...codes]));
    // Most damage breaks a length prefix and never reaches the handler (INTERNAL: Error deserializing request).
    assert.ok((codes.get('OK') ?? 0) >= seeds.length * CASES_PER_SEED * 0.05, `too few damaged requests decode: ${JSON.stringify([...codes])}`);

    for (const [i, [request]] of seeds.entries()) assert.equal(caller(await check(serialize(request!))), callers[i]);
    const denied = await app.authz.check({ path: '/api/orders/1', headers: { 'x-api-key': 'pk_wrong' } });
    assert.equal(denied.status?.code, 16);
  });

  it('RateLimitService/ShouldRateLimit: every damaged request is answered, none fails internally, counting goes on', async (t) => {
    const serialize = rateLimitServiceDefinition()['ShouldRateLimit']!.requestSerialize;
    const seeds = [
      { domain: 'd', descriptors: [{ entries: [{ key: 'user', value: 'u1' }] }], hits_addend: 1 },
      {
        domain: 'd',
        descriptors: [
          { entries: [{ key: 'user', value: 'u2' }], hits_addend: { value: 3 } },
          { entries: [{ key: 'path', value: '/a' }, { key: 'method', value: 'GET' }], limit: { requests_per_unit: 5, unit: 'SECOND' } },
          { entries: [{ key: 'unknown', value: 'x' }] },
        ],
      },
    ].map((request) => [request]);

    const codes = await assault(seeds, serialize, ([m]) => rawUnary(client, '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit', m!), 0x9a7e);
    t.diagnostic(JSON.stringify([...codes]));

    await awayFromWindowEdge(60, 5);
    const first = await app.client.shouldRateLimit({ domain: 'd', descriptors: [{ entries: [{ key: 'user', value: 'after-the-assault' }] }] });
    const second = await app.client.shouldRateLimit({ domain: 'd', descriptors: [{ entries: [{ key: 'user', value: 'after-the-assault' }] }] });
    assert.equal(first.overall_code, 'OK');
    assert.equal(first.statuses?.[0]?.limit_remaining, 999_999);
    assert.equal(second.statuses?.[0]?.limit_remaining, 999_998);
  });

  it('ExternalProcessor/Process: every damaged stream ends with a status, none fails internally', async (t) => {
    const serialize = externalProcessorServiceDefinition()['Process']!.requestSerialize;
    const headers = { ':method': 'POST', ':path': '/api/users?v=1', ':authority': 'api.test', ':scheme': 'https', 'content-type': 'application/json', 'x-request-id': 'r-1' };
    const seeds = [
      [requestHeaders(headers, false), body('request_body', '{"name":"ann"}'), responseHeaders({ ':status': '201', 'content-type': 'application/json' })],
      [requestHeaders({ ...headers, ':method': 'GET' }), responseHeaders({ ':status': '200', 'cache-control': 'max-age=60' }), body('response_body', '{"id":1}')],
    ];

    const codes = await assault(seeds, serialize, (messages) => rawStream(client, messages), 0xe7c);
    t.diagnostic(JSON.stringify([...codes]));
    assert.ok((codes.get('OK') ?? 0) > 0, JSON.stringify([...codes]));

    // Well-formed messages in the wrong order: every sequence of one to four of a seed's messages (out of order,
    // repeated, some missing), as a confused or hostile client could send them.
    const orders = new Map<string, number>();
    for (const seed of seeds) {
      const encoded = seed.map(serialize);
      let sequences: number[][] = [[]];
      for (let length = 1; length <= 4; length++) {
        sequences = sequences.flatMap((s) => encoded.map((_, i) => [...s, i]));
        for (const sequence of sequences) {
          const { error } = await rawStream(client, sequence.map((i) => encoded[i]!));
          assert.notEqual(error?.code, grpc.status.DEADLINE_EXCEEDED, `no status for messages ${sequence.join(',')}`);
          const code = error === null ? 'OK' : `${grpc.status[error.code]!}: ${error.details.slice(0, 40)}`;
          orders.set(code, (orders.get(code) ?? 0) + 1);
        }
      }
    }
    t.diagnostic(JSON.stringify([...orders]));
    assert.deepEqual(internalFailures(), [], 'a handler failed internally');

    const clean = await rawStream(client, seeds[0]!.map(serialize));
    assert.equal(clean.error, null);
  });
});
