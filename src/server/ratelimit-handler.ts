import { Metadata, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { iJsonFault } from '../config/json-text.js';
import type { Decision, DescriptorStatus } from '../ratelimit/decide.js';
import type { RateLimitService } from '../ratelimit/service.js';
import type { RateLimitRequest, RequestDescriptor } from '../ratelimit/types.js';
import { unitFromNumber, UNIT_NUMBERS, type Unit } from '../ratelimit/units.js';
import { asPortcullisError, ErrorCode, PortcullisError } from '../shared/errors.js';
import type { Logger } from '../observability/logger.js';
import { storeDeadlineMs, type DeadlineSignals } from './deadline-signals.js';
import { grpcStatusOf } from './status.js';

/** RateLimitRequest as @grpc/proto-loader decodes it (keepCase, longs and enums as strings, no defaults). */
interface WireRequest {
  domain?: string;
  descriptors?: {
    entries?: { key?: string; value?: string }[];
    limit?: { requests_per_unit?: number; unit?: string };
    hits_addend?: { value?: string };
  }[];
  hits_addend?: number;
}

export interface HandlerDeps {
  readonly service: RateLimitService;
  readonly logger: Logger;
  /** Deadline for the store when Envoy sends none or a longer one (see storeDeadlineMs). */
  readonly timeoutMs: () => number;
  readonly onError: (code: string) => void;
  readonly observeDuration: (seconds: number) => void;
  readonly deadlines: DeadlineSignals;
  /** Counts calls in flight, so shutdown can drain them. */
  readonly inFlight: { enter(): void; leave(): void };
}

export function rateLimitHandlers(deps: HandlerDeps): UntypedServiceImplementation {
  return {
    ShouldRateLimit(call: ServerUnaryCall<WireRequest, unknown>, callback: sendUnaryData<unknown>): void {
      const started = performance.now();
      const callerDeadline = deadlineOf(call.getDeadline());
      const now = Date.now();
      // A call that waited past its deadline (a busy event loop) is not counted: its caller has given up.
      if (now >= callerDeadline) return void fail(deps, callback, deadlinePassed());
      deps.inFlight.enter();
      const signal = deps.deadlines.signalFor(now + storeDeadlineMs(callerDeadline - now, deps.timeoutMs()));
      const finish = (): void => {
        deps.inFlight.leave();
        deps.observeDuration((performance.now() - started) / 1000);
      };
      let request: RateLimitRequest;
      try {
        request = toRequest(call.request);
      } catch (error) {
        finish();
        fail(deps, callback, error);
        return;
      }
      deps.service.shouldRateLimit(request, signal).then(
        (decision) => {
          finish();
          if (Date.now() >= callerDeadline) fail(deps, callback, deadlinePassed()); // never a late answer
          else callback(null, toWire(decision));
        },
        (error: unknown) => {
          finish();
          fail(deps, callback, error);
        },
      );
    },
  };
}

function fail(deps: HandlerDeps, callback: sendUnaryData<unknown>, error: unknown): void {
  const e = asPortcullisError(error);
  deps.onError(e.code);
  if (e.code === ErrorCode.INTERNAL) deps.logger.error({ err: error }, 'ShouldRateLimit failed');
  else deps.logger.debug({ code: e.code, error: e.message }, 'ShouldRateLimit error');
  callback({ code: grpcStatusOf(e.code), details: e.message, metadata: new Metadata() });
}

/** The caller's deadline as a Date.now() timestamp; Infinity when it sent none. */
function deadlineOf(deadline: Date | number): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at : Infinity;
}

function deadlinePassed(): PortcullisError {
  return new PortcullisError(ErrorCode.DEADLINE_PASSED, 'the call\'s deadline passed before it could be answered');
}

export function toRequest(wire: WireRequest): RateLimitRequest {
  return {
    domain: wire.domain ?? '',
    hitsAddend: wire.hits_addend ?? 0,
    descriptors: (wire.descriptors ?? []).map((d): RequestDescriptor => ({
      entries: (d.entries ?? []).map((e) => ({ key: e.key ?? '', value: e.value ?? '' })),
      limitOverride: d.limit === undefined || d.limit === null ? undefined : {
        requestsPerUnit: d.limit.requests_per_unit ?? 0,
        unit: overrideUnit(d.limit.unit),
      },
      // UInt64Value: present with no value means 0 (check only); absent means "use the request's".
      hitsAddend: d.hits_addend === undefined || d.hits_addend === null ? undefined : Number(d.hits_addend.value ?? 0),
    })),
  };
}

