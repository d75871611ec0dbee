import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bySpecificity, matchRoute, parseRoute, routeShape } from '../../../src/bff/routes.js';

const segmentsOf = (pathname: string): string[] => pathname.split('/').slice(1);

describe('routes', () => {
  const route = parseRoute('/bff/web/dashboard/{userId}');
  const cases: { path: string; params?: Record<string, string>; badEncoding?: boolean }[] = [
    { path: '/bff/web/dashboard/42', params: { userId: '42' } },
    { path: '/bff/web/dashboard/a%2Fb', params: { userId: 'a/b' } },
    { path: '/bff/web/dashboard/%C3%A9', params: { userId: 'é' } },
    { path: '/bff/web/dashboard/%E0%A4%A', badEncoding: true },
    { path: '/bff/web/dashboard/' },
    { path: '/bff/web/dashboard' },
    { path: '/bff/web/dashboard/42/more' },
    { path: '/bff/mobile/dashboard/42' },
    { path: '/bff/%77eb/dashboard/1', params: { userId: '1' } },
  ];
  for (const c of cases) {
    it(`${c.path} ${c.params ? 'matches' : c.badEncoding ? 'is badly encoded' : 'does not match'}`, () => {
      const match = matchRoute(route, segmentsOf(c.path));
      if (c.params) assert.deepEqual(match.ok ? Object.fromEntries(match.params) : match, c.params);
      else assert.deepEqual(match, { ok: false, badEncoding: c.badEncoding ?? false });
    });
  }

  const bad: { text: string; message: RegExp }[] = [
    { text: 'bff/x', message: /must start with '\/'/ },
    { text: '/bff/{a}/{a}', message: /'a' appears twice/ },
    { text: '/bff/user-{id}', message: /whole segment/ },
    { text: '/bff/x?y=1', message: /must not contain/ },
    { text: '/bff/{1a}', message: /whole segment/ },
  ];
  for (const c of bad) it(`rejects ${c.text}`, () => assert.throws(() => parseRoute(c.text), c.message));

  it('a static segment is more specific than a parameter', () => {
    const routes = ['/bff/users/{id}', '/bff/users/me', '/bff/{x}/me', '/bff/users/{id}/orders'].map(parseRoute);
    assert.deepEqual([...routes].sort(bySpecificity).map(routeShape), ['/bff/users/me', '/bff/users/{}', '/bff/users/{}/orders', '/bff/{}/me']);
  });

  it('routes that differ only in parameter names have the same shape', () => {
    assert.equal(routeShape(parseRoute('/a/{x}')), routeShape(parseRoute('/a/{y}')));
  });
});
