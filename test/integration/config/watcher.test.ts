// watchConfig against the real filesystem (inotify): what its watches see when a reload moves them.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { watchConfig } from '../../../src/config/watcher.js';
import { eventually } from '../../support/app.js';

const HOUR_MS = 3_600_000;

describe('watchConfig: a reload that names another directory', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = (): string => {
    const dir = mkdtempSync(path.join(tmpdir(), 'portcullis-watch-'));
    dirs.push(dir);
    return dir;
  };

  it('sees an edit made there after the reload read it but before the watch on it existed (the poll an hour away)', async () => {
    const first = tempDir();
    const second = tempDir();
    writeFileSync(path.join(first, 'd.yaml'), 'a1');
    writeFileSync(path.join(second, 'd.yaml'), 'b1');
    let current = first;
    let loaded = readFileSync(path.join(current, 'd.yaml'), 'utf8');
    let moveOnNextReload = false;
    const watcher = watchConfig(() => [path.join(current, 'd.yaml')], HOUR_MS, async () => {
      if (moveOnNextReload) {
        moveOnNextReload = false;
        current = second;
        loaded = readFileSync(path.join(current, 'd.yaml'), 'utf8');
        // An operator's edit right after the reload read the file: no watch on `second` exists yet.
        writeFileSync(path.join(second, 'd.yaml'), 'b2');
        return;
      }
      loaded = readFileSync(path.join(current, 'd.yaml'), 'utf8');
    });
    try {
      await watcher.ready;
      moveOnNextReload = true;
      writeFileSync(path.join(first, 'd.yaml'), 'a2');
      await eventually(() => current === second, 5000, 'the reload that moves to the second directory');
      await eventually(() => loaded === 'b2', 3000, `the edit made before the watch existed (loaded: ${loaded})`);
      writeFileSync(path.join(second, 'd.yaml'), 'b3');
      await eventually(() => loaded === 'b3', 3000, 'a later edit, through the new watch');
      assert.equal(current, second);
    } finally {
      watcher.close();
    }
  });
});
