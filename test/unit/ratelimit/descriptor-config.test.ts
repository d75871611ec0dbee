import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, formatIssue, type ConfigIssue } from '../../../src/config/errors.js';
import { compileDescriptorFiles, compileDescriptorFilesOffThread, dumpLimits } from '../../../src/ratelimit/descriptor-config.js';
import { matchDescriptor } from '../../../src/ratelimit/matcher.js';
import type { CompiledLimit, DescriptorNode, RateLimitConfig } from '../../../src/ratelimit/types.js';
import { ErrorCode } from '../../../src/shared/errors.js';
import { compileFixtures, compileYaml, desc, fixture } from './support.js';

/** Loads the fixtures and returns the ConfigError they must raise. */
function loadError(files: readonly string[]): ConfigError {
  try {
    compileFixtures(...files);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.code, ErrorCode.CONFIG_INVALID);
    return error;
  }
  assert.fail(`expected ${files.join(', ')} to be rejected`);
}

function inlineError(text: string, name = 'inline.yaml'): ConfigError {
  try {
    compileYaml(text, name);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the inline file to be rejected');
}

function child(node: DescriptorNode, ...path: string[]): DescriptorNode {
  let at = node;
  for (const key of path) {
    const next = at.children.get(key);
    assert.ok(next, `no child ${key}; have ${[...at.children.keys()].join(', ')}`);
    at = next;
  }
  return at;
}

function onlyLimit(config: RateLimitConfig, domain: string, ...path: string[]): CompiledLimit {
  const d = config.domains.get(domain);
  assert.ok(d, `domain ${domain} not loaded`);
  const limits = child(d.root, ...path).limits;
  assert.equal(limits.length, 1, `limits at ${path.join('.')}`);
  return limits[0]!;
}

interface ErrorCase {
  readonly name: string;
  readonly files: readonly string[];
  /** null: the files load. */
  readonly error: {
    /** The file the message names. */
    readonly file: string;
    /** Exactly the text after `<file>: ` (envoyproxy/ratelimit's message). */
    readonly message: string;
    /** The line the issue names; null when the problem has no line (an empty file). */
    readonly line: number | null;
    readonly path: string;
  } | null;
}

const UPSTREAM_ERRORS: readonly ErrorCase[] = [
  {
    name: 'no domain',
    files: ['empty_domain.yaml'],
    error: { file: 'empty_domain.yaml', message: 'config file cannot have empty domain', line: 1, path: 'domain' },
  },
  {
    name: 'empty domain string',
    files: ['empty_domain_value.yaml'],
    error: { file: 'empty_domain_value.yaml', message: 'config file cannot have empty domain', line: 2, path: 'domain' },
  },
  {
    name: 'empty file',
    files: ['empty_file.yaml'],
    error: { file: 'empty_file.yaml', message: 'config file cannot have empty domain', line: 1, path: 'domain' },
  },
  {
    name: 'same domain in two files',
    files: ['basic.yaml', 'duplicate_domain.yaml'],
    error: { file: 'duplicate_domain.yaml', message: "duplicate domain 'test-domain' in config file", line: 2, path: 'domain' },
  },
  {
    name: 'descriptor without key',
    files: ['empty_key.yaml'],
    error: { file: 'empty_key.yaml', message: 'descriptor has empty key', line: 7, path: 'descriptors[1].key' },
  },
  {
    name: 'duplicate key/value at the top level',
    files: ['duplicate_key.yaml'],
    error: {
      file: 'duplicate_key.yaml', message: "duplicate descriptor composite key 'test-domain.key1_value1'", line: 8, path: 'descriptors[1]',
    },
  },
  {
    name: 'duplicate key/value at a nested level names the full key',
    files: ['duplicate_key_nested.yaml'],
    error: {
      file: 'duplicate_key_nested.yaml', message: "duplicate descriptor composite key 'test-domain.key1.sub_a'", line: 7,
      path: 'descriptors[0].descriptors[1]',
    },
  },
  {
    name: 'key a_b collides with key a, value b',
    files: ['duplicate_key_underscore.yaml'],
    error: {
      file: 'duplicate_key_underscore.yaml', message: "duplicate descriptor composite key 'test-domain.a_b'", line: 5, path: 'descriptors[1]',
    },
  },
  {
    name: 'bad unit',
    files: ['bad_limit_unit.yaml'],
    error: { file: 'bad_limit_unit.yaml', message: "invalid rate limit unit 'foo'", line: 5, path: 'descriptors[0].rate_limit.unit' },
  },
  {
    name: 'missing unit',
    files: ['missing_unit.yaml'],
    error: { file: 'missing_unit.yaml', message: "invalid rate limit unit ''", line: 5, path: 'descriptors[0].rate_limit.unit' },
  },
  {
    name: 'unlimited with a valid unit',
    files: ['unlimited_with_unit.yaml'],
    error: {
      file: 'unlimited_with_unit.yaml', message: 'should not specify rate limit unit when unlimited', line: 5, path: 'descriptors[0].rate_limit.unit',
    },
  },
  {
    name: 'replaces its own name',
    files: ['replaces_self.yaml'],
    error: {
      file: 'replaces_self.yaml', message: 'replaces should not contain name of same descriptor', line: 9,
      path: 'descriptors[0].rate_limit.replaces[0].name',
    },
  },
  {
    name: 'empty replaces entry',
    files: ['replaces_empty.yaml'],
    error: {
      file: 'replaces_empty.yaml', message: 'should not have an empty replaces entry', line: 9, path: 'descriptors[0].rate_limit.replaces[0].name',
    },
  },
  {
    name: "unparsable YAML (''')",
    files: ['bad_yaml.yaml'],
    error: { file: 'bad_yaml.yaml', message: 'error loading config file: yaml: line 2: found unexpected end of stream', line: 2, path: '' },
  },
  {
    name: 'unknown key ratelimit',
    files: ['misspelled_key.yaml'],
    error: { file: 'misspelled_key.yaml', message: "config error, unknown key 'ratelimit'", line: 5, path: 'descriptors[0].ratelimit' },
  },
  {
    name: 'unknown key requestsperunit',
    files: ['misspelled_key2.yaml'],
    error: {
      file: 'misspelled_key2.yaml', message: "config error, unknown key 'requestsperunit'", line: 7, path: 'descriptors[0].rate_limit.requestsperunit',
    },
  },
  {
    name: 'non-string key',
    files: ['non_string_key.yaml'],
    error: { file: 'non_string_key.yaml', message: 'config error, key is not of type string: 0.25', line: 1, path: '' },
  },
  {
    name: 'list of scalars',
    files: ['non_map_list.yaml'],
    error: {
      file: 'non_map_list.yaml', message: 'config error, yaml file contains list of type other than map: a', line: 2, path: 'descriptors[0]',
    },
  },
  {
    name: 'float value',
    files: ['float_value.yaml'],
    error: { file: 'float_value.yaml', message: 'error checking config: requests_per_unit must be a whole number, got 2.5', line: 6, path: 'descriptors[0].rate_limit.requests_per_unit' },
  },
  {
    name: 'share_threshold on a value without *',
    files: ['share_threshold_no_wildcard.yaml'],
    error: {
      file: 'share_threshold_no_wildcard.yaml',
      message: "share_threshold can only be used with wildcard values (containing '*'), but found key 'k_v'",
      line: 5,
      path: 'descriptors[0].share_threshold',
    },
  },
  {
    name: 'quoted number for requests_per_unit (yaml.v2 shows the unquoted value)',
    files: ['unmarshal_errors.yaml'],
    error: {
      file: 'unmarshal_errors.yaml',
      message: 'error loading config file: yaml: unmarshal errors:\n  line 6: cannot unmarshal !!str `5` into uint32',
      line: 6,
      path: 'descriptors[0].rate_limit.requests_per_unit',
    },
  },
  {
    name: 'long non-number for requests_per_unit (yaml.v2 shortens values over 10 characters)',
    files: ['unmarshal_errors_long.yaml'],
    error: {
      file: 'unmarshal_errors_long.yaml',
      message: 'error loading config file: yaml: unmarshal errors:\n  line 6: cannot unmarshal !!str `unlimit...` into uint32',
      line: 6,
      path: 'descriptors[0].rate_limit.requests_per_unit',
    },
  },
];

const EXTENSION_ERRORS: readonly ErrorCase[] = [
  {
    name: 'unknown algorithm',
    files: ['bad_algorithm.yaml'],
    error: {
      file: 'bad_algorithm.yaml', message: "must be one of fixed_window, sliding_window, token_bucket, got 'leaky_bucket'", line: 5,
      path: 'descriptors[0].rate_limit.algorithm',
    },
  },
  {
    name: 'unit_multiplier 0',
    files: ['zero_unit_multiplier.yaml'],
    error: { file: 'zero_unit_multiplier.yaml', message: 'must be at least 1', line: 5, path: 'descriptors[0].rate_limit.unit_multiplier' },
  },
  {
    name: 'burst without token_bucket',
    files: ['burst_without_token_bucket.yaml'],
    error: {
      file: 'burst_without_token_bucket.yaml', message: 'burst only applies to algorithm token_bucket', line: 5, path: 'descriptors[0].rate_limit.burst',
    },
  },
  {
    name: 'token bucket without a rate',
    files: ['token_bucket_zero_rate.yaml'],
    error: {
      file: 'token_bucket_zero_rate.yaml', message: 'a token bucket needs requests_per_unit of at least 1', line: 5,
      path: 'descriptors[0].rate_limit.requests_per_unit',
    },
  },
  {
    name: 'unknown consume_when_over_limit',
    files: ['bad_consume_when_over_limit.yaml'],
    error: {
      file: 'bad_consume_when_over_limit.yaml', message: "must be one of all, over_limit_only, none, got 'sometimes'", line: 2,
      path: 'consume_when_over_limit',
    },
  },
];

const VALID: readonly ErrorCase[] = [
  'basic.yaml', 'nested.yaml', 'wildcard.yaml', 'replaces.yaml', 'unlimited.yaml', 'shadow.yaml', 'detailed_metric.yaml',
  'value_to_metric.yaml', 'share_threshold.yaml', 'quota_mode.yaml', 'metadata.yaml', 'week_unit.yaml',
  'units_case_insensitive.yaml', 'extensions.yaml', 'scalar_values.yaml', 'yaml_v2_numbers.yaml',
].map((file) => ({ name: `valid: ${file}`, files: [file], error: null }));

function runCases(cases: readonly ErrorCase[]): void {
  for (const c of cases) {
    it(c.name, () => {
      if (c.error === null) {
        const config = compileFixtures(...c.files);
        assert.ok(config.domains.size >= 1);
        return;
      }
      const expected = c.error;
      const error = loadError(c.files);
      const issue = error.issues.find((i) => i.file === expected.file && i.message === expected.message);
      assert.ok(issue, `no issue "${expected.file}: ${expected.message}" in:\n${error.message}`);
      assert.equal(issue.path, expected.path, 'path');
      if (expected.line !== null) assert.equal(issue.line, expected.line, 'line');
      // The rendered message starts with envoyproxy/ratelimit's text, then names the place.
      const where = [expected.line !== null ? `line ${expected.line}` : '', expected.path ? `at ${expected.path}` : ''].filter(Boolean).join(', ');
      const rendered = `${expected.file}: ${expected.message}${where ? ` (${where})` : ''}`;
      assert.ok(error.message.includes(rendered), `"${rendered}" not in:\n${error.message}`);
    });
  }
}

describe('compileDescriptorFiles: envoyproxy/ratelimit load errors', () => runCases(UPSTREAM_ERRORS));
describe('compileDescriptorFiles: extension errors', () => runCases(EXTENSION_ERRORS));
describe('compileDescriptorFiles: valid upstream-style files', () => runCases(VALID));

describe('compileDescriptorFiles: reporting', () => {
  it('reports every error of a file at once, in file order, each with its line and path', () => {
    const error = loadError(['several_errors.yaml']);
    const got = error.issues.map((i) => ({ file: i.file, line: i.line, path: i.path, message: i.message }));
    assert.deepEqual(got, [
      { file: 'several_errors.yaml', line: 6, path: 'descriptors[0].rate_limit.unit', message: "invalid rate limit unit 'fortnight'" },
      { file: 'several_errors.yaml', line: 8, path: 'descriptors[1].key', message: 'descriptor has empty key' },
      { file: 'several_errors.yaml', line: 9, path: 'descriptors[2]', message: "duplicate descriptor composite key 'test-domain.first'" },
      {
        file: 'several_errors.yaml', line: 14, path: 'descriptors[3].descriptors[0].rate_limit.unit',
        message: 'should not specify rate limit unit when unlimited',
      },
    ]);
    assert.equal(error.message, error.issues.map(formatIssue).join('\n'));
  });

  it('reports every list item that is not a map', () => {
    const error = loadError(['non_map_list.yaml']);
    assert.deepEqual(
      error.issues.map((i) => [i.path, i.message]),
      ['a', 'b', 'c'].map((v, i) => [`descriptors[${i}]`, `config error, yaml file contains list of type other than map: ${v}`]),
    );
  });

  it('reports the errors of every bad file, and a good file does not save the load', () => {
    const error = loadError(['week_unit.yaml', 'bad_limit_unit.yaml', 'empty_key.yaml']);
    assert.deepEqual(
      error.issues.map((i) => `${i.file}: ${i.message}`),
      ["bad_limit_unit.yaml: invalid rate limit unit 'foo'", 'empty_key.yaml: descriptor has empty key'],
    );
  });

  it('names the line of the offending key, not of the block that holds it', () => {
    const error = loadError(['error_lines.yaml']);
    const byPath = new Map(error.issues.map((i): [string, ConfigIssue] => [i.path, i]));
    assert.equal(byPath.get('descriptors[0].rate_limit.unit')?.line, 7, 'unit: foo is on line 7');
    assert.equal(byPath.get('descriptors[1].rate_limit.algorithm')?.line, 12, 'algorithm: bogus is on line 12');
  });

  it('formats an issue as `<file>: <message> (line N, at path)`', () => {
    assert.equal(formatIssue({ file: 'a.yaml', line: 3, path: 'descriptors[0].key', message: 'm' }), 'a.yaml: m (line 3, at descriptors[0].key)');
    assert.equal(formatIssue({ file: 'a.yaml', line: undefined, path: 'domain', message: 'm' }), 'a.yaml: m (at domain)');
    assert.equal(formatIssue({ file: 'a.yaml', line: 4, path: '', message: 'm' }), 'a.yaml: m (line 4)');
    assert.equal(formatIssue({ file: 'a.yaml', line: undefined, path: '', message: 'm' }), 'a.yaml: m');
  });

  it('uses the name it was given for the file (a relative path in a directory)', () => {
    const error = inlineError('domain: ""\n', 'team-a/limits.yaml');
    assert.equal(error.issues[0]!.file, 'team-a/limits.yaml');
    assert.ok(error.message.startsWith('team-a/limits.yaml: config file cannot have empty domain'));
  });
});

describe('compileDescriptorFiles: what valid files mean', () => {
  it('parses every unit case-insensitively, with epoch-aligned window lengths', () => {
    const config = compileFixtures('units_case_insensitive.yaml');
    const cases: [string, string, number][] = [
      ['s', 'SECOND', 1], ['m', 'MINUTE', 60], ['h', 'HOUR', 3600], ['d', 'DAY', 86400], ['w', 'WEEK', 604800],
      ['mo', 'MONTH', 2592000], ['yr', 'YEAR', 31536000],
    ];
    for (const [key, unit, seconds] of cases) {
      const limit = onlyLimit(config, 'units', key);
      assert.equal(limit.unit, unit, key);
      assert.equal(limit.windowSeconds, seconds, key);
      assert.equal(limit.algorithm, 'fixed_window');
      assert.equal(limit.keyTag, '', 'a plain rate_limit keeps the upstream storage key');
    }
  });

  it('reads a week limit', () => {
    const limit = onlyLimit(compileFixtures('week_unit.yaml'), 'weekly', 'plan_free');
    assert.deepEqual([limit.unit, limit.requestsPerUnit, limit.windowSeconds], ['WEEK', 1000, 604800]);
  });

  it('compiles the basic file: names, stats keys, whitelists', () => {
    const config = compileFixtures('basic.yaml');
    const l = onlyLimit(config, 'test-domain', 'key1_value1', 'subkey1_subvalue1');
    assert.deepEqual(
      [l.fullKey, l.requestsPerUnit, l.unit, l.unlimited, l.shadowMode, l.name],
      ['test-domain.key1_value1.subkey1_subvalue1', 10, 'SECOND', false, false, ''],
    );
    assert.equal(onlyLimit(config, 'test-domain', 'key2').fullKey, 'test-domain.key2');
    const whitelisted = child(config.domains.get('test-domain')!.root, 'key2_value3');
    assert.equal(whitelisted.limits.length, 0);
    assert.equal(whitelisted.children.size, 0);
    assert.equal(onlyLimit(config, 'test-domain', 'key6').unlimited, true);
    assert.equal(onlyLimit(config, 'test-domain', 'key7').detailedMetric, true);
  });

  it('treats an empty value as no value', () => {
    const domain = compileFixtures('nested.yaml').domains.get('nested')!;
    assert.ok(domain.root.children.has('empty'));
    assert.ok(!domain.root.children.has('empty_'));
  });

  it('reads shadow_mode, quota_mode, name and replaces', () => {
    assert.equal(onlyLimit(compileFixtures('shadow.yaml'), 'shadow', 'key1_value1').shadowMode, true);
    assert.equal(onlyLimit(compileFixtures('shadow.yaml'), 'shadow', 'key2').shadowMode, false);
    assert.equal(onlyLimit(compileFixtures('quota_mode.yaml'), 'quota', 'soft').quotaMode, true);
    assert.equal(onlyLimit(compileFixtures('quota_mode.yaml'), 'quota', 'hard').quotaMode, false);
    const vip = onlyLimit(compileFixtures('replaces.yaml'), 'replaces', 'vip');
    assert.deepEqual([vip.name, [...vip.replaces]], ['vip', ['per-user']]);
    const unlimited = onlyLimit(compileFixtures('replaces.yaml'), 'replaces', 'vip_unlimited');
    assert.deepEqual([unlimited.unlimited, [...unlimited.replaces]], [true, ['per-user']]);
  });

  it('keeps metadata as plain data without checking its keys', () => {
    const root = compileFixtures('metadata.yaml').domains.get('test-domain')!.root;
    assert.deepEqual(child(root, 'key1_value1', 'subkey1').metadata, { name: 'service_1' });
    assert.deepEqual(child(root, 'key2').metadata, { service_with_quota: { name: 'service_2', weights: [0.5, 1.5] } });
    assert.equal(child(root, 'key1_value1', 'subkey1_subvalue1').metadata, undefined);
  });

  it('keeps wildcard children in declaration order', () => {
    const root = compileFixtures('wildcard.yaml').domains.get('wildcard')!.root;
    assert.deepEqual(root.wildcards.map((w) => w.pattern), ['wild_foo*', 'path_/api/v1/*', 'path_/api/*', 'mid_a*z', 'any_*']);
    assert.deepEqual(child(root, 'tenant_acme').wildcards.map((w) => w.pattern), ['user_bot-*']);
  });

  it('reads share_threshold and its value pattern', () => {
    const root = compileFixtures('share_threshold.yaml').domains.get('test-domain')!.root;
    const files = child(root, 'files_files/*');
    assert.deepEqual([files.shareThreshold, files.sharedValuePattern], [true, 'files/*']);
    const notShared = child(root, 'path_path/*', 'file_file/*');
    assert.deepEqual([notShared.shareThreshold, notShared.sharedValuePattern], [false, '']);
  });

  it('reads the extensions: rate_limits, algorithms, burst, unit_multiplier, consume_when_over_limit', () => {
    const config = compileFixtures('extensions.yaml');
    const domain = config.domains.get('ext')!;
    assert.equal(domain.consumeWhenOverLimit, 'none');
    const api = child(domain.root, 'api').limits;
    assert.deepEqual(
      api.map((l) => [l.name, l.unit, l.requestsPerUnit, l.fullKey, l.statsSuffix]),
      [['burst', 'SECOND', 2, 'ext.api#burst', '#burst'], ['daily', 'DAY', 5, 'ext.api#daily', '#daily']],
    );
    assert.notEqual(api[0]!.keyTag, api[1]!.keyTag, 'two limits on one descriptor count in different keys');
    const sliding = onlyLimit(config, 'ext', 'sliding');
    assert.deepEqual([sliding.algorithm, sliding.windowSeconds], ['sliding_window', 60]);
    const bucket = onlyLimit(config, 'ext', 'bucket');
    assert.deepEqual([bucket.algorithm, bucket.burst, bucket.requestsPerUnit], ['token_bucket', 20, 10]);
    const five = onlyLimit(config, 'ext', 'five_minutes');
    assert.deepEqual([five.unit, five.unitMultiplier, five.windowSeconds], ['MINUTE', 5, 300]);
    assert.equal(onlyLimit(compileFixtures('basic.yaml'), 'test-domain', 'key3').burst, 1, 'burst defaults to requests_per_unit');
    assert.equal(compileFixtures('basic.yaml').domains.get('test-domain')!.consumeWhenOverLimit, undefined);
  });

  it('defaults a missing requests_per_unit to 0', () => {
    const config = compileYaml('domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n');
    assert.equal(onlyLimit(config, 'd', 'k').requestsPerUnit, 0);
  });

  it('reads only the first YAML document of a file', () => {
    const config = compileYaml('domain: first\n---\ndomain: second\nbogus: 1\n');
    assert.deepEqual([...config.domains.keys()], ['first']);
  });

  it('loads several files with different domains', () => {
    const config = compileFixtures('basic.yaml', 'wildcard.yaml', 'week_unit.yaml');
    assert.deepEqual([...config.domains.keys()].sort(), ['test-domain', 'weekly', 'wildcard']);
  });

  it('accepts a file with a domain and no descriptors (every call is OK)', () => {
    const config = compileYaml('domain: quiet\n');
    assert.equal(config.domains.get('quiet')!.root.children.size, 0);
  });

  it('freezes the compiled tree', () => {
    const config = compileFixtures('basic.yaml');
    const limit = onlyLimit(config, 'test-domain', 'key2');
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(limit));
    assert.ok(Object.isFrozen(config.domains.get('test-domain')!.root));
  });

  it('keeps the source text of plain scalars decoded as strings (yes, n, 007, dates), as yaml.v2 does', () => {
    const domain = compileFixtures('scalar_values.yaml').domains.get('scalars')!;
    const rpu = (entry: string): number | undefined => matchDescriptor(domain, desc(entry))?.limits[0]?.requestsPerUnit;
    assert.equal(rpu('flag=yes'), 1, 'value: yes is the string "yes"');
    assert.equal(rpu('tenant=007'), 2, 'value: 007 is the string "007"');
    assert.equal(rpu('day=2024-01-01'), 3, 'value: 2024-01-01 is the string "2024-01-01"');
    assert.equal(rpu('n'), 4, 'key: n is the string "n"');
  });

  it('compiles the same files to the same config whatever their order', () => {
    const a = compileDescriptorFiles([fixture('basic.yaml'), fixture('wildcard.yaml')]);
    const b = compileDescriptorFiles([fixture('wildcard.yaml'), fixture('basic.yaml')]);
    assert.deepEqual([...a.domains.keys()].sort(), [...b.domains.keys()].sort());
    // With a duplicate domain, the file reported is the same whatever the read order.
    const e1 = loadError(['basic.yaml', 'duplicate_domain.yaml']);
    let e2: ConfigError | undefined;
    try {
      compileDescriptorFiles([fixture('duplicate_domain.yaml'), fixture('basic.yaml')]);
    } catch (error) {
      e2 = error as ConfigError;
    }
    assert.deepEqual(e2?.issues.map((i) => i.file), e1.issues.map((i) => i.file));
  });
});

