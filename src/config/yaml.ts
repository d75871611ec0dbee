import { CST, Lexer, LineCounter, isAlias, isMap, isScalar, isSeq, parseAllDocuments, type Node, type YAMLMap } from 'yaml';
import { joinPath } from './errors.js';

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

/** One problem found while parsing: a syntax error, a duplicate key, an alias that cannot be expanded or a bad merge. */
export interface YamlProblem {
  readonly line: number;
  readonly message: string;
  /** The yaml library's error code for syntax errors; DUPLICATE_KEY, ALIAS_CYCLE, ALIAS_UNKNOWN, ALIAS_BUDGET or MERGE. */
  readonly code: string;
  /** Where in the document, e.g. `descriptors[0].rate_limit`; '' for syntax errors. */
  readonly path: string;
}

export type ParseResult =
  | { readonly ok: true; readonly root: YamlValue | null }
  | {
      readonly ok: false;
      /** The first problem's line, message and code (syntax errors come alone: the rest of the file is unknown). */
      readonly line: number;
      readonly message: string;
      readonly code: string;
      readonly problems: readonly YamlProblem[];
    };

/**
 * How many nodes aliases may add to a document once expanded. The tree is built with each anchored node converted
 * once and shared, but every loader walks the expanded tree: nine levels of nine aliases in 417 bytes expand to
 * 9^9 nodes (a "billion laughs" file). This is the budget the yaml library's own `maxAliasCount` guards in toJS(),
 * which this converter does not use; counted in nodes so that many small shared blocks stay fine.
 */
export const MAX_ALIAS_NODES = 100_000;

/**
 * Parses the first document of `text`. Later documents are ignored, as envoyproxy/ratelimit does, unless
 * `singleDocument` (portcullis.yaml, keys.yaml: files of our own) makes a second document an error: settings in it
 * would be silently dropped.
 * Duplicate keys are errors naming both lines. yaml.v2, which envoyproxy/ratelimit uses, lets the last one win;
 * a second `domain:` or `rate_limit:` is almost always an editing mistake that silently changes a limit, so
 * Portcullis rejects the file instead (docs/ratelimit.md). Aliases that refer to an enclosing node, to no anchor,
 * or that expand past MAX_ALIAS_NODES are errors too.
 */
export function parseYaml(text: string, options: ParseOptions = {}): ParseResult {
  const tooDeep = lineTooDeep(text);
  if (tooDeep !== undefined) return deep(tooDeep, `nesting deeper than ${MAX_NESTING} levels`);
  try {
    return parse(text, options);
  } catch (error) {
    // The parser and the converter recurse per nesting level: what lineTooDeep lets through must not crash a load.
    if (!(error instanceof RangeError)) throw error;
    return deep(1, 'nesting too deep');
  }
}

function deep(line: number, message: string): ParseResult {
  return { ok: false, line, message, code: 'TOO_DEEP', problems: [{ line, message, code: 'TOO_DEEP', path: '' }] };
}

/**
 * How deeply collections may nest, counted as lineTooDeep counts. The yaml library composes a document recursively,
 * several frames per level, and near the end of the stack V8 may be compiling a regular expression for it: that
 * allocation failure is fatal to the process, not a RangeError (10,000 `[` in portcullis.yaml took `serve` down on
 * reload). No config nests past a dozen levels; upstream's descriptor trees use two per level.
 */
export const MAX_NESTING = 100;

/**
 * The line where `text` nests collections deeper than MAX_NESTING, or undefined. Read from the yaml library's lexer,
 * which keeps no stack of its own and is stopped there: brackets count inside flow collections, and a block
 * collection counts once per indentation column open on the line (a `- ` or `? ` opens one more on the same line).
 * Within a factor of two of the real depth, which is all a bound needs.
 */
export function lineTooDeep(text: string): number | undefined {
  const columns: number[] = [];
  let flow = 0;
  let line = 1;
  let column = 0;
  let opens = true; // the next token starts a block node: the first on a line, or the one after `- ` or `? `
  let scalarText = false;
  for (const token of new Lexer().lex(text)) {
    const type: string | null = scalarText ? 'scalar-text' : CST.tokenType(token);
    scalarText = type === 'scalar';
    if (type === 'scalar-text' || type === 'space' || type === 'comment' || type === 'newline') {
      // Positions only: a scalar's text, a block scalar's body and a quoted scalar may span lines.
    } else if (type === 'doc-start' || type === 'doc-end' || type === 'doc-mode' || type === 'directive-line') {
      columns.length = 0;
      flow = 0;
    } else {
      if (opens && flow === 0) {
        while (columns.length > 0 && columns[columns.length - 1]! >= column) columns.pop();
        columns.push(column);
      }
      if (type === 'flow-seq-start' || type === 'flow-map-start') flow++;
      else if ((type === 'flow-seq-end' || type === 'flow-map-end') && flow > 0) flow--;
      if (columns.length + flow > MAX_NESTING) return line;
    }
    const lastBreak = token.lastIndexOf('\n');
    if (lastBreak >= 0) {
      for (let i = token.indexOf('\n'); i >= 0; i = token.indexOf('\n', i + 1)) line++;
      column = token.length - lastBreak - 1;
      opens = true;
    } else {
      // The lexer's control tokens (a scalar follows, a document begins) are not in the text.
      const control = type === 'scalar' || type === 'doc-mode' || type === 'flow-error-end';
      if (!control) column += token.length;
      if (!control && type !== 'space') opens = type === 'seq-item-ind' || type === 'explicit-key-ind';
    }
  }
  return undefined;
}

