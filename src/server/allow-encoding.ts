import type { Grant } from '../authz/types.js';

/**
 * The allow CheckResponse of a Grant, encoded straight to protobuf bytes: the same bytes the service's serializer
 * makes of toCheckResponse's allow (test/unit/server/allow-encoding.test.ts holds them equal). protobufjs builds a
 * message object and an op list per field first: ≈ 3× the time and ≈ 8 KB of garbage for a 250-byte answer, a tenth
 * of an uncached Check's cost (docs/benchmarks.md); this is a size pass and a write pass over one buffer.
 *
 * The message, field numbers from envoy/service/auth/v3/external_auth.proto and envoy/config/core/v3/base.proto:
 *   CheckResponse { status(1): google.rpc.Status { code(1): 0 }, ok_response(3): OkHttpResponse, dynamic_metadata(4): Struct }
 *   OkHttpResponse { headers(2): HeaderValueOption*, headers_to_remove(5): string*, query_parameters_to_remove(8): string* }
 *   HeaderValueOption { header(1): HeaderValue { key(1), value(2) }, append(2): BoolValue { value(1): false } }
 *   Struct { fields(1): entry { key(1), value(2): Value { string_value(3) } }* }
 */
export function encodeAllow(grant: Grant): Buffer {
  const { headers, headersToRemove, queryParamsToRemove, dynamicMetadata } = grant;
  // Every string's UTF-8 length, counted once by the size pass and read back in the same order by the write pass.
  const lengths: number[] = [];
  const measured = (s: string): number => {
    const length = utf8Length(s);
    lengths.push(length);
    return length;
  };
  let ok = 0;
  for (const [key, value] of headers) ok += fieldSize(headerValueOptionSize(measured(key), measured(value)));
  for (const name of headersToRemove) ok += fieldSize(measured(name));
  for (const name of queryParamsToRemove) ok += fieldSize(measured(name));
  let struct = 0;
  for (const key in dynamicMetadata) struct += fieldSize(entrySize(measured(key), measured(dynamicMetadata[key]!)));

  const out = Buffer.allocUnsafe(STATUS_OK.length + fieldSize(ok) + fieldSize(struct));
  out.set(STATUS_OK, 0);
  let at = STATUS_OK.length;
  let next = 0;
  at = tagAndLength(out, at, 0x1a, ok); // ok_response
  for (const [key, value] of headers) {
    const keyLength = lengths[next++]!;
    const valueLength = lengths[next++]!;
    at = tagAndLength(out, at, 0x12, headerValueOptionSize(keyLength, valueLength)); // headers
    at = tagAndLength(out, at, 0x0a, fieldSize(keyLength) + fieldSize(valueLength)); // header
    at = string(out, at, 0x0a, key, keyLength);
    at = string(out, at, 0x12, value, valueLength);
    out.set(APPEND_FALSE, at);
    at += APPEND_FALSE.length;
  }
  for (const name of headersToRemove) at = string(out, at, 0x2a, name, lengths[next++]!);
  for (const name of queryParamsToRemove) at = string(out, at, 0x42, name, lengths[next++]!);
  at = tagAndLength(out, at, 0x22, struct); // dynamic_metadata
  for (const key in dynamicMetadata) {
    const keyLength = lengths[next++]!;
    const valueLength = lengths[next++]!;
    at = tagAndLength(out, at, 0x0a, entrySize(keyLength, valueLength)); // fields
    at = string(out, at, 0x0a, key, keyLength);
    at = tagAndLength(out, at, 0x12, fieldSize(valueLength)); // value
    at = string(out, at, 0x1a, dynamicMetadata[key]!, valueLength); // string_value
  }
  return out;
}

/** status { code: 0 }, written out as protobufjs writes a set field. */
const STATUS_OK = Uint8Array.of(0x0a, 0x02, 0x08, 0x00);
/** append { value: false }. */
const APPEND_FALSE = Uint8Array.of(0x12, 0x02, 0x08, 0x00);

function tagAndLength(out: Buffer, at: number, tag: number, length: number): number {
  out[at++] = tag;
  while (length > 0x7f) {
    out[at++] = (length & 0x7f) | 0x80;
    length >>>= 7;
  }
  out[at++] = length;
  return at;
}

/** A string field whose UTF-8 length the size pass counted. */
function string(out: Buffer, at: number, tag: number, s: string, length: number): number {
  at = tagAndLength(out, at, tag, length);
  if (length !== s.length) return at + out.write(s, at);
  for (let i = 0; i < length; i++) out[at++] = s.charCodeAt(i);
  return at;
}

function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n >>>= 7;
    size++;
  }
  return size;
}

/** Identity values are short and mostly ASCII: counted here, not in a call into the runtime per string. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s);
  return s.length;
}

/** The size of a length-delimited field (tag, length, payload) whose payload is `length` bytes. */
function fieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** HeaderValueOption { header { key, value }, append }, from the key's and the value's UTF-8 lengths. */
function headerValueOptionSize(keyLength: number, valueLength: number): number {
  return fieldSize(fieldSize(keyLength) + fieldSize(valueLength)) + APPEND_FALSE.length;
}

/** Struct.fields entry { key, value: Value { string_value } }, from the key's and the value's UTF-8 lengths. */
function entrySize(keyLength: number, valueLength: number): number {
  return fieldSize(keyLength) + fieldSize(fieldSize(valueLength));
}