describe('compileDescriptorFilesOffThread', () => {
  /** Everything but the wildcard matchers (functions), which are compared by what they match. */
  const shape = (config: RateLimitConfig): unknown => {
    const node = (n: DescriptorNode): unknown => ({
      ...n, children: [...n.children].map(([k, c]) => [k, node(c)]), wildcards: n.wildcards.map((w) => [w.pattern, node(w.node)]),
    });
    return [...config.domains].map(([name, d]) => [name, d.consumeWhenOverLimit, node(d.root)]);
  };
  const valid = ['metadata.yaml', 'nested.yaml', 'wildcard.yaml', 'replaces.yaml', 'extensions.yaml', 'value_to_metric.yaml'];

  it('compiles in a worker to the same frozen config as in process, wildcards included', async () => {
    const files = valid.map(fixture);
    const here = compileDescriptorFiles(files);
    const there = await compileDescriptorFilesOffThread(files, 30_000, 'descriptors');
    assert.deepEqual(shape(there), shape(here));
    assert.equal(dumpLimits(there), dumpLimits(here));
    const walk = (n: DescriptorNode): void => {
      assert.ok(Object.isFrozen(n) && Object.isFrozen(n.limits) && Object.isFrozen(n.wildcards));
      n.limits.forEach((l) => assert.ok(Object.isFrozen(l) && Object.isFrozen(l.replaces)));
      n.children.forEach(walk);
    };
    there.domains.forEach((d) => walk(d.root));
    const domain = there.domains.get('wildcard')!;
    for (const entry of ['path=/api/v1/x', 'path=/api/y', 'path=/api/exact', 'wild=foobar', 'path=/nope']) {
      assert.deepEqual(matchDescriptor(domain, desc(entry))?.limits.map((l) => l.fullKey), matchDescriptor(here.domains.get('wildcard')!, desc(entry))?.limits.map((l) => l.fullKey), entry);
    }
  });

  it('rethrows load errors from the worker with their issues', async () => {
    const error = await compileDescriptorFilesOffThread([fixture('float_value.yaml')], 30_000, 'descriptors').then(
      () => assert.fail('expected a ConfigError'), (e: unknown) => e);
    assert.ok(error instanceof ConfigError);
    assert.equal(error.issues[0]?.file, 'float_value.yaml');
    assert.equal(error.issues[0]?.line, 6);
  });

  it('stops a load that runs past its time budget and says which setting to raise', async () => {
    const big = Array.from({ length: 20_000 }, (_, i) => `  - key: k\n    value: v${i}\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n`).join('');
    const started = Date.now();
    const error = await compileDescriptorFilesOffThread([{ name: 'big.yaml', text: `domain: big\ndescriptors:\n${big}` }], 200, '/etc/ratelimit').then(
      () => assert.fail('expected a ConfigError'), (e: unknown) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.message, '/etc/ratelimit: loading took longer than 200 ms (ratelimit.descriptors_load_timeout_ms); not loaded');
    assert.ok(Date.now() - started < 2000, `gave up after ${Date.now() - started} ms`);
  });
});