export interface ParseOptions {
  readonly singleDocument?: boolean;
  /**
   * Read as Go's yaml.v2 reads envoyproxy/ratelimit's files where it parts from YAML 1.1: number-like plain scalars
   * resolve as goNumber() says, and a key written before a `<<` that merges the same key is an error (MERGE_ORDER):
   * yaml.v2 lets the merge overwrite it, YAML 1.1 keeps it, and either reading silently changes someone's limit.
   * Files of our own (portcullis.yaml) read as YAML 1.1 says.
   */
  readonly yamlV2?: boolean;
}

function parse(text: string, options: ParseOptions): ParseResult {
  const singleDocument = options.singleDocument === true;
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { version: '1.1', uniqueKeys: false, lineCounter, merge: true });
  if (!Array.isArray(docs)) return { ok: true, root: null }; // empty stream
  const doc = docs[0];
  if (doc === undefined) return { ok: true, root: null };
  const second = docs[1];
  if (singleDocument && second !== undefined) {
    const line = lineCounter.linePos(second.range[0]).line;
    const message = 'a second YAML document: this file is one document (remove the --- and what follows, or merge it in)';
    return { ok: false, line, message, code: 'MULTIPLE_DOCUMENTS', problems: [{ line, message, code: 'MULTIPLE_DOCUMENTS', path: '' }] };
  }
  const error = doc.errors[0];
  if (error !== undefined) {
    const line = error.linePos?.[0].line ?? 1;
    const message = error.message.split('\n')[0] ?? error.message;
    return { ok: false, line, message, code: error.code, problems: [{ line, message, code: error.code, path: '' }] };
  }
  const problems: YamlProblem[] = [];
  const lineOf = (node: Node): number => lineCounter.linePos(node.range?.[0] ?? 0).line;
  // Each collection is converted once: an alias shares the converted value of its anchor.
  const converted = new Map<Node, YamlValue>();
  // Anchors as met in document order, the latest of a name winning: what an alias refers to. (The library's
  // alias.resolve() walks the document from its start for every alias: quadratic, 13 s for 15,000 aliases.)
  const anchors = new Map<string, Node>();
  const enclosing = new Set<Node>();
  const sizes = new WeakMap<YamlValue, number>();
  let aliasNodes = 0;
  let overBudget = false;
  const convert = (node: unknown, path: string): YamlValue | null => {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      const line = lineOf(node);
      if (target === undefined) {
        problems.push({ line, path, code: 'ALIAS_UNKNOWN', message: `alias *${node.source} refers to no anchor before it` });
        return null;
      }
      if (enclosing.has(target)) {
        problems.push({ line, path, code: 'ALIAS_CYCLE', message: `alias *${node.source} refers to a node that contains it (anchor &${node.source} on line ${lineOf(target)})` });
        return null;
      }
      const value = converted.get(target) ?? convert(target, path);
      if (value !== null && !overBudget) {
        aliasNodes += sizeOf(value, sizes);
        if (aliasNodes > MAX_ALIAS_NODES) {
          overBudget = true;
          problems.push({ line, path, code: 'ALIAS_BUDGET', message: `aliases expand to more than ${MAX_ALIAS_NODES} nodes` });
        }
      }
      return overBudget ? null : value;
    }
    if ((isMap(node) || isSeq(node) || isScalar(node)) && node.anchor) anchors.set(node.anchor, node);
    if (isMap(node) || isSeq(node)) {
      const done = converted.get(node);
      if (done !== undefined) return done;
      enclosing.add(node);
      const value = isMap(node) ? convertMap(node, path) : { kind: 'seq' as const, line: lineOf(node), items: node.items.map((item, i) => convert(item, joinPath(path, i))) };
      enclosing.delete(node);
      converted.set(node, value);
      return value;
    }
    if (isScalar(node)) {
      const range = node.range;
      const source = range ? text.slice(range[0], range[1]) : String(node.value);
      const scalar: YamlScalar = { kind: 'scalar', line: lineOf(node), value: node.value, source };
      // Number-like plain scalars are resolved as yaml.v2 resolves them (goNumber), not by YAML 1.1's rules.
      if (options.yamlV2 === true && node.type === 'PLAIN' && node.tag === undefined && !(node.value instanceof Date)) {
        const number = goNumber(source.trim());
        if (number === 'string') return { ...scalar, value: source.trim() };
        if (number !== undefined) return { ...scalar, value: number.value, numberKind: number.kind };
      }
      if (typeof node.value === 'number') {
        const written = source.trim();
        // 0xE and 0b1 are integers whatever their digits; an exponent or a point makes a float.
        const radix = /^[-+]?0[xob]/i.test(written);
        const float = !Number.isInteger(node.value) || (!radix && /^[-+]?(\d[\d_]*)?\.|[eE]|inf|nan/i.test(written));
        return { ...scalar, numberKind: float ? 'float' : 'int' };
      }
      if (typeof node.value === 'bigint') return { ...scalar, numberKind: 'int' };
      return scalar;
    }
    return null;
  };
  const convertMap = (node: YAMLMap, path: string): YamlMap => {
    const firstLine = new Map<string, number>();
    type Entry = YamlMap['entries'][number];
    // Each `<<` becomes a slot holding the entries it merges; the mapping's own keys are known only at the end.
    const slots: (Entry | { readonly merged: readonly Entry[]; readonly line: number })[] = [];
    for (const pair of node.items) {
      const key = convert(pair.key, path) ?? { kind: 'scalar' as const, line: lineOf(node), value: null, source: '' };
      const merge = isMergeKey(key);
      const name = merge ? '<<' : key.kind === 'scalar' ? String(key.value) : '';
      if (key.kind === 'scalar') {
        const id = merge ? '<<' : keyId(key);
        const first = firstLine.get(id);
        if (first === undefined) firstLine.set(id, key.line);
        else problems.push({ line: key.line, path: joinPath(path, name), code: 'DUPLICATE_KEY', message: `duplicate key '${name}' (first on line ${first}, again on line ${key.line})` });
      }
      if (merge) slots.push({ merged: mergeSources(pair.value, key.line, joinPath(path, name)), line: key.line });
      else slots.push({ key, value: convert(pair.value, joinPath(path, name)) });
    }
    // YAML 1.1 merge: keys written in the mapping win over merged ones, and an earlier source over a later one.
    // Merged entries are the source's own nodes, so an error in one names the line where it is written.
    const taken = new Set<string>();
    const writtenBefore = new Map<string, YamlScalar>();
    for (const slot of slots) {
      if ('key' in slot) {
        if (slot.key.kind === 'scalar') taken.add(keyId(slot.key));
        if (slot.key.kind === 'scalar') writtenBefore.set(keyId(slot.key), slot.key);
        continue;
      }
      // yaml.v2 applies a merge where it stands, over the keys written before it; YAML 1.1 keeps those.
      if (options.yamlV2 !== true) continue;
      for (const entry of slot.merged) {
        const before = entry.key.kind === 'scalar' ? writtenBefore.get(keyId(entry.key)) : undefined;
        if (before === undefined) continue;
        const name = String(before.value);
        problems.push({
          line: before.line, path: joinPath(path, name), code: 'MERGE_ORDER',
          message: `key '${name}' on line ${before.line} is also merged by << on line ${slot.line}: envoyproxy/ratelimit (yaml.v2) takes the merged value, YAML 1.1 the written one; write the key after the <<`,
        });
        writtenBefore.delete(keyId(before));
      }
    }
    const entries: Entry[] = [];
    for (const slot of slots) {
      if ('key' in slot) {
        entries.push(slot);
        continue;
      }
      for (const entry of slot.merged) {
        if (entry.key.kind === 'scalar') {
          const id = keyId(entry.key);
          if (taken.has(id)) continue;
          taken.add(id);
        }
        entries.push(entry);
      }
    }
    return { kind: 'map', line: lineOf(node), entries };
  };
  /** The entries a `<<` value brings in: a mapping's, or those of a sequence of mappings, in order. */
  const mergeSources = (node: unknown, keyLine: number, path: string): readonly YamlMap['entries'][number][] => {
    const before = problems.length;
    const value = convert(node, path);
    if (problems.length > before || overBudget) return []; // already reported (unknown alias, cycle, budget)
    const sources = value?.kind === 'seq' ? value.items : [value];
    if (value !== null && sources.every((source) => source?.kind === 'map')) return sources.flatMap((source) => (source as YamlMap).entries);
    problems.push({ line: keyLine, path, code: 'MERGE', message: 'merge key << needs a mapping or a sequence of mappings as its value' });
    return [];
  };
  const root = convert(doc.contents, '');
  const first = problems[0];
  if (first !== undefined) return { ok: false, line: first.line, message: first.message, code: first.code, problems };
  return { ok: true, root };
}

