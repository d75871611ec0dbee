import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateMtls, principalFromXfcc } from '../../../src/authz/mtls.js';
import { addressSet } from '../../../src/authz/network.js';
import { input } from './support.js';

// What a trusted front proxy appends (APPEND_FORWARD): its element comes last, after whatever the client sent.
const PROXY = 'By=spiffe://example.org/gateway;Hash=0123abcd;URI=spiffe://example.org/attacker';

describe('principalFromXfcc', () => {
  const table: [string, string, string | undefined][] = [
    ['URI', 'By=spiffe://example.org/envoy;Hash=abc;URI=spiffe://example.org/ops;DNS=ops.example.org', 'spiffe://example.org/ops'],
    ['DNS without URI', 'Hash=1;DNS=a.example', 'a.example'],
    ['Subject without SANs, quoted comma', 'Hash=2;Subject="CN=b, O=c"', 'CN=b, O=c'],
    ['escaped quote inside quotes', 'Subject="CN=a \\"b\\", O=c"', 'CN=a "b", O=c'],
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
