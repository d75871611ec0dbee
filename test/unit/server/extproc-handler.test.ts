import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toInput, type WireProcessingRequest } from '../../../src/server/extproc-handler.js';
import { externalProcessorServiceDefinition } from '../../../src/server/protos.js';

// toInput reads requests in the shape the service's deserializer produces (protobufjs instances: unset messages null,
// unset scalars and oneof members read defaults). Each case goes through the real serializer and deserializer.
const process = externalProcessorServiceDefinition()['Process']!;
const received = (request: object): WireProcessingRequest => process.requestDeserialize(process.requestSerialize(request)) as WireProcessingRequest;

describe('extproc-handler toInput: ProcessingRequest as the server decodes it', () => {
  it('headers: raw_value as latin1, value when raw_value is empty, names lower-cased', () => {
    const input = toInput(received({
      request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/caf\xe9', 'latin1') }, { key: 'X-Old', value: 'v' }] }, end_of_stream: true },
    }));
    assert.ok(typeof input !== 'string');
    assert.deepEqual(input.message, { kind: 'request_headers', headers: [[':path', '/caf\xe9'], ['x-old', 'v']], endOfStream: true });
    assert.equal(input.identity, undefined);
    assert.deepEqual(input.attributes, {});
  });

  it('identity from ext_authz metadata and attributes: string, number and boolean values by their oneof, others skipped', () => {
    const struct = (fields: Record<string, object>) => ({ fields: Object.entries(fields).map(([key, value]) => ({ key, value })) });
    const input = toInput(received({
      response_headers: { headers: { headers: [] } },
      metadata_context: { filter_metadata: [
        { key: 'other', value: struct({ user_id: { string_value: 'not-this' } }) },
        { key: 'envoy.filters.http.ext_authz', value: struct({ user_id: { string_value: 'u1' }, zero: { number_value: 0 }, n: { number_value: 3 }, b: { bool_value: false }, none: { null_value: 'NULL_VALUE' }, nested: { struct_value: struct({}) } }) },
      ] },
      attributes: [{ key: 'envoy.filters.http.ext_proc', value: struct({ 'source.address': { string_value: '203.0.113.9:4000' } }) }],
    }));
    assert.ok(typeof input !== 'string');
    assert.deepEqual(input.identity, { user_id: 'u1', zero: '0', n: '3', b: 'false' });
    assert.deepEqual(input.attributes, { 'source.address': '203.0.113.9:4000' });
    assert.deepEqual(input.message, { kind: 'response_headers', headers: [], endOfStream: false });
  });

  it('bodies: bytes as a Buffer, an empty or unset body as an empty Buffer', () => {
    for (const [request, bytes, end] of [[{ request_body: { body: Buffer.from('{"a":1}'), end_of_stream: true } }, '{"a":1}', true], [{ response_body: { body: Buffer.alloc(0) } }, '', false], [{ request_body: {} }, '', false]] as const) {
      const input = toInput(received(request));
      assert.ok(typeof input !== 'string' && 'body' in input.message);
      assert.ok(Buffer.isBuffer(input.message.body));
      assert.equal(input.message.body.toString(), bytes);
      assert.equal(input.message.endOfStream, end);
    }
  });

  it('trailers, and a request with no message is refused with a reason', () => {
    const trailers = toInput(received({ response_trailers: { trailers: { headers: [{ key: 'grpc-status', raw_value: Buffer.from('0') }] } } }));
    assert.ok(typeof trailers !== 'string');
    assert.deepEqual(trailers.message, { kind: 'response_trailers', trailers: [['grpc-status', '0']] });
    assert.match(toInput(received({ observability_mode: true })) as string, /carries no message/);
  });
});
