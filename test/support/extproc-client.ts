// A real gRPC client for ExternalProcessor/Process, built from the same protos as the server, for scripted streams:
// send a ProcessingRequest, await the next ProcessingResponse, watch the final status.

import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi } from '../../src/server/protos.js';

type Wire = Record<string, unknown>;
export interface WireHeaderMutation {
  set_headers?: { header?: { key?: string; value?: string; raw_value?: Buffer }; append?: { value?: boolean } }[];
  remove_headers?: string[];
}
export interface WireCommon { response?: { header_mutation?: WireHeaderMutation; status?: string } }
/** The decoded ProcessingResponse (keepCase, enums as strings, oneof name in `response`). */
export interface WireProcessingResponse {
  response?: string;
  request_headers?: WireCommon;
  response_headers?: WireCommon;
  request_body?: WireCommon;
  response_body?: WireCommon;
  request_trailers?: Wire;
  response_trailers?: Wire;
  immediate_response?: { status?: { code?: string }; headers?: WireHeaderMutation; body?: Buffer; details?: string };
  mode_override?: { request_body_mode?: string; response_body_mode?: string; request_trailer_mode?: string };
}

export interface ProcessStream {
  send(request: object): void;
  /** The next response; rejects after timeoutMs or when the stream ends first. */
  next(timeoutMs?: number): Promise<WireProcessingResponse>;
  /** send + next. */
  exchange(request: object, timeoutMs?: number): Promise<WireProcessingResponse>;
  end(): void;
  cancel(): void;
  /** The stream's final status. */
  readonly status: Promise<grpc.StatusObject>;
}

export interface ExtprocClient {
  open(metadata?: Record<string, string>): ProcessStream;
  close(): void;
}

export function extprocClient(address: string, options: grpc.ClientOptions = {}): ExtprocClient {
  const api = loadEnvoyApi() as unknown as { envoy: { service: { ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } } };
  const client = new api.envoy.service.ext_proc.v3.ExternalProcessor(address, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1, ...options,
  });
  return {
    open(metadata = {}) {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      const call = (client['Process'] as (md: grpc.Metadata) => grpc.ClientDuplexStream<object, WireProcessingResponse>)(md);
      const queue: WireProcessingResponse[] = [];
      const waiters: { resolve: (r: WireProcessingResponse) => void; reject: (e: Error) => void }[] = [];
      let ended: Error | undefined;
      call.on('data', (r: WireProcessingResponse) => {
        const w = waiters.shift();
        if (w) w.resolve(r);
        else queue.push(r);
      });
      const status = new Promise<grpc.StatusObject>((resolve) => {
        call.on('status', (s: grpc.StatusObject) => {
          ended = new Error(`stream ended: ${s.code} ${s.details}`);
          for (const w of waiters.splice(0)) w.reject(ended);
          resolve(s);
        });
      });
      call.on('error', () => undefined);
      const next = (timeoutMs = 5000): Promise<WireProcessingResponse> => {
        const queued = queue.shift();
        if (queued) return Promise.resolve(queued);
        if (ended) return Promise.reject(ended);
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ProcessingResponse within ${timeoutMs} ms`)), timeoutMs);
          waiters.push({
            resolve: (r) => { clearTimeout(timer); resolve(r); },
            reject: (e) => { clearTimeout(timer); reject(e); },
          });
        });
      };
      return {
        send: (request) => void call.write(request),
        next,
        exchange(request, timeoutMs) {
          call.write(request);
          return next(timeoutMs);
        },
        end: () => call.end(),
        cancel: () => call.cancel(),
        status,
      };
    },
    close: () => client.close(),
  };
}

/** A HeaderMap with values in raw_value, as Envoy ≥ 1.27 sends them. */
export function headerMap(headers: Record<string, string> | readonly (readonly [string, string])[]): object {
  const entries = Array.isArray(headers) ? headers : Object.entries(headers);
  return { headers: entries.map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })) };
}

export function requestHeaders(headers: Record<string, string> | readonly (readonly [string, string])[], endOfStream = true, extra: object = {}): object {
  return { request_headers: { headers: headerMap(headers), end_of_stream: endOfStream }, ...extra };
}

export function responseHeaders(headers: Record<string, string> | readonly (readonly [string, string])[], endOfStream = false): object {
  return { response_headers: { headers: headerMap(headers), end_of_stream: endOfStream } };
}

export function body(kind: 'request_body' | 'response_body', data: string | Buffer, endOfStream = true): object {
  return { [kind]: { body: Buffer.isBuffer(data) ? data : Buffer.from(data), end_of_stream: endOfStream } };
}

/** The ext_authz dynamic metadata Envoy forwards (metadata_context.filter_metadata[envoy.filters.http.ext_authz]). */
export function authzMetadata(fields: Record<string, string>): object {
  return {
    metadata_context: {
      filter_metadata: [{
        key: 'envoy.filters.http.ext_authz',
        value: { fields: Object.entries(fields).map(([key, v]) => ({ key, value: { string_value: v } })) },
      }],
    },
  };
}

/** Header mutation of a response as a plain map (last set wins; appended values joined with '\n'). */
export function setHeaders(mutation: WireHeaderMutation | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of mutation?.set_headers ?? []) {
    const key = s.header?.key ?? '';
    assert(s.header?.value === undefined || s.header.value === '', `header ${key} was written to value, not raw_value`);
    const v = s.header?.raw_value?.toString('latin1') ?? '';
    out[key] = s.append?.value === true && key in out ? `${out[key]}\n${v}` : v;
  }
  return out;
}

function assert(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}
