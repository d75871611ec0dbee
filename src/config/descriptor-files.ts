import type { Stats } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DescriptorFile } from '../ratelimit/descriptor-config.js';
import { decodeConfigText } from './config-text.js';
import { ConfigError, type ConfigIssue } from './errors.js';

/**
 * Reads every file under the descriptors directory, recursively and through symlinks, as
 * envoyproxy/ratelimit does (any extension). Entries whose name starts with a dot are skipped:
 * that keeps editor swap files out and makes Kubernetes ConfigMap mounts work, whose real files
 * live in `..data`/`..2024_…` directories behind symlinks.
 *
 * The files together may hold at most `maxBytes`: past that, the load is refused before anything is read into
 * memory or parsed (ratelimit.descriptors_max_bytes). A file that is not UTF-8 is an error naming its line.
 * A directory reached a second time (a symlink to `.` or to a parent, two links to one directory) is not walked
 * again: without that, a loop walks until the path is too long, and two loops never end.
 * An entry that is there but cannot be read (statProblem, a FIFO or device, a permission) is an error naming it, so
 * the last good config stays; only a file that is gone leaves its domain out.
 */
export async function readDescriptorFiles(root: string, maxBytes = Number.MAX_SAFE_INTEGER): Promise<DescriptorFile[]> {
  const files: DescriptorFile[] = [];
  const issues: ConfigIssue[] = [];
  let total = 0;
  const walked = new Set<string>();
  const walk = async (dir: string, identity: string): Promise<void> => {
    if (walked.has(identity)) return;
    walked.add(identity);
    const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
    for (const name of names) {
      const full = path.join(dir, name);
      const relative = path.relative(root, full);
      const unreadable = (message: string): void => void issues.push({ file: relative, line: undefined, path: '', message });
      let info: Stats;
      try {
        info = await stat(full);
      } catch (error) {
        const problem = await statProblem(full, error as NodeJS.ErrnoException);
        if (problem !== undefined) unreadable(problem);
        continue;
      }
      if (info.isDirectory()) {
        try {
          await walk(full, `${info.dev}:${info.ino}`);
        } catch (error) {
          if (error instanceof BudgetExceeded) throw error;
          unreadable(`cannot read directory: ${(error as Error).message}`);
        }
        continue;
      }
      // A FIFO would hold the load (and every reload after it) forever, a device read until memory runs out.
      if (!info.isFile()) {
        unreadable('cannot read: not a regular file or directory');
        continue;
      }
      total += info.size;
      if (total > maxBytes) {
        issues.push({ file: relative, line: undefined, path: '', message: `descriptor files exceed ${maxBytes} bytes together (ratelimit.descriptors_max_bytes); not loaded` });
        throw new BudgetExceeded();
      }
      let bytes: Buffer;
      try {
        bytes = await readFile(full);
      } catch (error) {
        unreadable(`cannot read: ${(error as Error).message}`);
        continue;
      }
      const decoded = decodeConfigText(bytes, relative);
      if ('issue' in decoded) issues.push(decoded.issue);
      else files.push({ name: relative, text: decoded.text });
    }
  };
  try {
    const rootInfo = await stat(root);
    await walk(root, `${rootInfo.dev}:${rootInfo.ino}`);
  } catch (error) {
    if (!(error instanceof BudgetExceeded)) {
      throw new ConfigError([{ file: root, line: undefined, path: '', message: `cannot read descriptors directory: ${(error as Error).message}` }]);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return files;
}

class BudgetExceeded extends Error {}

/**
 * Why an entry listed in a descriptor directory cannot be read, or undefined when it is simply gone: a file deleted
 * since the listing takes its domain with it, as a deleted file does. Anything else is an error naming the entry, and
 * the last good config keeps serving: a symlink whose target is missing (a swap to a path that is not there yet, a
 * ConfigMap key whose link the kubelet has not removed yet: settle_ms waits that out), a symlink loop, a permission.
 */
async function statProblem(full: string, error: NodeJS.ErrnoException): Promise<string | undefined> {
  const link = await lstat(full).catch(() => undefined);
  if (link === undefined) return error.code === 'ENOENT' ? undefined : `cannot read: ${error.message}`;
  if (!link.isSymbolicLink()) return `cannot read: ${error.message}`;
  const target = await readlink(full).catch(() => '?');
  return error.code === 'ENOENT'
    ? `symlink to ${target}, which does not exist (delete the link to drop what the file held)`
    : `cannot read symlink to ${target}: ${error.message}`;
}
