import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
});
