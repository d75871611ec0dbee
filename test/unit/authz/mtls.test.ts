import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { evaluateMtls, principalFromXfcc, subjectAltNames } from '../../../src/authz/mtls.js';
import { addressSet } from '../../../src/authz/network.js';
import { input } from './support.js';

// What a trusted front proxy appends (APPEND_FORWARD): its element comes last, after whatever the client sent.
const PROXY = 'By=spiffe://example.org/gateway;Hash=0123abcd;URI=spiffe://example.org/attacker';

describe('principalFromXfcc', () => {
  const table: [string, string, string | undefined][] = [
    ['URI', 'By=spiffe://example.org/envoy;Hash=abc;URI=spiffe://example.org/ops;DNS=ops.example.org', 'spiffe://example.org/ops'],
    ['DNS without URI', 'Hash=1;DNS=a.example', 'a.example'],
    ['Subject without SANs, quoted comma', 'Hash=2;Subject="CN=b, O=c"', 'CN=b, O=c'],
    // Envoy quotes the subject without escaping it: the backslashes are RFC 2253's, and source.principal keeps them.
    ['escaped quote inside quotes stays as Envoy wrote it', 'Subject="CN=a \\"b\\",O=c"', 'CN=a \\"b\\",O=c'],
    ['subject ending in an escaped quote', 'Hash=1;Subject="CN=ends \\"quoted\\"";URI=', 'CN=ends \\"quoted\\"'],
    ['subject ending in an escaped backslash closes its quotes', 'Hash=1;Subject="CN=a\\\\";URI=', 'CN=a\\\\'],
    ['RFC 2253 specials in a subject', 'Subject="O=x,CN=a\\,b\\;c\\"d=e\\+f\\\\g \\<h\\>#";URI=', 'O=x,CN=a\\,b\\;c\\"d=e\\+f\\\\g \\<h\\>#'],
    ['empty URI= (Envoy writes it for a certificate without URI SANs) falls through to DNS', 'Hash=1;URI=;DNS=b.example;DNS=a.example', 'b.example'],
    ['several URI SANs: the first, as source.principal', 'Hash=1;URI=https://other.example/x;URI=spiffe://example.org/ops', 'https://other.example/x'],
    ['By= is the proxy, never the caller', 'By=spiffe://example.org/front;Hash=1;URI=', undefined],
    ['keys in any case', 'HASH=1;subject="CN=x";Uri=;dns=d.example', 'd.example'],
    ['a quote after an escaped backslash outside quotes opens one', `URI=a\\\\",${PROXY}`, undefined],
    ['a backslash-escaped quote outside quotes is text', 'Hash=1;URI=spiffe://example.org/a\\"b', 'spiffe://example.org/a\\"b'],
    ['keys are case-insensitive', 'uri=spiffe://example.org/ops', 'spiffe://example.org/ops'],
    ['last element wins, not the first', `By=x;URI=spiffe://example.org/ops,${PROXY}`, 'spiffe://example.org/attacker'],
    ['last element wins after a quoted comma', `Subject="CN=ops, O=x";URI=spiffe://example.org/ops,${PROXY}`, 'spiffe://example.org/attacker'],
    ['unbalanced quote swallowing the proxy element', `URI=spiffe://example.org/ops;x=",${PROXY}`, undefined],
    ['unbalanced quote alone', `x=",${PROXY}`, undefined],
    ['unbalanced quote in the last element', 'URI=spiffe://example.org/ops;Subject="CN=x', undefined],
    ['escaped closing quote leaves it open', `URI=spiffe://example.org/ops;x="\\",${PROXY}`, undefined],
    ['no fields', 'garbage', undefined],
    ['empty', '', undefined],
  ];
  for (const [name, value, want] of table) it(`${name} → ${want ?? 'no principal'}`, () => assert.equal(principalFromXfcc(value), want));
});

// The element Envoy writes for a certificate whose first URI SAN is `spiffe://example.org/dev;DNS=x,URI=spiffe://
// example.org/ops`: Envoy leaves URI= values unquoted, so the element's own fields read as another caller.
const fixture = (name: string): string => readFileSync(new URL(`../../../../test/fixtures/authz/xfcc/${name}`, import.meta.url), 'utf8');
const AMBIGUOUS = fixture('ambiguous-uri.crt');
const NO_SAN = fixture('no-san.crt');
const hashOf = (pem: string): string => new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();
const cert = (pem: string): string => `Cert="${encodeURIComponent(pem)}"`;
const AMBIGUOUS_ELEMENT = `By=spiffe://example.org/front;Hash=${hashOf(AMBIGUOUS)};${cert(AMBIGUOUS)};Subject="O=Example,CN=dev \\"quoted\\"";URI=spiffe://example.org/dev;DNS=x,URI=spiffe://example.org/ops;URI=spiffe://example.org/second;DNS=dev.example.org`;

