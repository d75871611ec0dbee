import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServerInterceptingCall, status, type ServerInterceptingCallInterface, type StatusObject } from '@grpc/grpc-js';
import { clientSanInterceptor, clientSanPolicy, parseSubjectAltNames, peerVerdict, RefusalLog, sanAllowed, type PeerVerdict } from '../../../src/server/grpc-client-sans.js';
import { FakeClock } from '../../fakes/fake-clock.js';

const policy = clientSanPolicy(['spiffe://example.org/envoy', 'Envoy.Internal']);

describe('parseSubjectAltNames: Node\'s rendering of a certificate\'s SANs', () => {
  const table: [string | undefined, { type: string; value: string }[]][] = [
    [undefined, []],
    ['', []],
    ['DNS:a.example', [{ type: 'DNS', value: 'a.example' }]],
    ['DNS:a, URI:spiffe://x/y, IP Address:127.0.0.1', [{ type: 'DNS', value: 'a' }, { type: 'URI', value: 'spiffe://x/y' }, { type: 'IP Address', value: '127.0.0.1' }]],
    // A value with a comma is a JSON string: one entry, however it reads.
    ['DNS:"evil, URI:spiffe://example.org/envoy", DNS:b', [{ type: 'DNS', value: 'evil, URI:spiffe://example.org/envoy' }, { type: 'DNS', value: 'b' }]],
    ['URI:"spiffe://x/\\"q\\""', [{ type: 'URI', value: 'spiffe://x/"q"' }]],
  ];
  for (const [text, entries] of table) {
    it(JSON.stringify(text), () => assert.deepEqual(parseSubjectAltNames(text), entries));
  }
});

describe('sanAllowed: URIs exactly, DNS names without regard to case, nothing else', () => {
  const table: [string | undefined, boolean][] = [
    ['URI:spiffe://example.org/envoy', true],
    ['DNS:other, URI:spiffe://example.org/envoy', true],
    ['URI:spiffe://example.org/Envoy', false],
    ['URI:spiffe://example.org/envoy/extra', false],
    ['DNS:envoy.internal', true],
    ['DNS:ENVOY.INTERNAL', true],
    ['DNS:spiffe://example.org/envoy', false],
    ['URI:envoy.internal', false],
    ['IP Address:127.0.0.1', false],
    ['DNS:"evil, URI:spiffe://example.org/envoy"', false],
    ['email:envoy.internal', false],
    [undefined, false],
  ];
  for (const [san, allowed] of table) {
    it(`${JSON.stringify(san)}: ${allowed}`, () => assert.equal(sanAllowed(policy, san), allowed));
  }

  it('peerVerdict: no verified certificate is refused before any SAN', () => {
    assert.deepEqual(peerVerdict(policy, { authorized: false, hasCertificate: true, subjectAltName: 'URI:spiffe://example.org/envoy' }), { allowed: false, reason: 'no_verified_certificate', subjectAltName: undefined });
    assert.deepEqual(peerVerdict(policy, { authorized: true, hasCertificate: false, subjectAltName: undefined }).allowed, false);
    assert.deepEqual(peerVerdict(policy, { authorized: true, hasCertificate: true, subjectAltName: 'DNS:x' }), { allowed: false, reason: 'identity_not_allowed', subjectAltName: 'DNS:x' });
  });
});

/** A call as grpc-js hands the first interceptor (its own call object, with the HTTP/2 stream it came on). */
function fakeCall(session: object | undefined, authContext: ReturnType<ServerInterceptingCallInterface['getAuthContext']> = {}) {
  const sent: StatusObject[] = [];
  const call = {
    ...(session === undefined ? {} : { stream: { session } }),
    getPeer: () => '127.0.0.1:5555',
    getAuthContext: () => authContext,
    sendStatus: (s: StatusObject) => void sent.push(s),
    start: (listener: { onReceiveMetadata?: (m: unknown, next: (m: unknown) => void) => void }) => listener.onReceiveMetadata?.({}, () => undefined),
  } as unknown as ServerInterceptingCallInterface;
  return { call, sent };
}

function socketSession(subjectAltName: string | undefined, authorized = true) {
  const counts = { certificates: 0 };
  return {
    counts,
    session: { socket: { authorized, getPeerX509Certificate: () => (counts.certificates++, subjectAltName === undefined ? undefined : { subjectAltName }) } },
  };
}

