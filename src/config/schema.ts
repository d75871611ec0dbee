import { IssueCollector, joinPath, NOT_SHOWN } from './errors.js';
import type { YamlValue } from './yaml.js';

/**
 * Tiny strict-schema combinators over YamlValue. A field reads its value, reports any problem with
 * the line and path, and returns a usable default so one load reports every problem at once.
 */
export type Field<T> = (value: YamlValue | null | undefined, path: string, issues: IssueCollector, parentLine: number) => T;

/** Not written, or written as an explicit null (`key:` or `key: ~`). */
export const isAbsent = (v: YamlValue | null | undefined): v is null | undefined =>
  v === undefined || v === null || (v.kind === 'scalar' && v.value === null);

/**
 * A secret-bearing field or section (a Redis URL, a header value, an API key setting): what its errors say never quotes
 * what the file holds there, whichever check reports it (IssueCollector.concealing, ConfigError).
 */
export function secret<T>(field: Field<T>): Field<T> {
  return (v, p, issues, line) => field(v, p, issues.concealing(), line);
}

/** `field`, reporting 'is required' when the key is absent. */
export function required<T>(field: Field<T>): Field<T> {
  return (v, p, issues, line) => {
    if (isAbsent(v)) issues.add(line, p, 'is required');
    return field(v, p, issues, line);
  };
}

export function string(fallback: string, check?: (s: string) => string | undefined): Field<string> {
  return (v, path, issues) => {
    if (isAbsent(v)) return fallback;
    if (v.kind !== 'scalar' || typeof v.value !== 'string') {
      issues.add(v.line, path, `expected a string, got ${describe(v, issues)}`);
      return fallback;
    }
    const problem = check?.(v.value);
    if (problem !== undefined) {
      issues.add(v.line, path, problem);
      return fallback;
    }
    return v.value;
  };
}

export function oneOf<T extends string>(choices: readonly T[], fallback: T): Field<T> {
  return string(fallback, (s) => ((choices as readonly string[]).includes(s) ? undefined : `must be one of ${choices.join(', ')}, got '${s}'`)) as Field<T>;
}

export function boolean(fallback: boolean): Field<boolean> {
  return (v, path, issues) => {
    if (isAbsent(v)) return fallback;
    if (v.kind === 'scalar' && typeof v.value === 'boolean') return v.value;
    issues.add(v.line, path, `expected true or false, got ${describe(v, issues)}`);
    return fallback;
  };
}

/**
 * The largest number any field takes unless it names a tighter `max`: 2^31 - 1 is what Node timers accept (a longer
 * setTimeout fires after 1 ms with a TimeoutOverflowWarning), and far above any sane count. Every number in every
 * section is bounded, whether its author thought of it or not.
 */
export const DEFAULT_MAX_NUMBER = 2_147_483_647;

export function number(fallback: number, opts: { min?: number; max?: number; integer?: boolean }): Field<number> {
  const max = opts.max ?? DEFAULT_MAX_NUMBER;
  return (v, path, issues) => {
    if (isAbsent(v)) return fallback;
    if (v.kind !== 'scalar' || typeof v.value !== 'number' || !Number.isFinite(v.value) || (opts.integer && v.numberKind !== 'int')) {
      issues.add(v.line, path, `expected ${opts.integer ? 'an integer' : 'a number'}, got ${describe(v, issues)}`);
      return fallback;
    }
    const n = v.value;
    if ((opts.min !== undefined && n < opts.min) || n > max) {
      issues.add(v.line, path, `must be between ${opts.min ?? '-∞'} and ${max}, got ${issues.conceals ? NOT_SHOWN : v.source.trim()}`);
      return fallback;
    }
    return n;
  };
}

export function list<T>(item: Field<T>): Field<T[] | undefined> {
  return (v, path, issues, parentLine) => {
    if (isAbsent(v)) return undefined;
    if (v.kind !== 'seq') {
      issues.add(v.line, path, `expected a list, got ${describe(v, issues)}`);
      return undefined;
    }
    return v.items.map((it, i) => item(it, joinPath(path, i), issues, it?.line ?? parentLine));
  };
}

/** A map with exactly these keys (all optional); any other key is an error. */
export function object<S extends Record<string, Field<unknown>>>(shape: S): Field<{ [K in keyof S]: ReturnType<S[K]> }> {
  return (v, path, issues, parentLine) => {
    const out: Record<string, unknown> = {};
    let map: YamlValue | undefined;
    if (!isAbsent(v)) {
      if (v.kind !== 'map') issues.add(v.line, path, `expected a mapping, got ${describe(v, issues)}`);
      else map = v;
    }
    const entries = map?.kind === 'map' ? map.entries : [];
    for (const entry of entries) {
      const name = entry.key.kind === 'scalar' ? String(entry.key.value) : '';
      // Own keys only: `in` would also find what every object inherits (constructor, toString, __proto__).
      if (!Object.hasOwn(shape, name)) {
        // The path names the key; the message quotes it only where quoted spans are shown (IssueCollector.concealing).
        issues.add(entry.key.line, joinPath(path, name), `unknown key ${issues.conceals ? '' : `'${name}' `}(expected one of: ${Object.keys(shape).join(', ')})`);
      }
    }
    for (const [name, field] of Object.entries(shape)) {
      const entry = [...entries].reverse().find((e) => e.key.kind === 'scalar' && e.key.value === name);
      out[name] = field(entry?.value, joinPath(path, name), issues, entry?.key.line ?? map?.line ?? parentLine);
    }
    return Object.freeze(out) as { [K in keyof S]: ReturnType<S[K]> };
  };
}

/** What a wrong value is, for a message: its kind, or the scalar itself. */
function describe(v: YamlValue, issues: IssueCollector): string {
  if (v.kind === 'map') return 'a mapping';
  if (v.kind === 'seq') return 'a list';
  // A quoted string is concealed by the collector that conceals; a number or a boolean is not quoted, so not here.
  if (typeof v.value === 'string') return `'${v.value}'`;
  if (issues.conceals) return typeof v.value === 'number' ? 'a number' : typeof v.value === 'boolean' ? 'true or false' : 'null';
  return String(v.value);
}
