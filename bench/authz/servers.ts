// Helpers for bench/authz/run.sh.
//   node dist/bench/authz/servers.js noop PORT [LIKE_ADDR] [verify]
//                                                         a no-op Authorization/Check server (grpc-js, decode + a fixed
//                                                         answer: Portcullis' own for that route with LIKE_ADDR, else OK);
//                                                         with `verify`, one raw RS256 verify per call before it answers:
//                                                         #5's bound, 1/(no-op call + verify), as a server that runs it
//   node dist/bench/authz/servers.js introspection PORT   an RFC 7662 endpoint answering active for every token
//   node dist/bench/authz/servers.js allows ADDR DATA_FILE exits 0 only if ADDR allows the data file's first request:
//                                                         ghz counts a denial as an OK call, so a server that
//                                                         denies everything (a broken config) would look fast

import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { createServer } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { authorizationServiceDefinition } from '../../src/server/protos.js';
import { startStreamTableRefresher } from '../../src/server/stream-tables.js';
import { readCheckRequests } from './messages.js';

const [kind, portText = '0'] = process.argv.slice(2);
const port = Number(portText);
if (kind === 'noop') {
  // With LIKE_ADDR, each answer is the bytes Portcullis at LIKE_ADDR gave to the first request whose path has the same
  // first segment (/key, /jwt, /opaque): both servers then send the same bytes, and the load generator, which shares
  // the machine, spends the same CPU decoding them. Requests are still decoded as Portcullis decodes them.
  const like = process.argv[4];
  // With `verify`, the verify prepare.ts times for the bound: 400 bytes, a 2048-bit key.
  const rsa = process.argv[5] === 'verify' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : undefined;
  const signed = Buffer.from('x'.repeat(400));
  const signature = rsa === undefined ? undefined : sign('sha256', signed, rsa.privateKey);
  const check = authorizationServiceDefinition()['Check']!;
  const client = like === undefined ? undefined : new grpc.Client(like, grpc.credentials.createInsecure());
  const replies = new Map<string, Buffer>();
  const pending = new Map<string, Promise<Buffer>>();
  const replay = (raw: Buffer, segment: string): Promise<Buffer> => {
    let reply = pending.get(segment);
    if (reply === undefined) {
      reply = new Promise<Buffer>((resolve, reject) => {
        client!.makeUnaryRequest<Buffer, Buffer>(check.path, (b) => b, (b) => b, raw, (error, bytes) => (error || !bytes ? reject(error) : resolve(bytes)));
      }).then((bytes) => (replies.set(segment, bytes), bytes));
      pending.set(segment, reply);
    }
    return reply;
  };
  const minimal = check.responseSerialize({ status: { code: 0 }, ok_response: {} });
  type Request = { raw: Buffer; decoded: { attributes?: { request?: { http?: { path?: string } } } } };
  const server = new grpc.Server();
  server.addService({
    Check: {
      ...check,
      // The service's serializer sends an encoded answer (a Buffer) as is.
      requestDeserialize: (raw: Buffer): Request => ({ raw, decoded: check.requestDeserialize(raw) as Request['decoded'] }),
    },
  }, {
    Check(call: grpc.ServerUnaryCall<Request, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
      if (rsa !== undefined && !verify('sha256', signed, rsa.publicKey, signature!)) return callback(new Error('the bench signature does not verify'));
      if (client === undefined) return callback(null, minimal);
      const segment = (call.request.decoded.attributes?.request?.http?.path ?? '').split('/')[1] ?? '';
      const reply = replies.get(segment);
      if (reply !== undefined) return callback(null, reply);
      replay(call.request.raw, segment).then((bytes) => callback(null, bytes), (error: Error) => callback(error));
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
    if (error) throw error;
    // The transport Portcullis runs (src/server/grpc-server.ts), so the ceiling is the same stack.
    startStreamTableRefresher(server);
    process.stdout.write(`noop listening 127.0.0.1:${bound}${like ? `, answering like ${like}` : ''}${rsa ? ', one RS256 verify per call' : ''}\n`);
  });
} else if (kind === 'introspection') {
  createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ active: true, sub: 'svc', scope: 'read', exp: Math.floor(Date.now() / 1000) + 86400 }));
    });
  }).listen(port, '127.0.0.1', () => process.stdout.write(`introspection listening 127.0.0.1:${port}\n`));
} else if (kind === 'allows') {
  const [addr = '', dataFile = ''] = process.argv.slice(3);
  const check = authorizationServiceDefinition()['Check']!;
  const message = readCheckRequests(dataFile)[0];
  const client = new grpc.Client(addr, grpc.credentials.createInsecure());
  client.makeUnaryRequest<unknown, { status?: { code?: number; message?: string } }>(check.path, check.requestSerialize, check.responseDeserialize, message, (error, answer) => {
    const code = answer?.status?.code ?? 0;
    if (error || code !== 0) {
      process.stderr.write(`bench: ${addr} does not allow ${dataFile}: ${error?.message ?? answer?.status?.message}\n`);
      process.exit(1);
    }
    process.exit(0);
  });
} else {
  process.stderr.write('usage: servers.js noop PORT [LIKE_ADDR] [verify] | introspection PORT | allows ADDR DATA_FILE\n');
  process.exit(2);
}
