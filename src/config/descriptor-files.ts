import { readdir, readFile, stat } from 'node:fs/promises';
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
      const info = await stat(full).catch(() => undefined); // a dangling symlink mid-swap is not a file
      if (info?.isDirectory()) {
        await walk(full, `${info.dev}:${info.ino}`);
        continue;
      }
      if (!info?.isFile()) continue;
      const relative = path.relative(root, full);
      total += info.size;
      if (total > maxBytes) {
        issues.push({ file: relative, line: undefined, path: '', message: `descriptor files exceed ${maxBytes} bytes together (ratelimit.descriptors_max_bytes); not loaded` });
        throw new BudgetExceeded();
      }
      const decoded = decodeConfigText(await readFile(full), relative);
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
