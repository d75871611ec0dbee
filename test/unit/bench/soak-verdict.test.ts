import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judge, judgeAll, median, phaseSeries, seriesCount, type Metric, type Phase, type ProbeSample } from '../../../bench/soak/sample.js';

describe('soak verdict', () => {
  const table: [string, Metric, number[], 'ok' | 'warn' | 'FAIL' | 'info'][] = [
    ['flat heap', 'heap MiB', [30, 30.2, 29.9, 30.1], 'ok'],
    ['heap rising every phase but within 4 MiB', 'heap MiB', [30, 31, 32, 33], 'ok'],
    ['heap rising every phase beyond 4 MiB', 'heap MiB', [30, 32, 34, 36], 'FAIL'],
    ['heap tolerance is 10 % of a large first phase', 'heap MiB', [100, 103, 106, 109], 'ok'],
    ['heap step then plateau', 'heap MiB', [30, 40, 40, 40], 'warn'],
    ['RSS rising every phase beyond 16 MiB', 'RSS MiB', [150, 156, 162, 168], 'FAIL'],
    ['RSS rising within 10 % of 200', 'RSS MiB', [200, 206, 212, 218], 'ok'],
    ['fds: one more per phase', 'fds', [40, 41, 42, 43], 'ok'],
    ['fds growing by 3 a phase', 'fds', [40, 43, 46, 49], 'FAIL'],
    ['fds falling', 'fds', [60, 50, 45, 44], 'ok'],
    ['series rising every phase beyond 5 %', 'metric series', [2000, 2050, 2110, 2200], 'FAIL'],
    ['series flat', 'metric series', [2250, 2252, 2250, 2251], 'ok'],
    ['a phase without samples is skipped', 'fds', [40, NaN, 45, 50], 'FAIL'],
    ['a single judged value decides nothing', 'heap MiB', [30, NaN, NaN], 'ok'],
    ['loop delay is reported, never judged', 'loop p99 ms', [5, 50, 500, 5000], 'info'],
  ];
  for (const [name, metric, values, result] of table) {
    it(name, () => assert.equal(judge(metric, values).result, result));
  }

  it('judges the phases after the warm-up only, on the median of each phase per process', () => {
    const phases: Phase[] = [
      { name: 'warm-up', start: 0, end: 100, warmup: true },
      { name: 'phase 1', start: 100, end: 200, warmup: false },
      { name: 'phase 2', start: 200, end: 300, warmup: false },
      { name: 'phase 3', start: 300, end: 400, warmup: false },
    ];
    const at = (t: number, fds: number, pid = 7): ProbeSample => ({ at: t, pid, role: 'main', gc: true, heapUsed: 0, rss: 0, external: 0, fds, eldP99Ms: 0 });
    // The warm-up climbs from 10 to 40 fds and must not count; one outlier per phase must not either.
    const samples = [at(0, 10), at(50, 40), at(110, 40), at(120, 41), at(130, 90), at(210, 41), at(220, 41), at(230, 0), at(310, 42), at(320, 42), at(330, 42), at(110, 5, 8)];
    const series = phaseSeries(samples, [], phases);
    const fds = series.find((s) => s.process === 'main (pid 7)' && s.metric === 'fds');
    assert.deepEqual(fds?.values, [25, 41, 41, 42]);
    const judged = judgeAll(series, phases).find((j) => j.process === 'main (pid 7)' && j.metric === 'fds');
    assert.deepEqual(judged?.values, [41, 41, 42]);
    assert.equal(judged?.result, 'ok');
    const other = judgeAll(series, phases).find((j) => j.process === 'main (pid 8)' && j.metric === 'fds');
    assert.equal(other?.result, 'ok');
  });

  it('counts sample lines of an exposition, not comments', () => {
    assert.equal(seriesCount('# HELP a x\n# TYPE a counter\na 1\na{b="c"} 2\n\n'), 2);
  });

  it('medians', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });
});