const INT64_MIN = -(2n ** 63n);
const INT64_LIMIT = 2n ** 63n;
const UINT64_LIMIT = 2n ** 64n;

/**
 * How Go's yaml.v2, envoyproxy/ratelimit's parser, reads a plain scalar that starts like a number (a digit, a sign
 * or a point): an int when Go's ParseInt or ParseUint (base 0, underscores dropped) takes it, so 0o17, 0X1F, 0B11
 * and 010 are ints; else a float when it looks like one (`5.`, `09`, `1e3`, but not one out of range); else a string:
 * base 60 (`10:30`), which YAML 1.1 reads as a number, is a string to yaml.v2. Ints past int64 are bigints, which
 * upstream's key check refuses (as the uint64 or float yaml.v2 makes of them). Undefined: not number-like, or a special float (`.inf`,
 * `-.nan`) left to the YAML 1.1 schema, which agrees there.
 */
export function goNumber(written: string): { value: number | bigint; kind: 'int' | 'float' } | 'string' | undefined {
  if (!/^[-+.0-9]/.test(written) || /^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$/.test(written)) return undefined;
  const plain = written.replace(/_/g, '');
  const int = /^([-+]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|0[0-7]*|[1-9][0-9]*)$/.exec(plain);
  if (int !== null) {
    const digits = int[2]!;
    const octal = digits.length > 1 && digits.startsWith('0') && !/^0[xXbBoO]/.test(digits);
    let n = octal ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits.toLowerCase());
    if (int[1] === '-') n = -n;
    if (n >= INT64_MIN && n < INT64_LIMIT) return { value: Number(n), kind: 'int' };
    // Past int64: a uint64 (ParseUint takes no sign), or a float when written in decimal; refused either way.
    if (/^[1-9]/.test(digits) || (int[1] === '' && n < UINT64_LIMIT)) return { value: n, kind: 'int' };
    return 'string'; // 0x… past uint64: neither int nor float
  }
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(plain) && (written.startsWith('.') ? !written.includes('_') : true)) {
    const value = Number(plain);
    if (Number.isFinite(value)) return { value, kind: 'float' };
  }
  return 'string';
}

