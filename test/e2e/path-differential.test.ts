// What the upstream receives is what Portcullis decided on: a seeded, randomized differential through a real Envoy.
// Request targets and headers are drawn from a grammar of hostile pieces (dot segments and their escapes, `//`,
// encoded slashes and backslashes, `;` path parameters, overlong and raw UTF-8, NUL, `?`/`#` in escapes, the API key
// parameter repeated and re-spelled, `;` query separators, identity headers duplicated and re-cased) and sent through
// Envoy listeners in front of one raw upstream. Two run ext_authz then ext_proc (the gateway's order,
// src/gateway/envoy-bootstrap.ts; the ext_proc filter as envoy/extproc.yaml ships it): `shipped` (the HCM settings
// envoy/envoy.yaml ships: normalize_path, merge_slashes, path_with_escaped_slashes_action REJECT_REQUEST,
// headers_with_underscores_action REJECT_REQUEST) and `defaults` (none of them, as a user's own Envoy may be). The
// third, `extproc`, is envoy/extproc.yaml's listener: ext_proc alone, so nothing refuses a path before ext_proc does.
// Portcullis' ext_proc validates two routes: `POST /api/orders` (a JSON schema) and `/shop/cart` (ignore_case, a
// required header). Besides the hostile corpus (shipped and defaults only), every listener gets requests with bodies
// that fail that validation, on the routes' paths spelled the ways upstreams read differently. Each request is
// either refused (by Envoy or Portcullis) or reaches the upstream, and then:
//   (a) the path the upstream received, read the most lenient ways an upstream reads paths (every escape decoded,
//       once and again twice as an upstream or second proxy that decodes twice does; overlong UTF-8 too, `\` as `/`,
//       `;params` cut from segments, `//` merged, dot segments removed), selects the policy Portcullis decided on
//       (Envoy copies ext_authz's `policy` metadata into a request header). The upstream reads case-insensitively
//       where the config says so (`match.ignore_case`: `admin` here) and only there: a case-sensitive policy is the
//       operator's statement that the upstream tells `/Public` from `/public`;
//   (b) the query it received holds no API key parameter in any spelling a framework reads as it, nor the key;
//   (c) no client-sent identity header or API key header (any case, any mix of `-` and `_`) reached it;
//   (d) no reading of (a) (ASCII case folded where the route says ignore_case) is a validating route for the method
//       the upstream got: every such request fails validation, so it must have been refused (400 by ext_proc, or
//       401/403/400 by ext_authz). A few valid requests must get through, so that a route refusing all is seen.
// (a)–(c) do not apply on `extproc`: no ext_authz there. A request Envoy's codec refuses may end with no reply at all
// (see the bootstrap); the upstream counts what it answers, so no request can reach it unseen.
// A violation not listed in KNOWN fails, and so does a KNOWN entry no request showed. The seed is fixed;
// PATHDIFF_SEED=<n> explores (or replays) another.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newApiKey } from '../../src/authz/apikey.js';
import { at, byName, list, loadYamlFile, record, repoRoot, setSocketAddress, startEnvoy, type EnvoyInstance } from '../support/envoy.js';
import { startPortcullis, type PortcullisInstance } from '../support/portcullis.js';
import { prng } from '../support/prng.js';

const SEED = Number(process.env['PATHDIFF_SEED'] ?? 1);
const RANDOM_REQUESTS = 1000;
const VALIDATION_REQUESTS = 150;
const POLICY_HEADER = 'x-pathdiff-policy';
const SPOOF = 'spoofed';
const IDENTITY_HEADERS = ['x-user-id', 'x-auth-method', 'x-api-key-id', 'x-client-tier', 'x-user-scopes'];
/**
 * The policies as an upstream's reading of the path selects them (first whole-segment prefix, or `exact` path), as
 * configured below.
 */
const POLICIES: { name: string; prefix: string; exact?: true; ignoreCase: boolean; authenticate: string }[] = [
  { name: 'public', prefix: '/public', ignoreCase: false, authenticate: 'anonymous' },
  { name: 'api', prefix: '/api', ignoreCase: false, authenticate: 'api_key' },
  // Served by a case-insensitive upstream (IIS, ASP.NET): `/ADMIN/x` is `/admin/x` to it.
  { name: 'admin', prefix: '/admin', ignoreCase: true, authenticate: 'mtls' },
  // An exact path: a trailing-slash-insensitive upstream (the reading (a) takes) serves `/status/` as `/status`.
  { name: 'status', prefix: '/status', exact: true, ignoreCase: false, authenticate: 'api_key' },
  // Everything else is open: a path that escapes `admin` lands here and reaches the upstream.
  { name: 'rest', prefix: '/', ignoreCase: false, authenticate: 'anonymous' },
];
/**
 * The ext_proc routes that validate, as an upstream's reading selects them (configured below): `path` exact, or
 * `prefix` as a string prefix, compared with ASCII letters folded where `ignoreCase`, for `methods` only.
 */
