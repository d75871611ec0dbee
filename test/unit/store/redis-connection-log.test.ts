import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { SEED_LOOKUP_EVENT, SENTINEL_WATCH_EVENT, SentinelsUnanswered } from '../../../src/store/redis-client.js';
import { describeSentinelsUnanswered, explainRedisError, isUninformative, watchRedisConnection, type RedisTransport } from '../../../src/store/redis-connection-log.js';
import { reasonCode } from '../../../src/shared/failure-streak.js';
import { FakeClock } from '../../fakes/fake-clock.js';

describe('explainRedisError', () => {
  const cases: [message: string, shown: RegExp][] = [
    ['read ECONNRESET', /^ECONNRESET: the server closed the connection \(a server that requires TLS does this to redis:\/\/: use rediss:\/\/\)$/],
    ['write ECONNRESET', /^ECONNRESET: the server closed the connection/],
    ['127.0.0.1:7000: read ECONNRESET', /^127\.0\.0\.1:7000: ECONNRESET: the server closed/],
    ['connect ETIMEDOUT', /^connect ETIMEDOUT: no answer within connect_timeout_ms \(with rediss:\/\/, a server that does not speak TLS times out too\)$/],
    ['WRONGPASS invalid username-password pair or user is disabled.', /^WRONGPASS invalid username-password pair/],
    ['self-signed certificate', /^self-signed certificate$/],
    ['getaddrinfo ENOTFOUND redis.example', /^getaddrinfo ENOTFOUND redis\.example$/],
  ];
  for (const [message, shown] of cases) it(message, () => assert.match(explainRedisError(message), shown));
});

// What Node says when a server with tls-auth-clients yes refuses a client (redis-server 7, OpenSSL 3, Node 20): with
// TLS 1.3 the reset two times in three, else the server's alert; with TLS 1.2 the alert.
describe('explainRedisError: a TLS server refusing the client for its certificate', () => {
  const REQUIRED = '807CE32E587F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n';
  const HANDSHAKE = '807CE32E587F0000:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake failure:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 40\n';
  const UNKNOWN_CA = '807CE32E587F0000:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 48\n';
  const PROTOCOL = '807CE32E587F0000:error:0A00042E:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 70\n';
  const none: RedisTransport = { tls: true, clientCertificate: false };
  const shown: RedisTransport = { tls: true, clientCertificate: true };
  const cases: [name: string, message: string, transport: RedisTransport, explained: RegExp][] = [
    ['TLS 1.3, no certificate: the reset', 'write ECONNRESET', none, /^no client certificate: the server closed the TLS connection \(write ECONNRESET\): a server that requires one \(tls-auth-clients yes\) refuses the connection so: set redis\.tls\.cert_file and redis\.tls\.key_file$/],
    ['TLS 1.3, no certificate: the alert', REQUIRED, none, /^no client certificate: the server answered tlsv13 alert certificate required \(SSL alert number 116\): a server that requires one/],
    ['TLS 1.2, no certificate: the alert', HANDSHAKE, none, /^no client certificate: the server answered sslv3 alert handshake failure \(SSL alert number 40\): a server/],
    ['a node named first', `127.0.0.1:7000: ${REQUIRED}`, none, /^127\.0\.0\.1:7000: no client certificate: the server answered tlsv13 alert certificate required/],
    ['TLS 1.3, a certificate its CA did not sign: the reset', 'read ECONNRESET', shown, /^client certificate refused: the server closed the TLS connection \(read ECONNRESET\): a server whose tls-ca-cert-file did not sign redis\.tls\.cert_file/],
    ['TLS 1.2, a certificate its CA did not sign: the alert', UNKNOWN_CA, shown, /^client certificate refused: the server answered tlsv1 alert unknown ca \(SSL alert number 48\)/],
    ['an alert about something else: OpenSSL\'s wording cut to it', PROTOCOL, none, /^tlsv1 alert protocol version \(SSL alert number 70\)$/],
    ['plaintext: the reset is TLS wanted', 'read ECONNRESET', { tls: false, clientCertificate: false }, /^ECONNRESET: the server closed the connection \(a server that requires TLS does this to redis:\/\/: use rediss:\/\/\)$/],
    ['a certificate not trusted is no refusal', 'self-signed certificate in certificate chain', shown, /^self-signed certificate in certificate chain$/],
  ];
  for (const [name, message, transport, explained] of cases) it(name, () => assert.match(explainRedisError(message, transport), explained));

  // One line in the log for either way Node says it (the kind of reason is what the log reports once).
  it('the reset and the alert are one kind of reason', () => {
    assert.equal(reasonCode(explainRedisError('write ECONNRESET', none)), reasonCode(explainRedisError(REQUIRED, none)));
    assert.equal(reasonCode(explainRedisError('read ECONNRESET', shown)), reasonCode(explainRedisError(UNKNOWN_CA, shown)));
  });
});

