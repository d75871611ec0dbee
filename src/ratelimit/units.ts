/**
 * Time units of RateLimitResponse.RateLimit.Unit, with the numbers Envoy sends on the wire.
 * WEEK (7) is newer than the proto copy we build from; src/server/protos.ts adds it there.
 */
export const UNIT_NUMBERS = {
  UNKNOWN: 0,
  SECOND: 1,
  MINUTE: 2,
  HOUR: 3,
  DAY: 4,
  MONTH: 5,
  YEAR: 6,
  WEEK: 7,
} as const;
export type Unit = Exclude<keyof typeof UNIT_NUMBERS, 'UNKNOWN'>;

/**
 * Seconds per unit, as envoyproxy/ratelimit counts them: months are 30 days, years 365, and every
 * window is aligned to the Unix epoch (so weeks start on Thursdays, UTC).
 */
export const UNIT_SECONDS: Readonly<Record<Unit, number>> = Object.freeze({
  SECOND: 1,
  MINUTE: 60,
  HOUR: 3600,
  DAY: 86400,
  WEEK: 604800,
  MONTH: 2592000,
  YEAR: 31536000,
});

/** Parses a descriptor file's `unit` the way envoyproxy/ratelimit does: case-insensitive enum name. */
export function parseUnit(text: string): Unit | undefined {
  const upper = text.toUpperCase();
  return upper in UNIT_SECONDS ? (upper as Unit) : undefined;
}

export function unitFromNumber(n: number): Unit | undefined {
  for (const [name, value] of Object.entries(UNIT_NUMBERS)) {
    if (value === n && name !== 'UNKNOWN') return name as Unit;
  }
  return undefined;
}

/** Start of the epoch-aligned window containing `nowSeconds`. */
export function windowStart(nowSeconds: number, windowSeconds: number): number {
  return Math.floor(nowSeconds / windowSeconds) * windowSeconds;
}

/** Whole seconds until the window containing `nowSeconds` ends: between 1 and windowSeconds. */
export function secondsUntilWindowEnd(nowSeconds: number, windowSeconds: number): number {
  return windowSeconds - (nowSeconds % windowSeconds);
}
