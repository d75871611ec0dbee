import { ConfigError, IssueCollector, joinPath, type ConfigIssue } from '../config/errors.js';
import { runOffThread } from '../config/off-thread.js';
import { mapGet, parseYaml, scalarText, writtenText, type YamlMap, type YamlValue } from '../config/yaml.js';
import type { Algorithm } from '../store/counter-store.js';
import type { CompiledLimit, ConsumeWhenOverLimit, DescriptorNode, DomainConfig, RateLimitConfig, WildcardChild } from './types.js';
import { UNIT_SECONDS, parseUnit } from './units.js';
import { compileWildcard } from './wildcard.js';

/**
 * Compiles envoyproxy/ratelimit descriptor files into a frozen RateLimitConfig.
 *
 * Every file that envoyproxy/ratelimit accepts is accepted unchanged, with the same meaning; every
 * file it rejects is rejected with its message (`<file>: <message>`), plus line and path. Portcullis'
 * extensions are additive keys (see docs/ratelimit.md):
 *   domain level:      consume_when_over_limit: all | over_limit_only | none
 *   descriptor level:  rate_limits: [ <rate_limit>, ... ]   several limits on one descriptor
 *   rate_limit level:  algorithm: fixed_window | sliding_window | token_bucket
 *                      unit_multiplier: N   (window = N units)
 *                      burst: N             (token bucket capacity)
 */

export interface DescriptorFile {
  /** Name used in messages: the path relative to the descriptors directory. */
  readonly name: string;
  readonly text: string;
}

/** Keys envoyproxy/ratelimit accepts anywhere in a file (it checks names, not places). */
const UPSTREAM_KEYS = [
  'domain', 'key', 'value', 'descriptors', 'rate_limit', 'unit', 'requests_per_unit', 'unlimited', 'shadow_mode',
  'quota_mode', 'name', 'replaces', 'detailed_metric', 'value_to_metric', 'share_threshold', 'metadata',
];
const EXTENSION_KEYS = ['rate_limits', 'algorithm', 'unit_multiplier', 'burst', 'consume_when_over_limit'];
const VALID_KEYS = new Set([...UPSTREAM_KEYS, ...EXTENSION_KEYS]);
const ALGORITHMS: readonly Algorithm[] = ['fixed_window', 'sliding_window', 'token_bucket'];
const CONSUME_MODES: readonly ConsumeWhenOverLimit[] = ['all', 'over_limit_only', 'none'];
const UINT32_MAX = 4294967295;

