import type { HeaderLookup } from './types.js';

/** The bearer token of a request: absent, refused before any parsing, or the token text. */
export type BearerToken =
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly reason: string; readonly detail: string }
  | { readonly kind: 'token'; readonly token: string };

/**
 * `Authorization: Bearer <token>`, scheme case-insensitive (RFC 9110 §11.1), then spaces, the token and nothing else
 * (RFC 6750 §2.1: `"Bearer" 1*SP b64token`): a tab or another whitespace character after the scheme is refused, as
 * Envoy's jwt_authn refuses it, rather than read by a looser rule than a service behind us may apply. Only the
 * optional whitespace of a field value (space, tab) may surround it. Two Authorization headers reach us comma-joined
 * and are refused as ambiguous rather than picking one; so is anything over `maxBytes`.
 */
export function bearerToken(headers: HeaderLookup, maxBytes: number): BearerToken {
  const value = headers.get('authorization');
  if (value === undefined || value.trim() === '') return { kind: 'absent' };
  if (value.length > maxBytes) return { kind: 'invalid', reason: 'token_oversized', detail: `authorization header longer than ${maxBytes} bytes` };
  const match = /^[ \t]*bearer +(\S+)[ \t]*$/i.exec(value);
  if (match === null) {
    if (/^\s*bearer\s/i.test(value) || value.includes(',')) return { kind: 'invalid', reason: 'token_malformed', detail: 'malformed or repeated authorization header' };
    return { kind: 'absent' };
  }
  const token = match[1]!;
  if (token.includes(',')) return { kind: 'invalid', reason: 'token_malformed', detail: 'more than one bearer token' };
  return { kind: 'token', token };
}