function overrideUnit(name: string | undefined): Unit {
  const unit = name === undefined ? undefined : unitFromNumber(UNIT_NUMBERS[name as keyof typeof UNIT_NUMBERS] ?? 0);
  if (unit === undefined) throw new PortcullisError(ErrorCode.RL_BAD_REQUEST, `rate limit override has an invalid unit '${name ?? 'UNKNOWN'}'`);
  return unit;
}

/** RateLimitResponse.Code and RateLimit.Unit as numbers: the response is encoded as built (protos.ts). */
const CODE_NUMBERS = { OK: 1, OVER_LIMIT: 2 } as const;

export function toWire(decision: Decision): unknown {
  return {
    overall_code: CODE_NUMBERS[decision.overallCode],
    statuses: decision.statuses.map(statusToWire),
    response_headers_to_add: decision.responseHeaders.map(([key, value]) => ({ key, value })),
    dynamic_metadata: decision.dynamicMetadata && toStruct(decision.dynamicMetadata),
  };
}

/**
 * A plain JSON-like object as google.protobuf.Struct. Loaded from a descriptor set, protobufjs sees the
 * `map<string, Value> fields` as what it is on the wire, a repeated FieldsEntry { key, value }.
 */
export function toStruct(object: Readonly<Record<string, unknown>>): unknown {
  return { fields: Object.entries(object).map(([key, value]) => ({ key, value: toValue(value) })) };
}

function toValue(value: unknown): unknown {
  if (value === null || value === undefined) return { null_value: 0 /* NULL_VALUE */ };
  if (typeof value === 'number') return { number_value: value };
  if (typeof value === 'boolean') return { bool_value: value };
  if (typeof value === 'string') return { string_value: value };
  if (Array.isArray(value)) return { list_value: { values: value.map(toValue) } };
  return { struct_value: toStruct(value as Record<string, unknown>) };
}

/** Wire form of each limit, built once: decide() hands out one currentLimit object per compiled limit. */
const wireLimits = new WeakMap<NonNullable<DescriptorStatus['currentLimit']>, unknown>();
/** google.protobuf.Duration for the common small reset times, shared. */
const wireDurations: { seconds: number }[] = Array.from({ length: 3601 }, (_, seconds) => Object.freeze({ seconds }));

function statusToWire(status: DescriptorStatus): unknown {
  const limit = status.currentLimit;
  let wireLimit: unknown;
  if (limit !== undefined) {
    wireLimit = wireLimits.get(limit);
    if (wireLimit === undefined) {
      // Default values (empty name) are left out: proto3 omits them on the wire anyway.
      wireLimit = Object.freeze({ name: limit.name || undefined, requests_per_unit: limit.requestsPerUnit, unit: UNIT_NUMBERS[limit.unit] });
      wireLimits.set(limit, wireLimit);
    }
  }
  const reset = status.durationUntilResetSeconds;
  return {
    code: CODE_NUMBERS[status.code],
    current_limit: wireLimit,
    limit_remaining: status.limitRemaining,
    duration_until_reset: reset === undefined ? undefined : (wireDurations[reset] ?? { seconds: reset }),
  };
}

/**
 * envoyproxy/ratelimit's HTTP `POST /json`: a protojson RateLimitRequest in, a protojson
 * RateLimitResponse out, 200 for OK, 429 for OVER_LIMIT; 400 for bad JSON or a request error,
 * 500 when the service failed.
 */
export async function handleJsonRequest(service: RateLimitService, body: string, signal: AbortSignal): Promise<{ status: number; body: string }> {
  let wire: WireRequest;
  try {
    const json = JSON.parse(body) as unknown;
    // protojson refuses a member twice, which JSON.parse would take as the last.
    if (iJsonFault(body) !== undefined) throw new Error('not I-JSON');
    wire = jsonToWire(json);
  } catch {
    return { status: 400, body: 'Bad Request\n' };
  }
  try {
    const decision = await service.shouldRateLimit(toRequest(wire), signal);
    return { status: decision.overallCode === 'OK' ? 200 : 429, body: JSON.stringify(decisionToJson(decision)) };
  } catch (error) {
    const e = asPortcullisError(error);
    const clientError = e.code === ErrorCode.RL_EMPTY_DOMAIN || e.code === ErrorCode.RL_EMPTY_DESCRIPTORS || e.code === ErrorCode.RL_BAD_REQUEST;
    return clientError ? { status: 400, body: 'Bad Request\n' } : { status: 500, body: `${e.message}\n` };
  }
}

const UINT32_MAX = 0xffff_ffff;
/** A UInt64Value's largest value as JSON.parse reads it (2^64 − 1 rounds to 2^64); a string is checked exactly. */
const UINT64_MAX = 2 ** 64;
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * The fields of each message, as [JSON name, proto name]. protojson reads either name, refuses a field under both, and
 * refuses names the message does not have: a misspelt field is an error, not an unset one.
 */
