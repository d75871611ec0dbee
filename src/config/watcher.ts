import { watch, type FSWatcher } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

export interface ConfigWatcher {
  /** Resolves once the first watches are set; a change made before that is picked up by one reload right after. */
  readonly ready: Promise<void>;
  close(): void;
}

/**
 * Calls `reload` after any change under `paths()` (the files and directories the running config was built from,
 * asked again after every reload: an edit may name other files). Directories are watched, not files: a watch on a
 * file follows its inode, which a rename-over (vim, `mv tmp file`, sed -i), a delete-and-recreate or a Kubernetes
 * ConfigMap `..data` swap leaves behind, so every edit after the first would wait for the poll. Node 20's
 * `recursive: true` on Linux watches files that way too (after a rename-over of a descriptor file it reported no
 * further edit of it), so a descriptor tree is watched one directory at a time. The set is re-synced after every
 * reload. A poll at `pollIntervalMs` catches what no watch sees (a symlinked file's target edited in another
 * directory, network filesystems). `reload` must be cheap when nothing changed (the caller compares a fingerprint);
 * calls never overlap.
 */
export function watchConfig(paths: () => readonly string[], pollIntervalMs: number, reload: () => Promise<void>): ConfigWatcher {
  let running = false;
  let again = false;
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  /** Watched directory → what it was watched for (a path swapped to another directory is watched anew). */
  const watchers = new Map<string, { wanted: WatchedDirectory; watcher: FSWatcher }>();
  /** Re-syncs the watches with paths(); true when it watches a directory it did not watch before. */
  const sync = async (): Promise<boolean> => {
    const wanted = await watchedDirectories(paths());
    if (closed) return false;
    let added = false;
    for (const [dir, w] of watchers) {
      const now = wanted.get(dir);
      if (now !== undefined && now.identity === w.wanted.identity && sameNames(now.names, w.wanted.names)) continue;
      w.watcher.close();
      watchers.delete(dir);
    }
    for (const [dir, w] of wanted) {
      if (watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (relevant(w, name)) soon();
        });
        watcher.on('error', () => {
          // The directory went away (an old ConfigMap version): the next sync drops or replaces it.
          watcher.close();
          soon();
        });
        watchers.set(dir, { wanted: w, watcher });
        added = true;
      } catch {
        // Gone between the walk and the watch, or not watchable: the poll covers it.
      }
    }
    return added;
  };
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
        // A directory the reload newly names was read before its watch existed: an edit in between would wait for
        // the poll, so one more (cheap) reload looks, as at start-up.
        if (await sync().catch(() => false)) again = true;
      } while (again && !closed);
    } finally {
      running = false;
    }
  };
  const soon = (): void => {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void run(), 50);
    debounce.unref();
  };
  // The caller loaded the files before the watches existed: one reload then sees what changed in between.
  const ready = sync().catch(() => false).then(soon);
  const poll = setInterval(() => void run(), pollIntervalMs);
  poll.unref();
  return {
    ready,
    close(): void {
      closed = true;
      clearInterval(poll);
      clearTimeout(debounce);
      for (const w of watchers.values()) w.watcher.close();
      watchers.clear();
    },
  };
}

/** A directory to watch: its identity (device:inode), and the names in it that matter (undefined: every entry). */
export interface WatchedDirectory {
  readonly identity: string;
  readonly names: ReadonlySet<string> | undefined;
}

/** Whether an event for `name` in a watched directory can change the config: a name it watches, or a ConfigMap's. */
export function relevant(dir: WatchedDirectory, name: string | null): boolean {
  return dir.names === undefined || name === null || dir.names.has(name) || name.startsWith('..');
}

/**
 * The directories whose entries a change to `paths` shows up in: the parent of every path (a rename-over, a swap of
 * the path itself, a file created where one was missing), but only for that path's name and the `..data` names of a
 * ConfigMap (a config in /etc must not reload on every change to /etc); every directory under a directory path,
 * walked through symlinks as readDescriptorFiles walks it (dot entries skipped, each directory once); and the
 * directory a symlinked file really lives in (its target edited in place).
 */
export async function watchedDirectories(paths: readonly string[]): Promise<Map<string, WatchedDirectory>> {
  const dirs = new Map<string, WatchedDirectory>();
  const seen = new Set<string>();
  /** Watches `dir` for `name`, or for every entry without one; resolves with its identity, undefined if no directory. */
  const add = async (dir: string, name?: string): Promise<string | undefined> => {
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) return undefined;
    const identity = `${info.dev}:${info.ino}`;
    const had = dirs.get(dir);
    const names = name === undefined || (had !== undefined && had.names === undefined) ? undefined : new Set([...(had?.names ?? []), name]);
    dirs.set(dir, { identity, names });
    return identity;
  };
  const walk = async (dir: string): Promise<void> => {
    const identity = await add(dir);
    if (identity === undefined || seen.has(identity)) return;
    seen.add(identity);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) if (!name.startsWith('.')) await walk(path.join(dir, name));
  };
  for (const p of paths) {
    await add(path.dirname(p), path.basename(p));
    const info = await stat(p).catch(() => undefined);
    if (info?.isDirectory()) await walk(p);
    else if (info !== undefined) {
      const real = await realpath(p).catch(() => undefined);
      if (real !== undefined && real !== p) await add(path.dirname(real), path.basename(real));
    }
  }
  return dirs;
}

function sameNames(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.size === b.size && [...a].every((n) => b.has(n)));
}
