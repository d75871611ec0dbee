// Helpers for bench/authz/run.sh.
//   node dist/bench/authz/servers.js noop PORT            a no-op Authorization/Check server (grpc-js, decode + OK)
//   node dist/bench/authz/servers.js introspection PORT   an RFC 7662 endpoint answering active for every token

import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { authorizationServiceDefinition } from '../../src/server/protos.js';

const [kind, portText = '0'] = process.argv.slice(2);
const port = Number(portText);
if (kind === 'noop') {
  const server = new grpc.Server();
  server.addService(authorizationServiceDefinition(), {
    Check(_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      callback(null, { status: { code: 0 }, ok_response: {} });
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
    if (error) throw error;
    process.stdout.write(`noop listening 127.0.0.1:${bound}\n`);
  });
} else if (kind === 'introspection') {
  createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ active: true, sub: 'svc', scope: 'read', exp: Math.floor(Date.now() / 1000) + 86400 }));
    });
  }).listen(port, '127.0.0.1', () => process.stdout.write(`introspection listening 127.0.0.1:${port}\n`));
} else {
  process.stderr.write('usage: servers.js noop|introspection PORT\n');
  process.exit(2);
}
