import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scopeList } from '../../../src/authz/scopes.js';

describe('scopeList: what the policy checks is what x-user-scopes carries', () => {
  const rows: [unknown, string[]][] = [
    ['read write', ['read', 'write']],
    ['  read   write ', ['read', 'write']],
    ['read\twrite', ['read', 'write']],
    ['read \t\n write', ['read', 'write']],
    [['read', 'write'], ['read', 'write']],
    [['read write', 'admin'], ['read', 'write', 'admin']],
    [['read\twrite'], ['read', 'write']],
    [[1, 'read', null, { a: 1 }], ['read']],
    [['', ' '], []],
    ['', []],
    [undefined, []],
    [42, []],
    ['read\u0000admin', ['read\u0000admin']],
  ];
  for (const [value, expected] of rows) {
    it(`${JSON.stringify(value)} → ${JSON.stringify(expected)}`, () => {
      const scopes = scopeList(value);
      assert.deepEqual(scopes, expected);
      // The header value, read back the way an upstream splits it, is the same list.
      assert.deepEqual(scopes.join(' ').split(' ').filter((s) => s !== ''), scopes);
    });
  }
});
