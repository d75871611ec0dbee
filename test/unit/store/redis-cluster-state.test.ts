import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterDownReason } from '../../../src/store/redis-counter-store.js';

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
