import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchDescriptor } from '../../../src/ratelimit/matcher.js';
import type { RequestDescriptor } from '../../../src/ratelimit/types.js';
import type { Unit } from '../../../src/ratelimit/units.js';
import { desc, fixtureDomain, withOverride } from './support.js';

interface Expected {
  /** `rpu/UNIT` per limit, or `unlimited`. */
  readonly limits: readonly string[];
  readonly statsKey: string;
  /** Values used in the storage key; defaults to the request values. */
  readonly keyValues?: readonly string[];
}

interface Case {
  readonly name: string;
  readonly entries: readonly string[];
  readonly override?: readonly [number, Unit];
  /** null: no limit applies. */
  readonly expect: Expected | null;
}

function describeLimits(file: string, domainName: string, cases: readonly Case[]): void {
  describe(`matchDescriptor: ${file}`, () => {
    const domain = fixtureDomain(file, domainName);
    for (const c of cases) {
      it(`${c.name}: [${c.entries.join(', ')}]${c.override ? ` override ${c.override.join('/')}` : ''}`, () => {
        let d: RequestDescriptor = desc(...c.entries);
        if (c.override) d = withOverride(d, c.override[0], c.override[1]);
        const match = matchDescriptor(domain, d);
        if (c.expect === null) {
          assert.equal(match, undefined, `expected no limit, got ${match?.statsKey}`);
          return;
        }
        assert.ok(match, 'expected a limit');
        assert.deepEqual(
          match.limits.map((l) => (l.unlimited ? 'unlimited' : `${l.requestsPerUnit}/${l.unit}`)),
          c.expect.limits,
          'limits',
        );
        assert.equal(match.statsKey, c.expect.statsKey, 'stats key');
        assert.deepEqual(match.keyValues, c.expect.keyValues ?? d.entries.map((e) => e.value), 'storage key values');
      });
    }
  });
}

describeLimits('basic.yaml', 'test-domain', [
  { name: 'no entries', entries: [], expect: null },
  { name: 'unknown key', entries: ['unknown=x'], expect: null },
  { name: 'value with no default and no exact match', entries: ['key1=something'], expect: null },
  { name: 'a node without rate_limit is not a limit', entries: ['key1=value1'], expect: null },
  { name: 'default key at the 2nd level', entries: ['key1=value1', 'subkey1=something'], expect: { limits: ['5/SECOND'], statsKey: 'test-domain.key1_value1.subkey1' } },
  {
    name: 'exact key/value beats the default at the 2nd level',
    entries: ['key1=value1', 'subkey1=subvalue1'],
    expect: { limits: ['10/SECOND'], statsKey: 'test-domain.key1_value1.subkey1_subvalue1' },
  },
  { name: 'default key at the top', entries: ['key2=something'], expect: { limits: ['20/MINUTE'], statsKey: 'test-domain.key2' } },
  { name: 'default key with an empty request value', entries: ['key2'], expect: { limits: ['20/MINUTE'], statsKey: 'test-domain.key2' } },
  { name: 'exact key/value beats the default at the top', entries: ['key2=value2'], expect: { limits: ['30/MINUTE'], statsKey: 'test-domain.key2_value2' } },
  { name: 'exact key/value without a limit whitelists (no fallback to the default)', entries: ['key2=value3'], expect: null },
  { name: 'extra entries after a leaf', entries: ['key2=value2', 'subkey=subvalue'], expect: null },
  { name: 'extra entries after a default leaf', entries: ['key2=x', 'subkey=subvalue'], expect: null },
  { name: 'no match among children', entries: ['key5=value5', 'subkey5=subvalue'], expect: null },
  { name: 'HOUR', entries: ['key3=foo'], expect: { limits: ['1/HOUR'], statsKey: 'test-domain.key3' } },
  { name: 'DAY', entries: ['key4=foo'], expect: { limits: ['1/DAY'], statsKey: 'test-domain.key4' } },
  { name: 'a limit on a node with children applies when the request stops there', entries: ['key5=value5'], expect: { limits: ['15/DAY'], statsKey: 'test-domain.key5_value5' } },
  {
    name: 'the child limit when the request goes on',
    entries: ['key5=value5', 'subkey5=subvalue5'],
    expect: { limits: ['25/DAY'], statsKey: 'test-domain.key5_value5.subkey5_subvalue5' },
  },
  { name: 'unlimited', entries: ['key6=foo'], expect: { limits: ['unlimited'], statsKey: 'test-domain.key6' } },
  { name: 'detailed_metric puts the value in the stats key', entries: ['key7=unspecified_value'], expect: { limits: ['70/MINUTE'], statsKey: 'test-domain.key7_unspecified_value' } },
  { name: 'detailed_metric, another value', entries: ['key7=another_value'], expect: { limits: ['70/MINUTE'], statsKey: 'test-domain.key7_another_value' } },
  // Limit overrides: the override applies whenever the domain exists, stats keys come from the request.
  {
    name: 'override replaces the configured limit',
    entries: ['key1=value1', 'subkey1=something'],
    override: [10, 'DAY'],
    expect: { limits: ['10/DAY'], statsKey: 'test-domain.key1_value1.subkey1_something' },
  },
  {
    name: 'override with another value is another stats key',
    entries: ['key1=value1', 'subkey1=something_else'],
    override: [42, 'HOUR'],
    expect: { limits: ['42/HOUR'], statsKey: 'test-domain.key1_value1.subkey1_something_else' },
  },
  { name: 'override applies even without a config match', entries: ['nothing=here'], override: [3, 'SECOND'], expect: { limits: ['3/SECOND'], statsKey: 'test-domain.nothing_here' } },
  { name: 'override stats key drops _value for empty values', entries: ['k1=v1', 'k2', 'k3=v3'], override: [1, 'MINUTE'], expect: { limits: ['1/MINUTE'], statsKey: 'test-domain.k1_v1.k2.k3_v3' } },
  { name: 'override of a whitelisted descriptor', entries: ['key2=value3'], override: [7, 'MINUTE'], expect: { limits: ['7/MINUTE'], statsKey: 'test-domain.key2_value3' } },
]);

