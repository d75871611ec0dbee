// No-op envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit server: the transport
// ceiling for the rate-limit benchmark (bench/ratelimit/run.sh).
//
// It runs the same stack Portcullis does (@grpc/grpc-js + @grpc/proto-loader, the real
// rls.proto from @grpc/grpc-js-xds's vendored envoy-api), fully decodes every request,
// and answers OK with one OK status per descriptor — no config lookup, no counters, no store.
// Whatever Portcullis loses against this number is spent in Portcullis itself.
//
// Deliberately independent of src/ (loads the proto itself rather than through
// src/server/protos.ts: see rls-proto.ts) so it builds and runs whatever state src/ is in.
// So it also lacks src/server/stream-tables.ts, which Portcullis' gRPC server runs: after its first mark-compact,
// its scavenges promote nearly every finished call and Portcullis' do not (docs/benchmarks.md, "The stream table").
// The Go peer is the comparison that counts.
//
// Usage: node dist/bench/ratelimit/noop-server.js [port]     (or NOOP_PORT=<port>; 0 = any)
// Binds 127.0.0.1 only and prints `noop-server listening 127.0.0.1:<port>` on stdout.
// TLS when BENCH_TLS_SERVER_CERT and BENCH_TLS_SERVER_KEY name PEM files (run.sh's BENCH_TLS); with
// BENCH_TLS_CLIENT_CERT also set, client certificates signed by BENCH_TLS_CA are required (mTLS).

import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadRateLimitService } from './rls-proto.js';

interface Descriptor {
  entries?: Array<{ key?: string; value?: string }>;
}

interface RateLimitRequest {
  domain?: string;
  descriptors?: Descriptor[];
  hits_addend?: number;
}

interface DescriptorStatus {
  code: 'OK';
}

interface RateLimitResponse {
  overall_code: 'OK';
  statuses: DescriptorStatus[];
}

function parsePort(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 0;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid port: ${raw}`);
  }
  return port;
}

/** Plaintext, or TLS / mTLS as run.sh's BENCH_TLS asks through the environment. */
function credentials(): grpc.ServerCredentials {
  const cert = process.env['BENCH_TLS_SERVER_CERT'];
  const key = process.env['BENCH_TLS_SERVER_KEY'];
  if (!cert || !key) return grpc.ServerCredentials.createInsecure();
  const mutual = Boolean(process.env['BENCH_TLS_CLIENT_CERT']);
  const ca = mutual ? readFileSync(process.env['BENCH_TLS_CA'] ?? '') : null;
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(cert), private_key: readFileSync(key) }], mutual);
}

function main(): void {
  const port = parsePort(process.argv[2] ?? process.env['NOOP_PORT']);
  const server = new grpc.Server();
  server.addService(loadRateLimitService().service, {
    ShouldRateLimit(
      call: grpc.ServerUnaryCall<RateLimitRequest, RateLimitResponse>,
      callback: grpc.sendUnaryData<RateLimitResponse>,
    ): void {
      const descriptors = call.request.descriptors ?? [];
      const statuses: DescriptorStatus[] = new Array<DescriptorStatus>(descriptors.length);
      for (let i = 0; i < descriptors.length; i++) statuses[i] = { code: 'OK' };
      callback(null, { overall_code: 'OK', statuses });
    },
  });

  server.bindAsync(`127.0.0.1:${port}`, credentials(), (err, bound) => {
    if (err) {
      console.error(`noop-server: bind failed: ${err.message}`);
      process.exit(1);
    }
    console.log(`noop-server listening 127.0.0.1:${bound}`);
  });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => server.forceShutdown(), 2000);
    force.unref();
    server.tryShutdown(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
