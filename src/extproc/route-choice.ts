// Which ext_proc route a request takes. The route decides validation, header rules and the cache, so it is chosen on
// the path as ext_authz reads it (src/shared/normalize-path.ts), not on the text Envoy forwards: `/api/x/../orders`
// is `/api/orders` to the upstream, and so it is here.
//
// A path that normalization refuses (`/api/orders;x`, `/api/orders%2Fx`, `/x/%252e%252e/api/orders`) has no one
// reading: Tomcat serves the first as `/api/orders`, an upstream that decodes twice the third. Taking any one reading
// would let a request skip the validation of a route an upstream still serves it on, so every reading is asked:
// when one of them lands on a route that validates, the request is refused (400 ambiguous-path); otherwise it goes
// on with the route all readings agree on, or with none.

import type { ExtprocRoute, Method } from './config.js';
import type { SplitPath } from './cache-key.js';
import { foldPathCase, upstreamReadings } from '../shared/normalize-path.js';

export type RouteChoice =
  | { readonly kind: 'route'; readonly route: ExtprocRoute | undefined }
  /** A refused path some reading of which takes `validating`: answered 400, never passed on. */
  | { readonly kind: 'ambiguous'; readonly reason: string; readonly route: ExtprocRoute; readonly reading: string }
  /** A refused path none of whose readings needs validation: `route` is the one every reading takes, else none. */
  | { readonly kind: 'ambiguous_passed'; readonly reason: string; readonly route: ExtprocRoute | undefined };

/**
 * The route of a request: the one Envoy names (x-portcullis-route; an unknown name falls back to matching), which no
 * reading of the path changes; else the first route matching the normalized path; for a path normalization refuses,
 * see the file comment.
 */
export function chooseExtprocRoute(routes: readonly ExtprocRoute[], split: SplitPath, method: string, hint: string | undefined): RouteChoice {
  const named = hint === undefined ? undefined : routes.find((r) => r.name === hint);
  if (named) return { kind: 'route', route: named };
  if (split.refused === undefined) return { kind: 'route', route: routeOf(routes, split.path, method) };
  // Rare (Envoy's normalize_path leaves few such paths), so the readings are worked out only here.
  let agreed: ExtprocRoute | undefined | null = null;
  for (const reading of upstreamReadings(split.path)) {
    const route = routeOf(routes, reading, method);
    if (route?.validate !== undefined) return { kind: 'ambiguous', reason: split.refused, route, reading };
    agreed = agreed === null || agreed === route ? route : undefined;
  }
  return { kind: 'ambiguous_passed', reason: split.refused, route: agreed ?? undefined };
}

/**
 * The route of a normalized path. A path ending in `/` whose own route does not validate takes the validating route of
 * the path without it: `path: /api/orders` is exact, yet Express without strict routing and Spring MVC before 6 serve
 * `POST /api/orders/` as `/api/orders`, and its body would reach them unvalidated.
 */
function routeOf(routes: readonly ExtprocRoute[], path: string, method: string): ExtprocRoute | undefined {
  const route = selectExtprocRoute(routes, path, method, undefined);
  if (route?.validate !== undefined || path.length < 2 || !path.endsWith('/')) return route;
  const bare = selectExtprocRoute(routes, path.slice(0, -1), method, undefined);
  return bare?.validate !== undefined ? bare : route;
}

/**
 * The route for a normalized path: the one Envoy names (an unknown name falls back to matching), else the first whose
 * path and methods match. Exported for `portcullis check-envoy` (src/envoycheck/), which must choose exactly as a
 * stream does.
 */
export function selectExtprocRoute(routes: readonly ExtprocRoute[], path: string, method: string, hint: string | undefined): ExtprocRoute | undefined {
  if (hint !== undefined) {
    const named = routes.find((r) => r.name === hint);
    if (named) return named;
  }
  let folded: string | undefined;
  return routes.find((r) => {
    if (r.match.methods !== undefined && !r.match.methods.includes(method as Method)) return false;
    return pathMatches(r, r.match.ignoreCase ? (folded ??= foldPathCase(path)) : path);
  });
}

/** Whether a normalized path (folded for an ignore_case route) is the route's: exact `path`, or `path_prefix` as a string prefix. */
function pathMatches(route: ExtprocRoute, path: string): boolean {
  if (route.matchPath !== undefined) return path === route.matchPath;
  if (route.matchPrefix !== undefined) return path.startsWith(route.matchPrefix);
  return true;
}

/** The route of a normalized path for the cache (cacheRouteFor): `path` folded when the route ignores case. */
export function pathMatchesFolding(route: ExtprocRoute, path: string): boolean {
  return pathMatches(route, route.match.ignoreCase ? foldPathCase(path) : path);
}