const FIELDS = {
  request: [['domain', 'domain'], ['descriptors', 'descriptors'], ['hitsAddend', 'hits_addend']],
  descriptor: [['entries', 'entries'], ['limit', 'limit'], ['hitsAddend', 'hits_addend']],
  entry: [['key', 'key'], ['value', 'value']],
  limit: [['requestsPerUnit', 'requests_per_unit'], ['unit', 'unit']],
} as const satisfies Record<string, readonly (readonly [string, string])[]>;

function checkFields(obj: Record<string, unknown>, fields: readonly (readonly [string, string])[]): void {
  for (const name of Object.keys(obj)) {
    const field = fields.find(([json, proto]) => name === json || name === proto);
    if (field === undefined) throw new Error(`unknown field '${name}'`);
    if (field[0] !== field[1] && field[0] in obj && field[1] in obj) throw new Error(`field '${field[1]}' given twice`);
  }
}

function jsonToWire(json: unknown): WireRequest {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not an object');
  const o = json as Record<string, unknown>;
  checkFields(o, FIELDS.request);
  const pick = (obj: Record<string, unknown>, camel: string, snake: string): unknown => obj[camel] ?? obj[snake];
  const str = (v: unknown): string => {
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new Error('expected a string');
    return v;
  };
  // protojson refuses what does not fit the field (uint32, or a descriptor's UInt64Value), and a string must be a JSON
  // number ('', ' 2', '0x10' are not). Past 2^53 a number is no longer exact, but every count is capped far below.
  const uint = (v: unknown, max: number = UINT32_MAX): number => {
    if (v === undefined || v === null) return 0;
    if (typeof v === 'string' && !JSON_NUMBER.test(v)) throw new Error('expected an unsigned integer');
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > max) throw new Error('expected an unsigned integer');
    if (max === UINT64_MAX && typeof v === 'string' && /^\d+$/.test(v) && BigInt(v) > 2n ** 64n - 1n) throw new Error('expected an unsigned integer');
    return n;
  };
  // A message is an object: a string or a list is no descriptor, entry or limit. Null unsets a field, but is no item of a list.
  const message = (v: unknown, fields: readonly (readonly [string, string])[]): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected an object');
    checkFields(v as Record<string, unknown>, fields);
    return v as Record<string, unknown>;
  };
  // An enum is its name or its number (protojson takes 2.0 as 2); a number no unit has is refused here.
  const unit = (v: unknown): string => {
    if (typeof v !== 'number') return str(v) || 'UNKNOWN';
    const name = Number.isInteger(v) ? unitFromNumber(v) : undefined;
    if (name === undefined) throw new Error(`no unit numbered ${v}`);
    return name;
  };
  const descriptors = pick(o, 'descriptors', 'descriptors') ?? [];
  if (!Array.isArray(descriptors)) throw new Error('descriptors must be a list');
  return {
    domain: str(o['domain']),
    hits_addend: uint(pick(o, 'hitsAddend', 'hits_addend')),
    descriptors: descriptors.map((item: unknown) => {
      const d = message(item, FIELDS.descriptor);
      const entries = d['entries'] ?? [];
      if (!Array.isArray(entries)) throw new Error('entries must be a list');
      const limit = d['limit'] === undefined || d['limit'] === null ? undefined : message(d['limit'], FIELDS.limit);
      const hits = pick(d, 'hitsAddend', 'hits_addend');
      return {
        entries: entries.map((item: unknown) => {
          const e = message(item, FIELDS.entry);
          return { key: str(e['key']), value: str(e['value']) };
        }),
        limit: limit && { requests_per_unit: uint(pick(limit, 'requestsPerUnit', 'requests_per_unit')), unit: unit(limit['unit']) },
        hits_addend: hits === undefined ? undefined : { value: String(uint(hits, UINT64_MAX)) },
      };
    }),
  };
}

function decisionToJson(decision: Decision): unknown {
  return {
    overallCode: decision.overallCode,
    statuses: decision.statuses.map((s) => ({
      code: s.code,
      currentLimit: s.currentLimit && { name: s.currentLimit.name || undefined, requestsPerUnit: s.currentLimit.requestsPerUnit, unit: s.currentLimit.unit },
      limitRemaining: s.limitRemaining || undefined,
      durationUntilReset: s.durationUntilResetSeconds === undefined ? undefined : `${s.durationUntilResetSeconds}s`,
    })),
    responseHeadersToAdd: decision.responseHeaders.length ? decision.responseHeaders.map(([key, value]) => ({ key, value })) : undefined,
    dynamicMetadata: decision.dynamicMetadata,
  };
}
