import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isHeaderSafe, isUsableSubject } from '../../../src/authz/subject.js';

describe('subjects and header values', () => {
  const rows: [string, unknown, boolean, boolean][] = [
    // name, value, header-safe, usable subject
    ['a plain name', 'user-42', true, true],
    ['a SPIFFE id', 'spiffe://example.org/ns/a/sa/b', true, true],
    ['non-ASCII', 'Zoë 🙂', true, true],
    ['inner spaces and a tab', 'CN=ops team,\tO=Example', true, true],
    ['4096 characters', 'u'.repeat(4096), true, true],
    ['4097 characters', 'u'.repeat(4097), false, false],
    ['a leading space (HTTP strips it: collides with admin)', ' admin', true, false],
    ['a trailing space', 'admin ', true, false],
    ['a leading tab', '\tadmin', true, false],
    ['a trailing tab', 'admin\t', true, false],
    ['non-breaking space at the ends (not HTTP whitespace)', '\u00a0admin\u00a0', true, true],
    ['empty', '', true, false],
    ['blank', ' \t ', true, false],
    ['CR LF (header smuggling)', 'alice\r\nx-admin: 1', false, false],
    ['NUL', 'alice\u0000', false, false],
    ['DEL', 'alice\u007f', false, false],
    ['vertical tab', 'alice\u000b', false, false],
    ['a lone high surrogate (sent as U+FFFD: collides with the low one)', 'user\ud800', true, false],
    ['a lone low surrogate', 'user\udfff', true, false],
    ['surrogates in the wrong order', 'user\udc00\ud800', true, false],
    ['a surrogate pair (one astral character)', 'user\ud834\udd1e', true, true],
    ['a number', 42, false, false],
    ['missing', undefined, false, false],
  ];
  for (const [name, value, safe, usable] of rows) {
    it(name, () => {
      if (typeof value === 'string') assert.equal(isHeaderSafe(value), safe);
      assert.equal(isUsableSubject(value), usable);
    });
  }
});
