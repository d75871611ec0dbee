// envoy.service.ext_proc.v3.ExternalProcessor/Process: the one proto ⇄ domain mapping, and the stream loop.
//
// Wire rules (docs/extproc.md): header values are read from raw_value, falling back to value (Envoy < 1.27 or the
// old runtime guard), decoded as latin1 so every byte round-trips; written as raw_value only (setting value makes
// Envoy ≥ 1.27 send empty headers, setting both is a 500). Messages of one stream are handled strictly in order,
// each answered exactly once with the matching type; in observability_mode nothing is answered.

import { Metadata, status as GrpcStatus, type ServerDuplexStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ExtprocSettings } from '../extproc/config.js';
import type { Header, HeaderMutation } from '../extproc/headers.js';
import { EXT_AUTHZ_NAMESPACE, type Identity } from '../extproc/identity.js';
import type { RandomHex } from '../extproc/ids.js';
import { ExtprocStream } from '../extproc/stream.js';
import type { BodyMode, ExtprocObserver, ProcessingAnswer, ProcessingInput, ProcessingMessage, StreamLog } from '../extproc/types.js';
import type { Clock } from '../shared/clock.js';
import type { CacheStore } from '../store/cache-store.js';

interface WireHeaderValue { key?: string; value?: string; raw_value?: Buffer }
interface WireHeaderMap { headers?: WireHeaderValue[] }
interface WireStructValue {
  null_value?: string; number_value?: number; string_value?: string; bool_value?: boolean;
  struct_value?: WireStruct; list_value?: { values?: WireStructValue[] };
}
interface WireStruct { fields?: { key?: string; value?: WireStructValue }[] }

/** ProcessingRequest as @grpc/proto-loader decodes it (keepCase, oneofs, maps as repeated entries). */
export interface WireProcessingRequest {
  request?: string;
  request_headers?: { headers?: WireHeaderMap; end_of_stream?: boolean };
  response_headers?: { headers?: WireHeaderMap; end_of_stream?: boolean };
  request_body?: { body?: Buffer; end_of_stream?: boolean };
  response_body?: { body?: Buffer; end_of_stream?: boolean };
  request_trailers?: { trailers?: WireHeaderMap };
  response_trailers?: { trailers?: WireHeaderMap };
  metadata_context?: { filter_metadata?: { key?: string; value?: WireStruct }[] };
  attributes?: { key?: string; value?: WireStruct }[];
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

export function externalProcessorHandlers(deps: ExtprocHandlerDeps): UntypedServiceImplementation {
  return {
    Process(call: ServerDuplexStream<WireProcessingRequest, unknown>): void {
      deps.inFlight.enter();
      deps.observer.stream();
      const hint = call.metadata.get(ROUTE_METADATA_KEY)[0];
      const stream = new ExtprocStream({
        settings: deps.settings(), cache: deps.cache, clock: deps.clock, randomHex: deps.randomHex,
        observer: deps.observer, log: deps.log, routeHint: typeof hint === 'string' ? hint : undefined,
      });
      let chain: Promise<void> = Promise.resolve();
      let finished = false;
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
          let answer: ProcessingAnswer;
          try {
            answer = await stream.handle(decoded);
          } catch (error) {
            deps.log.error({ ...stream.ids, err: error }, 'ext_proc message failed');
            fail(GrpcStatus.INTERNAL, `portcullis: ${(error as Error).message}`);
            return;
          }
          deps.observer.observeDuration(decoded.message.kind, (performance.now() - started) / 1000);
          // Observability mode: Envoy ignores answers; sending none is what it expects.
          if (wire.observability_mode === true || finished) return;
          call.write(toWire(answer));
        });
      });
      call.on('end', () => {
        void chain.then(() => {
          if (finished) return;
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

const latin1 = (h: WireHeaderValue): string => (h.raw_value !== undefined && h.raw_value.length > 0 ? h.raw_value.toString('latin1') : h.value ?? '');

function headersOf(map: WireHeaderMap | undefined): Header[] {
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
      message = { kind: wire.request, body: b?.body ?? Buffer.alloc(0), endOfStream: b?.end_of_stream === true };
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
  return { message, identity: authz && scalarFields(authz), attributes: scalarFields(attributes) };
}

/** Top-level string, number and boolean fields of a Struct, as strings. */
function scalarFields(struct: WireStruct | undefined): Identity {
  const out: Record<string, string> = {};
  for (const field of struct?.fields ?? []) {
    const v = field.value;
    if (field.key === undefined || v === undefined) continue;
    if (v.string_value !== undefined) out[field.key] = v.string_value;
    else if (v.number_value !== undefined) out[field.key] = String(v.number_value);
    else if (v.bool_value !== undefined) out[field.key] = String(v.bool_value);
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

/** ProcessingMode.BodySendMode as numbers: answers are encoded as built (protos.ts). */
const BODY_SEND_MODE: Readonly<Record<BodyMode, number>> = { NONE: 0, BUFFERED: 2, BUFFERED_PARTIAL: 3 };

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
      return { [answer.kind]: {} };
    default:
      return {
        [answer.kind]: { response: { header_mutation: mutationToWire(answer.mutation) } },
        mode_override: answer.modeOverride && {
          request_body_mode: BODY_SEND_MODE[answer.modeOverride.requestBody],
          response_body_mode: BODY_SEND_MODE[answer.modeOverride.responseBody],
        },
      };
  }
}
