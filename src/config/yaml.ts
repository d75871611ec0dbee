import { LineCounter, isAlias, isMap, isScalar, isSeq, parseAllDocuments, type Node } from 'yaml';

/**
 * A parsed YAML value that remembers where it came from, so every config error can name its line.
 * Both config loaders (portcullis.yaml and the descriptor files) walk this tree, never raw objects.
 */
export type YamlValue = YamlMap | YamlSeq | YamlScalar;

export interface YamlMap {
  readonly kind: 'map';
  readonly line: number;
  readonly entries: readonly { readonly key: YamlScalar | YamlMap | YamlSeq; readonly value: YamlValue | null }[];
}
export interface YamlSeq {
  readonly kind: 'seq';
  readonly line: number;
  readonly items: readonly (YamlValue | null)[];
}
export interface YamlScalar {
  readonly kind: 'scalar';
  readonly line: number;
  /** string | number | boolean | null, resolved by the YAML 1.1 schema (yes/no are booleans, as in Go's yaml.v2). */
  readonly value: unknown;
  /** Integer or float, decided from the source text: `1.0` is a float even though JS sees 1. */
  readonly numberKind?: 'int' | 'float';
  readonly source: string;
}

export type ParseResult =
  | { readonly ok: true; readonly root: YamlValue | null }
  | { readonly ok: false; readonly line: number; readonly message: string; readonly code: string };

/**
 * Parses the first document of `text` (later documents are ignored, as envoyproxy/ratelimit does).
 * Duplicate keys are allowed and the last one wins, again like yaml.v2.
 */
export function parseYaml(text: string): ParseResult {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { version: '1.1', uniqueKeys: false, lineCounter, merge: true });
  if (!Array.isArray(docs)) return { ok: true, root: null }; // empty stream
  const doc = docs[0];
  if (doc === undefined) return { ok: true, root: null };
  const error = doc.errors[0];
  if (error !== undefined) {
    const line = error.linePos?.[0].line ?? 1;
    return { ok: false, line, message: error.message.split('\n')[0] ?? error.message, code: error.code };
  }
  const lineOf = (node: Node): number => lineCounter.linePos(node.range?.[0] ?? 0).line;
  const convert = (node: unknown): YamlValue | null => {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return convert(node.resolve(doc));
    if (isMap(node)) {
      return {
        kind: 'map',
        line: lineOf(node),
        entries: node.items.map((pair) => {
          const key = convert(pair.key) ?? { kind: 'scalar', line: lineOf(node), value: null, source: '' };
          return { key, value: convert(pair.value) };
        }),
      };
    }
    if (isSeq(node)) return { kind: 'seq', line: lineOf(node), items: node.items.map(convert) };
    if (isScalar(node)) {
      const range = node.range;
      const source = range ? text.slice(range[0], range[1]) : String(node.value);
      const scalar: YamlScalar = { kind: 'scalar', line: lineOf(node), value: node.value, source };
      if (typeof node.value === 'number') {
        const float = !Number.isInteger(node.value) || /^[-+]?(\d[\d_]*)?\.|[eE]|inf|nan/i.test(source.trim());
        return { ...scalar, numberKind: float ? 'float' : 'int' };
      }
      if (typeof node.value === 'bigint') return { ...scalar, numberKind: 'int' };
      return scalar;
    }
    return null;
  };
  return { ok: true, root: convert(doc.contents) };
}

/** Looks a string key up in a map (last duplicate wins). */
export function mapGet(map: YamlMap, key: string): YamlValue | null | undefined {
  let found: YamlValue | null | undefined;
  for (const entry of map.entries) {
    if (entry.key.kind === 'scalar' && entry.key.value === key) found = entry.value;
  }
  return found;
}

/** Renders a scalar the way Go's fmt %v would print the decoded value (for upstream-compatible messages). */
export function scalarText(value: YamlValue | null): string {
  if (value === null) return '<nil>';
  if (value.kind === 'scalar') return value.value === null ? '<nil>' : String(value.value);
  if (value.kind === 'seq') return `[${value.items.map(scalarText).join(' ')}]`;
  return `map[${value.entries.map((e) => `${scalarText(e.key)}:${scalarText(e.value)}`).join(' ')}]`;
}