describe('isUninformative', () => {
  const cases: [message: string, uninformative: boolean][] = [
    ['Connection is closed.', true],
    ['Failed to refresh slots cache.', true],
    ["Cluster isn't ready and enableOfflineQueue options is false", true],
    ['None of startup nodes is available', true],
    ['timeout', true],
    ['self-signed certificate', false],
    ['WRONGPASS invalid username-password pair', false],
    ['connect ECONNREFUSED 127.0.0.1:6379', false],
  ];
  for (const [message, expected] of cases) it(message, () => assert.equal(isUninformative(message), expected));
});

describe('watchRedisConnection: one line per kind of reason until the connection works again', () => {
  const watch = (): { client: EventEmitter; lines: string[] } => {
    const client = new EventEmitter() as EventEmitter & { isCluster: boolean };
    client.isCluster = false;
    const lines: string[] = [];
    watchRedisConnection(client as unknown as Redis, { down: (reason) => lines.push(`down ${reason}`), up: () => lines.push('up'), seedSkipped: (reason) => lines.push(`skipped ${reason}`), sentinelLost: (reason) => lines.push(`lost ${reason}`), sentinelBack: (sentinel) => lines.push(`back ${sentinel}`) }, { redact: (text) => text.replace(/:[^@/]*@/, ':***@'), clock: new FakeClock(0) });
    return { client, lines };
  };

  it('alternating messages of one kind are one line; a new kind is another; recovery is one line and starts over', () => {
    const { client, lines } = watch();
    for (let i = 0; i < 5; i++) {
      client.emit('error', new Error('read ECONNRESET'));
      client.emit('error', new Error('write ECONNRESET'));
    }
    client.emit('error', new Error('WRONGPASS invalid username-password pair'));
    client.emit('error', new Error('WRONGPASS invalid username-password pair'));
    client.emit('ready');
    client.emit('ready');
    client.emit('error', new Error('read ECONNRESET'));
    assert.deepEqual(lines.map((l) => l.split(':')[0]), ['down ECONNRESET', 'down WRONGPASS invalid username-password pair', 'up', 'down ECONNRESET']);
  });

  it("a sentinel the failover detector loses: one line per kind of reason until it is heard again, each sentinel apart", () => {
    const { client, lines } = watch();
    const lose = (sentinel: string, reason: string | undefined): boolean => client.emit(SENTINEL_WATCH_EVENT, { sentinel, reason });
    lose('s1:26379', undefined);
    lose('s1:26379', 'connect ECONNREFUSED 10.0.0.1:26379');
    lose('s1:26379', 'connect ECONNREFUSED 10.0.0.1:26379');
    lose('s2:26379', 'read ECONNRESET');
    lose('s1:26379', 'WRONGPASS invalid username-password pair');
    lose('s1:26379', undefined);
    lose('s1:26379', undefined);
    lose('s1:26379', 'connect ECONNREFUSED 10.0.0.1:26379');
    assert.deepEqual(lines, [
      'lost s1:26379: connect ECONNREFUSED 10.0.0.1:26379',
      'lost s2:26379: ECONNRESET: the server closed the connection (a server that requires TLS does this to redis://: use rediss://)',
      'lost s1:26379: WRONGPASS invalid username-password pair',
      'back s1:26379',
      'lost s1:26379: connect ECONNREFUSED 10.0.0.1:26379',
    ]);
  });

  it('hides credentials in the reason', () => {
    const { client, lines } = watch();
    client.emit('error', new Error('connect to redis://:s3cret@cache:6379 refused'));
    assert.ok(!lines.join('\n').includes('s3cret'), lines.join('\n'));
  });
});

