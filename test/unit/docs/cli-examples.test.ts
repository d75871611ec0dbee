// The CLI commands the docs tell a newcomer to type work as shown, from the repository root: README's validate
// commands and the check-envoy commands on shipped files exit 0, and the explain output docs/authz.md quotes is what
// explain prints.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { parseArgs } from 'node:util';
import { explain } from '../../../src/cli/authz-commands.js';
import { checkEnvoyCommand } from '../../../src/cli/check-envoy.js';
import { validate } from '../../../src/cli/validate.js';
import { repoRoot } from '../../support/envoy.js';
import { fencedBlocks, shellWords } from './fences.js';

/**
 * Each command the file shows, in a fenced block's line or in an inline code span, that starts with these words (after
 * `npx` or `$ `) and has arguments: its words.
 */
function commandsIn(file: string, ...start: string[]): string[][] {
  const markdown = readFileSync(path.join(repoRoot(), file), 'utf8');
  const lines = [...fencedBlocks(markdown).flatMap((b) => b.text.split('\n')), ...[...markdown.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!)];
  return lines
    .filter((line) => /^(\$ )?(npx )?portcullis /.test(line))
    .map((line) => shellWords(line.replace(/^\$ /, '')))
    .map((words) => (words[0] === 'npx' ? words.slice(1) : words))
    .filter((words) => words.length > start.length && start.every((w, i) => words[i] === w));
}

/** A path argument as the shell in the repository root would hand it over. */
const fromRoot = (p: string | undefined): string | undefined => (p === undefined ? undefined : path.resolve(repoRoot(), p));

/** check-envoy examples that name no real file, only the kind of file to pass. */
const PLACEHOLDER_BOOTSTRAPS = new Set(['bootstrap.yaml']);

describe('the CLI commands in the docs', () => {
  it("README's validate commands exit 0 from the repository root", async () => {
    const commands = commandsIn('README.md', 'portcullis', 'validate');
    assert.ok(commands.length >= 2, `README shows ${commands.length} validate commands`);
    for (const words of commands) {
      const { values } = parseArgs({ args: words.slice(2), options: { config: { type: 'string' }, descriptors: { type: 'string' } }, strict: true });
      let output = '';
      const code = await validate({ config: fromRoot(values.config), descriptors: fromRoot(values.descriptors) }, (s) => (output += s), (s) => (output += s));
      assert.equal(code, 0, `${words.join(' ')}:\n${output}`);
    }
  });

  it('check-envoy on the shipped bootstraps, as README and docs/gateway.md show it, finds nothing', async () => {
    const commands = ['README.md', 'docs/gateway.md'].flatMap((file) => commandsIn(file, 'portcullis', 'check-envoy'))
      .filter((words) => !PLACEHOLDER_BOOTSTRAPS.has(words[2] ?? ''));
    assert.ok(commands.length >= 2, `${commands.length} check-envoy commands on shipped files`);
    for (const words of commands) {
      const { values, positionals } = parseArgs({ args: words.slice(2), options: { config: { type: 'string' }, descriptors: { type: 'string' } }, strict: true, allowPositionals: true });
      const out = new PassThrough();
      let output = '';
      out.setEncoding('utf8').on('data', (s: string) => (output += s));
      const code = await checkEnvoyCommand(fromRoot(positionals[0])!, { config: fromRoot(values.config), descriptors: fromRoot(values.descriptors) }, out, out);
      assert.equal(code, 0, `${words.join(' ')}:\n${output}`);
    }
  });

  it('the explain session docs/authz.md quotes is what explain prints (up to its …)', async () => {
    const block = fencedBlocks(readFileSync(path.join(repoRoot(), 'docs/authz.md'), 'utf8')).find((b) => b.text.startsWith('$ portcullis explain '));
    assert.ok(block, 'docs/authz.md shows no explain session');
    const [command = '', ...shown] = block.text.trimEnd().split('\n');
    // The doc elides the key; envoy/authz/keys.yaml publishes the demo gold key it shows.
    const words = shellWords(command.slice(2).replace('pk_…', 'pk_demo_gold_key_do_not_use_in_production'));
    const { values } = parseArgs({
      args: words.slice(2),
      options: { config: { type: 'string' }, method: { type: 'string' }, path: { type: 'string' }, header: { type: 'string', short: 'H', multiple: true } },
      strict: true,
    });
    let output = '';
    assert.equal(await explain({ ...values, config: fromRoot(values.config) }, (s) => (output += s)), 0, output);
    const elided = shown.findIndex((line) => line.trim() === '…');
    const expected = elided === -1 ? shown : shown.slice(0, elided);
    assert.deepEqual(output.split('\n').slice(0, expected.length), expected, output);
  });
});
