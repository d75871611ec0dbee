/**
 * Query parameters that carry a secret: ioredis turns `?password=`, `?sentinelPassword=` into connection options, and
 * HTTP URLs carry `?access_token=`, `?api_key=`, `?sig=`.
 */
const SECRET_PARAM = /pass|secret|token|auth|key|sig|credential/i;

/**
 * The user info of a URL as WHATWG URL (which ioredis and undici parse with) reads it: the authority ends at the first
 * `/`, `?` or `#` and the host follows the last `@` before it, so a password may hold `@` and whitespace (ioredis
 * takes it) but never those three.
 */
const USER_INFO = /([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/gi;

/**
 * The user info of a URL that does not parse: a password with an unencoded `/`, `?` or `#` ends the authority early
 * for WHATWG URL (so USER_INFO stops short of it), yet it is what the operator wrote. Everything up to the last `@`
 * of the word goes.
 */
const USER_INFO_UNPARSED = /([a-z][a-z0-9+.-]*:\/\/)[^\s'"`<>]*@/gi;

/**
 * A query parameter. The value runs to the next `&` or the end, whitespace included (ioredis takes it all as the
 * option); in a log line it also stops before another URL, which is redacted on its own.
 */
const QUERY_PARAM = /([?&])([^=&#\s]+)=((?:(?!\s*[a-z][a-z0-9+.-]*:\/\/)[^&])*)/gi;

/**
 * Text with the credentials of every URL in it hidden: the user info (`user:password@`, `:password@`, `password@`,
 * also in a URL that does not parse) and secret-looking query parameters. For anything that may quote a URL an
 * operator wrote: config errors, /config, connection errors. Works on `host:port` seeds too (nothing to hide).
 */
export function redactUrlCredentials(text: string): string {
  if (!text.includes('://') && !text.includes('=')) return text;
  return text
    .replace(USER_INFO, '$1***@')
    .replace(USER_INFO_UNPARSED, '$1***@')
    .replace(QUERY_PARAM, (whole, sep: string, name: string) => (SECRET_PARAM.test(decodeParamName(name)) ? `${sep}${name}=***` : whole));
}

/** A parameter name as a URL parser sees it (URLSearchParams decodes it): `p%61ssword` is `password`. */
function decodeParamName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}
