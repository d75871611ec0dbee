import type { BffCall, BffEndpoint } from './config.js';
import { renderValue, type JsonValue, type Scope } from './template.js';
import type { FailureReason } from './upstream-client.js';

/**
 * Pure degradation and merging: what a call's result means for the answer, and the answer itself.
 */

export type CallResult =
  | { readonly kind: 'ok'; readonly value: unknown }
  | { readonly kind: 'failed'; readonly reason: FailureReason; readonly status?: number; readonly detail: string }
  /** The call could not be built: a value its path reads is missing. */
  | { readonly kind: 'skipped'; readonly missing: string };

export interface Settled {
  /** What templates reading this call see. */
  readonly value: unknown;
  /** The answer is incomplete here. */
  readonly degraded: boolean;
  /** A required call is missing: there is no answer. */
  readonly fatal: boolean;
}

/**
 * - success: its value;
 * - failure: the on_error fallback, degraded; with no fallback the call is required and fatal;
 * - skipped: a path input is missing. When that is because a dependency degraded, this part degrades
 *   too (fatal if required); when a dependency legitimately had nothing (`orders: []`), there is
 *   nothing to fetch: the fallback or null, not degraded.
 */
export function settle(call: BffCall, result: CallResult, dependencyDegraded: boolean): Settled {
  switch (result.kind) {
    case 'ok':
      return { value: result.value, degraded: false, fatal: false };
    case 'failed':
      return call.fallback ? { value: call.fallback.value, degraded: true, fatal: false } : { value: undefined, degraded: true, fatal: true };
    case 'skipped':
      return {
        value: call.fallback?.value ?? null,
        degraded: dependencyDegraded,
        fatal: dependencyDegraded && call.fallback === undefined,
      };
  }
}

/** The answer: the respond template over the request's scope, plus `_degraded` naming what is incomplete. */
export function assemble(endpoint: BffEndpoint, scope: Scope, degraded: readonly string[]): JsonValue {
  const body = renderValue(endpoint.respond, scope);
  if (degraded.length === 0 || body === null || typeof body !== 'object' || Array.isArray(body)) return body;
  return { ...body, _degraded: [...degraded] };
}