describeLimits('nested.yaml', 'nested', [
  { name: 'no backtracking: k_v branch has no sub=x, the k branch is never tried', entries: ['k=v', 'sub=x'], expect: null },
  { name: 'k_v branch', entries: ['k=v', 'sub=only'], expect: { limits: ['1/SECOND'], statsKey: 'nested.k_v.sub_only' } },
  { name: 'default branch for other values', entries: ['k=w', 'sub=x'], expect: { limits: ['2/SECOND'], statsKey: 'nested.k.sub' } },
  { name: 'three levels', entries: ['a=1', 'b=2', 'c=3'], expect: { limits: ['3/MINUTE'], statsKey: 'nested.a.b.c' } },
  { name: 'stops short of the limit', entries: ['a=1', 'b=2'], expect: null },
  { name: 'first level only', entries: ['a=1'], expect: null },
  { name: 'one entry too many', entries: ['a=1', 'b=2', 'c=3', 'd=4'], expect: null },
  { name: 'entries in another order', entries: ['b=2', 'a=1', 'c=3'], expect: null },
  { name: 'parent limit', entries: ['parent=p'], expect: { limits: ['4/HOUR'], statsKey: 'nested.parent' } },
  { name: 'child limit', entries: ['parent=p', 'child=c'], expect: { limits: ['5/HOUR'], statsKey: 'nested.parent.child' } },
  { name: 'past the child', entries: ['parent=p', 'child=c', 'x=y'], expect: null },
  { name: 'config value "" is a default key', entries: ['empty=anything'], expect: { limits: ['6/SECOND'], statsKey: 'nested.empty' } },
  { name: 'empty key and value match nothing', entries: ['='], expect: null },
]);

