/**
 * Templates of the composer: `{user}`, `{orders[0].id}`, `{userId}` inside strings, and nested
 * objects, lists and `$pick` selections in `respond`. Parsed once at load time into trees whose
 * evaluation is a few property reads, so a request never parses text.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** `orders[0].id`: a root name (a call, a path parameter or a query parameter) and the steps below it. */
export interface Expr {
  readonly root: string;
  readonly steps: readonly (string | number)[];
  /** The source text between the braces, for messages. */
  readonly source: string;
}

/** A string with placeholders. A string that is exactly one placeholder keeps the value's type. */
export type StringTemplate =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: 'ref'; readonly expr: Expr }
  | { readonly kind: 'text'; readonly parts: readonly (string | Expr)[] };

/** What `respond` may hold: JSON with string templates, plus `$pick` to select fields. */
export type ValueTemplate =
  | StringTemplate
  | { readonly kind: 'json'; readonly value: JsonValue }
  | { readonly kind: 'object'; readonly entries: readonly (readonly [string, ValueTemplate])[] }
  | { readonly kind: 'array'; readonly items: readonly ValueTemplate[] }
  | { readonly kind: 'pick'; readonly from: ValueTemplate; readonly fields: readonly string[] };

/** Names a template can read, by root: the values of one request's scope. */
export type Scope = ReadonlyMap<string, unknown>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FIELD = /^[A-Za-z0-9_$-]+/;

/** Parses `orders[0].id` / `user["first name"]`; throws a message on bad syntax. */
export function parseExpr(source: string): Expr {
  const text = source.trim();
  const rootMatch = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text);
  if (rootMatch === null) throw new Error(`'{${source}}' must start with a call or parameter name`);
  const steps: (string | number)[] = [];
  let i = rootMatch[0].length;
  while (i < text.length) {
    const rest = text.slice(i);
    if (rest.startsWith('.')) {
      const field = FIELD.exec(rest.slice(1));
      if (field === null) throw new Error(`'{${source}}': expected a field name after '.' at offset ${i}`);
      steps.push(field[0]);
      i += 1 + field[0].length;
      continue;
    }
    const index = /^\[(\d+)\]/.exec(rest);
    if (index !== null) {
      steps.push(Number(index[1]));
      i += index[0].length;
      continue;
    }
    const quoted = /^\[("(?:[^"\\]|\\.)*"|'[^']*')\]/.exec(rest);
    if (quoted !== null) {
      const literal = quoted[1] ?? '';
      steps.push(literal.startsWith('"') ? (JSON.parse(literal) as string) : literal.slice(1, -1));
      i += quoted[0].length;
      continue;
    }
    throw new Error(`'{${source}}': unexpected '${rest[0]}' at offset ${i} (use .field, [0] or ["field"])`);
  }
  return { root: rootMatch[0], steps, source: text };
}

/** Parses a string with `{expr}` placeholders; `{{` and `}}` are literal braces. */
export function parseStringTemplate(text: string): StringTemplate {
  const parts: (string | Expr)[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '{' && text[i + 1] === '{') {
      literal += '{';
      i += 2;
    } else if (c === '}' && text[i + 1] === '}') {
      literal += '}';
      i += 2;
    } else if (c === '{') {
      const end = text.indexOf('}', i + 1);
      if (end < 0) throw new Error(`unclosed '{' at offset ${i} (write '{{' for a literal brace)`);
      const inner = text.slice(i + 1, end);
      if (inner.trim() === '') throw new Error(`empty placeholder '{}' at offset ${i}`);
      if (literal !== '') parts.push(literal);
      literal = '';
      parts.push(parseExpr(inner));
      i = end + 1;
    } else if (c === '}') {
      throw new Error(`unmatched '}' at offset ${i} (write '}}' for a literal brace)`);
    } else {
      literal += c;
      i += 1;
    }
  }
  if (literal !== '') parts.push(literal);
  if (parts.length === 0) return { kind: 'literal', value: '' };
  if (parts.length === 1 && typeof parts[0] === 'string') return { kind: 'literal', value: parts[0] };
  if (parts.length === 1 && typeof parts[0] !== 'string' && parts[0] !== undefined) return { kind: 'ref', expr: parts[0] };
  return { kind: 'text', parts };
}

/** Every expression a template reads, in order. */
export function exprsOf(template: ValueTemplate): Expr[] {
  switch (template.kind) {
    case 'literal':
    case 'json':
      return [];
    case 'ref':
      return [template.expr];
    case 'text':
      return template.parts.filter((p): p is Expr => typeof p !== 'string');
    case 'object':
      return template.entries.flatMap(([, t]) => exprsOf(t));
    case 'array':
      return template.items.flatMap(exprsOf);
    case 'pick':
      return exprsOf(template.from);
  }
}

/** Reads an expression; undefined when any step is missing (own properties only: no prototype reads). */
export function evaluateExpr(expr: Expr, scope: Scope): unknown {
  let value: unknown = scope.get(expr.root);
  for (const step of expr.steps) {
    if (value === null || typeof value !== 'object') return undefined;
    if (typeof step === 'number') {
      if (!Array.isArray(value)) return undefined;
      value = value[step];
    } else {
      if (Array.isArray(value) || !Object.hasOwn(value, step)) return undefined;
      value = (value as Record<string, unknown>)[step];
    }
  }
  return value;
}

/** Text form of a value inside a string: strings as is, other JSON as JSON, missing as ''. */
export function textOf(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** Renders a string template; `encode` is applied to each placeholder's text (URL-encoding in paths). */
export function renderString(template: StringTemplate, scope: Scope, encode: (s: string) => string = (s) => s): string {
  switch (template.kind) {
    case 'literal':
      return template.value;
    case 'ref':
      return encode(textOf(evaluateExpr(template.expr, scope)));
    case 'text': {
      let out = '';
      for (const part of template.parts) out += typeof part === 'string' ? part : encode(textOf(evaluateExpr(part, scope)));
      return out;
    }
  }
}

/** Renders a respond template to JSON; a missing value is null. */
export function renderValue(template: ValueTemplate, scope: Scope): JsonValue {
  switch (template.kind) {
    case 'literal':
    case 'text':
      return renderString(template, scope);
    case 'ref':
      return (evaluateExpr(template.expr, scope) ?? null) as JsonValue;
    case 'json':
      return template.value;
    case 'object': {
      const out: Record<string, JsonValue> = {};
      for (const [key, t] of template.entries) setKey(out, key, renderValue(t, scope));
      return out;
    }
    case 'array':
      return template.items.map((t) => renderValue(t, scope));
    case 'pick':
      return pick(renderValue(template.from, scope), template.fields);
  }
}

/** Selects fields from an object, or from each object of a list; other values pass through. */
export function pick(value: JsonValue, fields: readonly string[]): JsonValue {
  if (Array.isArray(value)) return value.map((item) => pick(item, fields));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, JsonValue> = {};
  for (const field of fields) if (Object.hasOwn(value, field)) setKey(out, field, value[field] as JsonValue);
  return out;
}

/**
 * `out[key] = value`, except that `__proto__` too becomes an own key: assigning it would set the prototype and the
 * key would vanish from the JSON. (JSON.parse makes it an own key too, so upstream objects can hold it.)
 */
export function setKey(out: Record<string, JsonValue>, key: string, value: JsonValue): void {
  if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

export function isName(text: string): boolean {
  return NAME.test(text);
}
