// `portcullis check-envoy`: what Envoy will ask for against what the descriptor files answer. Pure: a parsed
// bootstrap and a compiled RateLimitConfig in, findings out.
//
//   UNKNOWN_DOMAIN        a ratelimit filter's domain has no descriptor file: every request is unlimited
//   UNMATCHED_DESCRIPTOR  a descriptor Envoy can send matches no rule: silently unlimited
//   UNREACHABLE_RULE      a rule (in a domain Envoy uses) that no descriptor Envoy sends can reach
//   UNSUPPORTED_ACTION    an action this check cannot read (so the result above may be incomplete)
//   UNREAD_ROUTES         listeners from LDS, routes from RDS or scoped routes: not read, so not checked
//   PROBES_CUT            a descriptor whose named values combine past MAX_PROBES: probed in part only
//
// Matching reuses the service's own matcher (src/ratelimit/matcher.ts), so "matched" means exactly what Portcullis
// will do. A value taken from the request is probed with a value no rule names: a rule that only lists some values
// (`key: user_id, value: alice`) leaves every other user unlimited, and that is what is reported. It is also probed
// with each value the rules name at its position, as the greedy matcher can take a named value's branch and then
// find nothing further down (see probes()).

import { matchDescriptor } from '../ratelimit/matcher.js';
import type { DescriptorNode, DomainConfig, RateLimitConfig } from '../ratelimit/types.js';
import { routeSites, unreadRouteSources, type DescriptorShape, type RouteSite } from './routes.js';

export type FindingCode = 'UNKNOWN_DOMAIN' | 'UNMATCHED_DESCRIPTOR' | 'UNREACHABLE_RULE' | 'UNSUPPORTED_ACTION' | 'UNREAD_ROUTES' | 'PROBES_CUT';

export interface Finding<Code extends string = FindingCode> {
  readonly code: Code;
  readonly message: string;
  /** Routes concerned (`listener … / vhost … / route …`); empty for a rule. */
  readonly routes: readonly string[];
}

export interface CheckSummary {
  readonly findings: readonly Finding[];
  /** Distinct (domain, descriptor) pairs Envoy can send. */
  readonly descriptors: number;
  /** Rules (descriptor nodes with a limit) in the domains Envoy uses. */
  readonly rules: number;
}

/** Stands for "any value from the request": no descriptor file names it. */
const ANY_VALUE = '\u0000any';

export function checkEnvoyRateLimits(bootstrap: unknown, config: RateLimitConfig): CheckSummary {
  const sites = routeSites(bootstrap);
  const findings: Finding[] = unreadRouteSources(bootstrap).map((message) => ({ code: 'UNREAD_ROUTES', message, routes: [] }));
  const shapes = distinctShapes(sites);
  const domains = [...new Set(sites.flatMap((s) => s.rateLimits.map((call) => call.domain)))].sort();

  for (const domain of domains) {
    if (!config.domains.has(domain)) {
      findings.push({
        code: 'UNKNOWN_DOMAIN',
        message: `the ratelimit filter uses domain '${domain}', which no descriptor file declares (known: ${[...config.domains.keys()].sort().join(', ') || 'none'}): every request is unlimited`,
        routes: sites.filter((s) => s.rateLimits.some((call) => call.domain === domain)).map((s) => s.where),
      });
    }
  }

  for (const { domain, shape, routes } of shapes) {
    const domainConfig = config.domains.get(domain);
    if (domainConfig === undefined) continue;
    const { descriptors, combinations } = probes(domainConfig, shape);
    if (combinations > descriptors.length) {
      findings.push({
        code: 'PROBES_CUT',
        message: `domain '${domain}': descriptor ${describeShape(shape)} can carry ${combinations} combinations of the values the rules name; the first ${descriptors.length} were tried, so one that matches no rule may go unreported`,
        routes,
      });
    }
    const missed = descriptors.find((entries) => matchDescriptor(domainConfig, { entries, limitOverride: undefined, hitsAddend: undefined }) === undefined);
    if (missed !== undefined) {
      const some = missed.some((e, i) => shape.entries[i]!.value === undefined && e.value !== ANY_VALUE);
      const example = some ? ` when it is [${missed.map((e, i) => `${e.key}=${e.value === ANY_VALUE ? `<${shape.entries[i]!.source}>` : e.value}`).join(', ')}]` : '';
      findings.push({
        code: 'UNMATCHED_DESCRIPTOR',
        message: `domain '${domain}': descriptor ${describeShape(shape)} matches no rule${example}: those requests are silently unlimited`,
        routes,
      });
    }
  }

  let rules = 0;
  for (const domain of domains) {
    const domainConfig = config.domains.get(domain);
    if (domainConfig === undefined) continue;
    for (const rule of rulesOf(domainConfig)) {
      rules += 1;
      const reachable = shapes.some((s) => s.domain === domain && reaches(domainConfig, s.shape, rule));
      if (!reachable) {
        findings.push({
          code: 'UNREACHABLE_RULE',
          message: `domain '${domain}': rule ${rule.label} is never reached: no route sends a descriptor that matches it`,
          routes: [],
        });
      }
    }
  }

  for (const site of sites) {
    for (const message of site.unsupported) findings.push({ code: 'UNSUPPORTED_ACTION', message, routes: [site.where] });
  }
  return { findings, descriptors: shapes.length, rules };
}

