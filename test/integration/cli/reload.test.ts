// Hot reload of a real `portcullis serve`, with the files changed the way deployments change them. The poll is set to
// an hour wherever the test is about what the watches see: a change the watches miss then fails the test instead of
// arriving a poll later.

import assert from 'node:assert/strict';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify as stringifyYaml } from 'yaml';
import { eventually } from '../../support/app.js';
import { hostileVersions, mutate } from '../../support/config-mutations.js';
import { prng } from '../../support/prng.js';
import { startPortcullis, type PortcullisInstance } from '../../support/portcullis.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';

const HOUR_MS = 3_600_000;
const limit = (domain: string, perMinute: number): string =>
  `domain: ${domain}\ndescriptors:\n  - key: user\n    rate_limit: { unit: minute, requests_per_unit: ${perMinute} }\n`;
const tempDir = (prefix: string): string => mkdtempSync(path.join(tmpdir(), prefix));

/**
 * `mv tmp file`, as vim (writebackup), sed -i and most tools that write safely save a file. The temp file is a dot
 * file, as an editor's is: a descriptor directory reads every other file in it, one caught halfway written included.
 */
function renameOver(file: string, text: string | Buffer): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  writeFileSync(temp, text);
  renameSync(temp, file);
}

let versions = 0;
/**
 * What the kubelet does to a ConfigMap volume (AtomicWriter): the files go to a new `..<timestamp>` directory,
 * `..data` is swapped to it by a rename, each file is a link `name -> ..data/name`, and the old directory is deleted.
 */
function configMapWrite(dir: string, files: Readonly<Record<string, string>>): void {
  mkdirSync(dir, { recursive: true });
  const version = `..2026_12_06_20_00_${String(++versions).padStart(4, '0')}`;
  mkdirSync(path.join(dir, version));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, version, name), text);
  let old: string | undefined;
  try {
    old = readlinkSync(path.join(dir, '..data'));
  } catch {
    old = undefined;
  }
  symlinkSync(version, path.join(dir, '..data_tmp'));
  renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  for (const name of Object.keys(files)) {
    try {
      symlinkSync(`..data/${name}`, path.join(dir, name));
    } catch {
      // The link is there from an earlier version.
    }
  }
  if (old !== undefined) rmSync(path.join(dir, old), { recursive: true, force: true });
}

const rlconfig = async (p: PortcullisInstance): Promise<string> => (await fetch(`${p.adminUrl}/rlconfig`)).text();
const timeoutMs = async (p: PortcullisInstance): Promise<number> =>
  ((await (await fetch(`${p.adminUrl}/config`)).json()) as { ratelimit: { timeoutMs: number } }).ratelimit.timeoutMs;

