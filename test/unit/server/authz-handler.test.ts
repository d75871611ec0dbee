import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ServerUnaryCall, ServiceError } from '@grpc/grpc-js';
import { deny } from '../../../src/authz/decide.js';
import { foldTargets } from '../../../src/authz/header-fold.js';
import type { AllowDecision, Grant } from '../../../src/authz/types.js';
import { AuthzService } from '../../../src/authz/service.js';
import { createLogger } from '../../../src/observability/logger.js';
import { authzHandlers, encodedAllow, toCheckInput, toCheckResponse } from '../../../src/server/authz-handler.js';
import { DeadlineSignals } from '../../../src/server/deadline-signals.js';
import { authorizationServiceDefinition } from '../../../src/server/protos.js';
import { MemoryRevocationList } from '../../../src/store/revocation-list.js';
import { FakeClock } from '../../fakes/fake-clock.js';
import { authzSettings, countingObserver, fakeHttp } from '../authz/support.js';

describe('authz-handler: CheckRequest ⇄ domain', () => {
  it('reads descriptor-set maps ({key, value} entries) and plain objects alike, lower-cases header names', () => {
    const entries = toCheckInput({ attributes: {
      source: { address: { socket_address: { address: '10.0.0.7' } }, principal: 'spiffe://x/y' },
      request: { http: { id: '123', method: 'post', path: '/a?b=c', host: 'h', headers: [{ key: 'X-Api-Key', value: 'k' }, { key: 'x-request-id', value: 'rid' }] } },
      context_extensions: [{ key: 'policy', value: 'p' }],
    } });
    assert.equal(entries.method, 'POST');
    assert.equal(entries.rawPath, '/a?b=c');
    assert.equal(entries.headers.get('x-api-key'), 'k');
    assert.equal(entries.requestId, 'rid');
    assert.equal(entries.sourceAddress, '10.0.0.7');
    assert.equal(entries.sourcePrincipal, 'spiffe://x/y');
    assert.equal(entries.contextExtensions.get('policy'), 'p');
    const plain = toCheckInput({ attributes: { request: { http: { id: '9', headers: { authorization: 'Bearer t' } } } } });
    assert.equal(plain.headers.get('authorization'), 'Bearer t');
    assert.equal(plain.requestId, '9');
    const raw = toCheckInput({ attributes: { request: { http: { header_map: { headers: [{ key: 'a', raw_value: Buffer.from('1') }, { key: 'a', raw_value: Buffer.from('2') }] } } } } });
    assert.equal(raw.headers.get('a'), '1,2');
    const empty = toCheckInput({});
    assert.equal(empty.rawPath, '');
  });

  it('entry headers are looked up where they lie: any case, the last of a repeated name, absent names undefined', () => {
    const input = toCheckInput({ attributes: { request: { http: { headers: [
      { key: 'Authorization', value: 'Bearer a' }, { key: 'x-forwarded-for', value: '1.2.3.4' }, { key: 'authorization', value: 'Bearer b' }, { key: 'x-empty' },
    ] } } } });
    assert.equal(input.headers.get('authorization'), 'Bearer b');
    assert.equal(input.headers.get('x-forwarded-for'), '1.2.3.4');
    assert.equal(input.headers.get('x-empty'), '');
    assert.equal(input.headers.get('x-forwarded'), undefined);
    assert.equal(input.headers.get('cookie'), undefined);
    assert.equal(input.contextExtensions.size, 0);
  });

  it('names holding _ are listed, lower case and once, from entries, plain objects and raw header maps alike', () => {
    const entries = toCheckInput({ attributes: { request: { http: { headers: [
      { key: 'accept', value: '*/*' }, { key: 'x_user_id', value: 'a' }, { key: 'X-Auth_Method', value: 'b' }, { key: 'x_user_id', value: 'c' },
    ] } } } });
    assert.deepEqual(entries.underscoredNames, ['x_user_id', 'x-auth_method']);
    assert.deepEqual(toCheckInput({ attributes: { request: { http: { headers: { 'X_Client_Tier': 'gold', accept: '*/*' } } } } }).underscoredNames, ['x_client_tier']);
    const raw = toCheckInput({ attributes: { request: { http: { header_map: { headers: [{ key: 'x_api_key', raw_value: Buffer.from('k') }] } } } } });
    assert.deepEqual(raw.underscoredNames, ['x_api_key']);
    // With the snapshot's guarded names (as the handler passes them), only the names of a guarded name's length.
    const targets = foldTargets(authzSettings('policies:\n  - { name: p, authenticate: [anonymous] }'));
    const wireNames = ['x_user_id', 'x_trace', 'x_client_tier', 'x-user-id', 'x_a'].map((key) => ({ key, value: 'v' }));
    assert.deepEqual(toCheckInput({ attributes: { request: { http: { headers: wireNames } } } }, targets).underscoredNames, ['x_user_id', 'x_client_tier']);
    assert.deepEqual(toCheckInput({ attributes: { request: { http: { headers: { 'x_trace': 'v', 'X_User_Id': 'v' } } } } }, targets).underscoredNames, ['x_user_id']);
    assert.equal(toCheckInput({ attributes: { request: { http: { headers: [{ key: 'x_trace', value: 'v' }] } } } }, targets).underscoredNames.length, 0);
    const none = toCheckInput({ attributes: { request: { http: { headers: [{ key: 'x-user-id', value: 'a' }] } } } });
    assert.deepEqual(none.underscoredNames, []);
    assert.equal(none.underscoredNames, toCheckInput({}).underscoredNames, 'one shared empty list');
  });

  it('401: denied_response with WWW-Authenticate, JSON body, status UNAUTHENTICATED; never an ok_response', () => {
    const r = toCheckResponse(deny('orders', 'missing_credentials', 401, 'credentials are required'), 'rid-1') as Record<string, any>;
    assert.equal(r['status'].code, 16);
    assert.equal(r['ok_response'], undefined);
    assert.equal(r['denied_response'].status.code, 401);
    const headers = Object.fromEntries(r['denied_response'].headers.map((h: any) => [h.header.key, h.header.value]));
    assert.match(headers['www-authenticate'], /^Bearer realm="portcullis", error="invalid_request"/);
    assert.equal(headers['content-type'], 'application/json');
    for (const h of r['denied_response'].headers) assert.deepEqual(h.append, { value: false });
    assert.deepEqual(JSON.parse(r['denied_response'].body), { error: 'missing_credentials', message: 'credentials are required', request_id: 'rid-1' });
  });

  it('403 has no WWW-Authenticate; 503 is a denial too (status UNAVAILABLE in the response, not a gRPC error)', () => {
    const forbidden = toCheckResponse(deny('p', 'forbidden', 403, 'no'), 'r') as Record<string, any>;
    assert.equal(forbidden['status'].code, 7);
    assert.ok(!forbidden['denied_response'].headers.some((h: any) => h.header.key === 'www-authenticate'));
    const unavailable = toCheckResponse(deny('p', 'unavailable', 503, 'later'), 'r') as Record<string, any>;
    assert.equal(unavailable['status'].code, 14);
    assert.equal(unavailable['denied_response'].status.code, 503);
  });

  it('allow: headers with append false, removals, query params, dynamic metadata as a Struct', () => {
    const r = toCheckResponse({
      allow: true, policy: 'p', reason: 'allowed', attempts: [],
      identity: { method: 'api_key', subject: 'alice', scopes: [], roles: [], claims: {} },
      grant: { shared: false, headers: [['x-user-id', 'alice']], headersToRemove: ['x-api-key'], queryParamsToRemove: ['api_key'], dynamicMetadata: { user_id: 'alice' } },
    }, 'r') as Record<string, any>;
    assert.equal(r['status'].code, 0);
    assert.deepEqual(r['ok_response'].headers, [{ header: { key: 'x-user-id', value: 'alice' }, append: { value: false } }]);
    assert.deepEqual(r['ok_response'].headers_to_remove, ['x-api-key']);
    assert.deepEqual(r['ok_response'].query_parameters_to_remove, ['api_key']);
    assert.deepEqual(r['dynamic_metadata'], { fields: [{ key: 'user_id', value: { string_value: 'alice' } }] });
  });

  it('only a shared Grant has its encoding kept: a cached caller\'s Grant of its own (lookalike headers) is encoded each time', () => {
    const identity = { method: 'api_key', subject: 'alice', scopes: [], roles: [], claims: {}, reused: true } as const;
    const of = (shared: boolean): AllowDecision => {
      const grant: Grant = Object.freeze({ shared, headers: [['x-user-id', 'alice'] as const], headersToRemove: ['x-api-key', 'x_user_id'], queryParamsToRemove: [], dynamicMetadata: {} });
      return { allow: true, policy: 'p', reason: 'allowed', attempts: [], identity, grant };
    };
    const shared = of(true);
    assert.equal(encodedAllow(shared), encodedAllow(shared));
    const own = of(false);
    assert.notEqual(encodedAllow(own), encodedAllow(own));
    assert.deepEqual(encodedAllow(own), encodedAllow(shared));
  });

  it('an allow goes out pre-encoded, one Buffer per Grant: the same bytes for a repeat caller, decoding to the answer', async () => {
    const key = 'pk_handler-test-key-000000000000000000000000';
    const clock = new FakeClock(1_700_000_000_000);
    const service = new AuthzService({ clock, revocation: new MemoryRevocationList(clock), http: fakeHttp({}), observer: countingObserver() });
    const snapshot = service.prepare(
      authzSettings('api_keys: { file: ./keys.yaml }\npolicies:\n  - { name: keyed, match: { path_prefix: /api }, authenticate: [api_key] }'),
      new Map([['/etc/portcullis/keys.yaml', `- { id: k1, sha256: ${createHash('sha256').update(key).digest('hex')}, owner: alice }\n`]]),
    );
    const definition = authorizationServiceDefinition();
    const check = authzHandlers({
      service, snapshot: () => snapshot, logger: createLogger('silent'), deadlines: new DeadlineSignals(10), timeoutMs: () => 1000,
      observe: () => undefined, onError: () => undefined, inFlight: { enter: () => undefined, leave: () => undefined },
    })['Check'] as (call: ServerUnaryCall<unknown, unknown>, callback: (error: ServiceError | null, response?: unknown) => void) => void;
    const ask = (headers: Record<string, string>, requestId: string) => new Promise<unknown>((resolve, reject) => {
      const request = { attributes: { request: { http: { method: 'GET', path: '/api/x', headers: { ...headers, 'x-request-id': requestId } } } } };
      check({ request, getDeadline: () => Infinity } as unknown as ServerUnaryCall<unknown, unknown>, (error, response) => (error ? reject(error) : resolve(response)));
    });
    const first = await ask({ 'x-api-key': key }, 'a');
    const second = await ask({ 'x-api-key': key }, 'b');
    assert.ok(Buffer.isBuffer(first));
    assert.equal(second, first);
    assert.equal(definition['Check']!.responseSerialize(first), first, 'the serializer passes an encoded answer through');
    const decoded = definition['Check']!.responseDeserialize(first as Buffer) as Record<string, any>;
    assert.equal(decoded['status'].code, 0);
    assert.deepEqual(decoded['ok_response'].headers.find((h: any) => h.header.key === 'x-user-id').header.value, 'alice');
    assert.ok(decoded['ok_response'].headers_to_remove.includes('x-api-key'));
    // A client's x_user_id: its own answer, removing it by that name, encoded for it alone; the shared one stays.
    const spoofed = await ask({ 'x-api-key': key, 'x_user_id': 'root' }, 'c');
    assert.ok(Buffer.isBuffer(spoofed));
    assert.deepEqual((definition['Check']!.responseDeserialize(spoofed as Buffer) as Record<string, any>)['ok_response'].headers_to_remove, [...decoded['ok_response'].headers_to_remove, 'x_user_id']);
    assert.notEqual(await ask({ 'x-api-key': key, 'x_user_id': 'root' }, 'd'), spoofed);
    assert.equal(await ask({ 'x-api-key': key }, 'e'), first);
    // A denial carries the request id, so it is built per request.
    const refused = await ask({ 'x-api-key': 'pk_wrong' }, 'rid-9') as Record<string, any>;
    assert.ok(!Buffer.isBuffer(refused));
    assert.equal(JSON.parse(refused['denied_response'].body).request_id, 'rid-9');
  });
});
