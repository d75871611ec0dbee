import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileWildcard } from '../../../src/ratelimit/wildcard.js';

interface Case {
  readonly pattern: string;
  readonly text: string;
  readonly matches: boolean;
}

const CASES: readonly Case[] = [
  // Trailing star (the original envoyproxy/ratelimit wildcard).
  { pattern: 'foo*', text: 'foo', matches: true },
  { pattern: 'foo*', text: 'foo1', matches: true },
  { pattern: 'foo*', text: 'foobar/baz', matches: true },
  { pattern: 'foo*', text: 'fo', matches: false },
  { pattern: 'foo*', text: 'xfoo', matches: false },
  { pattern: 'foo*', text: 'Foo1', matches: false },
  // Leading star.
  { pattern: '*bar', text: 'bar', matches: true },
  { pattern: '*bar', text: 'foobar', matches: true },
  { pattern: '*bar', text: 'bar1', matches: false },
  { pattern: '*bar', text: 'ar', matches: false },
  // Star in the middle.
  { pattern: 'a*z', text: 'az', matches: true },
  { pattern: 'a*z', text: 'abcz', matches: true },
  { pattern: 'a*z', text: 'abc', matches: false },
  { pattern: 'a*z', text: 'bz', matches: false },
  { pattern: '/api*v1', text: '/api/users/v1', matches: true },
  { pattern: '/api*v1', text: '/api/users/v2', matches: false },
  // Several stars: the literal segments must appear in order.
  { pattern: 'svc*ep*rpc', text: 'svc-a-ep-b-rpc', matches: true },
  { pattern: 'svc*ep*rpc', text: 'svceprpc', matches: true },
  { pattern: 'svc*ep*rpc', text: 'svc-rpc-ep', matches: false },
  { pattern: 'svc*ep*rpc', text: 'svc-a-rpc', matches: false },
  { pattern: 'a*b*c*d', text: 'abcd', matches: true },
  { pattern: 'a*b*c*d', text: 'axxbyyczzd', matches: true },
  { pattern: 'a*b*c*d', text: 'acbd', matches: false },
  { pattern: '*a*', text: 'a', matches: true },
  { pattern: '*a*', text: 'bab', matches: true },
  { pattern: '*a*', text: 'bbb', matches: false },
  { pattern: 'x**y', text: 'xy', matches: true },
  { pattern: 'x**y', text: 'x-y', matches: true },
  // `*` alone matches anything, the empty string included.
  { pattern: '*', text: '', matches: true },
  { pattern: '*', text: 'anything at all', matches: true },
  { pattern: '**', text: '', matches: true },
  // Overlapping segments: the prefix and the suffix may not share characters.
  { pattern: 'a*a', text: 'a', matches: false },
  { pattern: 'a*a', text: 'aa', matches: true },
  { pattern: 'a*a', text: 'aba', matches: true },
  { pattern: 'ab*ba', text: 'aba', matches: false },
  { pattern: 'ab*ba', text: 'abba', matches: true },
  { pattern: 'a*aa*a', text: 'aaa', matches: false },
  { pattern: 'a*aa*a', text: 'aaaa', matches: true },
  { pattern: 'a*b*b', text: 'ab', matches: false },
  { pattern: 'a*b*b', text: 'abb', matches: true },
  // A middle segment found too late (overlapping the suffix) does not count.
  { pattern: 'x*yz*z', text: 'xyz', matches: false },
  { pattern: 'x*yz*z', text: 'xyzz', matches: true },
  // The greedy-leftmost middle search still finds a match further right.
  { pattern: 'a*bc*d', text: 'abxbcd', matches: true },
  // Patterns are matched against `key_value`, as the matcher passes them.
  { pattern: 'path_/api/*', text: 'path_/api/users', matches: true },
  { pattern: 'path_/api/*', text: 'path_/apiusers', matches: false },
  { pattern: 'path_/api/*', text: 'other_/api/users', matches: false },
  // Regex metacharacters are literal.
  { pattern: 'a.c*', text: 'abc', matches: false },
  { pattern: 'a.c*', text: 'a.c1', matches: true },
  { pattern: '(x)+*', text: '(x)+y', matches: true },
  { pattern: '?*', text: 'a', matches: false },
  // Multi-byte characters.
  { pattern: 'é*ü', text: 'éxxü', matches: true },
  { pattern: '日本*', text: '日本語', matches: true },
  { pattern: '日本*', text: '日', matches: false },
];

describe('compileWildcard', () => {
  for (const c of CASES) {
    it(`${JSON.stringify(c.pattern)} ${c.matches ? 'matches' : 'does not match'} ${JSON.stringify(c.text)}`, () => {
      assert.equal(compileWildcard(c.pattern)(c.text), c.matches);
    });
  }

  it('gives the same answer when the compiled matcher is reused', () => {
    const m = compileWildcard('a*b*c');
    const texts = ['abc', 'ac', 'axbyc', 'abc', 'cba', 'axbyc'];
    assert.deepEqual(texts.map(m), [true, false, true, true, false, true]);
  });

  it('stays linear on long texts that almost match', () => {
    const m = compileWildcard('a*a*a*a*a*a*a*a*b');
    const text = 'a'.repeat(100_000);
    const started = process.hrtime.bigint();
    assert.equal(m(text), false);
    assert.equal(m(`${text}b`), true);
    assert.ok(process.hrtime.bigint() - started < 1_000_000_000n, 'took over a second');
  });

  it('a pattern without * matches only itself', () => {
    const m = compileWildcard('abc');
    assert.equal(m('abc'), true);
    assert.equal(m('abcabc'), false);
    assert.equal(m('ab'), false);
  });
});
