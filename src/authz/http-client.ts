import { request } from 'undici';
import type { HttpClient } from './ports.js';

/** Responses bigger than this are refused: a JWKS or an introspection answer is a few KiB. */
const MAX_BODY_BYTES = 1 << 20;

async function readJson(body: AsyncIterable<Buffer>): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error(`response larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text.trim() === '' ? undefined : (JSON.parse(text) as unknown);
}

/** undici client; every call is bounded by the caller's signal. Redirects are not followed. */
export function createHttpClient(): HttpClient {
  return {
    async getJson(url, signal) {
      const response = await request(url, { method: 'GET', signal, headers: { accept: 'application/json' } });
      if (response.statusCode < 200 || response.statusCode > 299) {
        await response.body.dump();
        throw new Error(`GET ${new URL(url).origin}${new URL(url).pathname} answered ${response.statusCode}`);
      }
      return readJson(response.body);
    },
    async postForm(url, form, headers, signal) {
      const response = await request(url, {
        method: 'POST',
        signal,
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(form as Record<string, string>).toString(),
      });
      let body: unknown;
      try {
        body = await readJson(response.body);
      } catch {
        body = undefined;
      }
      return { status: response.statusCode, body };
    },
  };
}
