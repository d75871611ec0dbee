import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateExpr, parseExpr, parseStringTemplate, pick, renderString, renderValue, type ValueTemplate } from '../../../src/bff/template.js';

const scope = new Map<string, unknown>([
  ['userId', 'u 1/2'],
  ['user', { id: 7, name: 'Ada', 'first name': 'Ada', tags: ['a', 'b'], nested: { deep: true } }],
  ['orders', [{ id: 'o-1', total: 10, items: 2 }, { id: 'o-2', total: 5, items: 1 }]],
  ['empty', []],
  ['nothing', null],
]);

describe('parseExpr', () => {
  const cases: { text: string; root: string; steps: (string | number)[] }[] = [
    { text: 'user', root: 'user', steps: [] },
    { text: ' user ', root: 'user', steps: [] },
    { text: 'orders[0].id', root: 'orders', steps: [0, 'id'] },
    { text: 'user.tags[1]', root: 'user', steps: ['tags', 1] },
    { text: 'user["first name"]', root: 'user', steps: ['first name'] },
    { text: "user['first name']", root: 'user', steps: ['first name'] },
    { text: 'user.x-request-id', root: 'user', steps: ['x-request-id'] },
    { text: 'orders[12][3].a_b', root: 'orders', steps: [12, 3, 'a_b'] },
  ];
  for (const c of cases) {
    it(`reads ${c.text}`, () => assert.deepEqual({ root: parseExpr(c.text).root, steps: parseExpr(c.text).steps }, { root: c.root, steps: c.steps }));
  }
  const bad: { text: string; message: RegExp }[] = [
    { text: '0abc', message: /must start with a call or parameter name/ },
    { text: '.x', message: /must start with/ },
    { text: 'user.', message: /expected a field name after '\.'/ },
    { text: 'orders[-1]', message: /unexpected '\['/ },
    { text: 'orders[x]', message: /unexpected '\['/ },
    { text: 'user name', message: /unexpected ' '/ },
    { text: 'user..name', message: /expected a field name/ },
  ];
  for (const c of bad) {
    it(`rejects ${c.text}`, () => assert.throws(() => parseExpr(c.text), c.message));
  }
});

describe('parseStringTemplate', () => {
  it('a string without placeholders is a literal', () => assert.deepEqual(parseStringTemplate('/users'), { kind: 'literal', value: '/users' }));
  it('doubled braces are literal braces', () => assert.deepEqual(parseStringTemplate('{{a}}'), { kind: 'literal', value: '{a}' }));
  it('one whole placeholder is a reference that keeps the type', () => assert.equal(parseStringTemplate('{user}').kind, 'ref'));
  it('text and placeholders mix', () => {
    const t = parseStringTemplate('/users/{userId}/orders/{orders[0].id}');
    assert.equal(t.kind, 'text');
    assert.equal(t.kind === 'text' ? t.parts.length : 0, 4);
  });
  const bad: { text: string; message: RegExp }[] = [
    { text: '/users/{userId', message: /unclosed '\{' at offset 7/ },
    { text: '/users/{}', message: /empty placeholder/ },
    { text: '/users/{ }', message: /empty placeholder/ },
    { text: '/users/}', message: /unmatched '\}'/ },
    { text: '{user.}', message: /expected a field name/ },
  ];
  for (const c of bad) it(`rejects '${c.text}'`, () => assert.throws(() => parseStringTemplate(c.text), c.message));
});

describe('evaluateExpr', () => {
  const cases: { text: string; want: unknown }[] = [
    { text: 'user.name', want: 'Ada' },
    { text: 'orders[1].id', want: 'o-2' },
    { text: 'orders[2].id', want: undefined },
    { text: 'empty[0].id', want: undefined },
    { text: 'nothing.x', want: undefined },
    { text: 'user.tags[0]', want: 'a' },
    { text: 'user[0]', want: undefined },
    { text: 'orders.length', want: undefined },
    { text: 'user.constructor', want: undefined },
    { text: 'user.__proto__', want: undefined },
    { text: 'user.nested.deep', want: true },
    { text: 'absent.x', want: undefined },
  ];
  for (const c of cases) it(`${c.text} → ${JSON.stringify(c.want)}`, () => assert.deepEqual(evaluateExpr(parseExpr(c.text), scope), c.want));
});

describe('renderString', () => {
  const cases: { text: string; encode?: boolean; want: string }[] = [
    { text: '/users/{userId}', encode: true, want: '/users/u%201%2F2' },
    { text: '/users/{userId}', want: '/users/u 1/2' },
    { text: 'n={user.id}', want: 'n=7' },
    { text: '{user.tags}', want: '["a","b"]' },
    { text: 'x{orders[9].id}y', want: 'xy' },
    { text: '{nothing}', want: '' },
  ];
  for (const c of cases) {
    it(`${c.text}${c.encode ? ' (encoded)' : ''} → ${c.want}`, () =>
      assert.equal(renderString(parseStringTemplate(c.text), scope, c.encode ? encodeURIComponent : undefined), c.want));
  }
});

describe('renderValue and pick', () => {
  const ref = (text: string): ValueTemplate => parseStringTemplate(text);
  it('renders nested objects, lists, JSON literals, text and references', () => {
    const template: ValueTemplate = {
      kind: 'object',
      entries: [
        ['who', ref('{user.name}')],
        ['id', ref('{user.id}')],
        ['label', ref('user {user.id}')],
        ['first', { kind: 'array', items: [ref('{orders[0].id}'), { kind: 'json', value: 3 }] }],
        ['missing', ref('{orders[5]}')],
      ],
    };
    assert.deepEqual(renderValue(template, scope), { who: 'Ada', id: 7, label: 'user 7', first: ['o-1', 3], missing: null });
  });
  it('$pick selects fields from each element of a list', () => {
    assert.deepEqual(renderValue({ kind: 'pick', from: ref('{orders}'), fields: ['id', 'total', 'absent'] }, scope), [
      { id: 'o-1', total: 10 },
      { id: 'o-2', total: 5 },
    ]);
  });
  it('a __proto__ key in respond or in $pick is an ordinary key of the answer', () => {
    const withProto = JSON.parse('{"__proto__":{"x":1},"a":2}') as unknown;
    const protoScope = new Map<string, unknown>([['u', withProto]]);
    const cases: { name: string; template: ValueTemplate; want: string }[] = [
      { name: 'respond key', template: { kind: 'object', entries: [['__proto__', ref('{u.a}')], ['b', { kind: 'json', value: 1 }]] }, want: '{"__proto__":2,"b":1}' },
      { name: '$pick field', template: { kind: 'pick', from: ref('{u}'), fields: ['__proto__', 'a'] }, want: '{"__proto__":{"x":1},"a":2}' },
    ];
    for (const c of cases) {
      const out = renderValue(c.template, protoScope);
      assert.equal(JSON.stringify(out), c.want, c.name);
      assert.equal(Object.getPrototypeOf(out), Object.prototype, `${c.name}: the prototype is untouched`);
    }
  });
  it('$pick selects fields from an object and passes other values through', () => {
    assert.deepEqual(pick({ a: 1, b: 2 }, ['b']), { b: 2 });
    assert.equal(pick(null, ['a']), null);
    assert.equal(pick('text', ['a']), 'text');
  });
});
