import * as grpc from '@grpc/grpc-js';
import { loadEnvoyApi } from '../../src/server/protos.js';

/** The decoded RateLimitResponse, as proto-loader gives it (keepCase, enums as strings). */
export interface WireResponse {
  overall_code?: string;
  statuses?: {
    code?: string;
    current_limit?: { name?: string; requests_per_unit?: number; unit?: string };
    limit_remaining?: number;
    duration_until_reset?: { seconds?: string };
  }[];
  response_headers_to_add?: { key: string; value: string }[];
  /** google.protobuf.Struct: its map arrives as FieldsEntry { key, value } (see toStruct in the handler). */
  dynamic_metadata?: { fields?: { key: string; value: Record<string, unknown> }[] };
}

export interface RateLimitClient {
  shouldRateLimit(request: object, deadlineMs?: number): Promise<WireResponse>;
  close(): void;
}

/**
 * A real gRPC client for RateLimitService v3, built from the same patched protos as the server. `ownConnection` gives
 * it a connection of its own (grpc-js otherwise shares one between clients of the same address). `credentials`: TLS
 * (server.grpc.tls), default plaintext.
 */
export function rateLimitClient(address: string, ownConnection = false, options: { credentials?: grpc.ChannelCredentials; channelOptions?: grpc.ChannelOptions } = {}): RateLimitClient {
  const api = loadEnvoyApi() as unknown as { envoy: { service: { ratelimit: { v3: { RateLimitService: grpc.ServiceClientConstructor } } } } };
  const client = new api.envoy.service.ratelimit.v3.RateLimitService(address, options.credentials ?? grpc.credentials.createInsecure(),
    { ...(ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}), ...options.channelOptions });
  return {
    shouldRateLimit(request, deadlineMs = 5000) {
      return new Promise((resolve, reject) => {
        client.ShouldRateLimit!(request, { deadline: Date.now() + deadlineMs }, (error: grpc.ServiceError | null, response: WireResponse) =>
          error ? reject(error) : resolve(response));
      });
    },
    close: () => client.close(),
  };
}
