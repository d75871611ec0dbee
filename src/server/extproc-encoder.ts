// The protobuf bytes of the ext_proc answers every stream sends: a header, body or trailers response with a header
// mutation and an optional mode_override. A header-only stream sends two of them, and protobufjs' generic writer
// (fork/ldelim per nested message, then a copy in finish) was the largest share of the answer's cost in the profile
// (docs/benchmarks.md, #6). This writer sizes the message first and writes it once into one buffer. It produces
// exactly the bytes protobufjs produces for toWire's object form (test/unit/server/extproc-encoder.test.ts compares
// them case by case); immediate responses, rare and larger, still go through protobufjs.
//
// Field numbers (envoy/service/ext_proc/v3/external_processor.proto, envoy/config/core/v3/base.proto):
//   ProcessingResponse { request_headers 1, response_headers 2, request_body 3, response_body 4,
//                        request_trailers 5, response_trailers 6, mode_override 9 }
//   HeadersResponse / BodyResponse { response 1 }   CommonResponse { header_mutation 2 }
//   HeaderMutation { set_headers 1, remove_headers 2 }   HeaderValueOption { header 1, append 2 (BoolValue) }
//   HeaderValue { key 1, raw_value 3 }   ProcessingMode { response_header_mode 2, request_body_mode 3, response_body_mode 4,
//                                                      request_trailer_mode 5 }

import type { HeaderMutation } from '../extproc/headers.js';
import type { BodyMode, ModeOverride, Phase } from '../extproc/types.js';

const LENGTH_DELIMITED = 2;
const tag = (field: number): number => (field << 3) | LENGTH_DELIMITED;

const PHASE_FIELD: Readonly<Record<Phase, number>> = {
  request_headers: 1, response_headers: 2, request_body: 3, response_body: 4, request_trailers: 5, response_trailers: 6,
};
const MODE_OVERRIDE_FIELD = 9;

/** ProcessingMode.HeaderSendMode.SKIP; SEND is written as the default (absent), which Envoy reads as send. */
const HEADER_SKIP = 2;
/** ProcessingMode.HeaderSendMode.SEND: request_trailer_mode (absent: SKIP) and response_header_mode. */
const HEADER_SEND = 1;

/** ProcessingMode.BodySendMode numbers. */
export const BODY_SEND_MODE: Readonly<Record<BodyMode, number>> = { NONE: 0, BUFFERED: 2, BUFFERED_PARTIAL: 3 };

/** BoolValue { value: true } as a HeaderValueOption.append field: tag, length 2, then field 1 varint 1. */
const APPEND_TRUE = [tag(2), 2, 0x08, 0x01] as const;

const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);
/** A length-delimited field's size: tag byte (every field number here is below 16), length, payload. */
const fieldSize = (payload: number): number => 1 + varintSize(payload) + payload;

/**
 * Strings this short are copied byte by byte: header names and most values are, and a native Buffer.write or
 * Buffer.byteLength call per string cost more than the copy in the profile.
 */
const SHORT = 64;

function utf8Length(s: string): number {
  if (s.length > SHORT) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

class Writer {
  private at = 0;
  constructor(readonly bytes: Buffer) {}
  byte(b: number): void {
    this.bytes[this.at++] = b;
  }
  varint(n: number): void {
    while (n > 0x7f) {
      this.bytes[this.at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.bytes[this.at++] = n;
  }
  open(field: number, length: number): void {
    this.byte(tag(field));
    this.varint(length);
  }
  /** A string field of `length` bytes: latin1 writes one byte per char; utf8 is ASCII when length is the char count. */
  text(field: number, value: string, length: number, encoding: 'utf8' | 'latin1'): void {
    this.open(field, length);
    if (length === value.length && length <= SHORT) {
      for (let i = 0; i < length; i++) this.bytes[this.at++] = value.charCodeAt(i) & 0xff;
    } else {
      this.at += this.bytes.write(value, this.at, length, encoding);
    }
  }
  get written(): number {
    return this.at;
  }
}

/**
 * The ProcessingResponse for a phase answered with `mutation` (body and trailers answers carry none), with
 * mode_override when given.
 */
export function encodePhaseAnswer(phase: Phase, mutation: HeaderMutation | undefined, modeOverride: ModeOverride | undefined): Buffer {
  const trailers = phase === 'request_trailers' || phase === 'response_trailers';
  // Sizes, innermost first; each set header's three sizes are kept for the writing pass.
  const lengths: number[] = [];
  let mutationSize = 0;
  if (!trailers && mutation !== undefined) {
    for (const s of mutation.set) {
      const keyLength = utf8Length(s.name);
      const headerSize = fieldSize(keyLength) + fieldSize(s.value.length);
      const optionSize = fieldSize(headerSize) + (s.append ? APPEND_TRUE.length : 0);
      lengths.push(keyLength, headerSize, optionSize);
      mutationSize += fieldSize(optionSize);
    }
    for (const name of mutation.remove) mutationSize += fieldSize(utf8Length(name));
  }
  const commonSize = trailers ? 0 : fieldSize(mutationSize);
  const phaseSize = trailers ? 0 : fieldSize(commonSize);
  const sendRequestTrailers = modeOverride?.requestTrailers === 'SEND';
  // response_header_mode always written: DEFAULT (0, omitted) is SEND for response headers, but saying SEND is plainer.
  const modeSize = modeOverride === undefined ? 0 : 6 + (sendRequestTrailers ? 2 : 0);
  const total = fieldSize(phaseSize) + (modeOverride === undefined ? 0 : fieldSize(modeSize));

  const w = new Writer(Buffer.allocUnsafe(total));
  w.open(PHASE_FIELD[phase], phaseSize);
  if (!trailers) {
    w.open(1, commonSize);
    w.open(2, mutationSize);
    if (mutation !== undefined) {
      let i = 0;
      for (const s of mutation.set) {
        const keyLength = lengths[i++]!, headerSize = lengths[i++]!, optionSize = lengths[i++]!;
        w.open(1, optionSize);
        w.open(1, headerSize);
        w.text(1, s.name, keyLength, 'utf8');
        w.text(3, s.value, s.value.length, 'latin1');
        if (s.append) for (const b of APPEND_TRUE) w.byte(b);
      }
      for (const name of mutation.remove) w.text(2, name, utf8Length(name), 'utf8');
    }
  }
  if (modeOverride !== undefined) {
    w.open(MODE_OVERRIDE_FIELD, modeSize);
    w.byte(0x10); // response_header_mode, varint
    w.byte(modeOverride.responseHeaders === 'SKIP' ? HEADER_SKIP : HEADER_SEND);
    w.byte(0x18); // request_body_mode, varint
    w.byte(BODY_SEND_MODE[modeOverride.requestBody]);
    w.byte(0x20); // response_body_mode, varint
    w.byte(BODY_SEND_MODE[modeOverride.responseBody]);
    if (sendRequestTrailers) {
      w.byte(0x28); // request_trailer_mode, varint
      w.byte(HEADER_SEND);
    }
  }
  if (w.written !== total) throw new Error(`extproc-encoder: wrote ${w.written} of ${total} bytes`);
  return w.bytes;
}
