// The route a request takes, on the path as ext_authz normalizes it; for a path normalization refuses, on every
// reading an upstream may have of it (src/extproc/route-choice.ts).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitPath } from '../../../src/extproc/cache-key.js';
import { parsePortcullisConfig } from '../../../src/config/portcullis-config.js';
import { chooseExtprocRoute, selectExtprocRoute } from '../../../src/extproc/route-choice.js';

const { routes } = parsePortcullisConfig(`
extproc:
  routes:
    - name: orders
      match: { path: /api/orders, methods: [POST], ignore_case: true }
      validate: { required_headers: [x-client-version] }
    - name: users
      match: { path_prefix: /api/users }
      validate: { required_headers: [x-client-version] }
    - name: catalog
      match: { path_prefix: /catalog }
      cache: { ttl_seconds: { "200": 60 }, public: true }
    - name: admin
      match: { path_prefix: /Admin, ignore_case: true }
      headers: { request: { set: { x-zone: admin } } }
    - name: all
      headers: { response: { set: { x-content-type-options: nosniff } } }
`, '/tmp/portcullis.yaml').extproc;

function choose(method: string, raw: string, hint?: string): string {
  const choice = chooseExtprocRoute(routes, splitPath(raw), method, hint);
  const name = choice.route?.name ?? 'none';
  return choice.kind === 'route' ? name : choice.kind === 'ambiguous' ? `reject ${name}` : `pass ${name}`;
}

describe('chooseExtprocRoute', () => {
  // method, path as sent, hint, what is chosen: a route name, `reject NAME` (400: a reading takes a route that
  // validates), `pass NAME` (a refused path whose readings all take NAME, or `none` when they differ).
  const table: [string, string, string | undefined, string][] = [
    ['POST', '/api/orders', undefined, 'orders'],
    ['POST', '/api/x/../orders', undefined, 'orders'],
    ['POST', '/api/%6Frders', undefined, 'orders'],
    ['POST', '/api//orders', undefined, 'orders'],
    // Case-insensitive upstream: match.ignore_case.
    ['POST', '/API/Orders', undefined, 'orders'],
    ['GET', '/ADMIN/x', undefined, 'admin'],
    ['GET', '/api/Users/1', undefined, 'all'],
    // A trailing slash: `/api/orders` to Express without strict routing and Spring MVC before 6. Only a validating
    // route is taken this way; a route of the path's own that validates stays its route.
    ['POST', '/api/orders/', undefined, 'orders'],
    ['POST', '/API/ORDERS/.', undefined, 'orders'],
    ['POST', '/api/orders/x/..', undefined, 'orders'],
    ['GET', '/api/orders/', undefined, 'all'],
    ['POST', '/api/users/', undefined, 'users'],
    ['GET', '/admin/', undefined, 'admin'],
    ['POST', '/api/orders;x/', undefined, 'reject orders'],
    // Tomcat, Jetty and Spring cut `;params`: `/api/orders` to them.
    ['POST', '/api/orders;x', undefined, 'reject orders'],
    ['POST', '/api/orders;jsessionid=1?q=1', undefined, 'reject orders'],
    ['POST', '/public/..;/api/orders', undefined, 'reject orders'],
    ['POST', '/api/orders%3Bx', undefined, 'reject orders'],
    // Encoded slashes and backslashes: `/api/users` to an upstream that decodes them.
    ['GET', '/api%2Fusers', undefined, 'reject users'],
    ['GET', '/api%5cusers/1', undefined, 'reject users'],
    ['GET', '/api\\users', undefined, 'reject users'],
    // Decoded twice: `/x/../api/orders`.
    ['POST', '/x/%252e%252e/api/orders', undefined, 'reject orders'],
    ['POST', '/x/%25%32%65%25%32%65/api/orders', undefined, 'reject orders'],
    // Overlong UTF-8 `.`.
    ['POST', '/x/%C0%AE%C0%AE/api/orders', undefined, 'reject orders'],
    ['POST', '/X/%c0%ae%c0%ae/API/ORDERS', undefined, 'reject orders'],
    // orders matches POST only: no reading of a GET validates.
    ['GET', '/api/orders;x', undefined, 'pass all'],
    // No reading lands on a route that validates: the route every reading takes, else none.
    ['GET', '/catalog;jsessionid=1', undefined, 'pass catalog'],
    ['GET', '/files/a%2Fb', undefined, 'pass all'],
    ['GET', '/shop/..;/catalog/x', undefined, 'pass none'],
    ['GET', '/a%00b', undefined, 'pass all'],
    // A route Envoy names is the route whatever the path says.
    ['POST', '/api/orders;x', 'all', 'all'],
    ['POST', '/api/orders;x', 'unknown', 'reject orders'],
  ];
  for (const [method, raw, hint, expected] of table) {
    it(`${method} ${raw}${hint ? ` (hint ${hint})` : ''} → ${expected}`, () => assert.equal(choose(method, raw, hint), expected));
  }
});

describe('selectExtprocRoute', () => {
  it('path_prefix is a string prefix, folded only on an ignore_case route', () => {
    assert.equal(selectExtprocRoute(routes, '/api/usersx', 'GET', undefined)?.name, 'users');
    assert.equal(selectExtprocRoute(routes, '/administrators', 'GET', undefined)?.name, 'admin');
    assert.equal(selectExtprocRoute(routes, '/CATALOG', 'GET', undefined)?.name, 'all');
  });
});
