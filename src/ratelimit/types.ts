import type { Algorithm } from '../store/counter-store.js';
import type { Unit } from './units.js';

/** What a request that is over some limit consumes of the domain's counters (a Portcullis extension). */
export type ConsumeWhenOverLimit = 'all' | 'over_limit_only' | 'none';

/** One compiled limit: a `rate_limit` block, or one entry of the `rate_limits` extension list. */
export interface CompiledLimit {
  /** Stats key: the domain and the config node names along the matched path (`domain.key_value.sub`). */
  readonly fullKey: string;
  /** What fullKey adds to its node's path: '' for `rate_limit`, `#<name or index>` for `rate_limits` entries. */
  readonly statsSuffix: string;
  /** `name` from the file, echoed in current_limit.name and targeted by `replaces`; '' when absent. */
  readonly name: string;
  readonly requestsPerUnit: number;
  readonly unit: Unit;
  /** Window length in units (extension `unit_multiplier`, default 1). */
  readonly unitMultiplier: number;
  readonly windowSeconds: number;
  readonly algorithm: Algorithm;
  /** Token bucket capacity (extension `burst`, default requests_per_unit). */
  readonly burst: number;
  readonly unlimited: boolean;
  readonly shadowMode: boolean;
  readonly quotaMode: boolean;
  readonly replaces: readonly string[];
  readonly detailedMetric: boolean;
  /**
   * Distinguishes counters of several limits on one descriptor. Empty for a plain fixed-window
   * `rate_limit`, whose storage key is byte-for-byte envoyproxy/ratelimit's.
   */
  readonly keyTag: string;
}

export interface WildcardChild {
  /** The config node's `key_value` with its `*`s, in declaration order. */
  readonly pattern: string;
  readonly matches: (finalKey: string) => boolean;
  readonly node: DescriptorNode;
}

export interface DescriptorNode {
  /** The file's `key` and `value` ('' when absent) of this node; both '' at a domain's root. */
  readonly key: string;
  readonly value: string;
  /** Children by `key` or `key_value`. */
  readonly children: ReadonlyMap<string, DescriptorNode>;
  /** Children whose `key_value` has a `*`, tried in declaration order after an exact miss. */
  readonly wildcards: readonly WildcardChild[];
  readonly limits: readonly CompiledLimit[];
  readonly valueToMetric: boolean;
  readonly shareThreshold: boolean;
  /** For share_threshold nodes: the value pattern (after `key_`) that names the shared counter. */
  readonly sharedValuePattern: string;
  readonly metadata: Readonly<Record<string, unknown>> | undefined;
}

export interface DomainConfig {
  readonly name: string;
  readonly root: DescriptorNode;
  readonly consumeWhenOverLimit: ConsumeWhenOverLimit | undefined;
}

export interface RateLimitConfig {
  readonly domains: ReadonlyMap<string, DomainConfig>;
}

/** A request descriptor entry, as decoded from the wire. */
export interface DescriptorEntry {
  readonly key: string;
  readonly value: string;
}

export interface RequestDescriptor {
  readonly entries: readonly DescriptorEntry[];
  /** `limit` override from Envoy's route config. */
  readonly limitOverride: { readonly requestsPerUnit: number; readonly unit: Unit } | undefined;
  /** Per-descriptor hits_addend; undefined when unset (0 is a valid check-only value). */
  readonly hitsAddend: number | undefined;
}

export interface RateLimitRequest {
  readonly domain: string;
  readonly descriptors: readonly RequestDescriptor[];
  readonly hitsAddend: number;
}
