import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { types } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { refreshStreamTable, startStreamTableRefresher } from '../../../src/server/stream-tables.js';

/** The Map the module replaces, read the way it finds it. */
function streamsOf(session: object): Map<number, unknown> {
  const symbol = Object.getOwnPropertySymbols(session).find((s) => s.description === 'state');
  assert.ok(symbol, 'an Http2Session has a symbol-keyed state (Node changed its http2 core?)');
  const streams = (session as Record<symbol, { streams: unknown } | undefined>)[symbol]?.streams;
  assert.ok(types.isMap(streams));
  return streams as Map<number, unknown>;
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('refreshStreamTable on a real node:http2 session', () => {
  it('swaps in a copy while streams are open, and the session carries on: bodies, responses, new streams, close', async () => {
    const server = http2.createServer();
    const pending: { stream: http2.ServerHttp2Stream; body: Promise<string> }[] = [];
    const arrived: (() => void)[] = [];
    let serverSession: http2.ServerHttp2Session | undefined;
    server.on('session', (session) => (serverSession = session));
    server.on('stream', (stream) => {
      const body = new Promise<string>((resolve) => {
        let text = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (text += chunk));
        stream.on('end', () => resolve(text));
      });
      pending.push({ stream, body });
      arrived.shift()?.();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const request = (): { req: http2.ClientHttp2Stream; reply: Promise<string> } => {
        const req = client.request({ ':method': 'POST', ':path': '/' });
        const reply = new Promise<string>((resolve, reject) => {
          let text = '';
          req.setEncoding('utf8');
          req.on('data', (chunk: string) => (text += chunk));
          req.on('end', () => resolve(text));
          req.on('error', reject);
        });
        return { req, reply };
      };
      const arrivals = (n: number) => Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve) => arrived.push(resolve))));
      const before = arrivals(3);
      const open = [request(), request(), request()];
      for (const [i, { req }] of open.entries()) req.write(`first half of ${i}, `);
      await before;
      assert.ok(serverSession);
      const old = streamsOf(serverSession);
      assert.equal(old.size, 3);

      assert.equal(refreshStreamTable(serverSession), true);
      const fresh = streamsOf(serverSession);
      assert.notEqual(fresh, old);
      assert.equal(fresh.constructor, old.constructor);
      assert.deepEqual([...fresh.keys()], [...old.keys()]);

      // The rest of each body, and one more stream, all after the swap.
      for (const [i, { req }] of open.entries()) req.end(`second half of ${i}`);
      const later = arrivals(1);
      const extra = request();
      extra.req.end('after the swap');
      await later;
      assert.equal(streamsOf(serverSession).size, 4);
      const bodies = await Promise.all(pending.map(async ({ stream, body }) => {
        const text = await body;
        stream.respond({ ':status': 200 });
        stream.end(`echo ${text}`);
        return text;
      }));
      assert.deepEqual(bodies, ['first half of 0, second half of 0', 'first half of 1, second half of 1', 'first half of 2, second half of 2', 'after the swap']);
      assert.deepEqual(await Promise.all([...open, extra].map((r) => r.reply)), bodies.map((b) => `echo ${b}`));
      await wait(20);
      assert.equal(streamsOf(serverSession).size, 0, 'finished streams leave the new table');

      // A session only closes once its table is empty: the swapped table must still be the one it counts.
      const closed = new Promise<void>((resolve) => serverSession?.once('close', () => resolve()));
      client.close();
      await closed;
    } finally {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('leaves alone an object that is not shaped like a session', () => {
    assert.equal(refreshStreamTable({}), false);
    const notAMap = { streams: [1, 2] };
    const lookalike = { [Symbol('state')]: notAMap };
    assert.equal(refreshStreamTable(lookalike), false);
    assert.deepEqual(notAMap.streams, [1, 2]);
  });
});

const holdService: grpc.ServiceDefinition = {
  hold: {
    path: '/portcullis.test.Hold/Hold',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

describe('startStreamTableRefresher on a grpc-js Server', () => {
  it("replaces each live session's table every interval while calls are in flight, and the calls complete", async () => {
    const held: (() => void)[] = [];
    const server = new grpc.Server();
    server.addService(holdService, {
      hold: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => held.push(() => callback(null, Buffer.from('done'))),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
    const refresher = startStreamTableRefresher(server, 10);
    const Client = grpc.makeGenericClientConstructor(holdService, 'Hold');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const calls = Array.from({ length: 5 }, () => new Promise<Buffer>((resolve, reject) =>
        client['hold']!(Buffer.from('x'), (error: Error | null, reply: Buffer) => (error ? reject(error) : resolve(reply)))));
      while (held.length < 5) await wait(5);
      const sessions = [...(server as unknown as { http2Servers: Map<unknown, { sessions: Set<object> }> }).http2Servers.values()]
        .flatMap((info) => [...info.sessions]);
      assert.equal(sessions.length, 1);
      const first = streamsOf(sessions[0]!);
      assert.equal(first.size, 5);
      await wait(40);
      const second = streamsOf(sessions[0]!);
      assert.notEqual(second, first, 'the table was replaced');
      assert.equal(second.size, 5);
      assert.equal(refresher.active, true);
      for (const release of held) release();
      assert.deepEqual((await Promise.all(calls)).map(String), ['done', 'done', 'done', 'done', 'done']);
    } finally {
      refresher.stop();
      client.close();
      server.forceShutdown();
    }
  });

  it('is inactive, and touches nothing, when the server does not keep its sessions where it looks', () => {
    const refresher = startStreamTableRefresher({} as grpc.Server);
    assert.equal(refresher.active, false);
    refresher.stop();
  });
});
