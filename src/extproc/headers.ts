// Headers in domain form: an ordered list of [lower-case name, value] pairs, duplicates kept as separate entries
// (set-cookie must never be joined). Values are latin1 strings, so every byte Envoy sent round-trips.

export type Header = readonly [name: string, value: string];
export type HeaderList = readonly Header[];

/**
 * Text (a config literal, an identity claim, a protobuf `string`) as a header value in this module's form: its UTF-8
 * bytes, one char per byte. Without it a char past U+00FF would be cut to its low byte when written as latin1: `č`
 * (U+010D) would become a CR.
 */
export function textAsHeaderValue(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? text : Buffer.from(text, 'utf8').toString('latin1');
}

// Indexed loops: these run several times per message, and destructuring each pair cost an iterator per pair in the
// allocation profile.
export function headerValue(headers: HeaderList, name: string): string | undefined {
  for (let i = 0; i < headers.length; i++) if (headers[i]![0] === name) return headers[i]![1];
  return undefined;
}

/** Every value of `name`, comma-joined (RFC 9110 §5.3), for list-valued headers like cache-control or vary. */
export function headerValues(headers: HeaderList, name: string): string | undefined {
  let joined: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    if (headers[i]![0] === name) joined = joined === undefined ? headers[i]![1] : `${joined}, ${headers[i]![1]}`;
  }
  return joined;
}

/** Every line of `name`, in order, for a header that is no list (traceparent), where two lines are not one value. */
export function headerLines(headers: HeaderList, name: string): string[] {
  const lines: string[] = [];
  for (let i = 0; i < headers.length; i++) if (headers[i]![0] === name) lines.push(headers[i]![1]);
  return lines;
}

export function hasHeader(headers: HeaderList, name: string): boolean {
  return headers.some(([n]) => n === name);
}

/** One header change as Envoy applies it: `append` false overwrites every value of the header. */
export interface HeaderSet {
  readonly name: string;
  readonly value: string;
  readonly append: boolean;
}

export interface HeaderMutation {
  readonly set: readonly HeaderSet[];
  readonly remove: readonly string[];
}

export const NO_MUTATION: HeaderMutation = Object.freeze({ set: [], remove: [] });

/** Builds a mutation; later sets of the same header (append false) replace earlier ones, removes drop earlier sets. */
export class MutationBuilder {
  private readonly sets: HeaderSet[] = [];
  private readonly removes = new Set<string>();
  set(name: string, value: string): this {
    for (let i = this.sets.length - 1; i >= 0; i--) if (this.sets[i]!.name === name) this.sets.splice(i, 1);
    this.removes.delete(name);
    this.sets.push({ name, value, append: false });
    return this;
  }
  append(name: string, value: string): this {
    this.removes.delete(name);
    this.sets.push({ name, value, append: true });
    return this;
  }
  remove(name: string): this {
    for (let i = this.sets.length - 1; i >= 0; i--) if (this.sets[i]!.name === name) this.sets.splice(i, 1);
    this.removes.add(name);
    return this;
  }
  build(): HeaderMutation {
    return { set: [...this.sets], remove: [...this.removes] };
  }
}

/** Applies a mutation to a header list the way Envoy does (for cached responses, which Envoy never sees). */
export function applyMutation(headers: HeaderList, mutation: HeaderMutation): Header[] {
  let out: Header[] = headers.filter(([n]) => !mutation.remove.includes(n));
  for (const s of mutation.set) {
    if (!s.append) out = out.filter(([n]) => n !== s.name);
    out.push([s.name, s.value]);
  }
  return out;
}