const VALIDATING: { name: string; path?: string; prefix?: string; ignoreCase: boolean; methods: readonly string[] }[] = [
  // Under the `api` policy: the caller needs the key to get past ext_authz at all.
  { name: 'orders', path: '/api/orders', ignoreCase: false, methods: ['POST'] },
  // Under `rest` (anonymous), served case-insensitively: `/SHOP/Cart` must be validated as `/shop/cart`.
  { name: 'cart', prefix: '/shop/cart', ignoreCase: true, methods: ['POST', 'PUT'] },
];
const ORDER_SCHEMA = { type: 'object', required: ['qty'], properties: { qty: { type: 'integer', minimum: 1 } } };
const CART_TOKEN = 'x-cart-token';
type Listener = 'shipped' | 'defaults' | 'extproc';

/** What a listener's Envoy does differently, and what the upstream then got: a documented behaviour, not a defect. */
interface Known {
  /** `both`: shipped and defaults (ext_authz in front); `all`: extproc too. */
  readonly listener: Listener | 'both' | 'all';
  readonly check: 'a' | 'b' | 'c' | 'd';
  /** Matched against the violation's detail (what the upstream got). */
  readonly detail: RegExp;
  readonly why: string;
}
// None for headers: under Envoy's default headers_with_underscores_action (ALLOW) a client's `x_user_id`, `x-user_id`
// or `x_api_key` reaches Envoy's header map, and Portcullis names each such spelling in headers_to_remove
// (src/authz/header-fold.ts), so an upstream that reads `_` as `-` (CGI, WSGI, PHP) gets none of them either.
// The one listed difference is a documented choice (docs/authz.md, `ignore_case`): Portcullis folds ASCII letters
// only, and an upstream that folds `ı` (U+0131) as `i` (Unicode upper-casing maps it to `I`) reads `/adm%C4%B1n` as
// `/admin`.
const KNOWN: readonly Known[] = [{
  listener: 'both', check: 'a', detail: /^unicode-folding upstream: .*reads "[^"]*\u0131/,
  why: 'ignore_case folds ASCII letters only; an upstream folding ı (U+0131) as i reads /admın as /admin',
}];

// ---------------------------------------------------------------------------------------------------------------
// The oracle: how an upstream may read what it received

/** Bytes (latin1 string) → text, reading overlong UTF-8 as the character it spells, as lenient decoders do. */
function lenientUtf8(bytes: string): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.charCodeAt(i);
    const length = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    if (length === 1 || b >= 0xf8) {
      out += b < 0x80 ? bytes[i]! : '\ufffd';
      continue;
    }
    let point = b & (0x7f >> length);
    let j = 1;
    for (; j < length && i + j < bytes.length && (bytes.charCodeAt(i + j) & 0xc0) === 0x80; j++) point = (point << 6) | (bytes.charCodeAt(i + j) & 0x3f);
    if (j < length) {
      out += '\ufffd';
      continue;
    }
    out += point < 0xd800 || (point > 0xdfff && point <= 0x10ffff) ? String.fromCodePoint(point) : '\ufffd';
    i += length - 1;
  }
  return out;
}

const percentDecode = (s: string): string => s.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));

/**
 * The path as the most lenient upstream reads it (see the header comment), its escapes decoded `decodes` times; a
 * trailing `/` (or `/.`, `/..`) kept as `/` with `keepTrailing`, as an upstream that tells `/a/` from `/a` does.
 */
