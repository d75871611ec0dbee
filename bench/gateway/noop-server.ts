// The transport ceiling for bench:gateway: one grpc-js server with all three services Envoy's filters call, each
// answering without any work. Check allows with an empty OkHttpResponse, ShouldRateLimit answers OK per descriptor,
// Process answers every message with an empty response of its kind, and the request headers with response_header_mode
// SKIP, as Portcullis answers a route with nothing to do on its response (the shipped extproc config). Same stack as
// Portcullis (grpc-js, the same descriptor set, in its own process); what Envoy plus this server cost is what the
// chain costs before Portcullis does anything. Envoy does a little less with these answers than with Portcullis' (no
// identity headers to set, no dynamic metadata), so the ceiling it gives is, if anything, high.
//
// Usage: node dist/bench/gateway/noop-server.js   prints `noop-server listening 127.0.0.1:<port>`

import { Server, ServerCredentials, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall } from '@grpc/grpc-js';
import { authorizationServiceDefinition, externalProcessorServiceDefinition, rateLimitServiceDefinition } from '../../src/server/protos.js';
import { startStreamTableRefresher } from '../../src/server/stream-tables.js';

const authz = authorizationServiceDefinition();
const ratelimit = rateLimitServiceDefinition();
const extproc = externalProcessorServiceDefinition();

// Encoded once: the services' serializers send a Buffer as is.
const allow = authz['Check']!.responseSerialize({ status: { code: 0 }, ok_response: {} });
const okFor = new Map<number, Buffer>();
const rateLimitOk = (descriptors: number): Buffer => {
  let bytes = okFor.get(descriptors);
  if (bytes === undefined) {
    bytes = ratelimit['ShouldRateLimit']!.responseSerialize({ overall_code: 1, statuses: Array.from({ length: descriptors }, () => ({ code: 1 })) });
    okFor.set(descriptors, bytes);
  }
  return bytes;
};
const processAnswers = new Map<string, Buffer>();
const processAnswer = (kind: string): Buffer => {
  let bytes = processAnswers.get(kind);
  if (bytes === undefined) {
    bytes = extproc['Process']!.responseSerialize(kind.endsWith('trailers') ? { [kind]: {} } : {
      [kind]: { response: {} },
      ...(kind === 'request_headers' ? { mode_override: { response_header_mode: 'SKIP' } } : {}),
    });
    processAnswers.set(kind, bytes);
  }
  return bytes;
};

const server = new Server();
server.addService(authz, {
  Check(_call: ServerUnaryCall<unknown, Buffer>, callback: sendUnaryData<Buffer>) {
    callback(null, allow);
  },
});
server.addService(ratelimit, {
  ShouldRateLimit(call: ServerUnaryCall<{ descriptors?: unknown[] }, Buffer>, callback: sendUnaryData<Buffer>) {
    callback(null, rateLimitOk(call.request.descriptors?.length ?? 0));
  },
});
server.addService(extproc, {
  Process(call: ServerDuplexStream<{ request?: string }, Buffer>) {
    call.on('data', (m: { request?: string }) => call.write(processAnswer(m.request ?? 'request_headers')));
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  },
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  // The transport Portcullis runs (src/server/grpc-server.ts), so the ceiling is the same stack.
  startStreamTableRefresher(server);
  process.stdout.write(`noop-server listening 127.0.0.1:${port}\n`);
});
process.on('SIGTERM', () => server.forceShutdown());
