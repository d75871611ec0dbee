// No-op ExternalProcessor/Process server: the transport ceiling for bench/extproc. Same stack as Portcullis
// (grpc-js, the same descriptor set); every message is decoded and answered with an empty response of the matching
// type. Whatever Portcullis loses against it is spent in Portcullis.
//
// Usage: node dist/bench/extproc/noop-server.js   prints `noop-server listening 127.0.0.1:<port>`

import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { externalProcessorServiceDefinition } from '../../src/server/protos.js';

const server = new Server();
server.addService(externalProcessorServiceDefinition(), {
  Process(call: ServerDuplexStream<{ request?: string }, unknown>) {
    call.on('data', (m: { request?: string }) => {
      const kind = m.request ?? 'request_headers';
      call.write(kind.endsWith('trailers') ? { [kind]: {} } : { [kind]: { response: {} } });
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  },
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`noop-server listening 127.0.0.1:${port}\n`);
});
