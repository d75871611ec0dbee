import { httpDateMs } from './http-date.js';

/**
 * A `Retry-After` header (RFC 9110 §10.2.3) → how many milliseconds from `nowMs` the server asked to be left alone,
 * or undefined when the value is absent or not one of the forms the RFC defines (the caller then picks its own
 * delay, as if the header were not there). A date already past is 0. No upper bound here: the caller caps it (a
 * server that says `999999` must not switch off a dependency for days).
 *
 * The forms: delay-seconds (`1*DIGIT`: no sign, no fraction, no exponent) or an HTTP-date in any of its three forms,
 * which a recipient must accept (§5.6.7; http-date.ts).
 */
export function retryAfterMs(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const atMs = httpDateMs(text, nowMs);
  return atMs === undefined ? undefined : Math.max(0, atMs - nowMs);
}
