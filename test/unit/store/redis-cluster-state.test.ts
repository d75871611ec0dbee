import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterDownReason, refusedMidMigration } from '../../../src/store/redis-counter-store.js';

const info = (state: string, ok: number, pfail: number, fail: number): string =>
  `cluster_enabled:1\r\ncluster_state:${state}\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:${ok}\r\ncluster_slots_pfail:${pfail}\r\ncluster_slots_fail:${fail}\r\ncluster_known_nodes:3\r\n`;

describe('clusterDownReason: whether a cluster serves calls, from CLUSTER INFO', () => {
  const table: [string, string, string | undefined][] = [
    ['ok', info('ok', 16384, 0, 0), undefined],
    // cluster-require-full-coverage no: the other slots still count, so the store is up (degraded).
    ['ok with slots failed', info('ok', 10923, 0, 5461), undefined],
    ['fail', info('fail', 10923, 0, 5461), 'CLUSTERDOWN: cluster_state:fail (cluster_slots_ok:10923, cluster_slots_pfail:0, cluster_slots_fail:5461)'],
    ['no state at all', 'ERR This instance has cluster support disabled', 'CLUSTERDOWN: cluster_state:unknown'],
    ['LF line ends', 'cluster_state:ok\ncluster_slots_ok:16384\n', undefined],
  ];
  for (const [name, text, expected] of table) {
    it(name, () => assert.equal(clusterDownReason(text), expected));
  }
});

describe('refusedMidMigration: a call that a slot being migrated refused before it ran', () => {
  const table: [string, boolean][] = [
    ['Too many Cluster redirections. Last error: ReplyError: ASK 4442 127.0.0.1:7001', true],
    ['Too many Cluster redirections. Last error: ReplyError: TRYAGAIN Multiple keys request during rehashing of slot', true],
    ['Too many Cluster redirections. Last error: ReplyError: MOVED 4442 127.0.0.1:7000', true],
    ['redis: Too many Cluster redirections. Last error: ReplyError: ASK 4442 127.0.0.1:7001', true],
    ['ASK 4442 127.0.0.1:7001', true],
    ['TRYAGAIN Multiple keys request during rehashing of slot', true],
    // May have run: a dropped connection, or refused for another reason.
    ['Too many Cluster redirections. Last error: Error: Connection is closed.', false],
    ['Connection is closed.', false],
    ['CLUSTERDOWN The cluster is down', false],
    ['NOSCRIPT No matching script. Please use EVAL.', false],
    ['OOM command not allowed when used memory > \'maxmemory\'.', false],
  ];
  for (const [message, expected] of table) it(message, () => assert.equal(refusedMidMigration(new Error(message)), expected));
});