describe('describeSentinelsUnanswered: each sentinel with its reason, explained; the kind is the kinds of the reasons', () => {
  const cases: { name: string; reasons: [string, string][]; message: string; code: string }[] = [
    {
      name: 'an untrusted certificate',
      reasons: [['10.0.0.1:26379', 'self-signed certificate in certificate chain']],
      message: 'no sentinel answered: 10.0.0.1:26379: self-signed certificate in certificate chain',
      code: 'no sentinel answered: self-signed certificate in certificate chain',
    },
    {
      name: 'plaintext to a TLS sentinel, with the hint; a refused one',
      reasons: [['s1:26379', 'read ECONNRESET'], ['s2:26380', 'connect ECONNREFUSED 10.0.0.2:26380']],
      message: 'no sentinel answered: s1:26379: ECONNRESET: the server closed the connection (a server that requires TLS does this to redis://: use rediss://); s2:26380: connect ECONNREFUSED 10.0.0.2:26380',
      code: 'no sentinel answered: ECONNRESET, connect ECONNREFUSED #',
    },
    {
      name: 'two refusals of one kind are one kind',
      reasons: [['s1:26379', 'WRONGPASS invalid username-password pair'], ['s2:26379', 'WRONGPASS invalid username-password pair or user is disabled.']],
      message: 'no sentinel answered: s1:26379: WRONGPASS invalid username-password pair; s2:26379: WRONGPASS invalid username-password pair or user is disabled.',
      code: 'no sentinel answered: WRONGPASS',
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(describeSentinelsUnanswered(new Map(c.reasons)), { message: c.message, code: c.code }));
});

describe('watchRedisConnection: sentinels that did not answer', () => {
  it('one line per kind of reasons, naming each sentinel; a new kind is another line; recovery starts over', () => {
    const client = new EventEmitter() as EventEmitter & { isCluster: boolean };
    client.isCluster = false;
    const lines: string[] = [];
    watchRedisConnection(client as unknown as Redis, { down: (reason) => lines.push(reason), up: () => lines.push('up'), seedSkipped: () => assert.fail(), sentinelLost: () => assert.fail(), sentinelBack: () => assert.fail() }, { redact: (text) => text, clock: new FakeClock(0) });
    const untrusted = (port: number): SentinelsUnanswered => new SentinelsUnanswered(new Map([[`127.0.0.1:${port}`, 'self-signed certificate in certificate chain']]));
    client.emit('error', untrusted(26379));
    client.emit('error', untrusted(26380));
    client.emit('error', new SentinelsUnanswered(new Map([['127.0.0.1:26379', 'WRONGPASS invalid username-password pair']])));
    client.emit('ready');
    client.emit('error', untrusted(26379));
    assert.deepEqual(lines, [
      'no sentinel answered: 127.0.0.1:26379: self-signed certificate in certificate chain',
      'no sentinel answered: 127.0.0.1:26379: WRONGPASS invalid username-password pair',
      'up',
      'no sentinel answered: 127.0.0.1:26379: self-signed certificate in certificate chain',
    ]);
  });
});

describe('watchRedisConnection: a Cluster that hides its reason is probed, at most every 5 s while down', () => {
  it('probes on an uninformative error, not again within 5 s, again after; a probe from before recovery reports nothing', async () => {
    const client = new EventEmitter() as EventEmitter & { isCluster: boolean };
    client.isCluster = true;
    const clock = new FakeClock(0);
    const lines: string[] = [];
    let probes = 0;
    let answer: (reason: string | undefined) => void = () => undefined;
    const probe = (): Promise<string | undefined> => {
      probes++;
      return new Promise((resolve) => (answer = resolve));
    };
    watchRedisConnection(client as unknown as Redis, { down: (reason) => lines.push(reason), up: () => lines.push('up'), seedSkipped: (reason) => lines.push(`skipped ${reason}`), sentinelLost: (reason) => lines.push(`lost ${reason}`), sentinelBack: (sentinel) => lines.push(`back ${sentinel}`) }, { redact: (text) => text, probe, clock });
    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

    client.emit('error', new Error('Failed to refresh slots cache.'));
    client.emit('node error', new Error('Connection is closed.'), '127.0.0.1:7000');
    assert.equal(probes, 1, 'one probe for both');
    answer('127.0.0.1:7000: self-signed certificate');
    await settle();
    assert.deepEqual(lines, ['127.0.0.1:7000: self-signed certificate']);

    clock.advance(4_999);
    client.emit('error', new Error('Failed to refresh slots cache.'));
    assert.equal(probes, 1, 'not within 5 s');
    clock.advance(1);
    client.emit('node error', new Error('Connection is closed.'), '127.0.0.1:7001');
    assert.equal(probes, 2);
    client.emit('ready'); // recovered while the probe was out: its late answer is stale
    answer('127.0.0.1:7001: self-signed certificate');
    await settle();
    assert.deepEqual(lines, ['127.0.0.1:7000: self-signed certificate', 'up']);

    client.emit('node error', new Error('WRONGPASS invalid username-password pair'), '127.0.0.1:7002');
    assert.equal(probes, 2, 'a reason given is reported, not probed');
    assert.deepEqual(lines.at(-1), '127.0.0.1:7002: WRONGPASS invalid username-password pair');
  });
});

describe('watchRedisConnection: a Cluster seed whose name does not resolve', () => {
  it('is reported as skipped once until it resolves, and its own connection errors are not failures', () => {
    const client = new EventEmitter() as EventEmitter & { isCluster: boolean };
    client.isCluster = true;
    const lines: string[] = [];
    watchRedisConnection(client as unknown as Redis, { down: (reason) => lines.push(`down ${reason}`), up: () => lines.push('up'), seedSkipped: (reason) => lines.push(`skipped ${reason}`), sentinelLost: (reason) => lines.push(`lost ${reason}`), sentinelBack: (sentinel) => lines.push(`back ${sentinel}`) }, { redact: (text) => text, clock: new FakeClock(0) });
    const notFound = new Error('getaddrinfo ENOTFOUND no-such-host');
    client.emit(SEED_LOOKUP_EVENT, 'no-such-host', notFound);
    client.emit(SEED_LOOKUP_EVENT, 'good-host', undefined);
    client.emit('node error', notFound, 'no-such-host:6379');
    client.emit('ready');
    client.emit(SEED_LOOKUP_EVENT, 'no-such-host', notFound); // the next reconnect looks it up again
    assert.deepEqual(lines, ['skipped no-such-host: getaddrinfo ENOTFOUND no-such-host']);
    client.emit(SEED_LOOKUP_EVENT, 'no-such-host', undefined);
    client.emit(SEED_LOOKUP_EVENT, 'no-such-host', notFound);
    client.emit('node error', new Error('WRONGPASS invalid username-password pair'), 'good-host:6379');
    assert.deepEqual(lines, [
      'skipped no-such-host: getaddrinfo ENOTFOUND no-such-host',
      'skipped no-such-host: getaddrinfo ENOTFOUND no-such-host',
      'down good-host:6379: WRONGPASS invalid username-password pair',
    ]);
  });
});
