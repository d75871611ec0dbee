import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deny } from '../../../src/authz/decide.js';
import { toCheckInput, toCheckResponse } from '../../../src/server/authz-handler.js';

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
      headers: [['x-user-id', 'alice']], headersToRemove: ['x-api-key'], queryParamsToRemove: ['api_key'],
      dynamicMetadata: { user_id: 'alice' },
    }, 'r') as Record<string, any>;
    assert.equal(r['status'].code, 0);
    assert.deepEqual(r['ok_response'].headers, [{ header: { key: 'x-user-id', value: 'alice' }, append: { value: false } }]);
    assert.deepEqual(r['ok_response'].headers_to_remove, ['x-api-key']);
    assert.deepEqual(r['ok_response'].query_parameters_to_remove, ['api_key']);
    assert.deepEqual(r['dynamic_metadata'], { fields: [{ key: 'user_id', value: { string_value: 'alice' } }] });
  });
});