function upstreamPath(target: string, decodes: 1 | 2, keepTrailing = false): string {
  const q = target.search(/[?#]/);
  const raw = q >= 0 ? target.slice(0, q) : target;
  const once = percentDecode(raw);
  const text = lenientUtf8(decodes === 2 ? percentDecode(once) : once).replace(/\\/g, '/');
  const out: string[] = [];
  const segments = text.split('/').slice(1);
  for (const full of segments) {
    const segment = full.split(';')[0]!;
    if (segment === '..') out.pop();
    else if (segment !== '.' && segment !== '') out.push(segment);
  }
  const trailing = keepTrailing && out.length > 0 && ['', '.', '..'].includes(segments.at(-1)!.split(';')[0]!);
  return `/${out.join('/')}${trailing ? '/' : ''}`;
}

/** How a case-insensitive upstream compares: ASCII letters only (as Envoy's case_sensitive: false), or Unicode's case mappings too. */
type Folding = 'ascii' | 'unicode';
const FOLD: Record<Folding, (s: string) => string> = {
  ascii: (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase()),
  unicode: (s) => [...s].map((c) => c.toUpperCase().toLowerCase()).join(''),
};

function policyOf(upstream: string, folding: Folding): string {
  for (const { name, prefix, exact, ignoreCase } of POLICIES) {
    const [path, want] = ignoreCase ? [FOLD[folding](upstream), FOLD[folding](prefix)] : [upstream, prefix];
    if (exact === true) {
      if (path === want) return name;
      continue;
    }
    if (want === '/' || path === want || path.startsWith(`${want}/`)) return name;
  }
  return '(none)';
}

/**
 * The validating route an upstream's reading of the path is (ext_proc's first-match-wins among routes that are all
 * validating here). ASCII folding only: ignore_case folds ASCII letters (docs/extproc.md), and the Unicode-folding
 * reading of `ı` is the documented difference (a) already lists.
 */
function validatingRouteOf(upstream: string, method: string): string | undefined {
  for (const { name, path, prefix, ignoreCase, methods } of VALIDATING) {
    if (!methods.includes(method)) continue;
    const read = ignoreCase ? FOLD.ascii(upstream) : upstream;
    if (path !== undefined ? read === path : read.startsWith(prefix!)) return name;
  }
  return undefined;
}

/** Query parameter names as frameworks read them: `&` or `;` separated, decoded, any case, PHP's `.`/space/`[` as `_`, `[…]` cut. */
function keySpellings(query: string): string[] {
  const found: string[] = [];
  for (const pair of query.split(/[&;]/)) {
    const eq = pair.indexOf('=');
    const name = lenientUtf8(percentDecode((eq >= 0 ? pair.slice(0, eq) : pair).replace(/\+/g, ' ')));
    const read = name.toLowerCase().replace(/\[.*\]$/, '').replace(/^\s+/, '').replace(/[.\s[]/g, '_');
    if (read === 'api_key') found.push(pair);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------------------------
// The grammar

interface Case {
  readonly target: string;
  /** Header lines as sent. */
  readonly headers: readonly string[];
  /** GET (with no body) unless given. */
  readonly method?: string;
  readonly body?: string;
  /** Passes the validation of the route it is meant for: may reach the upstream on that route (the controls). */
  readonly valid?: boolean;
}

function generate(random: () => number, key: string): Case[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const roots = ['public', 'api', 'admin', '%61dmin', 'adm%69n', 'publicx', 'ap%69', 'x'];
  // Drawn now and then instead of a root: the case-insensitive reading's material, `ı` among it.
  const cased = ['ADMIN', 'Admin', 'aDm%49N', 'PUBLIC', 'Api', 'adm%C4%B1n'];
  const root = (): string => (random() < 0.2 ? pick(cased) : pick(roots));
  const pieces = [
    '.', '..', '%2e', '%2E%2e', '.%2e', '%2e.', '%252e%252e', '', '%2F', '%2f', '%5C', '\\', ';x', '..;', '%3B', '%3b', 'a;b',
    '%C0%AE', '%C0%AE%C0%AE', '%E0%80%AE', '%E0%80%AE%E0%80%AE', '%F0%80%80%AE%F0%80%80%AE', '%C3%A9', 'é', '%00', '+', '%20',
    'x%3Fy', 'x%23y', '%3F', '%23', '%3F%2e%2e', 'public', 'api', 'admin', 'docs', '%2e%2e%2F', '..%2F', '..%5C', '%2e%2e%5C',
    '%252E%252e', '%25%32%65%25%32%65', '%2561dmin', '%2541DMIN', '%252F', '%255C', '%25', 'ADMIN', '%41dmin',
  ];
  const params = [
    `api_key=${key}`, 'api_key=', 'api_key', `api%5Fkey=${key}`, `api%5fkey=${key}`, `API_KEY=${key}`, `Api_Key=${key}`,
    `api_key[]=${key}`, `api_key[0]=${key}`, `api.key=${key}`, `api+key=${key}`, `api%20key=${key}`, `api[key=${key}`,
    `%61pi_key=${key}`, 'x=1', 'x=%26api_key', '', 'api_key=pk_bogus', 'y=a+b',
  ];
  // Pieces an upstream reads as Portcullis does, so that enough requests get through to be judged.
  const tame = ['.', '..', '%2e', '%2E%2e', '.%2e', '', 'docs', 'public', 'api', 'admin', '%61dmin', '+', '%20', 'x%3Fy', 'x%23y', '%C3%A9', 'é', '%25', '100%25', 'ADMIN', 'Admin'];
  const spoofs = [
    'x-user-id', 'X-User-Id', 'X-USER-ID', 'x-auth-method', 'X-Api-Key-Id', 'x-client-tier', 'x-user-scopes', 'x_user_id', 'X_Auth_Method',
    'x-user_id', 'X_Api_Key_Id', 'x_client-tier', 'x_user_scopes', 'X_Api_Key',
  ];
  const cases: Case[] = [];
  for (let n = 0; n < RANDOM_REQUESTS; n++) {
    const from = random() < 0.5 ? tame : pieces;
    const segments = [root()];
    const extra = Math.floor(random() * 4);
    for (let i = 0; i < extra; i++) segments.push(random() < 0.3 ? root() : pick(from));
    if (random() < 0.15) segments.unshift(pick(from));
    let target = `/${segments.join('/')}`;
    if (random() < 0.6) {
      const count = 1 + Math.floor(random() * 3);
      const chosen = Array.from({ length: count }, () => pick(params));
      target += `?${chosen.map((p, i) => (i === 0 ? p : `${random() < 0.2 ? ';' : '&'}${p}`)).join('')}`;
    }
    if (random() < 0.05) target += `#${pick(['frag', `&api_key=${key}`, '/../admin'])}`;
    const headers: string[] = [];
    if (random() < 0.6) headers.push(`x-api-key: ${random() < 0.85 ? key : 'pk_bogus'}`);
    const spoofCount = Math.floor(random() * 4);
    for (let i = 0; i < spoofCount; i++) headers.push(`${pick(spoofs)}: ${SPOOF}-${i}`);
    cases.push({ target, headers });
  }
  return cases;
}

/** The classics, always sent: each names one way an upstream's reading has been known to differ. */
function fixedCases(key: string): Case[] {
  const withKey = [`x-api-key: ${key}`];
  const spoofAll = [
    ...IDENTITY_HEADERS.map((h) => `${h}: ${SPOOF}`), `X-User-Id: ${SPOOF}-2`, `x_user_id: ${SPOOF}-3`,
    ...IDENTITY_HEADERS.map((h) => `${h.replaceAll('-', '_')}: ${SPOOF}-4`), `x-user_id: ${SPOOF}-5`, `x_api_key: ${key}`,
  ];
  const targets = [
    '/public/../admin', '/public/%2e%2e/admin', '/public/%2E%2e/admin', '/public//../admin', '/public/..;/admin', '/public/..%3B/admin',
    '/public/%C0%AE%C0%AE/admin', '/public/%E0%80%AE%E0%80%AE/admin', '/public/%F0%80%80%AE%F0%80%80%AE/admin', '/public%2F..%2Fadmin',
    '/public/..%5Cadmin', '/public/..\\admin', '/%61dmin', '//admin', '/public/%00/../admin', '/public/x%3F/../../admin',
    '/public?/../admin', '/public#/../admin', '/public/é/../../admin',
  ];
  // Without the spoofed headers (`x_api_key` alone is a 401 everywhere): these must get as far as a policy.
  const lenient = [
    '/ADMIN', '/Admin/x', '/%41DMIN/x', '/public/../ADMIN', '/public/%252e%252e/admin', '/public/%252E%252E/ADMIN',
    '/public/%25%32%65%25%32%65/admin', '/%2561dmin', '/public%252F..%252Fadmin', '/adm%C4%B1n', '/100%25/admin', '/x/%2541dmin/../../admin',
  ];
  return [
    ...targets.map((target) => ({ target, headers: spoofAll })),
    ...lenient.map((target) => ({ target, headers: [] })),
    ...[
      `/api/x?api_key=${key}`, `/api/x?y=1&api_key=${key}&z=2`, `/api/x?api_key[]=${key}`, `/public?api_key[]=${key}`, `/public?api.key=${key}`,
      `/public?y=1;api_key=${key}`, `/public?API_KEY=${key}`, `/public?api%5Fkey=${key}`, `/public?api+key=${key}`, `/public?api[key=${key}`,
      `/public?api_key=${key}#x`, `/public?x#&api_key=${key}`,
      '/status', '/status/', '/status/.', '/x/../status/', '/status//', '/status/?y=1', '/%73tatus/',
    ].flatMap((target) => [{ target, headers: [] }, { target, headers: withKey }]),
  ];
}

/**
 * Requests with bodies for the validating routes, none of which passes validation (a body the schema refuses, or not
 * JSON, or no cart token): each route's path spelled the ways some upstream still reads as that route (escapes, case,
 * `;params`, `%2F`, `\`, dot segments plain, escaped, double-escaped and overlong, a trailing `/`), and some it does
 * not. Drawn from their own generator, so the main corpus of a seed stays what it was.
 */
function validationCases(random: () => number, key: string): Case[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const spell: Record<string, readonly string[]> = {
    api: ['api', 'api', 'api', '%61pi', 'ap%69', 'API', 'a%70i;v=1'],
    orders: ['orders', 'orders', 'orders', '%6Frders', 'ORDERS', 'orders;x', 'orders;jsessionid=1', 'orders%3Bx', 'ord%2565rs', 'ord%C3%A9rs'],
    shop: ['shop', 'shop', 'SHOP', '%73hop', 'Shop', 'sh%4Fp', 'shop;v=1', 'sh%254Fp'],
    cart: ['cart', 'cart', 'CART', 'c%61rt', 'Cart', 'cart;x', 'cart%3B', 'c%2541rt', 'carts', 'CaRt%2Fx'],
  };
  // Plain pieces weigh more, so that enough requests get past ext_authz (which refuses what it cannot normalize).
  const joins = ['/', '/', '/', '/', '/', '/', '//', '/./', '/%2e/', '/x/../', '/x/%2e%2e/', '%2F', '%2f', '%5C', '\\', '/x/..;/', '/x;/../', '/x/%252e%252e/', '/x/%C0%AE%C0%AE/', '/x%2F..%2F', '%252F', '/x/%2e%2e%2F'];
  const leads = ['', '', '', '', '', '', '', '', '', '', '/api/x/../..', '/shop/./..', '/public/..', '/public/..;', '/public/%2e%2e', '/x/%252e%252e', '/public/%C0%AE%C0%AE', '/public%2F..', '/x/..%5C', '/.', '/', '/api/x/..', '/shop/x/..'];
  const tails = ['', '', '', '', '', '', '', '', '/x/../', '/y', '/', '/.', '/x', '/x/..', '/%2e', ';x', '%3Bx', 'x', '/x%2F..', '/%252e%252e', '?a=1', `?api_key=${key}`, '/..', '#/../x'];
  const bodies = ['{"qty":"lots"}', '{"qty":0}', '{}', '{"qty":', '[1]', 'qty=2'];
  const cases: Case[] = [];
  for (let n = 0; n < VALIDATION_REQUESTS; n++) {
    const [first, second] = random() < 0.5 ? ['api', 'orders'] : ['shop', 'cart'];
    const target = `${pick(leads)}/${pick(spell[first]!)}${pick(joins)}${pick(spell[second]!)}${pick(tails)}`;
    const body = pick(bodies);
    const headers = [`content-type: ${random() < 0.9 ? 'application/json' : 'text/plain'}`];
    if (random() < 0.85) headers.push(`x-api-key: ${key}`);
    cases.push({ target, headers, method: random() < 0.85 ? 'POST' : 'PUT', body });
  }
  return cases;
}

/**
 * Requests that pass validation, on the routes' own paths: they must reach the upstream, or the routes refuse
 * everything (`valid`); and the one invalid request every seed sends.
 */
function fixedBodies(key: string): Case[] {
  const json = ['content-type: application/json'];
  return [
    { target: '/api/orders', headers: [...json, `x-api-key: ${key}`], method: 'POST', body: '{"qty":2}', valid: true },
    { target: '/api/x/../orders', headers: [...json, `x-api-key: ${key}`], method: 'POST', body: '{"qty":3}', valid: true },
    { target: '/shop/cart/items', headers: [...json, `${CART_TOKEN}: t1`], method: 'POST', body: '{}', valid: true },
    { target: '/SHOP/Cart', headers: [...json, `${CART_TOKEN}: t2`], method: 'PUT', body: '{}', valid: true },
    // Not a control: a trailing slash, which an upstream without strict routing reads as `/api/orders`, every seed.
    { target: '/api/orders/', headers: [...json, `x-api-key: ${key}`], method: 'POST', body: '{"qty":"lots"}' },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// A raw upstream: echoes the request line's target and every header line exactly as received

interface Echo {
  method: string;
  target: string;
  headers: [string, string][];
  body: string;
}

/** The body at the start of `rest` (content-length or chunked), and what follows it; undefined until it is all there. */
function takeBody(rest: string, headers: readonly [string, string][]): { body: string; rest: string } | undefined {
  const header = (name: string): string | undefined => headers.find(([n]) => n.toLowerCase() === name)?.[1];
  if (header('transfer-encoding')?.toLowerCase().includes('chunked') === true) {
    let body = '';
    let at = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol < 0) return undefined;
      const size = parseInt(rest.slice(at, eol), 16);
      if (size === 0) {
        const end = rest.startsWith('\r\n', eol + 2) ? eol + 4 : rest.indexOf('\r\n\r\n', eol + 2) + 4;
        return end < eol + 4 ? undefined : { body, rest: rest.slice(end) };
      }
      if (rest.length < eol + 2 + size + 2) return undefined;
      body += rest.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
  }
  const length = Number(header('content-length') ?? 0);
  return rest.length < length ? undefined : { body: rest.slice(0, length), rest: rest.slice(length) };
}

interface RawUpstream {
  port: number;
  /** Requests answered so far. */
  received: () => number;
  stop: () => Promise<void>;
}

function startRawUpstream(): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  let received = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) >= 0) {
        const [requestLine = '', ...lines] = buffered.slice(0, end).split('\r\n');
        const headers = lines.map((l): [string, string] => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
        // Envoy keeps its upstream connections: a body left unread would be taken for the next request line.
        const taken = takeBody(buffered.slice(end + 4), headers);
        if (taken === undefined) return;
        buffered = taken.rest;
        const [method = '', target = ''] = requestLine.split(' ');
        const body = Buffer.from(JSON.stringify({ method, target, headers, body: taken.body } satisfies Echo), 'latin1');
        received++;
        socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-raw-echo: 1\r\ncontent-length: ${body.length}\r\n\r\n`), body]));
      }
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: (server.address() as { port: number }).port,
    received: () => received,
    stop: () => new Promise<void>((done) => {
      for (const s of sockets) s.destroy();
      server.close(() => done());
    }),
  })));
}

interface Reply {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** One request written by hand, bytes as given (the target as UTF-8, so `é` goes raw); status, headers, body. */
function send(port: number, c: Case): Promise<Reply> {
  const lines = [...c.headers, ...(c.body !== undefined ? [`content-length: ${Buffer.byteLength(c.body)}`] : [])];
  const head = Buffer.concat([
    Buffer.from(`${c.method ?? 'GET'} `), Buffer.from(c.target, 'utf8'),
    Buffer.from(` HTTP/1.1\r\nHost: pathdiff.test\r\nConnection: close\r\n${lines.map((h) => `${h}\r\n`).join('')}\r\n`, 'latin1'),
    Buffer.from(c.body ?? '', 'utf8'),
  ]);
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (reply: Reply): void => {
      done = true;
      resolve(reply);
      socket.destroy();
    };
    const parse = (closed: boolean): void => {
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers.get('content-length') ?? NaN);
      const body = text.slice(end + 4);
      if (Number.isNaN(length) ? closed : body.length >= length) finish({ status: Number(statusLine.split(' ')[1]), headers, body: Number.isNaN(length) ? body : body.slice(0, length) });
    };
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${c.target}`)));
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      parse(false);
    });
    socket.on('error', (error) => done || reject(error));
    socket.on('close', () => {
      if (!done) parse(true);
      // Closed without a byte: a request Envoy's codec refused (see delayed_close_timeout in the bootstrap).
      if (!done && data.length === 0) finish({ status: 0, headers: new Map(), body: '' });
      if (!done) reject(new Error(`${c.target}: no complete answer in ${JSON.stringify(data.toString('latin1').slice(0, 200))}`));
    });
    socket.write(head);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Envoy

const SHIPPED_HCM = {
  normalize_path: true,
  merge_slashes: true,
  path_with_escaped_slashes_action: 'REJECT_REQUEST',
  common_http_protocol_options: { headers_with_underscores_action: 'REJECT_REQUEST' },
};

/**
 * envoy/extproc.yaml's `ingress` listener (renamed `extproc`, port 0) and its ext_proc filter: the documented file is
 * the one exercised. Fail closed as the file ships it (failure_mode_allow: false): with the gateway's fail-open
 * filter a slow answer on a loaded machine would let a body past validation, which is not what is judged here.
 */
function extprocPieces(): { listener: Record<string, unknown>; filter: Record<string, unknown>; runtime: unknown } {
  const file = loadYamlFile('envoy/extproc.yaml');
  const listener = structuredClone(byName(list(at(file, 'static_resources', 'listeners')), 'ingress'));
  listener['name'] = 'extproc';
  setSocketAddress(at(listener, 'address'), { host: '127.0.0.1', port: 0 });
  const hcm = record(at(byName(list(record(list(listener['filter_chains'])[0])['filters']), 'envoy.filters.network.http_connection_manager'), 'typed_config'));
  const filter = byName(list(hcm['http_filters']), 'envoy.filters.http.ext_proc');
  // The file's 0.2s per message is tight for a machine running other tests.
  record(filter['typed_config'])['message_timeout'] = '5s';
  return { listener, filter, runtime: file['layered_runtime'] };
}

function bootstrap(upstreamPort: number, portcullis: { host: string; port: number }): Record<string, unknown> {
  const extproc = extprocPieces();
  const listener = (name: string, hcm: object) => ({
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: name,
          // A request Envoy's codec refuses (a header name with `_` on shipped, a raw control byte) gets a local reply
          // that passes through ext_proc's response phase; the codec ends the stream before ext_proc answers, so the
          // client gets no reply, and the connection closes only after delayed_close_timeout (1s by default). The
          // request is refused either way (the test counts what the upstream answered to hold it to that); 0s keeps
          // the run short.
          delayed_close_timeout: '0s',
          ...hcm,
          route_config: {
            name,
            virtual_hosts: [{
              name, domains: ['*'],
              routes: [{
                match: { prefix: '/' },
                route: { cluster: 'upstream' },
                // The policy Portcullis decided on, next to what the upstream receives.
                request_headers_to_add: [{ header: { key: POLICY_HEADER, value: '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:policy)%' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
              }],
            }],
          },
          http_filters: [
            {
              name: 'envoy.filters.http.ext_authz',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
                transport_api_version: 'V3',
                grpc_service: { envoy_grpc: { cluster_name: 'portcullis' }, timeout: '5s' },
                failure_mode_allow: false,
              },
            },
            // As the gateway orders them (src/gateway/envoy-bootstrap.ts): validation only for allowed requests.
            extproc.filter,
            { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
          ],
        },
      }],
    }],
  });
  const endpoint = (host: string, port: number) => ({ endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }] });
  return {
    // Graceful ext_proc stream close (docs/extproc.md): without it the run's thousands of streams exhaust Node's
    // HTTP/2 reset budget.
    layered_runtime: extproc.runtime,
    static_resources: {
      listeners: [listener('shipped', SHIPPED_HCM), listener('defaults', {}), extproc.listener],
      clusters: [
        { name: 'upstream', type: 'STATIC', connect_timeout: '2s', load_assignment: { cluster_name: 'upstream', ...endpoint('127.0.0.1', upstreamPort) } },
        {
          name: 'portcullis', type: 'STATIC', connect_timeout: '2s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: { cluster_name: 'portcullis', ...endpoint(portcullis.host, portcullis.port) },
        },
      ],
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

interface Violation {
  readonly listener: Listener;
  readonly check: 'a' | 'b' | 'c' | 'd';
  readonly target: string;
  readonly detail: string;
}

/** What the upstream got against what Portcullis decided; the violations of (a), (b), (c), (d). */
function judge(listener: Listener, c: Case, echo: Echo, key: string): Violation[] {
  const out: Violation[] = [];
  const at = (check: Violation['check'], detail: string): void => void out.push({ listener, check, target: c.target, detail });
  const once = upstreamPath(echo.target, 1);
  const twice = upstreamPath(echo.target, 2);
  const readings = twice === once ? [[1, once] as const] : [[1, once] as const, [2, twice] as const];
  // Every request with a body fails validation, the controls aside: under no reading may it reach a validating route.
  // A reading that keeps the trailing slash is asked first, then one without it (an upstream without strict routing).
  if (c.valid !== true) {
    const hits = readings.flatMap(([decodes, read]) => {
      const strict = upstreamPath(echo.target, decodes, true);
      const route = validatingRouteOf(strict, echo.method);
      if (route !== undefined) return [{ decodes, read: strict, route, upstream: 'upstream' }];
      const lenient = validatingRouteOf(read, echo.method);
      return lenient !== undefined ? [{ decodes, read, route: lenient, upstream: 'trailing-slash-insensitive upstream' }] : [];
    });
    const hit = hits.find((h) => h.upstream === 'upstream') ?? hits[0];
    if (hit !== undefined) {
      at('d', `${hit.upstream}${hit.decodes === 2 ? ' decoding twice' : ''}: got ${echo.method} ${JSON.stringify(echo.target)}, reads ${JSON.stringify(hit.read)}: route ${hit.route}, unvalidated`);
    }
  }
  // No ext_authz on this listener: nothing decided a policy or removed a credential.
  if (listener === 'extproc') return out;
  const decided = echo.headers.filter(([n]) => n.toLowerCase() === POLICY_HEADER).map(([, v]) => v);
  for (const [decodes, read] of readings) {
    for (const folding of ['ascii', 'unicode'] as const) {
      const policy = policyOf(read, folding);
      if (decided.length === 1 && decided[0] === policy) continue;
      const upstream = `${folding === 'unicode' ? 'unicode-folding ' : ''}upstream${decodes === 2 ? ' decoding twice' : ''}`;
      at('a', `${upstream}: got ${JSON.stringify(echo.target)}, reads ${JSON.stringify(read)} (policy ${policy}); Portcullis decided ${JSON.stringify(decided)}`);
      break;
    }
  }
  const q = echo.target.indexOf('?');
  const query = q >= 0 ? echo.target.slice(q + 1) : '';
  const spellings = keySpellings(query);
  if (spellings.length > 0) at('b', `upstream query ${JSON.stringify(query)} holds ${JSON.stringify(spellings)}`);
  else if (echo.target.includes(key)) at('b', `upstream target ${JSON.stringify(echo.target)} holds the key`);
  for (const [name, value] of echo.headers) {
    const n = name.toLowerCase().replace(/_/g, '-');
    if (IDENTITY_HEADERS.includes(n) && value.includes(SPOOF)) at('c', `upstream got ${name}: ${value}`);
    if (n === 'x-api-key') at('c', `upstream got ${name}`);
  }
  return out;
}

describe('path, query and identity headers: what the upstream receives is what Portcullis decided on', () => {
  let dir: string;
  let upstream: RawUpstream;
  let portcullis: PortcullisInstance;
  let envoy: EnvoyInstance;
  const { key, entry } = newApiKey('k1', 'alice');

  before(async () => {
    console.log(`pathdiff seed ${SEED} (PATHDIFF_SEED=${SEED} replays it)`);
    dir = mkdtempSync(path.join(tmpdir(), 'portcullis-pathdiff-'));
    writeFileSync(path.join(dir, 'keys.yaml'), `${entry}\n`);
    writeFileSync(path.join(dir, 'order.schema.json'), JSON.stringify(ORDER_SCHEMA));
    upstream = await startRawUpstream();
    portcullis = await startPortcullis({
      server: { grpc: { address: '127.0.0.1:0' }, admin: { address: '127.0.0.1:0' } },
      ratelimit: { descriptors: path.join(repoRoot(), 'envoy', 'authz', 'ratelimit') },
      authz: {
        default_policy: 'deny',
        log_decisions: false,
        mtls: { trusted: [] },
        api_keys: { header: 'x-api-key', query: 'api_key', file: path.join(dir, 'keys.yaml') },
        policies: POLICIES.map((p) => ({ name: p.name, match: { [p.exact === true ? 'path' : 'path_prefix']: p.prefix, ignore_case: p.ignoreCase }, authenticate: [p.authenticate] })),
      },
      extproc: {
        routes: [
          { name: 'orders', match: { path: '/api/orders', methods: ['POST'] }, validate: { content_types: ['application/json'], json_schema: path.join(dir, 'order.schema.json') } },
          { name: 'cart', match: { path_prefix: '/shop/cart', methods: ['POST', 'PUT'], ignore_case: true }, validate: { required_headers: [CART_TOKEN] } },
        ],
      },
    });
    envoy = await startEnvoy(bootstrap(upstream.port, portcullis.grpc));
  });
  after(async () => {
    await envoy?.stop();
    await portcullis?.stop();
    await upstream?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('every request is refused, or reaches the upstream as decided: (a) its policy, (b) no API key, (c) no client identity, (d) validated', async () => {
    const corpus = [...fixedCases(key), ...generate(prng(SEED), key)];
    // A stream of its own: the main corpus of a seed is the one it was before validation was judged.
    const bodies = [...fixedBodies(key), ...validationCases(prng(SEED ^ 0x5eed), key)];
    const violations: Violation[] = [];
    const counts = new Map<string, number>();
    const controlsReached = new Map<Listener, number>();
    for (const listener of ['shipped', 'defaults', 'extproc'] as const) {
      const port = envoy.listenerPort(listener);
      const cases = listener === 'extproc' ? bodies : [...corpus, ...bodies];
      const receivedBefore = upstream.received();
      let echoes = 0;
      // A few at a time: the machine is shared, and each request is its own connection.
      for (let i = 0; i < cases.length; i += 8) {
        const batch = cases.slice(i, i + 8);
        const replies = await Promise.all(batch.map((c) => send(port, c)));
        replies.forEach((reply, j) => {
          const c = batch[j]!;
          const reached = reply.status === 200 && reply.headers.get('x-raw-echo') === '1';
          const echo = reached ? (JSON.parse(reply.body) as Echo) : undefined;
          if (echo !== undefined) echoes++;
          if (c.valid === true) {
            assert.ok(echo !== undefined && echo.body === c.body, `${listener}: control ${c.method} ${c.target} did not reach the upstream intact: ${reply.status} ${reply.body}`);
            controlsReached.set(listener, (controlsReached.get(listener) ?? 0) + 1);
            return;
          }
          // ext_proc's refusals name their problem type (ambiguous-path, schema-violation, …).
          const problem = /"type":"urn:portcullis:problem:([a-z-]+)"/.exec(reply.body)?.[1];
          const outcome = echo !== undefined
            ? `upstream ${echo.headers.find(([n]) => n === POLICY_HEADER)?.[1] ?? ''}`.trim()
            : reply.status === 0 ? 'no reply' : `refused ${reply.status}${problem !== undefined ? ` ${problem}` : ''}`;
          const label = `${listener}${c.body !== undefined ? ' with body' : ''} ${outcome}`;
          counts.set(label, (counts.get(label) ?? 0) + 1);
          if (echo !== undefined) violations.push(...judge(listener, c, echo, key));
        });
      }
      // Envoy's codec refuses some requests (a header name with `_` on shipped, some raw bytes) with a local reply
      // that passes through ext_proc's response phase, and closes the connection before ext_proc answers: the
      // client gets no reply. Such a request is judged refused only because the upstream saw no more requests than
      // came back echoed.
      assert.equal(upstream.received() - receivedBefore, echoes, `${listener}: the upstream answered requests whose echo never came back`);
    }
    console.log([...counts].sort().map(([k, v]) => `${k}: ${v}`).join('\n'));
    const known = (v: Violation): Known | undefined => KNOWN.find((k) => (k.listener === 'all' || (k.listener === 'both' && v.listener !== 'extproc') || k.listener === v.listener) && k.check === v.check && k.detail.test(v.detail));
    const listed = violations.filter((v) => known(v) !== undefined);
    // A listed difference that no longer occurs is no longer known to be one: the entry goes.
    for (const k of KNOWN) {
      const n = listed.filter((v) => known(v) === k).length;
      assert.ok(n > 0, `listed in KNOWN but not seen (remove the entry): ${k.listener} (${k.check}) ${k.why}`);
      console.log(`listed (KNOWN), ${n} times: ${k.listener} (${k.check}) ${k.why}`);
    }
    const surprises = violations.filter((v) => known(v) === undefined).map((v) => `${v.listener} (${v.check}) ${JSON.stringify(v.target)}: ${v.detail}`.replaceAll(key, '<KEY>'));
    assert.deepEqual(surprises, [], `seed ${SEED}`);
    // A corpus that reaches no upstream under some policy would pass without having checked anything there.
    for (const listener of ['shipped', 'defaults']) for (const policy of ['public', 'api', 'rest']) assert.ok((counts.get(`${listener} upstream ${policy}`) ?? 0) > 5, `${listener}: too few requests reached the upstream under ${policy}`);
    // (d) judges something only if ext_proc saw requests on its routes, refused some, and some got past on readings
    // that are no validating route; on `extproc` (no ext_authz in front) some paths are refused as ambiguous.
    const sum = (re: RegExp): number => [...counts].filter(([k]) => re.test(k)).reduce((n, [, v]) => n + v, 0);
    for (const listener of ['shipped', 'defaults', 'extproc'] as const) {
      assert.equal(controlsReached.get(listener), fixedBodies(key).filter((c) => c.valid === true).length);
      assert.ok(sum(new RegExp(`^${listener} with body refused 4\\d\\d (schema-violation|invalid-json|unsupported-media-type|missing-parameters)$`)) > 5, `${listener}: too few requests refused by validation`);
      assert.ok(sum(new RegExp(`^${listener} with body upstream`)) > 5, `${listener}: too few requests with a body reached the upstream`);
    }
    assert.ok((counts.get('extproc with body refused 400 ambiguous-path') ?? 0) > 5, 'extproc: too few paths refused as ambiguous');
  });
});
