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
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\"/g, '"');
    if (!fields.has(key)) fields.set(key, v);
  }
  return fields.get('uri') || fields.get('dns') || fields.get('subject') || undefined;
}

/** Splits on `separator` outside double quotes; undefined when a quote is left open. */
function splitOutsideQuotes(s: string, separator: string): string[] | undefined {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && quoted && i + 1 < s.length) {
      current += c + s[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
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
