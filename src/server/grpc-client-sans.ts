import { Metadata, ServerInterceptingCall, status, type ServerInterceptingCallInterface, type ServerInterceptor } from '@grpc/grpc-js';
import type { X509Certificate } from 'node:crypto';
import type { Clock } from '../shared/clock.js';

// server.grpc.tls.client_sans: calls from a client certificate (verified against client_ca_file at the handshake)
// whose identity is not listed are refused. The check runs once per connection: asking a TLS socket for its peer's
// certificate builds the certificate object anew (getPeerCertificate: ~19 µs, as much as a whole cached ext_authz
// Check), so the verdict is kept for the HTTP/2 session the call came on.

/** The identities allowed: URI SANs exactly as written, DNS names without regard to case. */
export interface ClientSanPolicy {
  readonly uris: ReadonlySet<string>;
  readonly dnsNames: ReadonlySet<string>;
}

/** client_sans entries (checked by clientSanProblem): one with `://` is a URI, anything else a DNS name. */
export function clientSanPolicy(entries: readonly string[]): ClientSanPolicy {
  return {
    uris: new Set(entries.filter((e) => e.includes('://'))),
    dnsNames: new Set(entries.filter((e) => !e.includes('://')).map((e) => e.toLowerCase())),
  };
}

/**
 * The entries of a certificate's subjectAltName as Node renders it (`DNS:a, URI:spiffe://x, IP Address:1.2.3.4`). A
 * value holding a comma, a quote or a control character is written as a JSON string (`DNS:"a, b"`, Node's escaping
 * since CVE-2021-44532), and read back as one here, so no crafted name can pass for two entries.
 */
export function parseSubjectAltNames(text: string | undefined): { readonly type: string; readonly value: string }[] {
  const entries: { type: string; value: string }[] = [];
  if (text === undefined || text === '') return entries;
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(':', at);
    if (colon < 0) break;
    const type = text.slice(at, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      // A JSON string: its end is the first quote that no backslash escapes.
      let i = colon + 2;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, i + 1)) as string;
      } catch {
        return entries;
      }
      end = i + 1;
    } else {
      const comma = text.indexOf(', ', colon + 1);
      end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
    }
    entries.push({ type, value });
    at = end + 2;
  }
  return entries;
}

/** Whether a certificate with this subjectAltName is one of the identities allowed. */
export function sanAllowed(policy: ClientSanPolicy, subjectAltName: string | undefined): boolean {
  return parseSubjectAltNames(subjectAltName).some(({ type, value }) =>
    (type === 'URI' && policy.uris.has(value)) || (type === 'DNS' && policy.dnsNames.has(value.toLowerCase())));
}

export type ClientRefusal = 'no_verified_certificate' | 'identity_not_allowed';

export type PeerVerdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: ClientRefusal; readonly subjectAltName: string | undefined };

const ALLOWED: PeerVerdict = Object.freeze({ allowed: true });

/** The verdict for a connection's peer: its verified certificate's SANs against the policy. */
export function peerVerdict(policy: ClientSanPolicy, peer: { readonly authorized: boolean; readonly subjectAltName: string | undefined; readonly hasCertificate: boolean }): PeerVerdict {
  if (!peer.authorized || !peer.hasCertificate) return { allowed: false, reason: 'no_verified_certificate', subjectAltName: undefined };
  return sanAllowed(policy, peer.subjectAltName) ? ALLOWED : { allowed: false, reason: 'identity_not_allowed', subjectAltName: peer.subjectAltName };
}

/** What a TLS socket says of its peer (a TLSSocket, or the proxy an HTTP/2 session hands out for it). */
interface PeerSocket {
  readonly authorized?: boolean;
  getPeerX509Certificate?(): X509Certificate | undefined;
}

/**
 * The HTTP/2 session a call came on, when this interceptor is the first (it wraps grpc-js' own call object, whose
 * `stream` is not part of its API). Without it (another grpc-js), every call is checked on its own through the
 * public getAuthContext(): slower, never less strict.
 */
