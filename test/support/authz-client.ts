import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi } from '../../src/server/protos.js';

type HeaderOption = { header?: { key?: string; value?: string }; append?: { value?: boolean } };

/** The decoded CheckResponse (proto-loader, keepCase). */
export interface WireCheckResponse {
  status?: { code?: number; message?: string };
  http_response?: string;
  ok_response?: { headers?: HeaderOption[]; headers_to_remove?: string[]; query_parameters_to_remove?: string[] };
  denied_response?: { status?: { code?: string | number }; headers?: HeaderOption[]; body?: string };
  dynamic_metadata?: { fields?: { key: string; value: { string_value?: string } }[] };
}

export interface CheckArgs {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  sourceAddress?: string;
  principal?: string;
  context?: Record<string, string>;
}

export interface AuthzClient {
  check(args: CheckArgs, deadlineMs?: number): Promise<WireCheckResponse>;
  close(): void;
}

/** A real gRPC client for envoy.service.auth.v3.Authorization, shaped like Envoy's CheckRequest. */
export function authzClient(address: string): AuthzClient {
  const api = loadEnvoyApi() as unknown as { envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } } };
  const client = new api.envoy.service.auth.v3.Authorization(address, grpc.credentials.createInsecure());
  return {
    check(args, deadlineMs = 5000) {
      const headers = { ':method': args.method ?? 'GET', ':path': args.path, ':authority': 'api.test', ...(args.headers ?? {}) };
      const request = {
        attributes: {
          source: { address: { socket_address: { address: args.sourceAddress ?? '127.0.0.1', port_value: 40000 } }, principal: args.principal ?? '' },
          request: { http: { id: '42', method: args.method ?? 'GET', path: args.path, host: 'api.test', headers: Object.entries(headers).map(([key, value]) => ({ key, value })) } },
          context_extensions: Object.entries(args.context ?? {}).map(([key, value]) => ({ key, value })),
        },
      };
      return new Promise((resolve, reject) => {
        client.Check!(request, { deadline: Date.now() + deadlineMs }, (error: grpc.ServiceError | null, response: WireCheckResponse) => (error ? reject(error) : resolve(response)));
      });
    },
    close: () => client.close(),
  };
}

/** Header name → value of a HeaderValueOption list. */
export function headerMap(options: HeaderOption[] | undefined): Record<string, string> {
  return Object.fromEntries((options ?? []).map((o) => [o.header?.key ?? '', o.header?.value ?? '']));
}

export function metadataOf(response: WireCheckResponse): Record<string, string> {
  return Object.fromEntries((response.dynamic_metadata?.fields ?? []).map((f) => [f.key, f.value.string_value ?? '']));
}