describe('principalFromXfcc: the certificate the element carries outranks its URI=, DNS= text', () => {
  const table: [string, string, string | undefined][] = [
    ['without Cert=, the URI text misleads (what Envoy wrote, read as written)', AMBIGUOUS_ELEMENT.replace(/Cert="[^"]*";/, ''), 'spiffe://example.org/ops'],
    ['Cert= names the first URI SAN whole', AMBIGUOUS_ELEMENT.replace(/,URI=spiffe:\/\/example.org\/ops;URI=spiffe:\/\/example.org\/second;DNS=dev.example.org$/, ''), 'spiffe://example.org/dev;DNS=x,URI=spiffe://example.org/ops'],
    ['Hash= not the certificate’s: nobody', `By=x;Hash=${'0'.repeat(64)};${cert(AMBIGUOUS)};URI=spiffe://example.org/ops`, undefined],
    ['Hash= in upper case is the same hash', `Hash=${hashOf(AMBIGUOUS).toUpperCase()};${cert(AMBIGUOUS)}`, 'spiffe://example.org/dev;DNS=x,URI=spiffe://example.org/ops'],
    ['Cert= that is not a certificate: nobody, not the URI= text', `Hash=1;Cert="not%20a%20certificate";URI=spiffe://example.org/ops`, undefined],
    ['Cert= with a bad escape: nobody', `Cert="%E0%A4%A";URI=spiffe://example.org/ops`, undefined],
    ['Cert= without SANs: the Subject', `Hash=${hashOf(NO_SAN)};${cert(NO_SAN)};Subject="CN=no san";URI=`, 'CN=no san'],
    ['the tail of a URI SAN holding `,` after an element with Cert=: nobody', AMBIGUOUS_ELEMENT.replace(/;URI=spiffe:\/\/example.org\/second;DNS=dev.example.org$/, ''), undefined],
    ['a client prefix with Cert= before a proxy element without one: nobody', `${cert(NO_SAN)};URI=spiffe://example.org/ops,${PROXY}`, undefined],
    ['Cert= text inside a quoted subject is not a Cert= key', `Subject="CN=x\\;Cert=y",${PROXY}`, 'spiffe://example.org/attacker'],
    ['Cert= without SANs nor Subject: nobody', `Hash=${hashOf(NO_SAN)};${cert(NO_SAN)};URI=spiffe://example.org/ops`, undefined],
  ];
  for (const [name, value, want] of table) it(`${name} → ${want ?? 'no principal'}`, () => assert.equal(principalFromXfcc(value), want));
});

describe('subjectAltNames (node:crypto text → entries in order)', () => {
  const table: [string, string, [string, string][] | undefined][] = [
    ['plain', 'URI:spiffe://a/b, DNS:x.example', [['URI', 'spiffe://a/b'], ['DNS', 'x.example']]],
    ['JSON-quoted value with a comma', 'URI:"spiffe://a/b\\u002cURI=spiffe://c", DNS:x', [['URI', 'spiffe://a/b,URI=spiffe://c'], ['DNS', 'x']]],
    ['JSON-quoted value with an escaped quote', 'URI:"a\\"b", email:e@x', [['URI', 'a"b'], ['email', 'e@x']]],
    ['IP and email', 'IP Address:10.0.0.1, email:a@example.org', [['IP Address', '10.0.0.1'], ['email', 'a@example.org']]],
    ['empty', '', []],
    ['unterminated JSON value', 'URI:"abc', undefined],
    ['no type', 'spiffe', undefined],
  ];
  for (const [name, text, want] of table) it(name, () => assert.deepEqual(subjectAltNames(text), want));
  it('reads the fixture as node:crypto prints it', () => {
    assert.deepEqual(subjectAltNames(new X509Certificate(AMBIGUOUS).subjectAltName ?? ''), [
      ['URI', 'spiffe://example.org/dev;DNS=x,URI=spiffe://example.org/ops'], ['URI', 'spiffe://example.org/second'], ['DNS', 'dev.example.org'],
    ]);
  });
});

describe('evaluateMtls: XFCC from a trusted peer', () => {
  const settings = { principalsHeader: 'x-forwarded-client-cert', trusted: addressSet(['192.0.2.200/32']), anyTrusted: true };
  const table: { name: string; xfcc: string; from?: string; want: string }[] = [
    { name: 'trusted peer', xfcc: PROXY, want: 'success spiffe://example.org/attacker' },
    { name: 'untrusted peer', xfcc: PROXY, from: '192.0.2.201', want: 'absent' },
    { name: 'client prefix does not win', xfcc: `URI=spiffe://example.org/ops,${PROXY}`, want: 'success spiffe://example.org/attacker' },
    { name: 'quote injection names nobody', xfcc: `URI=spiffe://example.org/ops;x=",${PROXY}`, want: 'absent' },
  ];
  for (const { name, xfcc, from, want } of table) {
    it(`${name} → ${want}`, () => {
      const o = evaluateMtls(input({ sourceAddress: from ?? '192.0.2.200', headers: { 'x-forwarded-client-cert': xfcc } }), settings);
      assert.equal(o.kind === 'success' ? `success ${o.identity.subject}` : o.kind, want, o.detail);
    });
  }
});
