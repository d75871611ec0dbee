import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { whenAborted } from '../../../src/shared/abort.js';

describe('whenAborted', () => {
  it('calls the subscribers still registered when the signal aborts, once', () => {
    const controller = new AbortController();
    const calls: string[] = [];
    whenAborted(controller.signal, () => calls.push('a'));
    const cancelB = whenAborted(controller.signal, () => calls.push('b'));
    whenAborted(controller.signal, () => calls.push('c'));
    cancelB();
    controller.abort();
    controller.abort();
    assert.deepEqual(calls, ['a', 'c']);
  });

  it('keeps signals apart', () => {
    const one = new AbortController();
    const two = new AbortController();
    const calls: string[] = [];
    whenAborted(one.signal, () => calls.push('one'));
    whenAborted(two.signal, () => calls.push('two'));
    two.abort();
    assert.deepEqual(calls, ['two']);
  });
  it('holds no unsubscribed callback while the signal lives (its deadline timer may keep it for seconds)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const controller = new AbortController();
    const first = (() => {
      const onAbort = (): void => undefined;
      whenAborted(controller.signal, onAbort)();
      return new WeakRef(onAbort);
    })();
    // A WeakRef's target is kept until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    assert.equal(first.deref(), undefined, 'the first subscriber outlived its unsubscribe');
    assert.equal(controller.signal.aborted, false);
  });
});
