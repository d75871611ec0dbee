// The JSON log on stdout when its reader falls behind (a stalled container log pipe): what waits in memory is bounded.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';

const LOGGER = new URL('../../../src/observability/logger.js', import.meta.url).href;

describe('stdout log with a reader that stops reading', () => {
  it('holds at most 16 MiB of lines (LOG_BUFFER_MAX_CHARS); the rest are dropped, not buffered', async () => {
    // 48 MiB of decision-sized lines written while nobody reads stdout, a few thousand per event-loop turn.
    const lines = 200_000;
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const { createLogger } = await import(${JSON.stringify(LOGGER)});
      const log = createLogger('info');
      const pad = 'x'.repeat(150);
      for (let n = 0; n < ${lines};) {
        for (let i = 0; i < 5000; i++, n++) log.info({ n, pad }, 'authz decision');
        await new Promise((resolve) => setImmediate(resolve));
      }
      process.stderr.write('written\\n');
      setInterval(() => undefined, 1000);
    `], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      child.stdout.pause();
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (d: Buffer) => { if (d.toString().includes('written')) resolve(); });
        child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
      });
      // Now read everything the child still holds, until nothing has come for a while.
      let bytes = 0;
      let last = Date.now();
      child.stdout.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        last = Date.now();
      });
      child.stdout.resume();
      while (Date.now() - last < 1500) await new Promise((resolve) => setTimeout(resolve, 100));
      const lineBytes = 230;
      assert.ok(bytes > 0, 'the lines held were written once the reader came back');
      // The pipe's own buffer (64 KiB on Linux, up to 1 MiB when resized) plus what the process may hold.
      assert.ok(bytes <= 17 << 20, `${bytes} bytes arrived: all ${lines} lines (~${lines * lineBytes}) were kept in memory`);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
