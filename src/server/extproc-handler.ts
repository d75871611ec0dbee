// envoy.service.ext_proc.v3.ExternalProcessor/Process: the one proto ⇄ domain mapping, and the stream loop.
//
// Wire rules (docs/extproc.md): header values are read from raw_value, falling back to value (Envoy < 1.27 or the
// old runtime guard), decoded as latin1 so every byte round-trips; written as raw_value only (setting value makes
// Envoy ≥ 1.27 send empty headers, setting both is a 500). Messages of one stream are handled strictly in order,
// each answered exactly once with the matching type; in observability_mode nothing is answered.

import { Metadata, status as GrpcStatus, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ExtprocSettings } from '../extproc/config.js';
import { textAsHeaderValue, type Header, type HeaderMutation } from '../extproc/headers.js';
import { EXT_AUTHZ_NAMESPACE, type Identity } from '../extproc/identity.js';
import type { RandomHex } from '../extproc/ids.js';
import { ExtprocStream } from '../extproc/stream.js';
import { FailureStreak } from '../shared/failure-streak.js';
import type { ExtprocObserver, ProcessingAnswer, ProcessingInput, ProcessingMessage, StreamLog } from '../extproc/types.js';
import type { Clock } from '../shared/clock.js';
import type { CacheStore } from '../store/cache-store.js';
import { encodePhaseAnswer } from './extproc-encoder.js';

interface WireHeaderValue { key?: string; value?: string; raw_value?: Uint8Array | readonly number[] }
interface WireHeaderMap { headers?: WireHeaderValue[] }
interface WireStructValue {
  kind?: 'null_value' | 'number_value' | 'string_value' | 'bool_value' | 'struct_value' | 'list_value';
  number_value?: number; string_value?: string; bool_value?: boolean;
}
interface WireStruct { fields?: { key?: string; value?: WireStructValue | null }[] }

/**
 * ProcessingRequest as protobufjs decodes it (protos.ts decodingAsIs; keepCase names, maps as repeated entries): an
 * unset message is null, an unset scalar reads its default, and unset bytes read as an empty array, not a Buffer.
 * Oneofs are read only through their virtual field (`request`, a Value's `kind`): the other members read defaults.
 */
export interface WireProcessingRequest {
  request?: string;
  request_headers?: { headers?: WireHeaderMap | null; end_of_stream?: boolean } | null;
  response_headers?: { headers?: WireHeaderMap | null; end_of_stream?: boolean } | null;
  request_body?: { body?: Uint8Array | readonly number[]; end_of_stream?: boolean } | null;
  response_body?: { body?: Uint8Array | readonly number[]; end_of_stream?: boolean } | null;
  request_trailers?: { trailers?: WireHeaderMap | null } | null;
  response_trailers?: { trailers?: WireHeaderMap | null } | null;
  metadata_context?: { filter_metadata?: { key?: string; value?: WireStruct | null }[] } | null;
  attributes?: { key?: string; value?: WireStruct | null }[];
  observability_mode?: boolean;
}

export interface ExtprocHandlerDeps {
  /** The config snapshot; read once per stream. */
  readonly settings: () => ExtprocSettings;
  readonly cache: CacheStore;
  readonly clock: Clock;
  readonly randomHex: RandomHex;
  readonly observer: ExtprocObserver & { observeDuration(phase: string, seconds: number): void; streamError(reason: string): void };
  readonly log: StreamLog & { error(object: object, message: string): void };
  readonly inFlight: { enter(): void; leave(): void };
}

/** gRPC initial metadata naming a Portcullis route (set per Envoy route in ExtProcPerRoute.grpc_initial_metadata). */
export const ROUTE_METADATA_KEY = 'x-portcullis-route';

/** A misconfigured Envoy leaves every validating request unvalidated: the metric counts each, the log says it at most this often. */
const UNVALIDATED_LOG_EVERY_MS = 60_000;

