import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/errors.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { MAX_ALIAS_NODES, parseYaml, type ParseResult } from '../../../src/config/yaml.js';
import { compileDescriptorFiles } from '../../../src/ratelimit/descriptor-config.js';

/** Nine levels of nine aliases: 417 bytes that expand to 9^9 leaves. */
function aliasBomb(levels = 9, width = 9): string {
  const lines = [`a0: &a0 [${Array.from({ length: width }, () => '"x"').join(', ')}]`];
  for (let i = 1; i < levels; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: width }, () => `*a${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

function problems(result: ParseResult): { line: number; code: string; path: string; message: string }[] {
  assert.equal(result.ok, false, 'expected a parse failure');
  return result.ok ? [] : result.problems.map(({ line, code, path, message }) => ({ line, code, path, message }));
}

function loadErrors(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message.split('\n');
  }
  assert.fail('expected a ConfigError');
}

describe('parseYaml: aliases', () => {
  it('stops an alias bomb quickly, naming the line of the alias that went over the budget', () => {
    const started = performance.now();
    const found = problems(parseYaml(aliasBomb()));
    assert.ok(performance.now() - started < 2000, `took ${performance.now() - started} ms`);
    assert.equal(found.length, 1);
    assert.equal(found[0]?.code, 'ALIAS_BUDGET');
    assert.match(found[0]?.message ?? '', new RegExp(`more than ${MAX_ALIAS_NODES} nodes`));
    assert.ok((found[0]?.line ?? 0) > 1 && (found[0]?.line ?? 0) <= 9, `line ${found[0]?.line}`);
  });

  it('keeps ordinary shared blocks, however many times they are used', () => {
    const uses = Array.from({ length: 2000 }, (_, i) => `  - { key: k${i}, rate_limit: *std }`).join('\n');
    const result = parseYaml(`std: &std { unit: minute, requests_per_unit: 5 }\nlist:\n${uses}\n`);
    assert.equal(result.ok, true);
  });

  const cycles: { name: string; text: string; line: number; path: string }[] = [
    { name: 'a list that contains itself', text: 'a: &x [1, *x]\n', line: 1, path: 'a[1]' },
    { name: 'a map that contains itself', text: 'domain: d\ndescriptors: &x\n  - key: a\n    descriptors: *x\n', line: 4, path: 'descriptors[0].descriptors' },
  ];
  for (const c of cycles) {
    it(`rejects ${c.name} with its line, not a stack overflow`, () => {
      const [found] = problems(parseYaml(c.text));
      assert.equal(found?.code, 'ALIAS_CYCLE');
      assert.equal(found?.line, c.line);
      assert.equal(found?.path, c.path);
    });
  }

  it('rejects an alias to no anchor', () => {
    const [found] = problems(parseYaml('a: 1\nb: *nowhere\n'));
    assert.deepEqual(found, { line: 2, code: 'ALIAS_UNKNOWN', path: 'b', message: 'alias *nowhere refers to no anchor before it' });
  });

  it('reports nesting too deep for the parser as a problem, not a crash', () => {
    const result = parseYaml(`a: ${'['.repeat(20000)}${']'.repeat(20000)}\n`);
    if (!result.ok) assert.ok(result.problems.length > 0);
  });
});

describe('parseYaml: duplicate keys are errors naming both lines', () => {
  it('reports every duplicate in a file, with its path', () => {
    const found = problems(parseYaml('a: 1\nb:\n  c: 1\n  c: 2\na: 3\n'));
    assert.deepEqual(found, [
      { line: 4, code: 'DUPLICATE_KEY', path: 'b.c', message: "duplicate key 'c' (first on line 3, again on line 4)" },
      { line: 5, code: 'DUPLICATE_KEY', path: 'a', message: "duplicate key 'a' (first on line 1, again on line 5)" },
    ]);
  });

  it('tells a string key from a number key, as YAML does', () => {
    assert.equal(parseYaml('1: a\n"1": b\n').ok, true);
  });

  it('in portcullis.yaml: `ratelimit:` twice', () => {
    const errors = loadErrors(() => parsePortcullisConfig('ratelimit:\n  shadow_mode: true\nlog: { level: info }\nratelimit:\n  quota_mode: true\n', '/etc/p/portcullis.yaml'));
    assert.deepEqual(errors, ["portcullis.yaml: invalid YAML: duplicate key 'ratelimit' (first on line 1, again on line 4) (line 4, at ratelimit)"]);
  });

  it('in a descriptor file: `domain:` twice and `rate_limit:` twice', () => {
    const text = 'domain: a\ndescriptors:\n  - key: k\n    rate_limit: { unit: second, requests_per_unit: 1 }\n    rate_limit: { unit: day, requests_per_unit: 1 }\ndomain: b\n';
    assert.deepEqual(loadErrors(() => compileDescriptorFiles([{ name: 'd.yaml', text }])), [
      "d.yaml: error loading config file: duplicate key 'rate_limit' (first on line 4, again on line 5) (line 5, at descriptors[0].rate_limit)",
      "d.yaml: error loading config file: duplicate key 'domain' (first on line 1, again on line 6) (line 6, at domain)",
    ]);
  });

  it('an alias bomb in a descriptor file is a load error with file and line', () => {
    const [error] = loadErrors(() => compileDescriptorFiles([{ name: 'bomb.yaml', text: `${aliasBomb()}domain: x\n` }]));
    assert.match(error ?? '', /^bomb\.yaml: error loading config file: aliases expand to more than \d+ nodes \(line \d, at a\d\[\d\]\)$/);
  });
});
