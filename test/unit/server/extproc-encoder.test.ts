import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeaderMutation } from '../../../src/extproc/headers.js';
import type { ModeOverride, Phase } from '../../../src/extproc/types.js';
import { BODY_SEND_MODE, encodePhaseAnswer } from '../../../src/server/extproc-encoder.js';
import { externalProcessorServiceDefinition } from '../../../src/server/protos.js';

// The oracle: the same answer in protobufjs' object form, encoded by protobufjs (the serializer the service uses for
// every object answer).
const protobufjs = externalProcessorServiceDefinition()['Process']!.responseSerialize;
function reference(phase: Phase, mutation: HeaderMutation | undefined, modeOverride: ModeOverride | undefined): Buffer {
  if (phase.endsWith('trailers')) return protobufjs({ [phase]: {} });
  return protobufjs({
    [phase]: {
      response: {
        header_mutation: {
          set_headers: mutation!.set.map((s) => ({ header: { key: s.name, raw_value: Buffer.from(s.value, 'latin1') }, append: s.append ? { value: true } : undefined })),
          remove_headers: mutation!.remove,
        },
      },
    },
    mode_override: modeOverride && {
      response_header_mode: modeOverride.responseHeaders === 'SKIP' ? 2 : 1,
      request_body_mode: BODY_SEND_MODE[modeOverride.requestBody],
      response_body_mode: BODY_SEND_MODE[modeOverride.responseBody],
      request_trailer_mode: modeOverride.requestTrailers === 'SEND' ? 1 : undefined,
    },
  });
}

const set = (name: string, value: string, append = false) => ({ name, value, append });
const many = Array.from({ length: 400 }, (_, i) => set(`x-h-${i}`, 'v'.repeat(i)));

const cases: [string, Phase, HeaderMutation | undefined, ModeOverride | undefined][] = [
  ['request headers: sets, an append, a remove', 'request_headers',
    { set: [set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), set('x-tag', 'a', true)], remove: ['x-debug'] }, undefined],
  ['request headers asking for the body', 'request_headers', { set: [set('x-request-id', 'r-1')], remove: [] }, { requestBody: 'BUFFERED', responseBody: 'NONE', responseHeaders: 'SEND' }],
  ['request headers asking for the body and its trailers', 'request_headers', { set: [set('x-request-id', 'r-1')], remove: [] }, { requestBody: 'BUFFERED', responseBody: 'NONE', responseHeaders: 'SEND', requestTrailers: 'SEND' }],
  ['request headers asking for the body and its trailers, skipping the response phase', 'request_headers', { set: [], remove: [] }, { requestBody: 'BUFFERED', responseBody: 'NONE', responseHeaders: 'SKIP', requestTrailers: 'SEND' }],
  ['request headers skipping the response phase', 'request_headers', { set: [set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')], remove: [] }, { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: 'SKIP' }],
  ['request headers asking for the body, skipping the response phase', 'request_headers', { set: [], remove: [] }, { requestBody: 'BUFFERED', responseBody: 'NONE', responseHeaders: 'SKIP' }],
  ['response headers asking for a partial body', 'response_headers', { set: [set('x-cache-status', 'MISS')], remove: ['server', 'x-powered-by'] }, { requestBody: 'NONE', responseBody: 'BUFFERED_PARTIAL', responseHeaders: 'SEND' }],
  ['an empty mutation', 'response_headers', { set: [], remove: [] }, undefined],
  ['request body, unchanged', 'request_body', { set: [], remove: [] }, undefined],
  ['response body, unchanged', 'response_body', { set: [], remove: [] }, undefined],
  ['request trailers', 'request_trailers', undefined, undefined],
  ['response trailers', 'response_trailers', undefined, undefined],
  ['an empty value, latin1 bytes above 0x7f, chars above 0xff (low byte, as Buffer.from latin1)', 'request_headers', { set: [set('x-empty', ''), set('x-latin1', 'caf\u00e9 \u00ff'), set('x-wide', '\u0100\u20ac')], remove: [] }, undefined],
  ['a non-ASCII name (utf8 key)', 'response_headers', { set: [set('x-na\u00efve', 'v')], remove: ['x-\u00fc'] }, undefined],
  ['a 20000-byte value (three-byte lengths)', 'request_headers', { set: [set('x-big', 'b'.repeat(20_000))], remove: [] }, undefined],
  ['400 headers (nested lengths above 16 KiB)', 'response_headers', { set: many, remove: ['server'] }, { requestBody: 'NONE', responseBody: 'BUFFERED', responseHeaders: 'SEND' }],
];

describe('extproc-encoder: the bytes protobufjs writes for the same answer', () => {
  for (const [name, phase, mutation, modeOverride] of cases) {
    it(name, () => {
      assert.deepEqual(encodePhaseAnswer(phase, mutation, modeOverride), reference(phase, mutation, modeOverride));
    });
  }

  it('what it writes decodes to the answer (through the service deserializer)', () => {
    const m = externalProcessorServiceDefinition()['Process']!;
    const decoded = m.responseDeserialize(encodePhaseAnswer('response_headers', { set: [set('vary', 'accept', true)], remove: ['server'] }, { requestBody: 'NONE', responseBody: 'BUFFERED', responseHeaders: 'SEND' })) as Record<string, any>;
    assert.equal(decoded['response'], 'response_headers');
    const hm = decoded['response_headers'].response.header_mutation;
    assert.deepEqual(hm.set_headers.map((h: any) => [h.header.key, Buffer.from(h.header.raw_value).toString('latin1'), h.append?.value]), [['vary', 'accept', true]]);
    assert.deepEqual(hm.remove_headers, ['server']);
    assert.deepEqual(decoded['mode_override'], { response_header_mode: 'SEND', request_body_mode: 'NONE', response_body_mode: 'BUFFERED' });
    const skipping = m.responseDeserialize(encodePhaseAnswer('request_headers', { set: [], remove: [] }, { requestBody: 'NONE', responseBody: 'NONE', responseHeaders: 'SKIP' })) as Record<string, any>;
    assert.deepEqual(skipping['mode_override'], { response_header_mode: 'SKIP', request_body_mode: 'NONE', response_body_mode: 'NONE' });
    const trailers = m.responseDeserialize(encodePhaseAnswer('request_headers', { set: [], remove: [] }, { requestBody: 'BUFFERED', responseBody: 'NONE', responseHeaders: 'SKIP', requestTrailers: 'SEND' })) as Record<string, any>;
    assert.deepEqual(trailers['mode_override'], { response_header_mode: 'SKIP', request_body_mode: 'BUFFERED', response_body_mode: 'NONE', request_trailer_mode: 'SEND' });
  });
});
