// `portcullis serve` as operators run it (a child process): what it says when something outside is wrong.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PORTCULLIS_NODE_FLAGS } from '../../../src/server/node-flags.js';
import { NODE_24_V8_FLAGS } from '../../../src/server/node-version.js';
import { runCommand } from '../../support/envoy.js';
import { portcullisBin, startPortcullis, writeConfig } from '../../support/portcullis.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';
import { eventually } from '../../support/app.js';

const descriptors = mkdtempSync(path.join(tmpdir(), 'portcullis-cli-'));
writeFileSync(path.join(descriptors, 'd.yaml'), 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n');
after(() => rmSync(descriptors, { recursive: true, force: true }));

describe('portcullis serve: operator errors', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis({ args: ['--requirepass', 'right-password'] });
  });
  after(async () => {
    await redis.stop();
  });

  it('exits 1 with one line naming the address when the port is in use, no stack trace', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    const { file, dir } = writeConfig({ server: { grpc: { address: `127.0.0.1:${port}` }, admin: { address: '127.0.0.1:0' } }, ratelimit: { descriptors } });
    try {
      const result = await runCommand(process.execPath, [portcullisBin(), 'serve', '--config', file]);
      assert.equal(result.code, 1, result.output);
      const lines = result.output.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
      assert.equal(lines.length, 1, result.output);
      assert.match(lines[0] ?? '', new RegExp(`^portcullis: cannot listen on 127\\.0\\.0\\.1:${port} \\(gRPC\\): address already in use$`));
      assert.doesNotMatch(result.output, /^\s+at /m);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const wrong = [
    { name: 'in the user info', url: (port: number) => `redis://:wrong-s3cret@127.0.0.1:${port}/0` },
    { name: 'as a ?password= query parameter', url: (port: number) => `redis://127.0.0.1:${port}/0?password=wrong-s3cret` },
  ];
  for (const w of wrong) {
    it(`logs a wrong Redis password given ${w.name} once, and shows it nowhere`, async () => {
      const p = await startPortcullis({ server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, redis: { url: w.url(redis.port) }, ratelimit: { descriptors } });
      try {
        const failed = () => p.logs().filter((l) => l['msg'] === 'redis connection failed');
        await eventually(() => failed().length > 0, 5000, 'the redis error in the log');
        await new Promise((r) => setTimeout(r, 1500)); // several reconnect attempts
        // Once for each client (the counter store, the ext_proc cache), named.
        assert.deepEqual(failed().map((l) => l['client']).sort(), ['counter store', 'extproc cache'], JSON.stringify(failed()));
        for (const line of failed()) assert.match(String(line['reason']), /WRONGPASS|password|AUTH/i);
        const config = await (await fetch(`${p.adminUrl}/config`)).text();
        assert.ok(!config.includes('wrong-s3cret'), config);
        assert.ok(!p.output().includes('wrong-s3cret'), 'the password is in the log');
      } finally {
        await p.stop();
      }
    });
  }
});

describe('portcullis serve: its log reader gone', () => {
  it('SIGTERM still drains and exits 0 when nothing reads stdout any more (EPIPE)', async () => {
    const { file } = writeConfig({ server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, shutdown_timeout_ms: 1000 }, ratelimit: { descriptors } });
    const child = spawn(process.execPath, [portcullisBin(), 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
      await eventually(() => out.includes('portcullis listening'), 10_000, 'portcullis listening');
      child.stdout.destroy(); // a log shipper that died: every later write to stdout fails with EPIPE
      child.kill('SIGTERM');
      // pino's exit hook used to retry its synchronous write of the last lines forever.
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 8000))]);
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('portcullis serve: signals', () => {
  it('reloads on SIGHUP (a single process), instead of dying of it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-hup-'));
    const file = path.join(dir, 'd.yaml');
    writeFileSync(file, 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n');
    // No file watching: only the signal can make it reload.
    const p = await startPortcullis({ server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, ratelimit: { descriptors: dir, reload: { enabled: false } } });
    try {
      writeFileSync(file, 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 7 }\n');
      process.kill(p.pid!, 'SIGHUP');
      await eventually(async () => (await (await fetch(`${p.adminUrl}/rlconfig`)).text()).includes('requests_per_unit=7'), 5000, 'the new limit after SIGHUP');
      assert.ok(p.logs().some((l) => l['msg'] === 'SIGHUP: reloading the config'));
      assert.equal((await fetch(`${p.adminUrl}/healthz`)).status, 200);
    } finally {
      assert.equal(await p.stop(), 0, p.output());
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('portcullis serve: the Node flags it runs with', () => {
  // The shebang is what `npx portcullis` and a direct ./bin/portcullis.js run; plain `node bin/portcullis.js` skips it.
  const cases: [string, string[], readonly string[]][] = [
    ['the bin run directly (its shebang)', [portcullisBin()], PORTCULLIS_NODE_FLAGS],
    ['`node bin/portcullis.js`', [process.execPath, portcullisBin()], []],
  ];
  for (const [name, command, expected] of cases) {
    it(`${name}: the "portcullis listening" line says ${JSON.stringify(expected)}`, async () => {
      const { file } = writeConfig({ server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, ratelimit: { descriptors } });
      const child = spawn(command[0]!, [...command.slice(1), 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'ignore'] });
      try {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        // Whole lines only: a chunk may end inside one.
        const listening = (): Record<string, unknown> | undefined => out.slice(0, out.lastIndexOf('\n')).split('\n')
          .filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
          .find((line) => line['msg'] === 'portcullis listening');
        await eventually(() => listening() !== undefined, 10_000, 'portcullis listening');
        assert.deepEqual(listening()?.['nodeFlags'], expected);
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});

describe('portcullis serve: the V8 flags a Node release needs', () => {
  // process.version as Node 24.22.3 or 22.23.5 would report it (a preload), whatever Node runs the tests: the flags
  // are set (this Node's V8 has them too) and said once, or not at all.
  const cases: [version: string, flagged: boolean][] = [['v24.22.3', true], ['v22.23.5', false]];
  for (const [version, flagged] of cases) {
    it(`${version}: ${flagged ? NODE_24_V8_FLAGS.join(' ') + ' set, and said once at start-up' : 'none set'}`, async () => {
      const p = await startPortcullis(
        { server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } }, ratelimit: { descriptors }, log: { level: 'info' } },
        { nodeArgs: ['--import', `data:text/javascript,Object.defineProperty(process,"version",{value:"${version}"})`] },
      );
      try {
        const said = p.logs().filter((l) => l['msg'] === 'V8 flags set for this Node release');
        assert.equal(said.length, flagged ? 1 : 0, p.output());
        if (flagged) {
          assert.equal(said[0]!['node'], version);
          assert.deepEqual(said[0]!['v8Flags'], NODE_24_V8_FLAGS);
        }
      } finally {
        assert.equal(await p.stop(), 0, p.output());
      }
    });
  }
});
