// No-op ExternalProcessor/Process server: the transport ceiling for bench/extproc. Same stack as Portcullis
// (grpc-js, the same descriptor set); every message is decoded and answered with a fixed response of the matching
// type: with ANSWERS_FILE ({"request_headers": base64, "response_headers": base64}, Portcullis' own answers captured
// by run.ts) those bytes, otherwise an empty response. Whatever Portcullis loses against it is spent in Portcullis.
//
// Usage: node dist/bench/extproc/noop-server.js [ANSWERS_FILE]   prints `noop-server listening 127.0.0.1:<port>`

import { readFileSync } from 'node:fs';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { externalProcessorServiceDefinition } from '../../src/server/protos.js';
import { startStreamTableRefresher } from '../../src/server/stream-tables.js';

const definition = externalProcessorServiceDefinition();
const encode = definition['Process']!.responseSerialize;
const file = process.argv[2];
const captured = file === undefined ? {} : (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>);
const answers = new Map<string, Buffer>();
const answerTo = (kind: string): Buffer => {
  let bytes = answers.get(kind);
  if (bytes === undefined) {
    const replay = captured[kind];
    bytes = replay !== undefined ? Buffer.from(replay, 'base64') : encode(kind.endsWith('trailers') ? { [kind]: {} } : { [kind]: { response: {} } });
    answers.set(kind, bytes);
  }
  return bytes;
};

const server = new Server();
server.addService(definition, {
  Process(call: ServerDuplexStream<{ request?: string }, unknown>) {
    call.on('data', (m: { request?: string }) => call.write(answerTo(m.request ?? 'request_headers')));
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
