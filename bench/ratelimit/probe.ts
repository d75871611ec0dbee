// Tiny ShouldRateLimit client for bench/ratelimit/run.sh: readiness wait and sanity checks.
// Same proto loading as noop-server.ts (the real rls.proto vendored by @grpc/grpc-js-xds).
//
// Usage:
//   node dist/bench/ratelimit/probe.js <host:port> <domain> <key=value>[,<key=value>...] [count] [wait-ms]
// Sends <count> (default 1) sequential requests with one descriptor made of the given entries,
// retrying the first one for up to <wait-ms> (default 0) while the server is not up yet.
// Prints one JSON line: {"overall":["OK","OK","OVER_LIMIT",...],"statuses":[[...],...]}.
// Exits 1 on any gRPC error. TLS when BENCH_TLS_CA names a CA file (run.sh's BENCH_TLS), presenting
// BENCH_TLS_CLIENT_CERT / BENCH_TLS_CLIENT_KEY when set (mTLS).

import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadRateLimitService } from './rls-proto.js';

interface RateLimitResponse {
  overall_code: string;
  statuses: Array<{ code: string }>;
}

type Client = grpc.Client & {
  ShouldRateLimit(
    request: unknown,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null, response?: RateLimitResponse) => void,
  ): grpc.ClientUnaryCall;
};

function call(client: Client, request: unknown): Promise<RateLimitResponse> {
  return new Promise((resolve, reject) => {
    client.ShouldRateLimit(request, { deadline: Date.now() + 5000 }, (err, response) => {
      if (err) reject(err);
      else if (!response) reject(new Error('empty response'));
      else resolve(response);
    });
  });
}

function channelCredentials(): grpc.ChannelCredentials {
  const ca = process.env['BENCH_TLS_CA'];
  if (!ca) return grpc.credentials.createInsecure();
  const cert = process.env['BENCH_TLS_CLIENT_CERT'];
  const key = process.env['BENCH_TLS_CLIENT_KEY'];
  return cert && key
    ? grpc.credentials.createSsl(readFileSync(ca), readFileSync(key), readFileSync(cert))
    : grpc.credentials.createSsl(readFileSync(ca));
}

async function main(): Promise<void> {
  const [target, domain, entriesArg, countArg, waitArg] = process.argv.slice(2);
  if (!target || !domain || !entriesArg) {
    console.error('usage: probe.js <host:port> <domain> <key=value>[,...] [count] [wait-ms]');
    process.exit(2);
  }
  const entries = entriesArg.split(',').map((kv) => {
    const i = kv.indexOf('=');
    return i < 0 ? { key: kv, value: '' } : { key: kv.slice(0, i), value: kv.slice(i + 1) };
  });
  const count = Number(countArg ?? '1');
  const waitUntil = Date.now() + Number(waitArg ?? '0');
  const Ctor = loadRateLimitService();
  // The test certificate names localhost (and 127.0.0.1): an IP as the TLS server name draws a Node warning.
  const client = new Ctor(target, channelCredentials(), process.env['BENCH_TLS_CA'] ? { 'grpc.ssl_target_name_override': 'localhost' } : {}) as unknown as Client;
  const request = { domain, descriptors: [{ entries }] };

  const overall: string[] = [];
  const statuses: string[][] = [];
  for (let i = 0; i < count; i++) {
    let response: RateLimitResponse;
    for (;;) {
      try {
        response = await call(client, request);
        break;
      } catch (err) {
        const code = (err as grpc.ServiceError).code;
        if (i === 0 && code === grpc.status.UNAVAILABLE && Date.now() < waitUntil) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        throw err;
      }
    }
    overall.push(response.overall_code);
    statuses.push(response.statuses.map((s) => s.code));
  }
  client.close();
  console.log(JSON.stringify({ overall, statuses }));
}

main().catch((err: unknown) => {
  console.error(`probe: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