describe('hot reload: what the watches see, edit after edit (the poll set to an hour)', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('a descriptor file and portcullis.yaml replaced by rename, three times each', async () => {
    const descriptors = tempDir('portcullis-rename-');
    dirs.push(descriptors);
    const file = path.join(descriptors, 'd.yaml');
    writeFileSync(file, limit('d', 1));
    const config = (timeout: number): object => ({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors, timeout_ms: timeout, reload: { poll_interval_ms: HOUR_MS } },
    });
    const p = await startPortcullis(config(100));
    try {
      for (let n = 2; n <= 4; n++) {
        renameOver(file, limit('d', n));
        await eventually(async () => (await rlconfig(p)).includes(`requests_per_unit=${n},`), 5000, `rename-over ${n} of the descriptor file`);
      }
      for (let n = 2; n <= 4; n++) {
        renameOver(p.configFile, stringifyYaml(config(100 * n)));
        await eventually(async () => (await timeoutMs(p)) === 100 * n, 5000, `rename-over ${n} of portcullis.yaml`);
      }
      // An edit in place after the renames is still seen.
      writeFileSync(file, limit('d', 5));
      await eventually(async () => (await rlconfig(p)).includes('requests_per_unit=5,'), 5000, 'an edit in place after the renames');
    } finally {
      assert.equal(await p.stop(), 0, p.output());
    }
  });

  it('a reload that names another descriptor directory watches that one from then on', async () => {
    // Each in a directory of its own: nothing else happens next to them.
    const root = tempDir('portcullis-moved-');
    dirs.push(root);
    const first = path.join(root, 'a', 'ratelimit');
    const second = path.join(root, 'b', 'ratelimit');
    mkdirSync(first, { recursive: true });
    mkdirSync(second, { recursive: true });
    writeFileSync(path.join(first, 'd.yaml'), limit('d', 1));
    writeFileSync(path.join(second, 'd.yaml'), limit('d', 2));
    const config = (descriptors: string): object => ({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors, reload: { poll_interval_ms: HOUR_MS } },
    });
    const p = await startPortcullis(config(first));
    try {
      writeFileSync(p.configFile, stringifyYaml(config(second)));
      await eventually(async () => (await rlconfig(p)).includes('requests_per_unit=2,'), 5000, 'the second directory');
      writeFileSync(path.join(second, 'd.yaml'), limit('d', 3));
      await eventually(async () => (await rlconfig(p)).includes('requests_per_unit=3,'), 5000, 'an edit in the second directory');
    } finally {
      assert.equal(await p.stop(), 0, p.output());
    }
  });

  it('portcullis.yaml, keys.yaml and the descriptors mounted as ConfigMaps, swapped three times each, relative path and another cwd', async () => {
    const root = tempDir('portcullis-configmap-');
    dirs.push(root);
    const cwd = path.join(root, 'cwd');
    mkdirSync(cwd);
    const key = (id: string): string => `- id: ${id}\n  sha256: e871ed62fe956ff06d845c92a57ad7e2826b1c1114fc44e034fce5d5edbe689e\n  owner: o\n`;
    const config = (timeout: number): string => stringifyYaml({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors: '../ratelimit', timeout_ms: timeout, reload: { poll_interval_ms: HOUR_MS } },
      authz: {
        default_policy: 'deny',
        api_keys: { header: 'x-api-key', file: './keys.yaml' },
        policies: [{ name: 'a', match: { path_prefix: '/a' }, authenticate: ['api_key'] }],
      },
    });
    configMapWrite(path.join(root, 'config'), { 'portcullis.yaml': config(100), 'keys.yaml': key('k1') });
    configMapWrite(path.join(root, 'ratelimit'), { 'd.yaml': limit('d', 1) });
    const p = await startPortcullis({}, { configFile: '../config/portcullis.yaml', cwd });
    const loads = (): number => p.logs().filter((l) => l['msg'] === 'config loaded').length;
    try {
      for (let n = 2; n <= 4; n++) {
        configMapWrite(path.join(root, 'ratelimit'), { 'd.yaml': limit('d', n) });
        await eventually(async () => (await rlconfig(p)).includes(`requests_per_unit=${n},`), 5000, `descriptors ConfigMap version ${n}`);
      }
      for (let n = 2; n <= 4; n++) {
        configMapWrite(path.join(root, 'config'), { 'portcullis.yaml': config(100 * n), 'keys.yaml': key('k1') });
        await eventually(async () => (await timeoutMs(p)) === 100 * n, 5000, `portcullis.yaml ConfigMap version ${n}`);
      }
      for (let n = 2; n <= 4; n++) {
        const before = loads();
        configMapWrite(path.join(root, 'config'), { 'portcullis.yaml': config(400), 'keys.yaml': key(`k${n}`) });
        await eventually(() => loads() > before, 5000, `keys.yaml ConfigMap version ${n}`);
      }
      assert.equal(p.logs().filter((l) => l['msg'] === 'config rejected; keeping the last good config').length, 0, p.output());
    } finally {
      assert.equal(await p.stop(), 0, p.output());
    }
  });
});

