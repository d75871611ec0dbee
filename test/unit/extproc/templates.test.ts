import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileTemplate, type Template } from '../../../src/extproc/templates.js';

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
    ['a\nb', /CR, LF or NUL/],
  ];
  for (const [source, message] of errors) {
    it(`refuses ${JSON.stringify(source)}`, () => {
      const t = compileTemplate(source);
      assert.equal(typeof t, 'string');
      assert.match(t as string, message);
    });
  }
});
