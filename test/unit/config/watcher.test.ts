import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { relevant, type WatchedDirectory } from '../../../src/config/watcher.js';

describe('relevant: which events in a watched directory can change the config', () => {
  const parent: WatchedDirectory = { identity: '1:2', names: new Set(['portcullis.yaml', 'keys.yaml']) };
  const tree: WatchedDirectory = { identity: '1:3', names: undefined };
  const rows: [string, WatchedDirectory, string | null, boolean][] = [
    ['the watched file itself', parent, 'portcullis.yaml', true],
    ['another watched file of the same directory', parent, 'keys.yaml', true],
    ['an unrelated file next to it (a config in /etc)', parent, 'hosts', false],
    ['an editor temp file next to it', parent, 'portcullis.yaml.tmp', false],
    ['a ConfigMap ..data swap', parent, '..data', true],
    ['a ConfigMap ..data_tmp link', parent, '..data_tmp', true],
    ['an event without a name (the platform gave none)', parent, null, true],
    ['any entry of a descriptor directory', tree, 'new-domain.yaml', true],
  ];
  for (const [name, dir, file, want] of rows) it(name, () => assert.equal(relevant(dir, file), want));
});