export function compileDescriptorFiles(files: readonly DescriptorFile[]): RateLimitConfig {
  const issues: ConfigIssue[] = [];
  const domains = new Map<string, DomainConfig>();
  const sorted = [...files].sort((a, b) => a.name.localeCompare(b.name));
  for (const file of sorted) {
    const collector = new IssueCollector(file.name);
    const domain = compileFile(file, collector);
    if (domain !== undefined) {
      if (domains.has(domain.name)) {
        collector.add(domain.line, 'domain', `duplicate domain '${domain.name}' in config file`);
      } else if (collector.issues.length === 0) {
        domains.set(domain.name, domain.config);
      }
    }
    issues.push(...collector.issues);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze({ domains });
}

/**
 * compileDescriptorFiles() in a worker thread, within `timeoutMs` (ratelimit.descriptors_load_timeout_ms): the
 * serving thread only pays for copying the compiled tree back. The tree crosses threads without its wildcard
 * matchers (functions do not clone); they are rebuilt here from the children, in the same order.
 */
export async function compileDescriptorFilesOffThread(files: readonly DescriptorFile[], timeoutMs: number, what: string): Promise<RateLimitConfig> {
  const data = await runOffThread<RateLimitConfig>(new URL(import.meta.url), 'compileForTransfer', files, {
    timeoutMs, what, setting: 'ratelimit.descriptors_load_timeout_ms',
  });
  return Object.freeze({
    domains: new Map([...data.domains].map(([name, domain]) => [name, Object.freeze({ ...domain, root: reviveNode(domain.root) })])),
  });
}

/** The worker side of compileDescriptorFilesOffThread: the compiled config with its wildcard matchers left out. */
export function compileForTransfer(files: readonly DescriptorFile[]): RateLimitConfig {
  const strip = (node: DescriptorNode): DescriptorNode => ({
    ...node, wildcards: [], children: new Map([...node.children].map(([key, child]) => [key, strip(child)])),
  });
  const config = compileDescriptorFiles(files);
  return { domains: new Map([...config.domains].map(([name, domain]) => [name, { ...domain, root: strip(domain.root) }])) };
}

function reviveNode(node: DescriptorNode): DescriptorNode {
  const children = new Map<string, DescriptorNode>();
  const wildcards: WildcardChild[] = [];
  for (const [key, child] of node.children) {
    const revived = reviveNode(child);
    children.set(key, revived);
    if (key.includes('*')) wildcards.push(Object.freeze({ pattern: key, matches: compileWildcard(key), node: revived }));
  }
  return Object.freeze({
    ...node,
    children,
    wildcards: Object.freeze(wildcards),
    limits: Object.freeze(node.limits.map((limit) => Object.freeze({ ...limit, replaces: Object.freeze(limit.replaces) }))),
    metadata: node.metadata && Object.freeze(node.metadata),
  });
}

function compileFile(file: DescriptorFile, issues: IssueCollector): { name: string; line: number | undefined; config: DomainConfig } | undefined {
  const parsed = parseYaml(file.text, { yamlV2: true });
  if (!parsed.ok) {
    for (const problem of parsed.problems) {
      if (problem.path !== '' || problem.code.startsWith('ALIAS_')) {
        issues.add(problem.line, problem.path, `error loading config file: ${problem.message}`);
        continue;
      }
      // yaml.v2's wording for the commonest case (an unterminated quote or flow), the parser's own otherwise.
      const message = problem.code === 'MISSING_CHAR' || problem.code === 'UNEXPECTED_TOKEN' && /end/i.test(problem.message)
        ? 'found unexpected end of stream' : problem.message;
      issues.add(problem.line, '', `error loading config file: yaml: line ${problem.line}: ${message}`);
    }
    return undefined;
  }
  // An empty or null document (`~`, a first `---` with nothing under it) is no map at all to yaml.v2: no domain.
  const root = parsed.root?.kind === 'scalar' && parsed.root.value === null ? null : parsed.root;
  if (root !== null && root.kind !== 'map') {
    issues.add(root.line, '', unmarshalError(root, 'map[interface {}]interface {}'));
    return undefined;
  }
  if (root !== null) validateKeys(root, '', issues);
  const reader = new Reader(issues);
  const domainName = root === null ? '' : reader.string(root, 'domain', '');
  if (domainName === '') {
    // An empty file has no line of its own: line 1 is where the domain goes.
    issues.add(root?.line ?? 1, 'domain', 'config file cannot have empty domain');
    return undefined;
  }
  const consumeText = root === null ? '' : reader.string(root, 'consume_when_over_limit', '');
  let consumeWhenOverLimit: ConsumeWhenOverLimit | undefined;
  if (consumeText !== '') {
    if ((CONSUME_MODES as readonly string[]).includes(consumeText)) consumeWhenOverLimit = consumeText as ConsumeWhenOverLimit;
    else issues.add(lineOf(root, 'consume_when_over_limit'), 'consume_when_over_limit', `must be one of ${CONSUME_MODES.join(', ')}, got '${consumeText}'`);
  }
  const descriptors = root === null ? [] : reader.maps(root, 'descriptors', 'descriptors');
  const rootNode = compileLevel(descriptors, `${domainName}.`, reader, issues);
  return { name: domainName, line: lineOf(root, 'domain'), config: Object.freeze({ name: domainName, root: rootNode, consumeWhenOverLimit }) };
}

/**
 * The first pass of envoyproxy/ratelimit: every key anywhere must be a known name, every list must
 * hold maps, and every leaf must be a string, int, bool or null. `metadata` contents are free-form.
 */
function validateKeys(map: YamlMap, path: string, issues: IssueCollector): void {
  for (const { key, value } of map.entries) {
    if (key.kind !== 'scalar' || typeof key.value !== 'string') {
      issues.add(key.line, path, `config error, key is not of type string: ${scalarText(key)}`);
      continue;
    }
    const keyPath = joinPath(path, key.value);
    if (!VALID_KEYS.has(key.value)) {
      issues.add(key.line, keyPath, `config error, unknown key '${key.value}'`);
      continue;
    }
    if (key.value === 'metadata' || value === null) continue;
    if (value.kind === 'seq') {
      value.items.forEach((item, i) => {
        if (item === null || item.kind !== 'map') {
          issues.add(item?.line ?? value.line, joinPath(keyPath, i), `config error, yaml file contains list of type other than map: ${scalarText(item)}`);
        } else {
          validateKeys(item, joinPath(keyPath, i), issues);
        }
      });
    } else if (value.kind === 'map') {
      validateKeys(value, keyPath, issues);
    } else if (value.numberKind === 'float' || typeof value.value === 'bigint') {
      // Upstream's whole message is "error checking config"; its prefix stays for alerting that matches on it.
      const problem = value.numberKind === 'float' ? 'must be a whole number' : 'is too large';
      issues.add(value.line, keyPath, `error checking config: ${key.value} ${problem}, got ${value.source.trim()}`);
    }
  }
}

function compileLevel(
  maps: readonly { map: YamlMap; path: string }[],
  parentKey: string,
  reader: Reader,
  issues: IssueCollector,
): DescriptorNode {
  const children = new Map<string, DescriptorNode>();
  const wildcards: WildcardChild[] = [];
  for (const { map, path } of maps) {
    const key = reader.string(map, 'key', path);
    if (key === '') {
      issues.add(map.line, joinPath(path, 'key'), 'descriptor has empty key');
      continue;
    }
    const value = reader.string(map, 'value', path);
    const finalKey = value === '' ? key : `${key}_${value}`;
    const fullKey = parentKey + finalKey;
    if (children.has(finalKey)) {
      issues.add(map.line, path, `duplicate descriptor composite key '${fullKey}'`);
      continue;
    }
    const shadowMode = reader.bool(map, 'shadow_mode', path);
    const quotaMode = reader.bool(map, 'quota_mode', path);
    const detailedMetric = reader.bool(map, 'detailed_metric', path);
    const shareThreshold = reader.bool(map, 'share_threshold', path);
    const isWildcard = finalKey.includes('*');
    if (shareThreshold && !isWildcard) {
      issues.add(lineOf(map, 'share_threshold'), joinPath(path, 'share_threshold'),
        `share_threshold can only be used with wildcard values (containing '*'), but found key '${finalKey}'`);
    }
    const context = { fullKey, shadowMode, quotaMode, detailedMetric };
    const single = reader.optionalMap(map, 'rate_limit', path);
    const limits = [
      single && compileLimit(single, joinPath(path, 'rate_limit'), { ...context, listIndex: -1 }, reader, issues),
      ...reader.maps(map, 'rate_limits', joinPath(path, 'rate_limits'))
        .map((spec, i) => compileLimit(spec.map, spec.path, { ...context, listIndex: i }, reader, issues)),
    ].filter((limit): limit is CompiledLimit => limit !== undefined);
    const metadataValue = mapGet(map, 'metadata');
    const node: DescriptorNode = Object.freeze({
      ...compileLevel(reader.maps(map, 'descriptors', joinPath(path, 'descriptors')), `${fullKey}.`, reader, issues),
      key,
      value,
      limits: Object.freeze(limits),
      valueToMetric: reader.bool(map, 'value_to_metric', path),
      shareThreshold,
      sharedValuePattern: shareThreshold && isWildcard ? finalKey.slice(key.length + 1) : '',
      metadata: metadataValue ? Object.freeze(toPlain(metadataValue) as Record<string, unknown>) : undefined,
    });
    children.set(finalKey, node);
    if (isWildcard) wildcards.push(Object.freeze({ pattern: finalKey, matches: compileWildcard(finalKey), node }));
  }
  return Object.freeze({
    key: '', value: '', children, wildcards: Object.freeze(wildcards), limits: [], valueToMetric: false, shareThreshold: false,
    sharedValuePattern: '', metadata: undefined,
  });
}

interface LimitContext {
  readonly fullKey: string;
  readonly shadowMode: boolean;
  readonly quotaMode: boolean;
  readonly detailedMetric: boolean;
  /** Position in `rate_limits`, or -1 for the classic `rate_limit`. */
  readonly listIndex: number;
}

function compileLimit(map: YamlMap, path: string, ctx: LimitContext, reader: Reader, issues: IssueCollector): CompiledLimit | undefined {
  const before = issues.issues.length;
  const unlimited = reader.bool(map, 'unlimited', path);
  const unitText = reader.string(map, 'unit', path);
  const unit = parseUnit(unitText);
  if (unlimited && unit !== undefined) {
    issues.add(lineOf(map, 'unit'), joinPath(path, 'unit'), 'should not specify rate limit unit when unlimited');
  } else if (!unlimited && unit === undefined) {
    issues.add(lineOf(map, 'unit'), joinPath(path, 'unit'), `invalid rate limit unit '${unitText}'`);
  }
  const name = reader.string(map, 'name', path);
  const replaces = reader.maps(map, 'replaces', joinPath(path, 'replaces'), '[]config.yamlReplaces').map((r) => {
    const replaced = reader.string(r.map, 'name', r.path);
    if (replaced === '') issues.add(r.map.line, joinPath(r.path, 'name'), 'should not have an empty replaces entry');
    else if (replaced === name) issues.add(r.map.line, joinPath(r.path, 'name'), 'replaces should not contain name of same descriptor');
    return replaced;
  });
  const requestsPerUnit = reader.uint32(map, 'requests_per_unit', path, 0);

  const algorithmText = reader.string(map, 'algorithm', path) || 'fixed_window';
  const algorithm = ALGORITHMS.find((a) => a === algorithmText);
  if (algorithm === undefined) {
    issues.add(lineOf(map, 'algorithm'), joinPath(path, 'algorithm'), `must be one of ${ALGORITHMS.join(', ')}, got '${algorithmText}'`);
  }
  const unitMultiplier = reader.uint32(map, 'unit_multiplier', path, 1);
  if (unitMultiplier === 0) issues.add(lineOf(map, 'unit_multiplier'), joinPath(path, 'unit_multiplier'), 'must be at least 1');
  const burst = reader.uint32(map, 'burst', path, requestsPerUnit);
  if (mapGet(map, 'burst') !== undefined && algorithm !== 'token_bucket') {
    issues.add(lineOf(map, 'burst'), joinPath(path, 'burst'), 'burst only applies to algorithm token_bucket');
  }
  if (algorithm === 'token_bucket' && !unlimited && requestsPerUnit === 0) {
    issues.add(lineOf(map, 'requests_per_unit'), joinPath(path, 'requests_per_unit'), 'a token bucket needs requests_per_unit of at least 1');
  }
  if (issues.issues.length > before) return undefined;

  const resolvedUnit = unit ?? 'SECOND';
  const resolvedAlgorithm = algorithm ?? 'fixed_window';
  const classic = ctx.listIndex < 0 && resolvedAlgorithm === 'fixed_window';
  const statsSuffix = ctx.listIndex < 0 ? '' : `#${name || ctx.listIndex}`;
  return Object.freeze({
    fullKey: ctx.fullKey + statsSuffix,
    statsSuffix,
    name,
    requestsPerUnit,
    unit: resolvedUnit,
    unitMultiplier,
    windowSeconds: UNIT_SECONDS[resolvedUnit] * unitMultiplier,
    algorithm: resolvedAlgorithm,
    burst,
    unlimited,
    shadowMode: ctx.shadowMode,
    quotaMode: ctx.quotaMode,
    replaces: Object.freeze(replaces),
    detailedMetric: ctx.detailedMetric,
    // Limits of one `rate_limits` list differ by position or name even when their windows coincide.
    keyTag: classic ? '' : `${resolvedAlgorithm}:${UNIT_SECONDS[resolvedUnit] * unitMultiplier}:${statsSuffix ? `${statsSuffix.slice(1)}:` : ''}`,
  });
}

/** Reads typed fields the way Go's yaml.v2 unmarshals them into envoyproxy/ratelimit's structs. */
class Reader {
  constructor(private readonly issues: IssueCollector) {}

  string(map: YamlMap, key: string, path: string): string {
    const value = mapGet(map, key);
    if (value === undefined || value === null) return '';
    if (value.kind !== 'scalar') {
      this.issues.add(value.line, joinPath(path, key), unmarshalError(value, 'string'));
      return '';
    }
    if (value.value === null) return '';
    // yaml.v2 keeps a plain scalar's text when the target is a string: `value: yes` is "yes", `007` is "007".
    return writtenText(value);
  }

  bool(map: YamlMap, key: string, path: string): boolean {
    const value = mapGet(map, key);
    if (value === undefined || value === null || (value.kind === 'scalar' && value.value === null)) return false;
    if (value.kind === 'scalar' && typeof value.value === 'boolean') return value.value;
    this.issues.add(value.line, joinPath(path, key), unmarshalError(value, 'bool'));
    return false;
  }

  uint32(map: YamlMap, key: string, path: string, fallback: number): number {
    const value = mapGet(map, key);
    if (value === undefined || value === null || (value.kind === 'scalar' && value.value === null)) return fallback;
    if (value.kind === 'scalar' && value.numberKind === 'int') {
      const n = Number(value.value);
      if (n >= 0 && n <= UINT32_MAX) return n;
    }
    if (value.kind === 'scalar' && value.numberKind === 'float') return fallback; // reported by validateKeys
    this.issues.add(value.line, joinPath(path, key), unmarshalError(value, 'uint32'));
    return fallback;
  }

  optionalMap(map: YamlMap, key: string, path: string): YamlMap | undefined {
    const value = mapGet(map, key);
    if (value === undefined || value === null || (value.kind === 'scalar' && value.value === null)) return undefined;
    if (value.kind === 'map') return value;
    this.issues.add(value.line, joinPath(path, key), unmarshalError(value, 'config.YamlRateLimit'));
    return undefined;
  }

  /** A list of maps; non-map items were already reported by validateKeys. */
  maps(map: YamlMap, key: string, path: string, goType = '[]config.YamlDescriptor'): { map: YamlMap; path: string }[] {
    const value = mapGet(map, key);
    if (value === undefined || value === null || (value.kind === 'scalar' && value.value === null)) return [];
    if (value.kind !== 'seq') {
      this.issues.add(value.line, path, unmarshalError(value, goType));
      return [];
    }
    return value.items.flatMap((item, i) => (item !== null && item.kind === 'map' ? [{ map: item, path: joinPath(path, i) }] : []));
  }
}

/** yaml.v2's wording for a type mismatch, so messages read like envoyproxy/ratelimit's. */
function unmarshalError(value: YamlValue, target: string): string {
  const tag = value.kind === 'map' ? '!!map' : value.kind === 'seq' ? '!!seq'
    : typeof value.value === 'boolean' ? '!!bool'
    : value.numberKind === 'int' ? '!!int' : value.numberKind === 'float' ? '!!float' : '!!str';
  // yaml.v2 shows the decoded text, cut to 7 characters and "..." past 10.
  const text = value.kind === 'scalar' ? writtenText(value) : '';
  const shown = value.kind === 'scalar' ? ` \`${text.length > 10 ? `${text.slice(0, 7)}...` : text}\`` : '';
  return `error loading config file: yaml: unmarshal errors:\n  line ${value.line}: cannot unmarshal ${tag}${shown} into ${target}`;
}

/** The line of `key` in `map`, or of the map itself when the key is absent. */
function lineOf(map: YamlMap | null, key: string): number | undefined {
  if (map === null) return undefined;
  const entry = [...map.entries].reverse().find((e) => e.key.kind === 'scalar' && e.key.value === key);
  return entry?.key.line ?? map.line;
}

function toPlain(value: YamlValue | null): unknown {
  if (value === null) return null;
  if (value.kind === 'scalar') return typeof value.value === 'bigint' ? Number(value.value) : value.value;
  if (value.kind === 'seq') return value.items.map(toPlain);
  const out: Record<string, unknown> = {};
  for (const entry of value.entries) out[String(toPlain(entry.key))] = toPlain(entry.value);
  return out;
}

/** One line per limit, in envoyproxy/ratelimit's /rlconfig format (plus the extension fields when set). */
export function dumpLimits(config: RateLimitConfig | undefined): string {
  const lines: string[] = [];
  const walk = (node: DescriptorNode): void => {
    for (const limit of node.limits) {
      const extra = limit.algorithm !== 'fixed_window' || limit.unitMultiplier !== 1
        ? `, algorithm: ${limit.algorithm}, unit_multiplier: ${limit.unitMultiplier}${limit.algorithm === 'token_bucket' ? `, burst: ${limit.burst}` : ''}`
        : '';
      // An unlimited limit has no unit upstream (its unit is UNKNOWN), whatever the file says.
      lines.push(`${limit.fullKey}: unit=${limit.unlimited ? 'UNKNOWN' : limit.unit} requests_per_unit=${limit.requestsPerUnit}, shadow_mode: ${limit.shadowMode}, quota_mode: ${limit.quotaMode}${extra}`);
    }
    for (const child of node.children.values()) walk(child);
  };
  for (const domain of config?.domains.values() ?? []) walk(domain.root);
  return lines.map((l) => `${l}\n`).join('');
}
