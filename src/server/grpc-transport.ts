import type { ChannelOptions } from '@grpc/grpc-js';
import { number } from '../config/schema.js';

/**
 * Per-connection bounds of the gRPC server's HTTP/2 transport (`server.grpc` in portcullis.yaml). Node's http2 and
 * grpc-js leave two of them open by default, and a peer on the network that is not Envoy could use each to take the
 * process's memory (test/integration/server/h2-abuse.test.ts, docs/tuning.md "HTTP/2 transport bounds"):
 * - streams: Node advertises no SETTINGS_MAX_CONCURRENT_STREAMS, so HEADERS that never end held ~10 KB each for
 *   ever: 80,000 of them on 4 connections took RSS from 132 MB to 899 MB, and it stayed there;
 * - session memory: grpc-js turns Node's per-session cap off, so a client that opened its window to nothing and
 *   asked for 1 MiB cache hits had 2 GB of replies queued on 2 connections (and the well-behaved client's calls
 *   timed out behind the allocation).
 * Keepalive closes a connection whose peer no longer answers PINGs (one that stopped reading), freeing what it held.
 */
export interface GrpcTransportLimits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: open streams per connection; past it nghttp2 ends the connection. */
  readonly maxConcurrentStreams: number;
  /** Node's maxSessionMemory: past it a connection's new streams are refused (ENHANCE_YOUR_CALM). */
  readonly maxSessionMemoryMb: number;
  /** A PING every so often on every connection... */
  readonly keepaliveTimeMs: number;
  /** ...and the connection is closed when its answer takes longer than this. */
  readonly keepaliveTimeoutMs: number;
}

/**
 * The shipped gateway's portcullis cluster allows 1024 streams per connection and 1024 requests in all
 * (src/gateway/envoy-bootstrap.ts): a limit of 1024 never holds it back, and an Envoy allowed more opens another
 * connection once a connection is full instead of failing the call. 32 MiB is far above what a reading peer queues:
 * 300 concurrent 1 MiB cache hits and a 60 MiB ext_proc body on one connection passed under a 16 MiB cap.
 */
export const DEFAULT_GRPC_TRANSPORT_LIMITS: GrpcTransportLimits = Object.freeze({
  maxConcurrentStreams: 1024,
  maxSessionMemoryMb: 32,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
});

const d = DEFAULT_GRPC_TRANSPORT_LIMITS;
/** The `server.grpc` keys besides `address`. */
export const grpcTransportFields = {
  max_concurrent_streams: number(d.maxConcurrentStreams, { min: 1, integer: true }),
  max_session_memory_mb: number(d.maxSessionMemoryMb, { min: 1, max: 65_536, integer: true }),
  keepalive_time_ms: number(d.keepaliveTimeMs, { min: 1000, integer: true }),
  keepalive_timeout_ms: number(d.keepaliveTimeoutMs, { min: 1000, max: 600_000, integer: true }),
};

export function grpcTransportLimits(raw: { readonly [K in keyof typeof grpcTransportFields]: number }): GrpcTransportLimits {
  return {
    maxConcurrentStreams: raw.max_concurrent_streams,
    maxSessionMemoryMb: raw.max_session_memory_mb,
    keepaliveTimeMs: raw.keepalive_time_ms,
    keepaliveTimeoutMs: raw.keepalive_timeout_ms,
  };
}

/** The grpc-js Server options for these limits and the largest message a call may bring in (undefined: grpc-js' 4 MiB). */
export function grpcServerOptions(limits: GrpcTransportLimits, maxReceiveMessageBytes: number | undefined): ChannelOptions {
  return {
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc-node.max_session_memory': limits.maxSessionMemoryMb,
    'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    // ext_proc BUFFERED bodies travel in one message; grpc-js refuses anything over 4 MiB by default.
    ...(maxReceiveMessageBytes === undefined ? {} : { 'grpc.max_receive_message_length': maxReceiveMessageBytes }),
  };
}
