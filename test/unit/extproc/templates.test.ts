import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { textAsHeaderValue } from '../../../src/extproc/headers.js';
import { compileTemplate, safeHeaderValue, type Template } from '../../../src/extproc/templates.js';

const vars: Record<string, string> = { request_id: 'r1', client_ip: '10.0.0.1', user_id: 'alice', empty: '' };
const lookup = (name: string): string | undefined => vars[name];

describe('header templates', () => {
  const rendered: [string, string | undefined][] = [
    ['portcullis', 'portcullis'],
    ['{request_id}', 'r1'],
    ['ip={client_ip}; user={user_id}', 'ip=10.0.0.1; user=alice'],
    ['{{literal}}', '{literal}'],
    ['{{{user_id}}}', '{alice}'],
    ['{missing}', undefined],
    ['a{empty}b', undefined],
    ['', ''],
    // Literal text becomes its UTF-8 bytes, one char per byte, as header values are held (headers.ts).
    ['café', 'caf\xc3\xa9'],
  ];
  for (const [source, expected] of rendered) {
    it(`renders ${JSON.stringify(source)} → ${JSON.stringify(expected)}`, () => {
      const t = compileTemplate(source);
      assert.notEqual(typeof t, 'string', String(t));
      assert.equal((t as Template).render(lookup), expected);
    });
  }

  it('lists the variables used', () => {
    assert.deepEqual((compileTemplate('{a}-{b}-{a}') as Template).variables, ['a', 'b']);
  });

  const errors: [string, RegExp][] = [
    ['{unclosed', /unclosed '\{'/],
    ['stray}', /unmatched '\}'/],
    ['{Bad-Name}', /not a variable name/],
    ['{}', /not a variable name/],
    ['a\nb', /control characters/],
    ['a\x01b', /control characters/],
    ['a\x7fb', /control characters/],
  ];
  for (const [source, message] of errors) {
    it(`refuses ${JSON.stringify(source)}`, () => {
      const t = compileTemplate(source);
      assert.equal(typeof t, 'string');
      assert.match(t as string, message);
    });
  }

  it('never quotes the template it refuses: a header rule\'s literal text may be a credential', () => {
    for (const source of ['Bearer s3cret{', 'Bearer s3cret}', 'v1={S3cret}', 'x{s3cret']) {
      const t = compileTemplate(source);
      assert.equal(typeof t, 'string', source);
      assert.ok(!(t as string).includes('3cret'), t as string);
    }
  });
});

describe('header values from text', () => {
  // The low byte of U+010D is CR, of U+0101 is 0x01, of U+010A is LF: cut to latin1 they would break the header.
  const table: [string, string][] = [
    ['alice', 'alice'],
    ['č', '\xc4\x8d'],
    ['bāb', 'b\xc4\x81b'],
    ['Иван', '\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd'],
    ['Łukasz', '\xc5\x81ukasz'],
    ['张伟', '\xe5\xbc\xa0\xe4\xbc\x9f'],
  ];
  for (const [text, bytes] of table) {
    it(`${text} is its UTF-8 bytes, and a safe value`, () => {
      assert.equal(textAsHeaderValue(text), bytes);
      assert.deepEqual(Buffer.from(textAsHeaderValue(text), 'latin1'), Buffer.from(text, 'utf8'));
      assert.equal(safeHeaderValue(textAsHeaderValue(text)), bytes);
    });
  }

  const unsafe: [string, string][] = [
    ['CR', 'a\rb'], ['LF', 'a\nb'], ['NUL', 'a\0b'], ['0x01', 'a\x01b'], ['0x1f', 'a\x1fb'], ['DEL', 'a\x7fb'],
    ['text not turned into bytes', 'alice\u010d\u010ax-admin: true'], ['over 16 KiB', 'x'.repeat(16_385)],
  ];
  for (const [what, value] of unsafe) {
    it(`refuses a value with ${what}`, () => assert.equal(safeHeaderValue(value), undefined));
  }
  it('keeps tab and every byte from 0x20 up', () => {
    const all = '\t' + Array.from({ length: 0x100 - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).filter((c) => c !== '\x7f').join('');
    assert.equal(safeHeaderValue(all), all);
    assert.equal(safeHeaderValue('x'.repeat(16_384))?.length, 16_384);
  });
});
