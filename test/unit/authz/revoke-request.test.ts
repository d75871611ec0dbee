import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RevocationEntry } from '../../../src/authz/ports.js';
import { formatRevocations, printableId, revokeRequest, untilText, type RevokeOptions, type RevokeRequest } from '../../../src/cli/revoke-request.js';

describe('revokeRequest: what a revoke command line asks for', () => {
  const c = { config: 'p.yaml' };
  const usage = { action: 'usage' } as const;
  // [command line, the request (for a usage error: only its action and a fragment of its message)]
  const rows: [RevokeOptions, RevokeRequest | { action: 'usage'; says: RegExp }][] = [
    [{ ...c, jti: 't' }, { action: 'revoke', config: 'p.yaml', kind: 'jti', id: 't', ttlSeconds: 86_400 }],
    [{ ...c, apiKeyId: 'k' }, { action: 'revoke', config: 'p.yaml', kind: 'key', id: 'k', ttlSeconds: 100 * 365 * 86_400 }],
    [{ ...c, jti: 't', ttl: '120' }, { action: 'revoke', config: 'p.yaml', kind: 'jti', id: 't', ttlSeconds: 120 }],
    [{ ...c, jti: 't', ttl: '1.5' }, { ...usage, says: /--ttl must be a whole number of seconds from 1 to 315360000/ }],
    [{ ...c, lift: true, jti: 't' }, { action: 'lift', config: 'p.yaml', kind: 'jti', id: 't' }],
    [{ ...c, lift: true, apiKeyId: 'k' }, { action: 'lift', config: 'p.yaml', kind: 'key', id: 'k' }],
    [{ ...c, list: true }, { action: 'list', config: 'p.yaml' }],
    [{ jti: 't' }, { ...usage, says: /--config FILE and one of/ }],
    [{ list: true }, { ...usage, says: /--config FILE/ }],
    [c, { ...usage, says: /--jti ID or --api-key-id ID/ }],
    [{ ...c, jti: '' }, { ...usage, says: /--jti ID or --api-key-id ID/ }],
    [{ ...c, jti: 't', apiKeyId: 'k' }, { ...usage, says: /one of/ }],
    [{ ...c, lift: true }, { ...usage, says: /with --lift/ }],
    [{ ...c, lift: true, jti: 't', apiKeyId: 'k' }, { ...usage, says: /one of/ }],
    [{ ...c, lift: true, jti: 't', ttl: '60' }, { ...usage, says: /--lift takes no --ttl/ }],
    [{ ...c, list: true, jti: 't' }, { ...usage, says: /--list takes no/ }],
    [{ ...c, list: true, ttl: '60' }, { ...usage, says: /--list takes no/ }],
    [{ ...c, list: true, lift: true }, { ...usage, says: /--list takes no/ }],
  ];
  for (const [options, want] of rows) {
    it(JSON.stringify(options), () => {
      const got = revokeRequest(options);
      if ('says' in want) {
        assert.equal(got.action, 'usage');
        assert.match((got as { message: string }).message, want.says);
      } else assert.deepEqual(got, want);
    });
  }
});

describe('printableId: an id as a terminal may show it', () => {
  const rows: [string, string][] = [
    ['alice-1', 'alice-1'],
    ['3f1c-9a', '3f1c-9a'],
    ['with space', 'with space'],
    ['ünïcödé-ключ', 'ünïcödé-ключ'],
    ['a\nb', 'a\\x0ab'],
    ['\x1b[31mred', '\\x1b[31mred'],
    ['nul\x00', 'nul\\x00'],
    ['tab\t', 'tab\\x09'],
    ['del\x7f', 'del\\x7f'],
    ['c1\u009b31m', 'c1\\x9b31m'],
    ['rtl\u202eevil', 'rtl\\u202eevil'],
    ['isolate\u2066x\u2069', 'isolate\\u2066x\\u2069'],
    ['line\u2028sep', 'line\\u2028sep'],
    ['back\\slash', 'back\\\\slash'],
    ['back\\x0a', 'back\\\\x0a'], // not the escape of a newline
  ];
  for (const [id, shown] of rows) it(JSON.stringify(id), () => assert.equal(printableId(id), shown));
});

describe('untilText', () => {
  const rows: [number, string][] = [
    [0, '1970-01-01T00:00:00.000Z'],
    [1_700_000_000_000, '2023-11-14T22:13:20.000Z'],
    [Number.POSITIVE_INFINITY, 'never'],
    [9e15, '9000000000000000'], // past what Date can hold (someone's ZADD by hand): shown, not a RangeError
    [Number.NaN, 'NaN'],
  ];
  for (const [ms, text] of rows) it(String(ms), () => assert.equal(untilText(ms), text));
});

describe('formatRevocations: revoke --list', () => {
  it('sorted by kind then id (code points), ids escaped and last, then the count', () => {
    const entries: RevocationEntry[] = [
      { kind: 'jti', id: 'b', untilMs: 1_700_000_000_000 },
      { kind: 'key', id: 'zed', untilMs: Number.POSITIVE_INFINITY },
      { kind: 'jti', id: 'a\x1b[2J', untilMs: 1_700_000_000_000 },
      { kind: 'key', id: 'Alice', untilMs: 1_700_000_000_000 },
      { kind: 'jti', id: 'B', untilMs: 1_700_000_000_000 },
    ];
    assert.equal(formatRevocations(entries), [
      'KIND        UNTIL                     ID',
      'api-key-id  2023-11-14T22:13:20.000Z  Alice',
      'api-key-id  never                     zed',
      'jti         2023-11-14T22:13:20.000Z  B',
      'jti         2023-11-14T22:13:20.000Z  a\\x1b[2J',
      'jti         2023-11-14T22:13:20.000Z  b',
      '5 revoked (3 jti, 2 API key ids)',
      '',
    ].join('\n'));
  });

  const counts: [RevocationEntry[], string][] = [
    [[], '0 revoked (0 jti, 0 API key ids)\n'],
    [[{ kind: 'key', id: 'k', untilMs: 0 }], 'KIND        UNTIL                     ID\napi-key-id  1970-01-01T00:00:00.000Z  k\n1 revoked (0 jti, 1 API key id)\n'],
    [[{ kind: 'jti', id: 'j', untilMs: Number.POSITIVE_INFINITY }], 'KIND  UNTIL  ID\njti   never  j\n1 revoked (1 jti, 0 API key ids)\n'],
  ];
  for (const [entries, text] of counts) it(`${entries.length} entries`, () => assert.equal(formatRevocations(entries), text));
});
