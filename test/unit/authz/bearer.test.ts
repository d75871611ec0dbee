import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearerToken } from '../../../src/authz/bearer.js';
import { input } from './support.js';

const TOKEN = 'aGVhZGVy.cGF5bG9hZA.c2ln';

describe('bearerToken: the Authorization header, table', () => {
  // [name, header value (undefined: no header), verdict: the token, 'absent', or the refusal's reason]
  const table: [string, string | undefined, string][] = [
    ['no header', undefined, 'absent'],
    ['empty', '', 'absent'],
    ['blank', '   ', 'absent'],
    ['Bearer and a token', `Bearer ${TOKEN}`, TOKEN],
    ['scheme in lower case (RFC 9110 §11.1: case-insensitive)', `bearer ${TOKEN}`, TOKEN],
    ['scheme in upper case', `BEARER ${TOKEN}`, TOKEN],
    ['two spaces after the scheme (1*SP)', `Bearer  ${TOKEN}`, TOKEN],
    ['spaces and tabs around the value (field OWS)', ` \tBearer ${TOKEN} \t`, TOKEN],
    // RFC 6750 §2.1 puts 1*SP between scheme and token; Envoy's jwt_authn refuses these too.
    ['a tab after the scheme', `Bearer\t${TOKEN}`, 'token_malformed'],
    ['a space and a tab after the scheme', `Bearer \t${TOKEN}`, 'token_malformed'],
    ['a no-break space after the scheme', `Bearer\u00a0${TOKEN}`, 'token_malformed'],
    ['a line separator after the token', `Bearer ${TOKEN}\u2028`, 'token_malformed'],
    ['a no-break space before the scheme', `\u00a0Bearer ${TOKEN}`, 'token_malformed'],
    ['no space after the scheme', `Bearer${TOKEN}`, 'absent'],
    ['Bearer alone', 'Bearer', 'absent'],
    ['Bearer and a space', 'Bearer ', 'token_malformed'],
    ['a space inside the token', `Bearer ${TOKEN} x`, 'token_malformed'],
    ['two tokens (two headers, comma-joined)', `Bearer ${TOKEN}, Bearer ${TOKEN}`, 'token_malformed'],
    ['Basic, then Bearer (two headers, comma-joined)', `Basic dXNlcjpwYXNz, Bearer ${TOKEN}`, 'token_malformed'],
    ['another scheme', 'Basic dXNlcjpwYXNz', 'absent'],
    ['longer than the limit', `Bearer ${'a'.repeat(100)}`, 'token_oversized'],
  ];
  for (const [name, value, verdict] of table) {
    it(name, () => {
      const bearer = bearerToken(input({ headers: value === undefined ? {} : { authorization: value } }).headers, 64);
      assert.equal(bearer.kind === 'token' ? bearer.token : bearer.kind === 'absent' ? 'absent' : bearer.reason, verdict);
    });
  }
});
