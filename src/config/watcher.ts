import { watch, type FSWatcher } from 'node:fs';

export interface ConfigWatcher {
  close(): void;
}

/**
 * Calls `reload` after any change under `paths`. fs.watch gives fast reaction to edits in place;
 * a poll at `pollIntervalMs` catches what it cannot see (an atomic symlink swap of the watched
 * directory itself, a Kubernetes ConfigMap `..data` swap, network filesystems). `reload` must be
 * cheap when nothing changed (the caller compares a fingerprint); calls never overlap.
 */
export function watchConfig(paths: readonly string[], pollIntervalMs: number, reload: () => Promise<void>): ConfigWatcher {
  let running = false;
  let again = false;
  let debounce: NodeJS.Timeout | undefined;
  const run = async (): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await reload();
      } while (again);
    } finally {
      running = false;
    }
  };
  const soon = (): void => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void run(), 50);
    debounce.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const p of paths) {
    try {
      const w = watch(p, { recursive: true, persistent: false }, soon);
      w.on('error', () => w.close()); // the directory went away; polling carries on
      watchers.push(w);
    } catch {
      // Not watchable (missing, unsupported): polling alone covers it.
    }
  }
  const poll = setInterval(() => void run(), pollIntervalMs);
  poll.unref();
  return {
    close(): void {
      clearInterval(poll);
      clearTimeout(debounce);
      for (const w of watchers) w.close();
    },
  };
}
