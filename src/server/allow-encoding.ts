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
  let ok = 0;
  for (const [key, value] of headers) ok += messageFieldSize(headerValueOptionSize(key, value));
  for (const name of headersToRemove) ok += stringFieldSize(name);
  for (const name of queryParamsToRemove) ok += stringFieldSize(name);
  let struct = 0;
  for (const key in dynamicMetadata) struct += messageFieldSize(entrySize(key, dynamicMetadata[key]!));

  const out = Buffer.allocUnsafe(STATUS_OK.length + messageFieldSize(ok) + messageFieldSize(struct));
  out.set(STATUS_OK, 0);
  let at = STATUS_OK.length;
  at = tagAndLength(out, at, 0x1a, ok); // ok_response
  for (const [key, value] of headers) {
    at = tagAndLength(out, at, 0x12, headerValueOptionSize(key, value)); // headers
    at = tagAndLength(out, at, 0x0a, stringFieldSize(key) + stringFieldSize(value)); // header
    at = string(out, at, 0x0a, key);
    at = string(out, at, 0x12, value);
    out.set(APPEND_FALSE, at);
    at += APPEND_FALSE.length;
  }
  for (const name of headersToRemove) at = string(out, at, 0x2a, name);
  for (const name of queryParamsToRemove) at = string(out, at, 0x42, name);
  at = tagAndLength(out, at, 0x22, struct); // dynamic_metadata
  for (const key in dynamicMetadata) {
    const value = dynamicMetadata[key]!;
    at = tagAndLength(out, at, 0x0a, entrySize(key, value)); // fields
    at = string(out, at, 0x0a, key);
    at = tagAndLength(out, at, 0x12, stringFieldSize(value)); // value
    at = string(out, at, 0x1a, value); // string_value
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

function string(out: Buffer, at: number, tag: number, s: string): number {
  const length = utf8Length(s);
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

function messageFieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

function stringFieldSize(s: string): number {
  return messageFieldSize(utf8Length(s));
}

function headerValueOptionSize(key: string, value: string): number {
  return messageFieldSize(stringFieldSize(key) + stringFieldSize(value)) + APPEND_FALSE.length;
}

function entrySize(key: string, value: string): number {
  return stringFieldSize(key) + messageFieldSize(stringFieldSize(value));
}