describe('hot reload: a file caught halfway through its write', () => {
  it('is not applied: a descriptor file truncated, cut at a line boundary, then completed (ratelimit.reload.settle_ms)', async () => {
    const descriptors = tempDir('portcullis-settle-');
    const file = path.join(descriptors, 'd.yaml');
    const whole = (user: number): string => `${limit('d', user)}  - key: ip\n    rate_limit: { unit: minute, requests_per_unit: 8 }\n`;
    writeFileSync(file, whole(1));
    // A generous settle time against a short pause: the cut state is on disk for 300 ms, well past the 50 ms the
    // watch waits for quiet, and well within the 2 s the files must stay unchanged.
    const p = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors, reload: { poll_interval_ms: 100, settle_ms: 2000 } },
    });
    try {
      const seen = new Set<string>();
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          seen.add((await rlconfig(p)).split('\n').filter((l) => l.startsWith('d.')).map((l) => l.split(':')[0]).join(','));
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const text = whole(9);
      const cut = text.indexOf('  - key: ip');
      const fd = openSync(file, 'w'); // truncates, as an editor saving in place or `cat > file` does
      writeSync(fd, text.slice(0, cut));
      await new Promise((r) => setTimeout(r, 300));
      writeSync(fd, text.slice(cut));
      closeSync(fd);
      await eventually(async () => (await rlconfig(p)).includes('requests_per_unit=9,'), 10_000, 'the completed file');
      sampling = false;
      await sampler;
      assert.deepEqual([...seen], ['d.user,d.ip'], 'the cut file (d.ip gone) was applied for a while');
      assert.equal(p.logs().filter((l) => l['msg'] === 'config rejected; keeping the last good config').length, 0, p.output());
    } finally {
      assert.equal(await p.stop(), 0, p.output());
      rmSync(descriptors, { recursive: true, force: true });
    }
  });
});

describe('hot reload with server.workers: 2, against a real redis-server', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('every worker ends on the last of 100 edits made within about a second (in place and by rename), watches only', async () => {
    const descriptors = tempDir('portcullis-storm-');
    const file = path.join(descriptors, 'd.yaml');
    writeFileSync(file, limit('d', 1));
    const p = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' }, workers: 2, shutdown_timeout_ms: 3000 },
      redis: { url: redis.url },
      ratelimit: { descriptors, reload: { poll_interval_ms: HOUR_MS } },
    }, { readyTimeoutMs: 60_000 });
    try {
      const loadsBefore = p.logs().filter((l) => l['msg'] === 'config loaded').length;
      for (let n = 2; n <= 101; n++) {
        if (n % 2 === 0) renameOver(file, limit('d', n));
        else writeFileSync(file, limit('d', n));
        await new Promise((r) => setTimeout(r, 10));
      }
      // The last load of each worker (the supervisor's /rlconfig shows only one worker's) names the last version.
      const lastLoad = (worker: number): Record<string, unknown> | undefined =>
        p.logs().filter((l) => l['msg'] === 'config loaded' && l['worker'] === worker).at(-1);
      await eventually(async () => (await rlconfig(p)).includes('requests_per_unit=101,'), 10_000, 'the last edit');
      const json = async (): Promise<unknown> => {
        const res = await fetch(`${p.adminUrl}/json`, { method: 'POST', body: JSON.stringify({ domain: 'd', descriptors: [{ entries: [{ key: 'user', value: 'u' }] }] }) });
        return ((await res.json()) as { statuses: { currentLimit?: { requestsPerUnit?: number } }[] }).statuses[0]?.currentLimit?.requestsPerUnit;
      };
      // POST /json goes to the workers in turn: four answers in a row cover both.
      await eventually(async () => {
        const answers = await Promise.all([json(), json(), json(), json()]);
        return answers.every((a) => a === 101);
      }, 10_000, 'both workers on the last edit');
      assert.ok(lastLoad(1) !== undefined && lastLoad(2) !== undefined);
      const loads = p.logs().filter((l) => l['msg'] === 'config loaded').length - loadsBefore;
      assert.ok(loads <= 2 * 20, `${loads} loads for 100 edits: a reload storm`);
      assert.equal(p.logs().filter((l) => l['msg'] === 'config rejected; keeping the last good config').length, 0, p.output());
    } finally {
      assert.equal(await p.stop(), 0, p.output());
      rmSync(descriptors, { recursive: true, force: true });
    }
  });
});

