import { Metadata, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { AuthzService, AuthzSnapshot } from '../authz/service.js';
import { bearerChallenge } from '../authz/decide.js';
import { NO_NAMES, underscoredNames, type FoldTargets } from '../authz/header-fold.js';
import { checkBudgetMs } from '../authz/wait.js';
import type { AllowDecision, CheckInput, Decision, Grant, HeaderLookup, MaybePromise } from '../authz/types.js';
import type { Logger } from '../observability/logger.js';
import { asPortcullisError, ErrorCode } from '../shared/errors.js';
import type { DeadlineSignals } from './deadline-signals.js';
import { encodeAllow } from './allow-encoding.js';
import { toStruct } from './ratelimit-handler.js';
import { grpcStatusOf } from './status.js';

/**
 * Proto maps decoded from the descriptor set arrive as repeated { key, value } entries (see toStruct); a client
 * built from .proto files sends plain objects. Both are read.
 */
type WireMap = { key?: string; value?: string }[] | Record<string, string> | undefined | null;

interface WireCheckRequest {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string } }; principal?: string };
    request?: {
      http?: {
        id?: string;
        method?: string;
        path?: string;
        host?: string;
        headers?: WireMap;
        header_map?: { headers?: { key?: string; value?: string; raw_value?: Buffer | Uint8Array }[] };
      };
    };
    context_extensions?: WireMap;
  } | null;
}

const NO_ENTRIES: ReadonlyMap<string, string> = new Map();

function mapOf(wire: WireMap): ReadonlyMap<string, string> {
  if (Array.isArray(wire)) {
    if (wire.length === 0) return NO_ENTRIES;
    const out = new Map<string, string>();
    for (const e of wire) if (e.key !== undefined) out.set(e.key.toLowerCase(), e.value ?? '');
    return out;
  }
  if (!wire) return NO_ENTRIES;
  return new Map(Object.entries(wire).map(([k, v]) => [k.toLowerCase(), String(v)]));
}

/**
 * Envoy's header map as decoded (repeated { key, value }), read where it lies: a Check looks up a handful of
 * headers, and copying a dozen of them into a Map was the largest allocation of a Check (docs/benchmarks.md).
 * Names are looked up in lower case; the last entry of a name wins, as in a Map built from the list.
 */
class WireHeaders implements HeaderLookup {
  constructor(private readonly entries: readonly { key?: string; value?: string }[]) {}

  get(name: string): string | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const entry = this.entries[i]!;
      const key = entry.key;
      if (key !== undefined && key.length === name.length && (key === name || key.toLowerCase() === name)) return entry.value ?? '';
    }
    return undefined;
  }

  /**
   * CheckInput.underscoredNames: on every Check, so one pass that allocates nothing unless a name may fold, with
   * mayFold written out (as a call it measured slower, bench/authz/check-loop.ts).
   */
  underscored(targets: FoldTargets): readonly string[] {
    const entries = this.entries;
    const lengths = targets.lengths;
    for (let i = 0; i < entries.length; i++) {
      const key = entries[i]!.key;
      if (key !== undefined && key.length < lengths.length && lengths[key.length] === 1 && key.includes('_')) return underscoredNames(this.names(), targets);
    }
    return NO_NAMES;
  }

  names(): string[] {
    return this.entries.map((e) => e.key ?? '');
  }
}

type WireHttp = NonNullable<NonNullable<NonNullable<WireCheckRequest['attributes']>['request']>['http']>;

/** The request's headers: `headers` as sent, else (encode_raw_headers) `header_map`, unmerged raw bytes, merged here. */
function headersOf(http: WireHttp): WireHeaders | ReadonlyMap<string, string> {
  const wire = http.headers;
  if (Array.isArray(wire) && wire.length > 0) return new WireHeaders(wire);
  const plain = mapOf(wire);
  if (plain.size > 0 || !http.header_map?.headers) return plain;
  const merged = new Map<string, string>();
  for (const h of http.header_map.headers) {
    if (h.key === undefined) continue;
    const value = h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('utf8') : (h.value ?? '');
    const name = h.key.toLowerCase();
    const previous = merged.get(name);
    merged.set(name, previous === undefined ? value : `${previous},${value}`);
  }
  return merged;
}

/** The names holding `_`; with `targets` (the snapshot's), only those that may fold onto one of them (mayFold). */
function underscoredOf(headers: WireHeaders | ReadonlyMap<string, string>, targets: FoldTargets | undefined): readonly string[] {
  if (!(headers instanceof WireHeaders)) return underscoredNames(headers.keys(), targets);
  return targets === undefined ? underscoredNames(headers.names()) : headers.underscored(targets);
}

/** CheckRequest → CheckInput; `targets` narrow underscoredNames (the handler passes its snapshot's). */
export function toCheckInput(wire: WireCheckRequest, targets?: FoldTargets): CheckInput {
  const attributes = wire.attributes ?? {};
  const http = attributes.request?.http ?? {};
  const headers = headersOf(http);
  return {
    method: (http.method ?? headers.get(':method') ?? '').toUpperCase(),
    rawPath: http.path ?? headers.get(':path') ?? '',
    host: http.host ?? headers.get(':authority') ?? '',
    headers,
    underscoredNames: underscoredOf(headers, targets),
    sourceAddress: attributes.source?.address?.socket_address?.address ?? '',
    sourcePrincipal: attributes.source?.principal ?? '',
    contextExtensions: mapOf(attributes.context_extensions),
    requestId: headers.get('x-request-id') ?? http.id ?? '',
  };
}

const header = (key: string, value: string): unknown => ({ header: { key, value }, append: { value: false } });

