import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../../src/config/errors.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { lineTooDeep, MAX_ALIAS_NODES, MAX_NESTING, mapGet, parseYaml, type ParseResult, type YamlValue } from '../../../src/config/yaml.js';
import { compileDescriptorFiles, dumpLimits } from '../../../src/ratelimit/descriptor-config.js';

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

  it('an alias refers to the latest anchor of its name before it, including one on a scalar', () => {
    const result = parseYaml('a: &x 1\nb: *x\nc: &x [2]\nd: *x\ne: &y { k: v }\nf: *y\n');
    assert.ok(result.ok);
    const value = (key: string): unknown => {
      const v = result.root?.kind === 'map' ? mapGet(result.root, key) : undefined;
      return v?.kind === 'scalar' ? v.value : v?.kind === 'seq' ? v.items.map((i) => (i?.kind === 'scalar' ? i.value : i)) : v?.kind;
    };
    assert.deepEqual([value('b'), value('d'), value('f')], [1, [2], 'map']);
  });

  it('rejects an alias to an anchor that comes after it', () => {
    const [found] = problems(parseYaml('a: *later\nb: &later 1\n'));
    assert.equal(found?.code, 'ALIAS_UNKNOWN');
  });

  it('rejects an alias to no anchor', () => {
    const [found] = problems(parseYaml('a: 1\nb: *nowhere\n'));
    assert.deepEqual(found, { line: 2, code: 'ALIAS_UNKNOWN', path: 'b', message: 'alias *nowhere refers to no anchor before it' });
  });

  it('reports nesting too deep for the parser as a problem, not a crash', () => {
    const result = parseYaml(`a: ${'['.repeat(20000)}${']'.repeat(20000)}\n`);
    assert.equal(result.ok, false);
    if (!result.ok) assert.deepEqual(result.problems, [{ line: 1, code: 'TOO_DEEP', path: '', message: `nesting deeper than ${MAX_NESTING} levels` }]);
  });

  // Checked before the yaml library recurses: near the end of the stack it may die in V8 (a fatal allocation failure
  // compiling a regular expression, no RangeError to catch), which took `serve` down on a reload.
  const deepCases: [string, string, number][] = [
    ['flow brackets', `a: 1\nb: ${'['.repeat(MAX_NESTING + 1)}${']'.repeat(MAX_NESTING + 1)}\n`, 2],
    ['flow mappings', `a:\n  b: ${'{ c: '.repeat(MAX_NESTING + 1)}1${' }'.repeat(MAX_NESTING + 1)}\n`, 2],
    ['block indentation', Array.from({ length: MAX_NESTING + 1 }, (_, d) => `${' '.repeat(d)}k:\n`).join(''), MAX_NESTING + 1],
    ['compact sequences', `a:\n${'- '.repeat(MAX_NESTING + 1)}x\n`, 2],
  ];
  for (const [name, text, line] of deepCases) {
    it(`refuses nesting past MAX_NESTING before parsing, with the line: ${name}`, () => {
      const result = parseYaml(text);
      assert.equal(result.ok, false);
      if (!result.ok) assert.deepEqual(result.problems, [{ line, code: 'TOO_DEEP', path: '', message: `nesting deeper than ${MAX_NESTING} levels` }]);
    });
  }

  it('takes nesting as deep as configs go: 30 levels of descriptors, anchors, comments, block and quoted scalars', () => {
    let text = 'domain: d\ndescriptors:\n';
    let pad = '  ';
    for (let d = 0; d < 30; d++) {
      text += `${pad}- key: k${d}  # level ${d}\n${pad}  value: "a\n${pad}    [[[["\n${pad}  note: |\n${pad}    - - - [[[[ {{{{\n${pad}  descriptors:\n`;
      pad += '    ';
    }
    text += `${pad}- key: last\n`;
    assert.equal(lineTooDeep(text), undefined);
    assert.equal(parseYaml(text).ok, true);
    assert.equal(lineTooDeep(`a: ${'['.repeat(MAX_NESTING - 2)}${']'.repeat(MAX_NESTING - 2)}\n`), undefined);
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

/** A parsed tree as plain data, to compare whole documents. */
function plain(value: YamlValue | null): unknown {
  if (value === null) return null;
  if (value.kind === 'scalar') return value.value;
  if (value.kind === 'seq') return value.items.map(plain);
  return Object.fromEntries(value.entries.map((entry) => [String(plain(entry.key)), plain(entry.value)]));
}

describe('parseYaml: merge keys (YAML 1.1, as go-yaml v2 in envoyproxy/ratelimit)', () => {
  const cases: { name: string; text: string; parsed: unknown }[] = [
    { name: 'merges a mapping', text: 'a: &a { x: 1, w: 2 }\nb: { <<: *a, z: 3 }\n', parsed: { a: { x: 1, w: 2 }, b: { x: 1, w: 2, z: 3 } } },
    { name: 'a key written in the mapping wins, after the merge', text: 'a: &a { x: 1, w: 2 }\nb:\n  <<: *a\n  w: 9\n', parsed: { a: { x: 1, w: 2 }, b: { x: 1, w: 9 } } },
    { name: 'a key written before the merge, which the merge does not bring', text: 'a: &a { x: 1 }\nb:\n  w: 9\n  <<: *a\n', parsed: { a: { x: 1 }, b: { w: 9, x: 1 } } },
    {
      name: 'a sequence of mappings: an earlier one wins over a later one',
      text: 'a: &a { x: 1 }\nb: &b { x: 2, w: 2 }\nc: { <<: [*a, *b], z: 3 }\n',
      parsed: { a: { x: 1 }, b: { x: 2, w: 2 }, c: { x: 1, w: 2, z: 3 } },
    },
    { name: 'an inline mapping', text: 'b:\n  <<: { x: 1 }\n  w: 2\n', parsed: { b: { x: 1, w: 2 } } },
    { name: 'a merged mapping that merges itself', text: 'a: &a { x: 1 }\nb: &b { <<: *a, w: 2 }\nc: { <<: *b }\n', parsed: { a: { x: 1 }, b: { x: 1, w: 2 }, c: { x: 1, w: 2 } } },
    { name: 'the merged mapping is not changed', text: 'a: &a { x: 1 }\nb: { <<: *a, x: 2 }\nc: { <<: *a }\n', parsed: { a: { x: 1 }, b: { x: 2 }, c: { x: 1 } } },
    { name: "a quoted '<<' is an ordinary key", text: "a: &a { x: 1 }\nb: { '<<': 1 }\n", parsed: { a: { x: 1 }, b: { '<<': 1 } } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = parseYaml(c.text);
      assert.ok(result.ok, result.ok ? '' : result.message);
      assert.deepEqual(plain(result.root), c.parsed);
    });
  }

  it('keeps a key written before a merge that brings it too, unless told to refuse it (descriptor files)', () => {
    const result = parseYaml('x: &x { w: 2 }\na:\n  w: 9\n  <<: *x\n');
    assert.ok(result.ok);
    assert.deepEqual(plain(result.root), { x: { w: 2 }, a: { w: 9 } });
    const text = 'domain: d\ndescriptors:\n  - key: a\n    rate_limit: &r { unit: second, requests_per_unit: 3 }\n  - key: b\n    rate_limit:\n      requests_per_unit: 9\n      <<: *r\n';
    assert.deepEqual(loadErrors(() => compileDescriptorFiles([{ name: 'd.yaml', text }])), [
      "d.yaml: error loading config file: key 'requests_per_unit' on line 7 is also merged by << on line 8: envoyproxy/ratelimit (yaml.v2) "
        + 'takes the merged value, YAML 1.1 the written one; write the key after the << (line 7, at descriptors[1].rate_limit.requests_per_unit)',
    ]);
  });

  it('keeps the line where a merged key is written', () => {
    const result = parseYaml('a: &a\n  x: 1\nb:\n  <<: *a\n');
    assert.ok(result.ok && result.root?.kind === 'map');
    const b = mapGet(result.root, 'b');
    assert.ok(b?.kind === 'map');
    assert.equal(b.entries[0]?.key.line, 2);
    assert.equal(b.entries[0]?.value?.line, 2);
  });

  const refused: { name: string; text: string; found: { line: number; code: string; path: string } }[] = [
    { name: 'a scalar', text: 'a:\n  <<: 1\n', found: { line: 2, code: 'MERGE', path: 'a.<<' } },
    { name: 'an empty value', text: 'a:\n  <<:\n', found: { line: 2, code: 'MERGE', path: 'a.<<' } },
    { name: 'a sequence holding a scalar', text: 'x: &x { k: 1 }\na:\n  <<: [*x, 1]\n', found: { line: 3, code: 'MERGE', path: 'a.<<' } },
    { name: 'an alias to no anchor (reported once)', text: 'a:\n  <<: *nowhere\n', found: { line: 2, code: 'ALIAS_UNKNOWN', path: 'a.<<' } },
    { name: 'a mapping that merges itself', text: 'a: &a\n  <<: *a\n', found: { line: 2, code: 'ALIAS_CYCLE', path: 'a.<<' } },
    { name: 'two merge keys in one mapping', text: 'x: &x { k: 1 }\na:\n  <<: *x\n  <<: *x\n', found: { line: 4, code: 'DUPLICATE_KEY', path: 'a.<<' } },
    // yaml.v2 lets the merge overwrite a key written before it (upstream read 2 here), YAML 1.1 keeps the written one:
    // either reading silently changes someone's limit, so the file is refused as a duplicate key is.
    { name: 'a key it overrides, written before it', text: 'x: &x { w: 2 }\na:\n  w: 9\n  <<: *x\n', found: { line: 3, code: 'MERGE_ORDER', path: 'a.w' } },
    { name: 'a key it overrides from a list, written before it', text: 'x: &x { k: 1 }\ny: &y { w: 2 }\na:\n  w: 9\n  <<: [*x, *y]\n', found: { line: 4, code: 'MERGE_ORDER', path: 'a.w' } },
  ];
  for (const c of refused) {
    it(`refuses a merge of ${c.name}`, () => {
      const found = problems(parseYaml(c.text, { yamlV2: c.found.code === 'MERGE_ORDER' }));
      assert.deepEqual(found.map(({ line, code, path }) => ({ line, code, path })), [c.found]);
    });
  }

  it('in portcullis.yaml: a bff call merged from another', () => {
    const text = [
      'server: { http: { address: "127.0.0.1:0" } }',
      'bff:',
      '  services: { users: "http://127.0.0.1:8001" }',
      '  endpoints:',
      '    - path: /a/{id}',
      '      calls:',
      '        base: &base { service: users, path: "/users/{id}", timeout_ms: 500 }',
      '        other:',
      '          <<: *base',
      '          timeout_ms: 700',
      '          on_error: null',
      '',
    ].join('\n');
    const calls = parsePortcullisConfig(text, 'portcullis.yaml').bff?.endpoints[0]?.calls ?? [];
    assert.deepEqual(calls.map((c) => [c.name, c.service.name, c.timeoutMs, c.fallback]), [
      ['base', 'users', 500, undefined],
      ['other', 'users', 700, { value: null }],
    ]);
  });

  it('in portcullis.yaml: an error in a merged value names the line where it is written', () => {
    const text = [
      'server: { http: { address: "127.0.0.1:0" } }',
      'bff:',
      '  services: { users: "http://127.0.0.1:8001" }',
      '  endpoints:',
      '    - path: /a/{id}',
      '      calls:',
      '        base: &base { service: users, path: "/users/{id}" }',
      '    - path: /b',
      '      <<: *base',
      '',
    ].join('\n');
    const errors = loadErrors(() => parsePortcullisConfig(text, '/etc/p/portcullis.yaml'));
    assert.match(errors[0] ?? '', /^portcullis\.yaml: unknown key 'service' .*\(line 7, at bff\.endpoints\[1\]\.service\)$/);
  });

  it('in a descriptor file: a rate limit merged from another, with a key of its own', () => {
    const text = 'domain: merged\ndescriptors:\n  - key: a\n    rate_limit: &lim { unit: second, requests_per_unit: 5 }\n  - key: b\n    rate_limit:\n      <<: *lim\n      requests_per_unit: 10\n';
    assert.equal(dumpLimits(compileDescriptorFiles([{ name: 'd.yaml', text }])), [
      'merged.a: unit=SECOND requests_per_unit=5, shadow_mode: false, quota_mode: false',
      'merged.b: unit=SECOND requests_per_unit=10, shadow_mode: false, quota_mode: false',
      '',
    ].join('\n'));
  });

  it('in a descriptor file: descriptors merged from a sequence of mappings', () => {
    const text = [
      'domain: merged',
      'descriptors:',
      '  - &minute { key: a, rate_limit: { unit: minute, requests_per_unit: 1 } }',
      '  - &shadow { key: s, shadow_mode: true }',
      '  - <<: [*shadow, *minute]',
      '    key: b',
      '',
    ].join('\n');
    assert.equal(dumpLimits(compileDescriptorFiles([{ name: 'd.yaml', text }])), [
      'merged.a: unit=MINUTE requests_per_unit=1, shadow_mode: false, quota_mode: false',
      'merged.b: unit=MINUTE requests_per_unit=1, shadow_mode: true, quota_mode: false',
      '',
    ].join('\n'));
  });

  it('in a descriptor file: an error in a merged value names the line where it is written', () => {
    const text = 'domain: merged\ndescriptors:\n  - key: a\n    rate_limit: &lim\n      unit: second\n      requests_per_unit: 5\n  - key: b\n    rate_limit:\n      <<: *lim\n      unlimited: true\n';
    assert.deepEqual(loadErrors(() => compileDescriptorFiles([{ name: 'd.yaml', text }])), [
      "d.yaml: should not specify rate limit unit when unlimited (line 5, at descriptors[1].rate_limit.unit)",
    ]);
  });
});

describe('parseYaml: numbers and documents', () => {
  const numbers: [string, unknown, 'int' | 'float'][] = [
    ['0xE', 14, 'int'], ['0x1e', 30, 'int'], ['-0xE', -14, 'int'], ['0b101', 5, 'int'], ['14', 14, 'int'],
    ['1e3', 1000, 'float'], ['1.0', 1, 'float'], ['.5', 0.5, 'float'],
  ];
  for (const [written, value, kind] of numbers) {
    it(`${written} is the ${kind} ${String(value)}`, () => {
      const result = parseYaml(`num: ${written}\n`);
      assert.ok(result.ok);
      const n = result.root?.kind === 'map' ? mapGet(result.root, 'num') : undefined;
      assert.ok(n?.kind === 'scalar');
      assert.deepEqual([n.value, n.numberKind], [value, kind]);
    });
  }

  it('a second document: ignored in a descriptor file (as envoyproxy/ratelimit), an error in portcullis.yaml', () => {
    const text = 'log: { level: info }\n---\nlog: { level: debug }\nbogus: [\n';
    assert.equal(parseYaml(text).ok, true);
    const [found] = problems(parseYaml(text, { singleDocument: true }));
    assert.deepEqual([found?.code, found?.line], ['MULTIPLE_DOCUMENTS', 2]);
    assert.match(loadErrors(() => parsePortcullisConfig(text, '/tmp/portcullis.yaml'))[0] ?? '', /a second YAML document.*\(line 2/);
    assert.match(loadErrors(() => parsePortcullisConfig('---\n---\nlog: { level: debug }\n', '/tmp/portcullis.yaml'))[0] ?? '', /a second YAML document/);
  });
});
