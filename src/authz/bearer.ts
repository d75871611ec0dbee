import type { HeaderLookup } from './types.js';

/** The bearer token of a request: absent, refused before any parsing, or the token text. */
export type BearerToken =
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly reason: string; readonly detail: string }
  | { readonly kind: 'token'; readonly token: string };

/**
 * `Authorization: Bearer <token>`, scheme case-insensitive (RFC 7235). Two Authorization headers reach us
 * comma-joined and are refused as ambiguous rather than picking one; so is anything over `maxBytes`.
 */
export function bearerToken(headers: HeaderLookup, maxBytes: number): BearerToken {
  const value = headers.get('authorization');
  if (value === undefined || value.trim() === '') return { kind: 'absent' };
  if (value.length > maxBytes) return { kind: 'invalid', reason: 'token_oversized', detail: `authorization header longer than ${maxBytes} bytes` };
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(value);
  if (match === null) {
    if (/^\s*bearer\s/i.test(value) || value.includes(',')) return { kind: 'invalid', reason: 'token_malformed', detail: 'malformed or repeated authorization header' };
    return { kind: 'absent' };
  }
  const token = match[1]!;
  if (token.includes(',')) return { kind: 'invalid', reason: 'token_malformed', detail: 'more than one bearer token' };
  return { kind: 'token', token };
}
