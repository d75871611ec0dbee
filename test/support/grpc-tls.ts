// Certificates for server.grpc.tls tests, made by scripts/make-certs.sh (the gateway's demo certificates: a throw-away
// CA, a server certificate for localhost / envoy / 127.0.0.1, a client certificate for
// spiffe://portcullis.local/demo-client), never committed. Each call makes a new CA.

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { repoRoot } from './envoy.js';

export interface TestCertificates {
  readonly dir: string;
  readonly ca: string;
  readonly server: string;
  readonly serverKey: string;
  readonly client: string;
  readonly clientKey: string;
}

/** The identity of make-certs.sh's client certificate (its only SAN). */
export const DEMO_CLIENT_SAN = 'spiffe://portcullis.local/demo-client';

/** A new CA and its server and client certificates in `dir` (absolute). */
export function makeTestCertificates(dir: string): TestCertificates {
  execFileSync('bash', [path.join(repoRoot(), 'scripts', 'make-certs.sh'), dir], { stdio: 'pipe' });
  const at = (name: string): string => path.join(dir, name);
  return { dir, ca: at('ca.pem'), server: at('server.pem'), serverKey: at('server-key.pem'), client: at('client.pem'), clientKey: at('client-key.pem') };
}

/** gRPC channel credentials trusting `caFiles`, presenting a client certificate when given. */
export function tlsCredentials(caFiles: readonly string[], client?: { cert: string; key: string }): grpc.ChannelCredentials {
  const roots = Buffer.concat(caFiles.map((f) => readFileSync(f)));
  return client === undefined
    ? grpc.credentials.createSsl(roots)
    : grpc.credentials.createSsl(roots, readFileSync(client.key), readFileSync(client.cert));
}

/**
 * The certificate a NEW TLS connection to host:port is served (ALPN h2, as gRPC asks), by its SHA-256 fingerprint;
 * rejects when the handshake fails.
 */
export function servedCertificate(host: string, port: number, caFiles: readonly string[], client?: { cert: string; key: string }): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host, port, servername: 'localhost', ALPNProtocols: ['h2'],
      ca: caFiles.map((f) => readFileSync(f)),
      ...(client === undefined ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
    });
    socket.once('secureConnect', () => {
      const certificate = socket.getPeerCertificate();
      socket.destroy();
      resolve(certificate);
    });
    socket.once('error', reject);
  });
}

/** The SHA-256 fingerprint of the first certificate in a PEM file, as PeerCertificate.fingerprint256 writes it. */
export function fingerprintOf(pemFile: string): string {
  return new X509Certificate(readFileSync(pemFile)).fingerprint256;
}