interface SentShape {
  readonly domain: string;
  readonly shape: DescriptorShape;
  readonly routes: string[];
}

function distinctShapes(sites: readonly RouteSite[]): SentShape[] {
  const byKey = new Map<string, SentShape>();
  for (const site of sites) {
    for (const { domain, shapes } of site.rateLimits) {
      for (const shape of shapes) {
        const key = `${domain}\u0001${describeShape(shape)}`;
        const known = byKey.get(key);
        if (known === undefined) byKey.set(key, { domain, shape, routes: [site.where] });
        else if (!known.routes.includes(site.where)) known.routes.push(site.where);
      }
    }
  }
  return [...byKey.values()];
}

/** At most this many descriptors are probed per shape (the product of the values named at each position): a full cut took 0.25 s here. */
const MAX_PROBES = 65_536;

/**
 * Descriptors standing for what a shape can carry, the all-ANY_VALUE one first. The matcher is greedy and does not
 * backtrack: a request value a rule names (`user=alice`) takes that rule's branch, and misses if the branch lacks the
 * continuation another value would find (`[user=alice, path=/y]` against `user=alice → path=/x` and `user → path`).
 * So each request value is also probed as every value the rules name for that key at that depth.
 */
function probes(domain: DomainConfig, shape: DescriptorShape): { descriptors: { key: string; value: string }[][]; combinations: number } {
  const named = namedValues(domain);
  const choices = shape.entries.map((e, depth) => (e.value !== undefined ? [e.value] : [ANY_VALUE, ...(named.get(`${depth}\u0001${e.key}`) ?? [])]));
  let out: string[][] = [[]];
  for (const values of choices) {
    // Cut while built, not after: the product of a few long lists of values is millions of descriptors.
    const next: string[][] = [];
    for (const prefix of out) {
      for (const value of values) {
        if (next.length === MAX_PROBES) break;
        next.push([...prefix, value]);
      }
    }
    out = next;
  }
  return {
    descriptors: out.map((values) => values.map((value, i) => ({ key: shape.entries[i]!.key, value }))),
    combinations: choices.reduce((product, values) => product * values.length, 1),
  };
}

/** Values the descriptor files name, by depth and key (`0\u0001user` → alice); a wildcard stands for a value it takes. */
function namedValues(domain: DomainConfig): Map<string, Set<string>> {
  const named = new Map<string, Set<string>>();
  const walk = (node: DescriptorNode, depth: number): void => {
    for (const child of node.children.values()) {
      if (child.value !== '') {
        const key = `${depth}\u0001${child.key}`;
        if (!named.has(key)) named.set(key, new Set());
        named.get(key)!.add(child.value.replace(/\*/g, 'x'));
      }
      walk(child, depth + 1);
    }
  };
  walk(domain.root, 0);
  return named;
}

export function describeShape(shape: DescriptorShape): string {
  return `[${shape.entries.map((e) => `${e.key}=${e.value ?? `<${e.source}>`}`).join(', ')}]`;
}

interface Rule {
  /** `[route=export, user_id]`. */
  readonly label: string;
  readonly path: readonly { key: string; value: string | undefined; wildcard: boolean }[];
  readonly node: DescriptorNode;
}

function rulesOf(domain: DomainConfig): Rule[] {
  const rules: Rule[] = [];
  const walk = (node: DescriptorNode, path: Rule['path']): void => {
    for (const child of node.children.values()) {
      const step = { key: child.key, value: child.value === '' ? undefined : child.value, wildcard: node.wildcards.some((w) => w.node === child) };
      const childPath = [...path, step];
      if (child.limits.length > 0) {
        rules.push({ label: `[${childPath.map((p) => (p.value === undefined ? p.key : `${p.key}=${p.value}`)).join(', ')}]`, path: childPath, node: child });
      }
      walk(child, childPath);
    }
  };
  walk(domain.root, []);
  return rules;
}

/** Whether a descriptor of `shape` can be matched to exactly `rule`, by the service's own matcher. */
function reaches(domain: DomainConfig, shape: DescriptorShape, rule: Rule): boolean {
  if (shape.entries.length !== rule.path.length) return false;
  const entries: { key: string; value: string }[] = [];
  for (const [i, entry] of shape.entries.entries()) {
    const step = rule.path[i]!;
    if (entry.key !== step.key) return false;
    if (entry.value !== undefined) entries.push({ key: entry.key, value: entry.value });
    else entries.push({ key: entry.key, value: step.value === undefined ? ANY_VALUE : step.wildcard ? step.value.replace(/\*/g, 'x') : step.value });
  }
  const match = matchDescriptor(domain, { entries, limitOverride: undefined, hitsAddend: undefined });
  return match !== undefined && match.limits === rule.node.limits;
}
