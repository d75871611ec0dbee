import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fencedBlocks, shellWords } from './fences.js';

describe('fencedBlocks', () => {
  it('finds each block with its line, language, tags and text', () => {
    const rows: [string, { line: number; lang: string; tags: string[]; text: string }[]][] = [
      ['no fence\n', []],
      ['a\n```yaml portcullis\nx: 1\n```\nb\n', [{ line: 2, lang: 'yaml', tags: ['portcullis'], text: 'x: 1\n' }]],
      ['```\n$ cmd\n```\n~~~sh\nls\n~~~\n', [{ line: 1, lang: '', tags: [], text: '$ cmd\n' }, { line: 4, lang: 'sh', tags: [], text: 'ls\n' }]],
      // A shorter or different fence inside does not close the block; a longer one does.
      ['````md\n```yaml\n~~~\n`````\n', [{ line: 1, lang: 'md', tags: [], text: '```yaml\n~~~\n' }]],
      ['```yaml\r\na: 1\r\n```\r\n', [{ line: 1, lang: 'yaml', tags: [], text: 'a: 1\n' }]],
      ['text\n```yaml envoy', [{ line: 2, lang: 'yaml', tags: ['envoy'], text: '' }]],
    ];
    for (const [markdown, expected] of rows) assert.deepEqual(fencedBlocks(markdown), expected, JSON.stringify(markdown));
  });
});

describe('shellWords', () => {
  it('splits as the shell would, quotes grouping and # starting a comment', () => {
    const rows: [string, string[]][] = [
      ['npx portcullis validate --descriptors ./ratelimit        # descriptor files alone', ['npx', 'portcullis', 'validate', '--descriptors', './ratelimit']],
      ["portcullis explain -H 'x-api-key: pk_…' --path /a#b", ['portcullis', 'explain', '-H', 'x-api-key: pk_…', '--path', '/a#b']],
      ['a "b c"d \'\'', ['a', 'b cd', '']],
      ['', []],
    ];
    for (const [line, words] of rows) assert.deepEqual(shellWords(line), words, line);
    assert.throws(() => shellWords("a 'b"), /unclosed/);
  });
});