describe('hot reload under hostile edits: a live server fed mutated portcullis.yaml, descriptor and keys files', () => {
  // How long /healthz may take while a file is being refused: a load that parses on the serving thread would show here.
  const MAX_STALL_MS = 1000;
  const SEEDED_PER_FILE = 12;

  it('never stops, never stalls, names file and line of every error, and keeps serving the last good config', { timeout: 600_000 }, async (t) => {
    const root = tempDir('portcullis-hostile-');
    const descriptors = path.join(root, 'ratelimit');
    mkdirSync(descriptors);
    const files = { descriptor: path.join(descriptors, 'd.yaml'), keys: path.join(root, 'keys.yaml') };
    writeFileSync(files.descriptor, `${limit('d', 7)}  - key: ip\n    rate_limit: { unit: second, requests_per_unit: 3 }\n`);
    copyFileSync(path.join(process.cwd(), 'test', 'fixtures', 'authz', 'keys.yaml'), files.keys);
    const p = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors, reload: { poll_interval_ms: 200, settle_ms: 0 } },
      authz: {
        default_policy: 'deny',
        api_keys: { header: 'x-api-key', file: files.keys },
        policies: [{ name: 'keys', match: { path_prefix: '/' }, authenticate: ['api_key'] }],
      },
    });
    const targets: [string, string][] = [['portcullis.yaml', p.configFile], ['d.yaml', files.descriptor], ['keys.yaml', files.keys]];
    const outcomes = (): Record<string, unknown>[] => p.logs().filter((l) => l['msg'] === 'config loaded' || l['msg'] === 'config rejected; keeping the last good config');
    const goodLoads = (): number => p.logs().filter((l) => l['msg'] === 'config loaded').length;
    let slowest = { ms: 0, during: '' };
    let during = 'start';
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const started = performance.now();
        const res = await fetch(`${p.adminUrl}/healthz`).catch((error: unknown) => error as Error);
        if (res instanceof Error) throw new Error(`/healthz failed during ${during}: ${res.message}\n${p.output().slice(-2000)}`);
        await res.arrayBuffer();
        const ms = performance.now() - started;
        if (ms > slowest.ms) slowest = { ms, during };
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const problems: string[] = [];
    try {
      for (const [name, file] of targets) {
        const original = readFileSync(file);
        const random = prng(0xbad + name.length);
        const versions = hostileVersions(original);
        for (let i = 0; i < SEEDED_PER_FILE; i++) {
          let bytes: Buffer = original;
          for (let r = 0, rounds = 1 + Math.floor(random() * 3); r < rounds; r++) bytes = mutate(bytes, random);
          versions.push([`seeded mutation ${i}`, bytes]);
        }
        for (const [what, bytes] of versions) {
          if (bytes.equals(original)) continue;
          during = `${name}: ${what}`;
          const before = outcomes().length;
          renameOver(file, bytes);
          await eventually(() => outcomes().length > before, 60_000, `an outcome for ${during}`);
          const outcome = outcomes()[before]!;
          if (outcome['msg'] !== 'config loaded') {
            const errors = outcome['errors'] as string[];
            // Every error names a file; the mutated file's own errors name their line, but for a whole-file refusal.
            // (portcullis.yaml cut short may name other files: the descriptors directory its defaults point to.)
            for (const error of errors.filter((e) => !/^… and \d+ more issues$/.test(e))) {
              if (!/^\S[^:]*: /.test(error)) problems.push(`${during}: no file in '${error.slice(0, 200)}'`);
              const own = error.startsWith(`${name}: `) || error.startsWith(`${file}: `);
              const wholeFile = /more than the maximum|exceed \d+ bytes together|loading took longer|ran out of memory|more issues$/.test(error);
              if (own && !wholeFile && !/\(line \d+/.test(error)) problems.push(`${during}: no line in '${error.slice(0, 200)}'`);
            }
            if (name !== 'portcullis.yaml' && !errors.some((e) => e.startsWith(`${name}: `) || e.startsWith(`${file}: `))) {
              problems.push(`${during}: no error names ${name}: ${errors.join(' | ').slice(0, 300)}`);
            }
            // Still the last good config.
            assert.match(await rlconfig(p), /requests_per_unit=7,/, during);
          }
          const loads = goodLoads();
          renameOver(file, original);
          await eventually(() => goodLoads() > loads, 60_000, `the good ${name} again after ${during}`);
        }
      }
      assert.match(await rlconfig(p), /d\.user: .*requests_per_unit=7,/);
      t.diagnostic(`slowest /healthz: ${Math.round(slowest.ms)} ms during ${slowest.during}`);
      if (slowest.ms >= MAX_STALL_MS) problems.push(`/healthz took ${Math.round(slowest.ms)} ms during ${slowest.during}`);
    } finally {
      sampling = false;
      await sampler.catch((error: unknown) => problems.push(String(error)));
      const code = await p.stop();
      rmSync(root, { recursive: true, force: true });
      assert.equal(code, 0, p.output().slice(-3000));
    }
    assert.deepEqual(problems, []);
  });
});
