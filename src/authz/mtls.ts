import { X509Certificate } from 'node:crypto';
import type { AddressSet } from './network.js';
import { isUsableSubject } from './subject.js';
import type { CheckInput, Outcome } from './types.js';

export interface MtlsEvaluatorSettings {
  readonly principalsHeader: string;
  /** Peers whose forwarded-certificate header is believed (a TLS-terminating proxy in front of Envoy). */
  readonly trusted: AddressSet;
  readonly anyTrusted: boolean;
}

/**
 * The principal from an x-forwarded-client-cert value: its last element, URI SAN, else DNS SAN, else Subject, the
 * same precedence Envoy uses for source.principal. The last element is the only one the trusted proxy wrote (Envoy's
 * APPEND_FORWARD appends the current client's element after whatever arrived); the ones before may be the client's.
 * A value with an unbalanced quote gives no principal: the client's open quote would swallow the proxy's element and
 * leave the client's own text as the last element.
 *
 * Envoy writes URI= and DNS= values unquoted and unescaped (envoyproxy/envoy#32945), so a URI SAN holding `;` or `,`
 * reads as other keys or another element: `URI=spiffe://example.org/ops;x` would name spiffe://example.org/ops.
 * When the element carries the certificate itself (Cert=, URL-encoded PEM, which no SAN text can break), the
 * principal is read from that certificate instead, and an element whose Hash= is not that certificate's names
 * nobody; once any element carries Cert=, a last element without one names nobody (it may be the tail of a URI SAN
 * holding `,`). Quoted values are taken as Envoy writes them, without unescaping: Envoy quotes the subject without escaping
 * it, relying on RFC 2253's own escapes (`\"`, `\\`), so the subject read here is spelled as in source.principal.
 */
export function principalFromXfcc(value: string): string | undefined {
  const elements = splitOutsideQuotes(value, ',');
  if (elements === undefined) return undefined;
  const last = elements[elements.length - 1];
  if (last === undefined) return undefined;
  const pairs = splitOutsideQuotes(last, ';');
  if (pairs === undefined) return undefined;
  const fields = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim().toLowerCase();
    let v = pair.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    if (!fields.has(key)) fields.set(key, v);
  }
  const cert = fields.get('cert');
  if (cert !== undefined) return principalFromCertificate(cert, fields.get('hash'), fields.get('subject'));
  // A URI SAN holding `,URI=…` splits the proxy's element in two, and the tail, without the Cert= that came before
  // it, would be read as the proxy's: a proxy that forwards certificates forwards one in every element it writes.
  if (elements.some(carriesCert)) return undefined;
  return fields.get('uri') || fields.get('dns') || fields.get('subject') || undefined;
}

function carriesCert(element: string): boolean {
  return (splitOutsideQuotes(element, ';') ?? []).some((pair) => /^\s*cert\s*=/i.test(pair));
}

/** URI SAN, else DNS SAN, else the element's Subject, of an XFCC Cert= value; undefined when it is not one. */
function principalFromCertificate(urlEncodedPem: string, hash: string | undefined, subject: string | undefined): string | undefined {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(decodeURIComponent(urlEncodedPem));
  } catch {
    return undefined;
  }
  if (hash !== undefined && hash.toLowerCase() !== certificate.fingerprint256.replaceAll(':', '').toLowerCase()) return undefined;
  const names = subjectAltNames(certificate.subjectAltName ?? '');
  if (names === undefined) return undefined;
  const first = (type: string): string | undefined => names.find(([t]) => t === type)?.[1];
  return first('URI') ?? first('DNS') ?? (subject || undefined);
}

/**
 * node:crypto's subjectAltName text, in certificate order: `TYPE:value` entries joined by ", ", a value holding a
 * character that would make that ambiguous (`,`, `"`, `\`, …) written as a JSON string. Undefined when unreadable.
 */
export function subjectAltNames(text: string): [string, string][] | undefined {
  const out: [string, string][] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) return undefined;
    const type = text.slice(i, colon);
    let end: number;
    let value: string;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (end >= text.length) return undefined;
      end += 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        return undefined;
      }
    } else {
      const comma = text.indexOf(', ', colon + 1);
      end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    out.push([type, value]);
    if (end === text.length) break;
    if (!text.startsWith(', ', end)) return undefined;
    i = end + 2;
  }
  return out;
}

/**
 * Splits on `separator` outside double quotes; undefined when a quote is left open. A quote after an odd number of
 * backslashes is text, not a delimiter, as Envoy's own XFCC reader counts them (a subject ending in an escaped
 * backslash, `CN=a\\`, still closes its quotes).
 */
function splitOutsideQuotes(s: string, separator: string): string[] | undefined {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  let backslashes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"' && backslashes % 2 === 0) quoted = !quoted;
    backslashes = c === '\\' ? backslashes + 1 : 0;
    if (c === separator && !quoted) {
      out.push(current);
      current = '';
    } else current += c;
  }
  if (quoted) return undefined;
  if (current.trim() !== '') out.push(current);
  return out;
}

/**
 * mTLS identity: Envoy's source.principal (present only on a TLS connection with a verified client certificate,
 * per its DownstreamTlsContext); a forwarded-certificate header only from a configured trusted peer.
 */
export function evaluateMtls(input: CheckInput, settings: MtlsEvaluatorSettings): Outcome {
  let principal = input.sourcePrincipal;
  let from = 'source.principal';
  if (principal === '' && settings.anyTrusted) {
    const header = input.headers.get(settings.principalsHeader);
    if (header !== undefined && settings.trusted.has(input.sourceAddress)) {
      principal = principalFromXfcc(header) ?? '';
      from = settings.principalsHeader;
    }
  }
  if (principal === '') return { kind: 'absent', detail: 'no client certificate' };
  if (!isUsableSubject(principal)) return { kind: 'invalid', reason: 'mtls_principal_invalid', detail: `client certificate principal (from ${from}) is blank or not fit for a header` };
  return {
    kind: 'success',
    detail: `client certificate ${principal} (from ${from})`,
    identity: { method: 'mtls', subject: principal, principal, scopes: [], roles: [], claims: {} },
  };
}
