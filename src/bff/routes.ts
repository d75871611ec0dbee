/**
 * Endpoint path templates (`/bff/web/dashboard/{userId}`): a parameter is a whole path segment.
 * Matching is on decoded segments, so `/bff/users/a%2Fb` gives userId `a/b`; the composer encodes it
 * again when it builds a call's path.
 */

export type Segment = { readonly kind: 'static'; readonly text: string } | { readonly kind: 'param'; readonly name: string };

export interface Route {
  readonly segments: readonly Segment[];
}

/** Parses a path template; throws a message when it is not one. */
export function parseRoute(text: string): Route {
  if (!text.startsWith('/')) throw new Error(`path must start with '/', got '${text}'`);
  if (/[?#]/.test(text)) throw new Error(`path must not contain '?' or '#', got '${text}'`);
  const seen = new Set<string>();
  const segments = text.slice(1).split('/').map((part): Segment => {
    const param = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(part);
    if (param !== null) {
      const name = param[1] ?? '';
      if (seen.has(name)) throw new Error(`path parameter '${name}' appears twice`);
      seen.add(name);
      return { kind: 'param', name };
    }
    if (/[{}]/.test(part)) throw new Error(`'${part}': a path parameter must be a whole segment like '{userId}'`);
    return { kind: 'static', text: part };
  });
  return { segments };
}

/** Two routes with this key match exactly the same paths. */
export function routeShape(route: Route): string {
  return route.segments.map((s) => (s.kind === 'static' ? `/${s.text}` : '/{}')).join('');
}

/**
 * Orders routes so that the first match is the most specific: at the first segment where two routes
 * differ, a static segment wins over a parameter (`/users/me` before `/users/{id}`).
 */
export function bySpecificity(a: Route, b: Route): number {
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const x = a.segments[i];
    const y = b.segments[i];
    if (x?.kind !== y?.kind) return x?.kind === 'static' ? -1 : 1;
  }
  return a.segments.length - b.segments.length;
}

export type RouteMatch = { readonly ok: true; readonly params: ReadonlyMap<string, string> } | { readonly ok: false; readonly badEncoding: boolean };

/** Matches a raw (still percent-encoded) pathname against a route. */
export function matchRoute(route: Route, rawSegments: readonly string[]): RouteMatch {
  if (rawSegments.length !== route.segments.length) return { ok: false, badEncoding: false };
  const params = new Map<string, string>();
  for (let i = 0; i < rawSegments.length; i++) {
    const segment = route.segments[i];
    const raw = rawSegments[i] ?? '';
    if (segment === undefined) return { ok: false, badEncoding: false };
    if (segment.kind === 'static') {
      if (raw !== segment.text && safeDecode(raw) !== segment.text) return { ok: false, badEncoding: false };
      continue;
    }
    if (raw === '') return { ok: false, badEncoding: false };
    const decoded = safeDecode(raw);
    if (decoded === undefined) return { ok: false, badEncoding: true };
    params.set(segment.name, decoded);
  }
  return { ok: true, params };
}

export function safeDecode(text: string): string | undefined {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}
