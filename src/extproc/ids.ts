// Request ids and W3C Trace Context (https://www.w3.org/TR/trace-context/): pure functions over header values, with
// the randomness passed in so tests can pin it.

export interface TraceContext {
  readonly traceId: string;
  /** This hop's span id: the parent-id of the traceparent sent upstream. */
  readonly spanId: string;
  /** The incoming parent-id; undefined when this hop started the trace. */
  readonly parentSpanId: string | undefined;
  readonly flags: string;
  /** Kept only when the incoming traceparent was valid. */
  readonly tracestate: string | undefined;
  readonly started: boolean;
}

export interface ParsedTraceparent {
  readonly traceId: string;
  readonly parentId: string;
  readonly flags: string;
}

const HEX = /^[0-9a-f]+$/;
const ZERO = /^0+$/;

/**
 * Strips OWS, which is SP and HTAB only (RFC 9110 §5.6.3). String.prototype.trim() also strips NBSP, VT, FF and BOM:
 * Envoy passes a 0xA0 byte at either end of a value (read here as U+00A0), and a traceparent carrying one is not in
 * the spec's grammar, so it must start a new trace rather than be continued. A loop, not /[ \t]+$/, which is
 * quadratic on a long run of blanks that does not end the value.
 */
function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

/**
 * Parses a traceparent header. Version 00 must be exactly 55 characters; a higher version (not ff) is read at the
 * fixed offsets and may carry more fields after a '-'. Uppercase hex, all-zero ids, and version ff are invalid.
 */
export function parseTraceparent(value: string | undefined): ParsedTraceparent | undefined {
  if (value === undefined) return undefined;
  const v = trimOws(value);
  if (v.length < 55) return undefined;
  const version = v.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return undefined;
  if (version === '00' && v.length !== 55) return undefined;
  if (v.length > 55 && v[55] !== '-') return undefined;
  if (v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return undefined;
  const traceId = v.slice(3, 35);
  const parentId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(flags)) return undefined;
  if (ZERO.test(traceId) || ZERO.test(parentId)) return undefined;
  return { traceId, parentId, flags };
}

export type RandomHex = (bytes: number) => string;

function nonZeroHex(random: RandomHex, bytes: number): string {
  for (;;) {
    const hex = random(bytes);
    if (!ZERO.test(hex)) return hex;
  }
}

/**
 * This hop's trace context: a valid incoming traceparent keeps its trace id and flags and gets a new span id; an
 * absent or invalid one starts a new, sampled trace and drops tracestate (never trust it without its traceparent).
 * `traceparent` is every line of the header. Two or more are invalid however they read: traceparent is no list
 * (RFC 9110 §5.3), and the W3C test suite (test_traceparent_duplicated) expects neither trace continued. Joining them
 * is not enough, as a higher version takes whatever follows its flags and a '-': `cc-…-01-x, 00-…` parses.
 */
export function continueTrace(traceparent: readonly string[], tracestate: string | undefined, random: RandomHex): TraceContext {
  const parsed = traceparent.length === 1 ? parseTraceparent(traceparent[0]) : undefined;
  const spanId = nonZeroHex(random, 8);
  if (parsed === undefined) {
    return { traceId: nonZeroHex(random, 16), spanId, parentSpanId: undefined, flags: '01', tracestate: undefined, started: true };
  }
  // Only the sampled (0x01) and random-trace-id (0x02) bits are defined; re-emitted as version 00.
  const flags = (parseInt(parsed.flags, 16) & 0x03).toString(16).padStart(2, '0');
  return { traceId: parsed.traceId, spanId, parentSpanId: parsed.parentId, flags, tracestate: tracestate || undefined, started: false };
}

export function formatTraceparent(trace: TraceContext): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.flags}`;
}

/** A request id Envoy (or the client) sent is kept when it is a sane token; otherwise a new UUID v4 replaces it. */
export function acceptRequestId(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = trimOws(value);
  return v.length > 0 && v.length <= 200 && /^[\x21-\x7e]+$/.test(v) ? v : undefined;
}
