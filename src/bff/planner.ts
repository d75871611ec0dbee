/**
 * Orders an endpoint's calls from their dependencies (`after` plus every call a template reads).
 * Pure: the config compiler uses it to reject cycles and to show the waves; the composer starts each
 * call as soon as the calls it depends on have settled, which is never later than its wave.
 */

export type Plan =
  | { readonly ok: true; readonly waves: readonly (readonly string[])[] }
  | { readonly ok: false; readonly cycle: readonly string[] };

/** `deps`: call name → names of the calls it waits for (every name must be a key). */
export function planWaves(deps: ReadonlyMap<string, readonly string[]>): Plan {
  const waves: string[][] = [];
  const done = new Set<string>();
  let remaining = [...deps.keys()];
  while (remaining.length > 0) {
    const wave = remaining.filter((name) => (deps.get(name) ?? []).every((d) => done.has(d)));
    if (wave.length === 0) return { ok: false, cycle: findCycle(deps, remaining) };
    for (const name of wave) done.add(name);
    waves.push(wave);
    remaining = remaining.filter((name) => !done.has(name));
  }
  return { ok: true, waves };
}

/** A cycle among `stuck` as a path that ends where it starts: a → b → a. */
function findCycle(deps: ReadonlyMap<string, readonly string[]>, stuck: readonly string[]): string[] {
  const inStuck = new Set(stuck);
  const start = stuck[0] ?? '';
  const path: string[] = [];
  const seenAt = new Map<string, number>();
  let current = start;
  // Every stuck call waits for at least one stuck call, so walking such edges must revisit a node.
  while (!seenAt.has(current)) {
    seenAt.set(current, path.length);
    path.push(current);
    current = (deps.get(current) ?? []).find((d) => inStuck.has(d)) ?? start;
  }
  return [...path.slice(seenAt.get(current)), current];
}