const RPC_CODE: Readonly<Record<number, number>> = { 400: GrpcStatus.INVALID_ARGUMENT, 401: GrpcStatus.UNAUTHENTICATED, 403: GrpcStatus.PERMISSION_DENIED, 503: GrpcStatus.UNAVAILABLE };

/** Decision → CheckResponse: the one mapping. A denial is a response (status code != 0), never a gRPC error. */
export function toCheckResponse(decision: Decision, requestId: string): unknown {
  if (decision.allow) {
    return {
      status: { code: GrpcStatus.OK },
      ok_response: {
        headers: decision.grant.headers.map(([k, v]) => header(k, v)),
        headers_to_remove: [...decision.grant.headersToRemove],
        query_parameters_to_remove: [...decision.grant.queryParamsToRemove],
      },
      dynamic_metadata: toStruct(decision.grant.dynamicMetadata),
    };
  }
  const headers = [header('content-type', 'application/json'), header('cache-control', 'no-store')];
  if (decision.status === 401) {
    headers.push(header('www-authenticate', bearerChallenge(decision)));
  }
  return {
    status: { code: RPC_CODE[decision.status] ?? GrpcStatus.PERMISSION_DENIED, message: decision.message },
    denied_response: {
      status: { code: decision.status },
      headers,
      body: JSON.stringify({ error: decision.reason, message: decision.message, request_id: requestId }),
    },
  };
}

/**
 * An allow answer depends on its Grant only, and a cached caller's requests share one Grant (decide.ts): its
 * encoding (encodeAllow, the bytes toCheckResponse's allow encodes to) is kept beside it, so a repeat caller's answer
 * is not encoded again on every Check. The service's serializer sends a Buffer as is.
 */
const encodedGrants = new WeakMap<Grant, Buffer>();

export function encodedAllow(decision: AllowDecision): Buffer {
  if (!decision.grant.shared) return encodeAllow(decision.grant);
  let bytes = encodedGrants.get(decision.grant);
  if (bytes === undefined) encodedGrants.set(decision.grant, (bytes = encodeAllow(decision.grant)));
  return bytes;
}

export interface AuthzHandlerDeps {
  readonly service: AuthzService;
  readonly snapshot: () => AuthzSnapshot;
  readonly logger: Logger;
  readonly deadlines: DeadlineSignals;
  readonly timeoutMs: () => number;
  readonly observe: (decision: Decision, seconds: number) => void;
  readonly onError: (code: string) => void;
  readonly inFlight: { enter(): void; leave(): void };
}

export function authzHandlers(deps: AuthzHandlerDeps): UntypedServiceImplementation {
  // The decision line names its fields itself (logDecision), and none is a key the logger's redaction paths match,
  // so redaction could never change it; skipping it cuts the line's cost per Check by two thirds (docs/benchmarks.md).
  const decisionLog = deps.logger.child({}, { redact: [] });
  return {
    Check(call: ServerUnaryCall<WireCheckRequest, unknown>, callback: sendUnaryData<unknown>): void {
      const started = performance.now();
      deps.inFlight.enter();
      const snapshot = deps.snapshot();
      let input: CheckInput | undefined;
      const done = (error: unknown, decision?: Decision): void => {
        deps.inFlight.leave();
        const seconds = (performance.now() - started) / 1000;
        if (decision !== undefined && input !== undefined) {
          deps.observe(decision, seconds);
          if (snapshot.settings?.logDecisions !== false) logDecision(decisionLog, input, decision, seconds);
          callback(null, decision.allow ? encodedAllow(decision) : toCheckResponse(decision, input.requestId));
          return;
        }
        const e = asPortcullisError(error);
        deps.onError(e.code);
        if (e.code === ErrorCode.INTERNAL) deps.logger.error({ err: error }, 'Check failed');
        else deps.logger.warn({ code: e.code, error: e.message }, 'Check failed');
        callback({ code: grpcStatusOf(e.code), details: e.message, metadata: new Metadata() });
      };
      let decision: MaybePromise<Decision>;
      try {
        input = toCheckInput(call.request, snapshot.foldTargets);
        const deadline = call.getDeadline();
        const at = deadline instanceof Date ? deadline.getTime() : deadline;
        const signal = deps.deadlines.signalFor(Date.now() + checkBudgetMs(snapshot.settings?.timeoutMs ?? deps.timeoutMs(), at - Date.now()));
        decision = deps.service.check(input, snapshot, signal);
      } catch (error) {
        done(error);
        return;
      }
      if (decision instanceof Promise) decision.then((d) => done(undefined, d), (error: unknown) => done(error));
      else done(undefined, decision);
    },
  };
}

/** One line per Check; never a credential: no header values, the path without its query. */
function logDecision(logger: Logger, input: CheckInput, decision: Decision, seconds: number): void {
  const q = input.rawPath.indexOf('?');
  logger.info({
    method: input.method,
    path: q >= 0 ? input.rawPath.slice(0, q) : input.rawPath,
    policy: decision.policy,
    decision: decision.allow ? 'allow' : 'deny',
    status: decision.allow ? 200 : decision.status,
    reason: decision.reason,
    attempts: decision.attempts.map((a) => `${a.method}:${a.outcome.kind === 'invalid' || a.outcome.kind === 'unavailable' ? a.outcome.reason : a.outcome.kind}`),
    // Who was refused matters as much as who got in: a forbidden deny names its caller too.
    identity: decision.identity?.subject,
    auth_method: decision.identity?.method,
    request_id: input.requestId,
    latency_ms: Math.round(seconds * 100000) / 100,
  }, 'authz decision');
}
