import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveGrpcAddress, unixSocketPath } from '../../../src/server/grpc-address.js';
import { staleSocketAction, type FoundAtPath, type ProbeResult, type StaleSocketAction } from '../../../src/server/unix-socket.js';

describe('staleSocketAction: what a Unix socket listener does with what it finds at its path', () => {
  const cases: [string, FoundAtPath, ProbeResult | undefined, StaleSocketAction['action'], RegExp?][] = [
    ['nothing there', 'nothing', undefined, 'bind'],
    ['a socket nobody listens on (a killed process left it)', 'socket', 'refused', 'remove'],
    ['a socket that went between lstat and connect', 'socket', 'gone', 'bind'],
    ['a socket another process listens on', 'socket', 'answered', 'refuse', /address already in use/],
    ['a socket that neither answers nor refuses (full backlog, no permission)', 'socket', { error: 'EACCES' }, 'refuse', /EACCES.*left alone/],
    ['a regular file, a directory or a link', 'other', undefined, 'refuse', /not a socket \(left alone/],
  ];
  for (const [name, found, probe, action, reason] of cases) {
    it(`${name} → ${action}`, () => {
      const decision = staleSocketAction(found, probe);
      assert.equal(decision.action, action);
      if (reason !== undefined) assert.match(decision.action === 'refuse' ? decision.reason : '', reason);
    });
  }
});

describe('resolveGrpcAddress', () => {
  const cases: [string, string, string | RegExp][] = [
    ['127.0.0.1:0', '/etc/p', '127.0.0.1:0'],
    ['unix:/run/p.sock', '/etc/p', 'unix:/run/p.sock'],
    ['unix:///run/p.sock', '/etc/p', 'unix:/run/p.sock'],
    ['unix:p.sock', '/etc/p', 'unix:/etc/p/p.sock'],
    ['unix:./a/../p.sock', '/etc/p', 'unix:/etc/p/p.sock'],
    ['unix:/run/my p.sock', '/etc/p', /without whitespace or NUL/],
    ['unix:/run/p\0.sock', '/etc/p', /without whitespace or NUL/],
    ['unix://h/p.sock', '/etc/p', /has no host/],
    [`unix:/${'a'.repeat(106)}`, '/', `unix:/${'a'.repeat(106)}`],
    [`unix:/${'a'.repeat(107)}`, '/', /108 bytes; the kernel takes at most 107/],
    // Bytes, not characters: sun_path holds bytes.
    [`unix:/${'é'.repeat(54)}`, '/', /109 bytes/],
    ['localhost', '/etc/p', /expected host:port or unix:/],
  ];
  for (const [text, base, expected] of cases) {
    it(`${JSON.stringify(text)} against ${base}`, () => {
      const result = resolveGrpcAddress(text, base);
      if (typeof expected === 'string') assert.deepEqual(result, { address: expected });
      else assert.match('problem' in result ? result.problem : `no problem: ${result.address}`, expected);
    });
  }

  it('unixSocketPath reads the path of a resolved address only', () => {
    assert.equal(unixSocketPath('unix:/run/p.sock'), '/run/p.sock');
    assert.equal(unixSocketPath('127.0.0.1:9191'), undefined);
  });
});