/**
 * Plain scalars are resolved as Go's yaml.v2 (envoyproxy/ratelimit's parser) resolves them, not as YAML 1.1 says:
 * each row was checked against the Go service (its /rlconfig, or its first load error).
 */
describe('compileDescriptorFiles: numbers resolve as in yaml.v2', () => {
  const limitFile = (rpu: string): string => `domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: ${rpu}\n`;
  const valueFile = (value: string): string => `domain: d\ndescriptors:\n  - key: k\n    value: ${value}\n    rate_limit: { unit: second, requests_per_unit: 1 }\n`;
  const rows: readonly { written: string; rpu: number | string }[] = [
    { written: '0o10', rpu: 8 }, // Go's ParseInt takes 0o/0O, 0x/0X and 0b/0B prefixes
    { written: '0O17', rpu: 15 },
    { written: '0X1F', rpu: 31 },
    { written: '0B11', rpu: 3 },
    { written: '0x_1F', rpu: 31 },
    { written: '010', rpu: 8 },
    { written: '1_000', rpu: 1000 },
    // Base 60 is not read: a string, which uint32 refuses.
    { written: '10:30', rpu: 'error loading config file: yaml: unmarshal errors:\n  line 6: cannot unmarshal !!str `10:30` into uint32' },
    // Not octal, so a float: 09 is "error checking config" like 2.5.
    { written: '09', rpu: 'error checking config: requests_per_unit must be a whole number, got 09' },
    // Past int64 yaml.v2 makes a uint64 or a float, which upstream's key check refuses.
    { written: '9223372036854775808', rpu: 'error checking config: requests_per_unit is too large, got 9223372036854775808' },
    { written: '99999999999999999999999', rpu: 'error checking config: requests_per_unit is too large, got 99999999999999999999999' },
    { written: '9223372036854775807', rpu: 'error loading config file: yaml: unmarshal errors:\n  line 6: cannot unmarshal !!int `9223372...` into uint32' },
    // A float out of range stays a string.
    { written: '1e400', rpu: 'error loading config file: yaml: unmarshal errors:\n  line 6: cannot unmarshal !!str `1e400` into uint32' },
  ];
  for (const row of rows) {
    it(`requests_per_unit: ${row.written}`, () => {
      if (typeof row.rpu === 'number') {
        assert.equal(onlyLimit(compileYaml(limitFile(row.written)), 'd', 'k').requestsPerUnit, row.rpu);
      } else {
        assert.equal(inlineError(limitFile(row.written)).issues[0]?.message, row.rpu);
      }
    });
  }
  const values: readonly { written: string; loads: boolean }[] = [
    { written: '10:30', loads: true },
    { written: '1:30.5', loads: true }, // a base 60 float in YAML 1.1, a string to yaml.v2
    { written: '1e400', loads: true },
    { written: '09', loads: false }, // a float to yaml.v2
    { written: '9223372036854775808', loads: false }, // a uint64
  ];
  for (const row of values) {
    it(`value: ${row.written} ${row.loads ? 'loads as its text' : 'is refused'}`, () => {
      if (row.loads) assert.ok(compileYaml(valueFile(row.written)).domains.get('d')!.root.children.has(`k_${row.written}`));
      else assert.match(inlineError(valueFile(row.written)).issues[0]?.message ?? '', /^error checking config/);
    });
  }
});

describe('compileDescriptorFiles: odd files the Go service reads', () => {
  it('reads an empty or null document as a file without a domain', () => {
    for (const text of ['~\n', 'null\n', '---\n---\ndomain: d\n']) {
      assert.equal(inlineError(text).issues[0]?.message, 'config file cannot have empty domain', JSON.stringify(text));
    }
  });

  it('names replaces\' own type when it is not a list', () => {
    const text = 'domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n      requests_per_unit: 5\n      replaces: nope\n';
    assert.equal(inlineError(text).issues[0]?.message, 'error loading config file: yaml: unmarshal errors:\n  line 7: cannot unmarshal !!str `nope` into []config.yamlReplaces');
  });

  it('dumps an unlimited limit with unit UNKNOWN, as /rlconfig upstream does', () => {
    const config = compileYaml('domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unlimited: true\n      requests_per_unit: 5\n');
    assert.equal(dumpLimits(config), 'd.k: unit=UNKNOWN requests_per_unit=5, shadow_mode: false, quota_mode: false\n');
  });
});
