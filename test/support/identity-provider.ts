// A small real OIDC issuer for integration and e2e tests: discovery document, JWKS and an RFC 7662 introspection
// endpoint over plain HTTP, with keys generated at start (jose). Tests can take it down, slow it or make it lie.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { keyPairFor } from './key-pairs.js';

export interface IdentityProvider {
  /** http://127.0.0.1:<port>; also the issuer. */
  readonly issuer: string;
  readonly jwksUrl: string;
  readonly introspectionUrl: string;
  /** A signed RS256 access token for `audience`, valid for `ttlSeconds`. */
  token(claims: Record<string, unknown>, options?: { audience?: string; ttlSeconds?: number; kid?: string }): Promise<string>;
  /** 'up' serves; 'down' resets connections; 'garbage' answers 200 with a non-JWKS; 'slow' never answers. */
  setMode(mode: 'up' | 'down' | 'garbage' | 'slow'): void;
  /** What the introspection endpoint answers for a token (default: inactive); a promise answers when it settles. */
  setIntrospection(answer: (token: string, authorization: string | undefined) => Record<string, unknown> | Promise<Record<string, unknown>>): void;
  /** Requests by path so far. */
  readonly hits: Map<string, number>;
  stop(): Promise<void>;
}

export async function startIdentityProvider(): Promise<IdentityProvider> {
  const { privateKey, publicKey } = keyPairFor('RS256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  let mode: 'up' | 'down' | 'garbage' | 'slow' = 'up';
  let introspect: (token: string, authorization: string | undefined) => Record<string, unknown> | Promise<Record<string, unknown>> = () => ({ active: false });
  const hits = new Map<string, number>();
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const route = (req.url ?? '/').split('?')[0] ?? '/';
    hits.set(route, (hits.get(route) ?? 0) + 1);
    if (mode === 'down') {
      req.socket.destroy();
      return;
    }
    if (mode === 'slow') return;
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (mode === 'garbage') return json(200, { keys: 'garbage', issuer: 'nope' });
    if (route === '/.well-known/openid-configuration') return json(200, { issuer, jwks_uri: `${issuer}/jwks.json`, introspection_endpoint: `${issuer}/introspect` });
    if (route === '/jwks.json') return json(200, { keys: [jwk] });
    if (route === '/introspect' && req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => void Promise.resolve(introspect(new URLSearchParams(body).get('token') ?? '', req.headers.authorization)).then((answer) => json(200, answer)));
      return;
    }
    json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    jwksUrl: `${issuer}/jwks.json`,
    introspectionUrl: `${issuer}/introspect`,
    hits,
    token(claims, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuer, aud: options.audience ?? 'orders-api', iat: now, exp: now + (options.ttlSeconds ?? 300), ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? 'k1' })
        .sign(privateKey);
    },
    setMode: (m) => void (mode = m),
    setIntrospection: (fn) => void (introspect = fn),
    stop: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