/** A handler's listener: records whether the call reached it. */
function handlerListener(onMetadata: () => void = () => undefined) {
  return { onReceiveMetadata: onMetadata, onReceiveMessage: () => undefined, onReceiveHalfClose: () => undefined, onCancel: () => undefined };
}

const METHOD = {} as Parameters<ReturnType<typeof clientSanInterceptor>>[0];

describe('clientSanInterceptor', () => {
  it('works a connection\'s verdict out once, and passes its allowed calls through untouched', () => {
    const sessions = { computed: 0 };
    const interceptor = clientSanInterceptor(policy, () => assert.fail('refused'), sessions);
    const { session, counts } = socketSession('URI:spiffe://example.org/envoy');
    for (let i = 0; i < 5; i++) {
      const { call } = fakeCall(session);
      assert.equal(interceptor(METHOD, call), call, 'the call itself: no wrapper on the allowed path');
    }
    assert.deepEqual([sessions.computed, counts.certificates], [1, 1]);
    // Another connection: its own verdict.
    interceptor(METHOD, fakeCall(socketSession('DNS:envoy.internal').session).call);
    assert.equal(sessions.computed, 2);
  });

  it('refuses a listed-CA certificate whose identity is not listed: PERMISSION_DENIED, without naming what is allowed', () => {
    const refusals: [PeerVerdict, string][] = [];
    const interceptor = clientSanInterceptor(policy, (verdict, peer) => void refusals.push([verdict, peer]));
    const { call, sent } = fakeCall(socketSession('URI:spiffe://example.org/intruder').session);
    const wrapped = interceptor(METHOD, call);
    assert.ok(wrapped instanceof ServerInterceptingCall);
    let handlerStarted = false;
    wrapped.start(handlerListener(() => void (handlerStarted = true)));
    assert.equal(handlerStarted, false, 'the handler never sees the call');
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.code, status.PERMISSION_DENIED);
    assert.ok(!sent[0]!.details.includes('spiffe://example.org/envoy'));
    assert.deepEqual(refusals, [[{ allowed: false, reason: 'identity_not_allowed', subjectAltName: 'URI:spiffe://example.org/intruder' }, '127.0.0.1:5555']]);
  });

  it('refuses a call without a verified certificate: UNAUTHENTICATED', () => {
    const interceptor = clientSanInterceptor(policy, () => undefined);
    const { call, sent } = fakeCall(socketSession('URI:spiffe://example.org/envoy', false).session);
    interceptor(METHOD, call).start(handlerListener());
    assert.equal(sent[0]?.code, status.UNAUTHENTICATED);
  });

  it('without grpc-js\' stream (another version): every call is checked through getAuthContext, as strictly', () => {
    const sessions = { computed: 0 };
    const interceptor = clientSanInterceptor(policy, () => undefined, sessions);
    const good = fakeCall(undefined, { transportSecurityType: 'ssl', sslPeerCertificate: { subjectaltname: 'URI:spiffe://example.org/envoy' } as never });
    assert.equal(interceptor(METHOD, good.call), good.call);
    const bad = fakeCall(undefined, { transportSecurityType: 'ssl', sslPeerCertificate: { subjectaltname: 'DNS:nope' } as never });
    interceptor(METHOD, bad.call).start(handlerListener());
    assert.equal(bad.sent[0]?.code, status.PERMISSION_DENIED);
    const plain = fakeCall(undefined, {});
    interceptor(METHOD, plain.call).start(handlerListener());
    assert.equal(plain.sent[0]?.code, status.UNAUTHENTICATED);
    assert.equal(sessions.computed, 3, 'nothing to cache on');
  });
});

describe('RefusalLog: every refusal counted, one line a minute', () => {
  it('logs the first, then one line per interval with the count since', () => {
    const clock = new FakeClock(1_000_000);
    const counted: string[] = [];
    const lines: { refusedSinceLastLog: number }[] = [];
    const log = new RefusalLog(clock, (reason) => void counted.push(reason), (entry) => void lines.push(entry));
    const verdict = { allowed: false, reason: 'identity_not_allowed', subjectAltName: 'DNS:x' } as const;
    log.refused(verdict, 'a');
    for (let i = 0; i < 99; i++) {
      clock.advance(100);
      log.refused(verdict, 'a');
    }
    assert.equal(counted.length, 100);
    assert.deepEqual(lines.map((l) => l.refusedSinceLastLog), [1]);
    clock.advance(60_000);
    log.refused(verdict, 'b');
    assert.deepEqual(lines.map((l) => l.refusedSinceLastLog), [1, 100]);
  });
});
