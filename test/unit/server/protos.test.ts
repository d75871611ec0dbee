import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deny } from '../../../src/authz/decide.js';
import { toCheckResponse } from '../../../src/server/authz-handler.js';
import { toWire as toProcessingResponse } from '../../../src/server/extproc-handler.js';
import { authorizationServiceDefinition, externalProcessorServiceDefinition, rateLimitServiceDefinition } from '../../../src/server/protos.js';
import { toWire as toRateLimitResponse } from '../../../src/server/ratelimit-handler.js';

// Answers are encoded as the handlers build them (no fromObject pass), so a shape protobufjs does not expect would go
// out as wrong bytes without an error. Each case encodes a handler's answer and decodes it the way a client does.
const roundTrip = (definition: ReturnType<typeof rateLimitServiceDefinition>, method: string, answer: unknown): Record<string, any> => {
  const m = definition[method]!;
  return m.responseDeserialize(m.responseSerialize(answer)) as Record<string, any>;
};

describe('protos: answers encoded as built decode to what the handler meant', () => {
  it('RateLimitResponse: codes, limits, headers, dynamic metadata', () => {
    const decoded = roundTrip(rateLimitServiceDefinition(), 'ShouldRateLimit', toRateLimitResponse({
      overallCode: 'OVER_LIMIT',
      statuses: [{ code: 'OVER_LIMIT', currentLimit: { name: 'per-key', requestsPerUnit: 10, unit: 'WEEK' }, limitRemaining: 0, durationUntilResetSeconds: 42 }],
      responseHeaders: [['x-ratelimit-limit', '10']],
      stats: [], globalShadowApplied: false, dynamicMetadata: { descriptor: 'api_key', hits: 3 },
    }));
    assert.equal(decoded['overall_code'], 'OVER_LIMIT');
    assert.deepEqual(decoded['statuses'][0], {
      code: 'OVER_LIMIT', current_limit: { name: 'per-key', requests_per_unit: 10, unit: 'WEEK' }, limit_remaining: 0, duration_until_reset: { seconds: '42' },
    });
    assert.deepEqual(decoded['response_headers_to_add'], [{ key: 'x-ratelimit-limit', value: '10' }]);
    assert.deepEqual(decoded['dynamic_metadata'].fields, [
      { key: 'descriptor', value: { string_value: 'api_key', kind: 'string_value' } },
      { key: 'hits', value: { number_value: 3, kind: 'number_value' } },
    ]);
  });

  it('CheckResponse: allow with identity headers and metadata; deny with status, headers and body', () => {
    const definition = authorizationServiceDefinition();
    const allowed = roundTrip(definition, 'Check', toCheckResponse({
      allow: true, policy: 'p', reason: 'allowed', attempts: [],
      identity: { method: 'api_key', subject: 'alice', scopes: [], roles: [], claims: {} },
      grant: { shared: false, headers: [['x-user-id', 'alice']], headersToRemove: ['x-api-key'], queryParamsToRemove: ['api_key'], dynamicMetadata: { user_id: 'alice', tier: 'gold' } },
    }, 'r'));
    assert.equal(allowed['status'].code, 0);
    assert.deepEqual(allowed['ok_response'].headers, [{ header: { key: 'x-user-id', value: 'alice' }, append: { value: false } }]);
    assert.deepEqual(allowed['ok_response'].headers_to_remove, ['x-api-key']);
    assert.deepEqual(allowed['ok_response'].query_parameters_to_remove, ['api_key']);
    assert.deepEqual(allowed['dynamic_metadata'].fields.map((f: any) => [f.key, f.value.string_value]), [['user_id', 'alice'], ['tier', 'gold']]);

    const denied = roundTrip(definition, 'Check', toCheckResponse(deny('orders', 'missing_credentials', 401, 'credentials are required'), 'rid-1'));
    assert.equal(denied['status'].code, 16);
    assert.equal(denied['denied_response'].status.code, 'Unauthorized');
    assert.ok(denied['denied_response'].headers.some((h: any) => h.header.key === 'www-authenticate' && h.header.value.startsWith('Bearer ')));
    assert.deepEqual(JSON.parse(denied['denied_response'].body), { error: 'missing_credentials', message: 'credentials are required', request_id: 'rid-1' });
  });

  it('ProcessingResponse: header mutation with raw_value, mode_override by name, immediate response with a bytes body', () => {
    const definition = externalProcessorServiceDefinition();
    const headers = roundTrip(definition, 'Process', toProcessingResponse({
      kind: 'response_headers',
      mutation: { set: [{ name: 'x-cache-status', value: 'MISS', append: false }, { name: 'vary', value: 'accept', append: true }], remove: ['server'] },
      modeOverride: { requestBody: 'NONE', responseBody: 'BUFFERED_PARTIAL', responseHeaders: 'SEND' },
    }));
    assert.equal(headers['response'], 'response_headers');
    const mutation = headers['response_headers'].response.header_mutation;
    assert.deepEqual(mutation.set_headers.map((h: any) => [h.header.key, Buffer.from(h.header.raw_value).toString('latin1'), h.append?.value]), [['x-cache-status', 'MISS', undefined], ['vary', 'accept', true]]);
    assert.deepEqual(mutation.remove_headers, ['server']);
    assert.deepEqual(headers['mode_override'], { response_header_mode: 'SEND', request_body_mode: 'NONE', response_body_mode: 'BUFFERED_PARTIAL' });

    const immediate = roundTrip(definition, 'Process', toProcessingResponse({
      kind: 'immediate', status: 400, details: 'validation', body: Buffer.from('{"title":"bad"}'),
      headers: { set: [{ name: 'content-type', value: 'application/problem+json', append: false }], remove: [] },
    }));
    assert.equal(immediate['immediate_response'].status.code, 'BadRequest');
    assert.equal(Buffer.from(immediate['immediate_response'].body).toString(), '{"title":"bad"}');
    assert.equal(immediate['immediate_response'].details, 'validation');
  });
});
