import { readFileSync } from 'node:fs';

/** A ghz data file's CheckRequests (protojson, headers as a map), in the shape the descriptor set's codec takes. */
export function readCheckRequests(file: string): unknown[] {
  type Message = { attributes: { request: { http: { headers: Record<string, string> | { key: string; value: string }[] } } } };
  return (JSON.parse(readFileSync(file, 'utf8')) as Message[]).map((m) => {
    const http = m.attributes.request.http;
    // The descriptor set's maps are repeated { key, value } entries.
    http.headers = Object.entries(http.headers).map(([key, value]) => ({ key, value }));
    return m;
  });
}