describeLimits('wildcard.yaml', 'wildcard', [
  { name: 'trailing wildcard', entries: ['wild=foo1'], expect: { limits: ['20/MINUTE'], statsKey: 'wildcard.wild_foo*' } },
  { name: 'another value, same pattern stats key, own counter', entries: ['wild=foo2'], expect: { limits: ['20/MINUTE'], statsKey: 'wildcard.wild_foo*', keyValues: ['foo2'] } },
  { name: 'the star matches nothing too', entries: ['wild=foo'], expect: { limits: ['20/MINUTE'], statsKey: 'wildcard.wild_foo*' } },
  { name: 'non-matching value', entries: ['wild=bar'], expect: null },
  { name: 'a value without * does not match eagerly', entries: ['noWild=foo1'], expect: null },
  { name: 'a value without * matches exactly', entries: ['noWild=foo'], expect: { limits: ['30/MINUTE'], statsKey: 'wildcard.noWild_foo' } },
  { name: 'first wildcard in declaration order wins', entries: ['path=/api/v1/users'], expect: { limits: ['10/MINUTE'], statsKey: 'wildcard.path_/api/v1/*' } },
  { name: 'second wildcard', entries: ['path=/api/v2/users'], expect: { limits: ['100/MINUTE'], statsKey: 'wildcard.path_/api/*' } },
  { name: 'exact beats wildcard', entries: ['path=/api/exact'], expect: { limits: ['1/MINUTE'], statsKey: 'wildcard.path_/api/exact' } },
  { name: 'wildcard beats default', entries: ['path=/api/'], expect: { limits: ['100/MINUTE'], statsKey: 'wildcard.path_/api/*' } },
  { name: 'default when no wildcard matches', entries: ['path=/other'], expect: { limits: ['1000/MINUTE'], statsKey: 'wildcard.path' } },
  { name: 'middle wildcard', entries: ['mid=abcz'], expect: { limits: ['40/MINUTE'], statsKey: 'wildcard.mid_a*z' } },
  { name: 'middle wildcard, wrong suffix', entries: ['mid=abc'], expect: null },
  { name: '* matches the empty value', entries: ['any'], expect: { limits: ['50/MINUTE'], statsKey: 'wildcard.any_*' } },
  { name: '* matches any value', entries: ['any=x y z'], expect: { limits: ['50/MINUTE'], statsKey: 'wildcard.any_*' } },
  { name: 'nested wildcard', entries: ['tenant=acme', 'user=bot-7'], expect: { limits: ['2/SECOND'], statsKey: 'wildcard.tenant_acme.user_bot-*' } },
  { name: 'nested wildcard, no match', entries: ['tenant=acme', 'user=human'], expect: null },
  { name: 'top-level patterns do not apply at a nested level', entries: ['tenant=acme', 'wild=foo1'], expect: null },
]);

describeLimits('detailed_metric.yaml', 'test-domain', [
  { name: 'detailed_metric on a default key', entries: ['key7=unspecified_value'], expect: { limits: ['70/MINUTE'], statsKey: 'test-domain.key7_unspecified_value' } },
  { name: 'detailed_metric on the leaf puts request values at every level', entries: ['outer=o', 'inner=i'], expect: { limits: ['7/MINUTE'], statsKey: 'test-domain.outer_o.inner_i' } },
]);

describeLimits('value_to_metric.yaml', 'example10', [
  {
    name: 'README example 10',
    entries: ['route=api', 'http_method=GET', 'subject_id=123'],
    expect: { limits: ['60/MINUTE'], statsKey: 'example10.route_api.http_method_GET.subject_id' },
  },
  {
    name: 'README example 10, other values',
    entries: ['route=web', 'http_method=POST', 'subject_id=456'],
    expect: { limits: ['60/MINUTE'], statsKey: 'example10.route_web.http_method_POST.subject_id' },
  },
  { name: 'value_to_metric on a wildcard uses the full request value', entries: ['svc=payments'], expect: { limits: ['5/MINUTE'], statsKey: 'example10.svc_payments' } },
  { name: 'a wildcard without value_to_metric uses the pattern', entries: ['plain=prefix1'], expect: { limits: ['5/MINUTE'], statsKey: 'example10.plain_pre*' } },
]);

describeLimits('share_threshold.yaml', 'test-domain', [
  { name: 'shared counter uses the pattern', entries: ['files=files/a.txt'], expect: { limits: ['100/MINUTE'], statsKey: 'test-domain.files_files/*', keyValues: ['files/*'] } },
  { name: 'another value, same counter', entries: ['files=files/b/c.txt'], expect: { limits: ['100/MINUTE'], statsKey: 'test-domain.files_files/*', keyValues: ['files/*'] } },
  {
    name: 'nested shared wildcard under an exact value',
    entries: ['nested=parent', 'files=nested/x'],
    expect: { limits: ['200/MINUTE'], statsKey: 'test-domain.nested_parent.files_nested/*', keyValues: ['parent', 'nested/*'] },
  },
  {
    name: 'same key at two levels, both shared',
    entries: ['files=top/a', 'files=nested/b'],
    expect: { limits: ['300/MINUTE'], statsKey: 'test-domain.files_top/*.files_nested/*', keyValues: ['top/*', 'nested/*'] },
  },
  {
    name: 'share_threshold keeps the pattern even with value_to_metric',
    entries: ['route=api/v1', 'method=GET'],
    expect: { limits: ['60/MINUTE'], statsKey: 'test-domain.route_api/*.method', keyValues: ['api/*', 'GET'] },
  },
  {
    name: 'share_threshold keeps the pattern even with detailed_metric',
    entries: ['service=svc/a', 'endpoint=users'],
    expect: { limits: ['80/MINUTE'], statsKey: 'test-domain.service_svc/*.endpoint_users', keyValues: ['svc/*', 'users'] },
  },
  {
    name: 'shared then unshared wildcard',
    entries: ['path=path/a', 'file=file/b', 'type=pdf'],
    expect: { limits: ['120/MINUTE'], statsKey: 'test-domain.path_path/*.file_file/*.type', keyValues: ['path/*', 'file/b', 'pdf'] },
  },
  { name: 'exact value beats the shared wildcard', entries: ['file=test1'], expect: { limits: ['50/MINUTE'], statsKey: 'test-domain.file_test1', keyValues: ['test1'] } },
  { name: 'shared wildcard for other values', entries: ['file=test2'], expect: { limits: ['100/MINUTE'], statsKey: 'test-domain.file_test*', keyValues: ['test*'] } },
  { name: 'shared middle wildcard', entries: ['midpath=/api/users/v1'], expect: { limits: ['100/MINUTE'], statsKey: 'test-domain.midpath_/api*v1', keyValues: ['/api*v1'] } },
  { name: 'shared multi-wildcard', entries: ['multiroute=svc-x-ep-y-rpc'], expect: { limits: ['50/MINUTE'], statsKey: 'test-domain.multiroute_svc*ep*rpc', keyValues: ['svc*ep*rpc'] } },
]);

