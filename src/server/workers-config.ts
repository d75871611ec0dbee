import { availableParallelism } from 'node:os';
import type { IssueCollector } from '../config/errors.js';
import type { Field } from '../config/schema.js';

/** `server.workers`: how many processes serve the gRPC port; `auto` is one per CPU the process may use. */
export type WorkersSetting = number | 'auto';

const MAX_WORKERS = 256;

/** The parsed value and its line, so the cross-check with `redis` can point at it. */
export const workersField: Field<{ readonly value: WorkersSetting; readonly line: number | undefined }> = (v, path, issues, parentLine) => {
  if (v === undefined || v === null || (v.kind === 'scalar' && v.value === null)) return { value: 1, line: undefined };
  const line = v.line ?? parentLine;
  if (v.kind === 'scalar' && v.value === 'auto') return { value: 'auto', line };
  if (v.kind === 'scalar' && typeof v.value === 'number' && v.numberKind === 'int' && v.value >= 1 && v.value <= MAX_WORKERS) {
    return { value: v.value, line };
  }
  const got = v.kind === 'scalar' ? (typeof v.value === 'string' ? `'${v.value}'` : String(v.value)) : `a ${v.kind === 'map' ? 'mapping' : 'list'}`;
  issues.add(line, path, `expected an integer between 1 and ${MAX_WORKERS} or 'auto', got ${got}`);
  return { value: 1, line };
};

/**
 * Worker processes cannot share the in-memory store: each would count on its own and let n times the limit through.
 * `auto` is refused too, so whether a config is valid does not depend on the machine it is loaded on.
 */
export function checkWorkers(workers: { readonly value: WorkersSetting; readonly line: number | undefined }, redisConfigured: boolean, issues: IssueCollector): void {
  if (workers.value === 1 || redisConfigured) return;
  issues.add(workers.line, 'server.workers', `workers: ${workers.value} needs redis: worker processes cannot share the in-memory store (set redis.url, redis.cluster or redis.sentinel, or workers: 1)`);
}

export function resolveWorkers(setting: WorkersSetting): number {
  return setting === 'auto' ? Math.max(1, availableParallelism()) : setting;
}