/** The YAML 1.1 merge key: a plain `<<`, which the yaml library resolves to a symbol (a quoted '<<' stays a string). */
function isMergeKey(key: YamlValue): boolean {
  return key.kind === 'scalar' && typeof key.value === 'symbol' && key.value.description === '<<';
}

/** Identifies a scalar key for duplicate and override checks: `1` and `'1'` are different keys. */
function keyId(key: YamlScalar): string {
  return `${typeof key.value}:${String(key.value)}`;
}

/** Nodes in `value` with aliases expanded; memoized, so shared values are counted in O(distinct nodes). */
function sizeOf(value: YamlValue | null, sizes: WeakMap<YamlValue, number>): number {
  if (value === null || value.kind === 'scalar') return 1;
  const known = sizes.get(value);
  if (known !== undefined) return known;
  let size = 1;
  if (value.kind === 'seq') for (const item of value.items) size += sizeOf(item, sizes);
  else for (const entry of value.entries) size += sizeOf(entry.key, sizes) + sizeOf(entry.value, sizes);
  sizes.set(value, size);
  return size;
}

/** Looks a string key up in a map (parseYaml rejects duplicate keys). */
export function mapGet(map: YamlMap, key: string): YamlValue | null | undefined {
  let found: YamlValue | null | undefined;
  for (const entry of map.entries) {
    if (entry.key.kind === 'scalar' && entry.key.value === key) found = entry.value;
  }
  return found;
}

/**
 * A scalar read where a string is wanted: a string's value, anything else as written. `1.10`, `on`, `0755` and `1e3`
 * stay themselves, where String() of the decoded value would give 1.1, true, 493 and 1000 (yaml.v2 keeps the text
 * the same way for a string target).
 */
export function writtenText(value: YamlScalar): string {
  return typeof value.value === 'string' ? value.value : value.source.trim();
}

/** Renders a scalar the way Go's fmt %v would print the decoded value (for upstream-compatible messages). */
export function scalarText(value: YamlValue | null): string {
  if (value === null) return '<nil>';
  if (value.kind === 'scalar') return value.value === null ? '<nil>' : String(value.value);
  if (value.kind === 'seq') return `[${value.items.map(scalarText).join(' ')}]`;
  return `map[${value.entries.map((e) => `${scalarText(e.key)}:${scalarText(e.value)}`).join(' ')}]`;
}