function sessionOf(call: ServerInterceptingCallInterface): { readonly socket?: PeerSocket } | undefined {
  const session = (call as { stream?: { session?: { socket?: PeerSocket } } }).stream?.session;
  return typeof session === 'object' && session !== null ? session : undefined;
}

function socketVerdict(policy: ClientSanPolicy, socket: PeerSocket | undefined): PeerVerdict {
  const authorized = socket?.authorized === true;
  const certificate = authorized ? socket?.getPeerX509Certificate?.() : undefined;
  return peerVerdict(policy, { authorized, hasCertificate: certificate !== undefined, subjectAltName: certificate?.subjectAltName });
}

function authContextVerdict(policy: ClientSanPolicy, call: ServerInterceptingCallInterface): PeerVerdict {
  const context = call.getAuthContext();
  const certificate = context.sslPeerCertificate;
  return peerVerdict(policy, { authorized: context.transportSecurityType === 'ssl', hasCertificate: certificate !== undefined, subjectAltName: certificate?.subjectaltname });
}

/**
 * A server interceptor refusing calls whose client certificate is not allowed: PERMISSION_DENIED when the client
 * is identified but not listed (gRPC's code for a known caller without permission), UNAUTHENTICATED when no verified
 * certificate came with the call (the handshake requires one: only a grpc-js change would get here). Neither answer
 * names the identities allowed. `sessions` counts the verdicts worked out (one per connection; tests read it).
 */
export function clientSanInterceptor(policy: ClientSanPolicy, onRefused: (verdict: Exclude<PeerVerdict, { allowed: true }>, peer: string) => void, sessions?: { computed: number }): ServerInterceptor {
  const verdicts = new WeakMap<object, PeerVerdict>();
  return (_method, call) => {
    const session = sessionOf(call);
    let verdict = session === undefined ? undefined : verdicts.get(session);
    if (verdict === undefined) {
      verdict = session !== undefined ? socketVerdict(policy, session.socket) : authContextVerdict(policy, call);
      if (sessions !== undefined) sessions.computed++;
      if (session !== undefined) verdicts.set(session, verdict);
    }
    if (verdict.allowed) return call as ServerInterceptingCall;
    const refused = verdict;
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata() {
            onRefused(refused, call.getPeer());
            call.sendStatus({
              code: refused.reason === 'identity_not_allowed' ? status.PERMISSION_DENIED : status.UNAUTHENTICATED,
              details: refused.reason === 'identity_not_allowed'
                ? 'client certificate identity not allowed (server.grpc.tls.client_sans)'
                : 'a verified client certificate is required',
              metadata: new Metadata(),
            });
          },
        });
      },
    });
  };
}

/**
 * Counts every refusal (`count`) and logs at most one line per `intervalMs` (`log`, with how many were refused since
 * the last line): a misconfigured Envoy sends hundreds of calls a second, each refused.
 */
export class RefusalLog {
  private lastLogMs = Number.NEGATIVE_INFINITY;
  private unlogged = 0;
  constructor(
    private readonly clock: Clock,
    private readonly count: (reason: ClientRefusal) => void,
    private readonly log: (entry: { reason: ClientRefusal; peer: string; subjectAltName: string | undefined; refusedSinceLastLog: number }) => void,
    private readonly intervalMs = 60_000,
  ) {}
  refused(verdict: Exclude<PeerVerdict, { allowed: true }>, peer: string): void {
    this.count(verdict.reason);
    this.unlogged++;
    const now = this.clock.nowMs();
    if (now - this.lastLogMs < this.intervalMs) return;
    this.lastLogMs = now;
    this.log({ reason: verdict.reason, peer, subjectAltName: verdict.subjectAltName, refusedSinceLastLog: this.unlogged });
    this.unlogged = 0;
  }
}
