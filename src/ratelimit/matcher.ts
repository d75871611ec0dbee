import type { CompiledLimit, DescriptorNode, DomainConfig, RequestDescriptor } from './types.js';
import { UNIT_SECONDS } from './units.js';

/** The limits that apply to one request descriptor, and how to name their counters and stats. */
export interface Match {
  readonly limits: readonly CompiledLimit[];
  /** Stats key of the matched node (detailed_metric and value_to_metric already applied). */
  readonly statsKey: string;
  /** Value per request entry used in the storage key: the request value, or the pattern for share_threshold. */
  readonly keyValues: readonly string[];
  readonly metadata: Readonly<Record<string, unknown>> | undefined;
}

/**
 * envoyproxy/ratelimit's GetLimit: walk the request entries level by level, greedily, without
 * backtracking. At each level try `key_value`, then wildcard children in declaration order, then
 * `key` alone. A limit counts only on the node matched by the last entry.
 */
export function matchDescriptor(domain: DomainConfig, descriptor: RequestDescriptor): Match | undefined {
  const entries = descriptor.entries;
  if (descriptor.limitOverride !== undefined) {
    const { requestsPerUnit, unit } = descriptor.limitOverride;
    const statsKey = `${domain.name}.${entries.map((e) => (e.value === '' ? e.key : `${e.key}_${e.value}`)).join('.')}`;
    const limit: CompiledLimit = {
      fullKey: statsKey, statsSuffix: '', name: '', requestsPerUnit, unit, unitMultiplier: 1,
      windowSeconds: UNIT_SECONDS[unit], algorithm: 'fixed_window', burst: requestsPerUnit, unlimited: false,
      shadowMode: false, quotaMode: false, replaces: [], detailedMetric: false, keyTag: '',
    };
    return { limits: [limit], statsKey, keyValues: entries.map((e) => e.value), metadata: undefined };
  }

  let level: DescriptorNode = domain.root;
  let found: DescriptorNode | undefined;
  const keyValues: string[] = [];
  const detailedParts: string[] = [];
  const metricParts: string[] = [];
  let anyShared = false;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    const finalKey = `${entry.key}_${entry.value}`;
    const withValue = entry.value === '' ? entry.key : finalKey;
    detailedParts.push(finalKey);
    let next = level.children.get(finalKey);
    let wildcard: string | undefined;
    if (next === undefined) {
      for (const child of level.wildcards) {
        if (child.matches(finalKey)) {
          next = child.node;
          wildcard = child.pattern;
          break;
        }
      }
    }
    const matchedValue = next !== undefined;
    if (next === undefined) next = level.children.get(entry.key);

    const shared = wildcard !== undefined && next !== undefined && next.shareThreshold;
    anyShared ||= shared;
    keyValues.push(shared ? next!.sharedValuePattern : entry.value);
    if (next === undefined) metricParts.push(entry.key);
    else if (shared) metricParts.push(`${entry.key}_${next.sharedValuePattern}`);
    else if (wildcard !== undefined) metricParts.push(next.valueToMetric ? withValue : wildcard);
    else if (matchedValue) metricParts.push(withValue);
    else metricParts.push(next.valueToMetric ? withValue : entry.key);

    if (next !== undefined && next.limits.length > 0 && i === entries.length - 1) found = next;
    if (next === undefined || next.children.size === 0) break;
    level = next;
  }
  if (found === undefined) return undefined;

  let statsKey: string;
  if (found.limits[0]!.detailedMetric) {
    // Shared counters keep their pattern even in detailed metrics: one series per counter, not per value.
    statsKey = anyShared ? `${domain.name}.${metricPartsWithValues(entries, keyValues)}` : `${domain.name}.${detailedParts.join('.')}`;
  } else {
    statsKey = `${domain.name}.${metricParts.join('.')}`;
  }
  return { limits: found.limits, statsKey, keyValues, metadata: found.metadata };
}

function metricPartsWithValues(entries: RequestDescriptor['entries'], keyValues: readonly string[]): string {
  return entries.map((e, i) => (keyValues[i] === '' ? e.key : `${e.key}_${keyValues[i]}`)).join('.');
}