export function externalProcessorHandlers(deps: ExtprocHandlerDeps): UntypedServiceImplementation {
  const cacheHealth = new FailureStreak(deps.clock);
  let unvalidatedLoggedMs = Number.NEGATIVE_INFINITY;
  const bodyNeverCame = (ids: object | undefined): void => {
    const nowMs = deps.clock.nowMs();
    if (nowMs - unvalidatedLoggedMs < UNVALIDATED_LOG_EVERY_MS) return;
    unvalidatedLoggedMs = nowMs;
    deps.log.warn({ ...ids }, 'a validating route asked for the request body and the stream ended without it: the client went away mid-upload, or Envoy does not take mode_override (allow_mode_override: true missing?) and such requests reach the upstream unvalidated (portcullis_extproc_asked_bodies_total; portcullis check-envoy reports the filter: EXTPROC_MODE_OVERRIDE_IGNORED)');
  };
  return {
    Process(call: ServerDuplexStream<WireProcessingRequest, unknown>): void {
      deps.inFlight.enter();
      deps.observer.stream();
      const hint = call.metadata.get(ROUTE_METADATA_KEY)[0];
      const stream = new ExtprocStream({
        settings: deps.settings(), cache: deps.cache, cacheHealth, clock: deps.clock, randomHex: deps.randomHex,
        observer: deps.observer, log: deps.log, routeHint: typeof hint === 'string' ? hint : undefined,
      });
      let chain: Promise<void> = Promise.resolve();
      let finished = false;
      // Envoy in observability_mode waits for no answer and takes no mode_override: a body never asked for is no sign.
      let observing = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        deps.inFlight.leave();
      };
      const fail = (code: GrpcStatus, details: string): void => {
        if (finished) return;
        deps.observer.streamError(code === GrpcStatus.INVALID_ARGUMENT ? 'invalid_message' : 'internal');
        call.emit('error', { code, details, metadata: new Metadata() });
        finish();
      };

      call.on('data', (wire: WireProcessingRequest) => {
        chain = chain.then(async () => {
          if (finished) return;
          const started = performance.now();
          const decoded = toInput(wire);
          if (typeof decoded === 'string') {
            deps.log.warn({ ...stream.ids, problem: decoded }, 'ext_proc message refused');
            fail(GrpcStatus.INVALID_ARGUMENT, decoded);
            return;
          }
          let answer: unknown;
          try {
            // Encoding is inside too: a failure there is this message's INTERNAL error, not an unhandled rejection.
            answer = toWire(await stream.handle(decoded));
          } catch (error) {
            deps.log.error({ ...stream.ids, err: error }, 'ext_proc message failed');
            fail(GrpcStatus.INTERNAL, `portcullis: ${(error as Error).message}`);
            return;
          }
          deps.observer.observeDuration(decoded.message.kind, (performance.now() - started) / 1000);
          // Observability mode: Envoy ignores answers; sending none is what it expects.
          if (wire.observability_mode === true) observing = true;
          if (observing || finished) return;
          call.write(answer);
        });
      });
      call.on('end', () => {
        void chain.then(() => {
          if (finished) return;
          if (!observing && stream.endedWithoutAskedBody()) bodyNeverCame(stream.ids);
          call.end();
          finish();
        });
      });
      // Envoy resets the stream once it has what it needs, or the client went away mid-request: either way the
      // stream is over, and nothing half-received is kept.
      call.on('cancelled', () => {
        stream.abort('cancelled');
        finish();
      });
      call.on('error', () => {
        stream.abort('error');
        finish();
      });
    },
  };
}

const EMPTY = Buffer.alloc(0);
/** Set bytes decode to a Buffer; unset bytes read the prototype's default, an empty array. */
const bytesOf = (b: Uint8Array | readonly number[] | undefined): Buffer => (Buffer.isBuffer(b) ? b : b instanceof Uint8Array ? Buffer.from(b) : EMPTY);

const latin1 = (h: WireHeaderValue): string => {
  const raw = bytesOf(h.raw_value);
  return raw.length > 0 ? raw.toString('latin1') : textAsHeaderValue(h.value ?? '');
};

function headersOf(map: WireHeaderMap | null | undefined): Header[] {
  return (map?.headers ?? []).map((h) => [(h.key ?? '').toLowerCase(), latin1(h)] as const);
}

/** Domain input, or a message saying why the ProcessingRequest cannot be processed. */
export function toInput(wire: WireProcessingRequest): ProcessingInput | string {
  let message: ProcessingMessage;
  switch (wire.request) {
    case 'request_headers':
    case 'response_headers': {
      const h = wire[wire.request];
      message = { kind: wire.request, headers: headersOf(h?.headers), endOfStream: h?.end_of_stream === true };
      break;
    }
    case 'request_body':
    case 'response_body': {
      const b = wire[wire.request];
      message = { kind: wire.request, body: bytesOf(b?.body), endOfStream: b?.end_of_stream === true };
      break;
    }
    case 'request_trailers':
    case 'response_trailers':
      message = { kind: wire.request, trailers: headersOf(wire[wire.request]?.trailers) };
      break;
    default:
      return wire.request === undefined
        ? 'ProcessingRequest carries no message (request oneof unset, or a type this Portcullis does not know)'
        : `ProcessingRequest type '${wire.request}' is not supported`;
  }
  const authz = wire.metadata_context?.filter_metadata?.find((e) => e.key === EXT_AUTHZ_NAMESPACE)?.value;
  const attributes = wire.attributes?.find((e) => e.key === 'envoy.filters.http.ext_proc')?.value;
  return { message, identity: authz ? scalarFields(authz) : undefined, attributes: scalarFields(attributes) };
}

/** Top-level string, number and boolean fields of a Struct, as strings in header-value form (textAsHeaderValue). */
function scalarFields(struct: WireStruct | null | undefined): Identity {
  const out: Record<string, string> = {};
  for (const field of struct?.fields ?? []) {
    const v = field.value;
    if (field.key === undefined || v == null) continue;
    if (v.kind === 'string_value') out[field.key] = textAsHeaderValue(v.string_value ?? '');
    else if (v.kind === 'number_value') out[field.key] = String(v.number_value ?? 0);
    else if (v.kind === 'bool_value') out[field.key] = String(v.bool_value ?? false);
  }
  return out;
}

function mutationToWire(mutation: HeaderMutation): unknown {
  return {
    set_headers: mutation.set.map((s) => ({
      header: { key: s.name, raw_value: Buffer.from(s.value, 'latin1') },
      // ext_proc reads only `append` (not append_action); unset means overwrite.
      append: s.append ? { value: true } : undefined,
    })),
    remove_headers: mutation.remove,
  };
}

/**
 * The ProcessingResponse for an answer: phase answers as bytes (extproc-encoder.ts), an immediate response in the
 * object form protobufjs encodes (protos.ts).
 */
export function toWire(answer: ProcessingAnswer): unknown {
  switch (answer.kind) {
    case 'immediate':
      return {
        immediate_response: {
          status: { code: answer.status },
          headers: mutationToWire(answer.headers),
          body: answer.body,
          details: answer.details,
        },
      };
    case 'request_trailers':
    case 'response_trailers':
      return encodePhaseAnswer(answer.kind, undefined, undefined);
    default:
      return encodePhaseAnswer(answer.kind, answer.mutation, answer.modeOverride);
  }
}
