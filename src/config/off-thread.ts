import { Worker } from 'node:worker_threads';
import { ConfigError, type ConfigIssue } from './errors.js';

export interface OffThreadOptions {
  /** The worker is terminated past this, and the load fails with a ConfigError saying so. */
  readonly timeoutMs: number;
  /** Names the load in messages, e.g. the descriptors directory. */
  readonly what: string;
  /** What the budget is called in portcullis.yaml, for the message. */
  readonly setting: string;
}

/** What off-thread-worker.ts posts back. */
export type OffThreadReply =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] }
  | { readonly ok: false; readonly message: string };

/**
 * Runs `exportName(input)` of `moduleUrl` in a fresh worker thread and resolves with its (structured-cloned)
 * result. Loading a config is the one place where a file's author decides how much work the process does: a huge
 * or hostile file must cost the serving thread nothing but the copy of the result, and must stop at a time budget
 * (a worker that runs past it is terminated, whatever it is doing). A ConfigError thrown in the worker is rethrown
 * here with its issues; anything else is a bug and rejects with a plain Error.
 */
export function runOffThread<T>(moduleUrl: URL, exportName: string, input: unknown, options: OffThreadOptions): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const worker = new Worker(new URL('./off-thread-worker.js', import.meta.url), {
      workerData: { moduleUrl: moduleUrl.href, exportName, input },
      // A file may not take the process's memory with it either: the worker dies alone.
      resourceLimits: { maxOldGenerationSizeMb: 2048 },
      stdout: false,
      stderr: false,
    });
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      fn();
    };
    const fail = (message: string): void =>
      settle(() => reject(new ConfigError([{ file: options.what, line: undefined, path: '', message }])));
    const timer = setTimeout(() => fail(`loading took longer than ${options.timeoutMs} ms (${options.setting}); not loaded`), options.timeoutMs);
    worker.once('message', (reply: OffThreadReply) => {
      if (reply.ok) settle(() => resolve(reply.value as T));
      else if ('issues' in reply) settle(() => reject(new ConfigError(reply.issues)));
      else settle(() => reject(new Error(`config load failed in its worker: ${reply.message}`)));
    });
    worker.once('error', (error: Error & { code?: string }) => {
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') fail('loading ran out of memory; not loaded');
      else settle(() => reject(new Error(`config load failed in its worker: ${error.message}`, { cause: error })));
    });
    worker.once('exit', (code) => settle(() => reject(new Error(`config load worker exited with code ${code} before answering`))));
  });
}
