import { request, type Dispatcher } from 'undici';
import { nestsDeeperThan } from '../shared/json-depth.js';
import { HttpStatusError, UnreadableBodyError, type HttpClient } from './ports.js';

/** Responses bigger than this are refused: a JWKS or an introspection answer is a few KiB. */
export const MAX_BODY_BYTES = 1 << 20;
/**
 * Deeper JSON is refused. A JWKS, a discovery document or an introspection answer is a few levels deep (Keycloak's
 * `resource_access.{client}.roles` is three); a document nested a hundred thousand deep parses, but whatever reads
 * it recursively afterwards (String() of a claim, JSON.stringify) overflows the stack.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Drops a body unread. undici's body, destroyed without an error, emits an AbortError of its own, which with no
 * listener is an uncaught exception: the process would die of an answer it refused.
 */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

async function readJson(response: Dispatcher.ResponseData): Promise<unknown> {
  const { body, headers } = response;
  // undici does not decode content-encoding (fetch would): a compressed answer could only fail as "not JSON".
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && String(encoding).toLowerCase() !== 'identity') {
    discard(body);
    throw new UnreadableBodyError(`response has content-encoding ${excerpt(String(encoding))}, which is not read`);
  }
  // A declared length over the cap is refused before a byte is read, not after the deadline.
  const declared = Number(headers['content-length']);
  if (declared > MAX_BODY_BYTES) {
    discard(body);
    throw new UnreadableBodyError(`response larger than ${MAX_BODY_BYTES} bytes (content-length ${declared})`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new UnreadableBodyError(`response larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  const text = bytes.toString('utf8');
  if (text.trim() === '') return undefined;
  if (nestsDeeperThan(bytes, MAX_JSON_DEPTH)) throw new UnreadableBodyError(`response JSON nested deeper than ${MAX_JSON_DEPTH}`);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UnreadableBodyError(`response is not JSON (content-type ${excerpt(String(headers['content-type'] ?? 'none'))}): ${(error as Error).message}`);
  }
}

const excerpt = (value: string): string => JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);

/** A 429's or 503's Retry-After as sent (the first, if repeated), for the caller's backoff; undefined for other statuses. */
function retryAfterOf(response: Dispatcher.ResponseData): string | undefined {
  if (response.statusCode !== 429 && response.statusCode !== 503) return undefined;
  const value = response.headers['retry-after'];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * undici client; every call, body included, is bounded by the caller's signal. Redirects are not followed (undici's
 * request follows none without its redirect interceptor): a 3xx is an answer like any other non-2xx.
 */
export function createHttpClient(): HttpClient {
  return {
    async getJson(url, signal) {
      const response = await request(url, { method: 'GET', signal, headers: { accept: 'application/json', 'accept-encoding': 'identity' } });
      if (response.statusCode < 200 || response.statusCode > 299) {
        await response.body.dump();
        throw new HttpStatusError(`GET ${new URL(url).origin}${new URL(url).pathname} answered ${response.statusCode}`, response.statusCode, retryAfterOf(response));
      }
      return readJson(response);
    },
    async postForm(url, form, headers, signal) {
      const response = await request(url, {
        method: 'POST',
        signal,
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'accept-encoding': 'identity' },
        body: new URLSearchParams(form as Record<string, string>).toString(),
      });
      // An error status is reported as such, whatever its body; a 2xx body that cannot be read is the failure.
      if (response.statusCode < 200 || response.statusCode > 299) {
        await response.body.dump();
        return { status: response.statusCode, body: undefined, retryAfter: retryAfterOf(response) };
      }
      return { status: response.statusCode, body: await readJson(response) };
    },
  };
}