describeLimits('shadow.yaml', 'shadow', [
  { name: 'shadow limit matches like any other', entries: ['key1=value1'], expect: { limits: ['2/SECOND'], statsKey: 'shadow.key1_value1' } },
  { name: 'override of a shadow descriptor', entries: ['key1=value1'], override: [9, 'SECOND'], expect: { limits: ['9/SECOND'], statsKey: 'shadow.key1_value1' } },
]);

describeLimits('extensions.yaml', 'ext', [
  { name: 'rate_limits: several limits on one descriptor, in order', entries: ['api=x'], expect: { limits: ['2/SECOND', '5/DAY'], statsKey: 'ext.api' } },
]);

describe('matchDescriptor: limit details', () => {
  it('an override is a plain fixed window: never shadow, no name, no replaces', () => {
    const domain = fixtureDomain('shadow.yaml', 'shadow');
    const match = matchDescriptor(domain, withOverride(desc('key1=value1'), 9, 'MINUTE'));
    const limit = match!.limits[0]!;
    assert.deepEqual(
      [limit.shadowMode, limit.name, [...limit.replaces], limit.algorithm, limit.windowSeconds, limit.unlimited, limit.keyTag],
      [false, '', [], 'fixed_window', 60, false, ''],
    );
    assert.equal(limit.fullKey, 'shadow.key1_value1');
  });

  it('returns the metadata of the matched node', () => {
    const domain = fixtureDomain('metadata.yaml', 'test-domain');
    assert.deepEqual(matchDescriptor(domain, desc('key1=value1', 'subkey1=x'))!.metadata, { name: 'service_1' });
    assert.deepEqual(matchDescriptor(domain, desc('key2=y'))!.metadata, { service_with_quota: { name: 'service_2', weights: [0.5, 1.5] } });
    assert.equal(matchDescriptor(domain, desc('key1=value1', 'subkey1=subvalue1'))!.metadata, undefined);
  });

  it('rate_limits entries carry their own stats suffix', () => {
    const domain = fixtureDomain('extensions.yaml', 'ext');
    const match = matchDescriptor(domain, desc('api=x'))!;
    assert.deepEqual(match.limits.map((l) => match.statsKey + l.statsSuffix), ['ext.api#burst', 'ext.api#daily']);
  });

  it('looks keys up by composite name, as upstream does (key "key1_value1" with no value finds key1=value1)', () => {
    const domain = fixtureDomain('basic.yaml', 'test-domain');
    // upstream tries descriptorsMap[key + "_" + value], then descriptorsMap[key]: "key1_value1" is the key1/value1 node.
    const quirk = matchDescriptor(domain, desc('key1_value1', 'subkey1=x'));
    assert.equal(quirk?.statsKey, 'test-domain.key1_value1.subkey1');
    assert.equal(quirk?.limits[0]?.requestsPerUnit, 5);
  });

  it('keeps request values containing `_` or `.` as they are', () => {
    const domain = fixtureDomain('basic.yaml', 'test-domain');
    const match = matchDescriptor(domain, desc('key2=a.b_c'));
    assert.equal(match!.statsKey, 'test-domain.key2');
    assert.deepEqual(match!.keyValues, ['a.b_c']);
  });
});
