import { experimental, type ServerCredentials } from '@grpc/grpc-js';
import { ConfigError } from '../config/errors.js';
import type { GrpcTlsSettings } from './grpc-tls-config.js';
import { checkTlsMaterial, readTlsFiles, type TlsFileBytes, type TlsFileProblem, type TlsMaterial } from './grpc-tls-material.js';

type CertificateProvider = experimental.CertificateProvider;
type IdentityListener = experimental.IdentityCertificateUpdateListener;
type CaListener = experimental.CaCertificateUpdateListener;

/** What a certificate load or rotation reports (metrics and the log; never key bytes). */
export interface GrpcTlsObserver {
  /** Material now served: at start-up, and after each rotation. */
  loaded(material: Pick<TlsMaterial, 'notAfter' | 'fingerprint'>, rotated: boolean): void;
  /** A rotation's files were refused; the last good material keeps serving. Once per distinct problem in a row. */
  rotationRefused(problem: TlsFileProblem & { readonly file: string }): void;
}

/**
 * The gRPC listener's certificate, key and client CA bundle, served through grpc-js' certificate-provider server
 * credentials (experimental.createCertificateProviderServerCredentials): each update is a setSecureContext on the
 * listener, so new connections get the new material and open ones keep theirs. grpc-js' own
 * FileWatcherCertificateProvider is not used: it pushes whatever it reads, and a missing file (mid-rotation), a PEM
 * cut short or a key that does not match makes grpc-js drop every new connection until the next good read. Here
 * material is pushed only after checkTlsMaterial accepts it; anything else keeps the last good one, and says why.
 *
 * refresh() is called on every config reload (the watcher sees the files change, its poll covers what it cannot see,
 * SIGHUP): unchanged files cost a read.
 */
export class ServerTlsIdentity implements CertificateProvider {
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  /** The problem last reported, so a file broken for an hour is reported once, not on every poll. */
  private reportedProblem: string | undefined;

  private constructor(
    private readonly settings: GrpcTlsSettings,
    private material: TlsMaterial,
    private readonly observer: GrpcTlsObserver,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {}

  /**
   * Reads and checks the files; throws ConfigError (naming the file and setting) when they make no identity. With
   * `serving` (a replacement worker: what its siblings serve), files that make no identity are reported as a refused
   * rotation and `serving` is served until they are fixed.
   */
  static async load(settings: GrpcTlsSettings, observer: GrpcTlsObserver, sleep: (ms: number) => Promise<void> = defaultSleep, serving?: TlsFileBytes): Promise<ServerTlsIdentity> {
    const checked = await readAndCheck(settings);
    if (!('problem' in checked)) {
      observer.loaded(checked, false);
      return new ServerTlsIdentity(settings, checked, observer, sleep);
    }
    const handed = serving === undefined ? undefined : checkTlsMaterial(serving);
    if (handed === undefined || 'problem' in handed) {
      throw new ConfigError([{ file: checked.file, line: undefined, path: `server.grpc.tls.${checked.setting}`, message: checked.problem }]);
    }
    observer.loaded(handed, false);
    const identity = new ServerTlsIdentity(settings, handed, observer, sleep);
    identity.refused(checked);
    return identity;
  }

  /** The material served now (a supervisor hands it to a replacement worker). */
  get served(): TlsFileBytes {
    return this.material;
  }

  /** grpc-js server credentials serving this identity; with client_ca_file, a verified client certificate is required. */
  credentials(): ServerCredentials {
    const requireClientCertificate = this.settings.clientCaFile !== undefined;
    // grpc-js' parameter names say (ca, identity), its constructor reads (identity, ca): the first is the identity.
    return experimental.createCertificateProviderServerCredentials(this, requireClientCertificate ? this : null, requireClientCertificate);
  }

  /** When the serving certificate expires. */
  get notAfter(): Date {
    return this.material.notAfter;
  }

  /**
   * Reads the files again; new material that checks out is served to new connections. A problem is read once more
   * after `settleMs` before it is reported: a writer that replaces the certificate, then the key, leaves a moment
   * where they do not match.
   */
  async refresh(settleMs = 0): Promise<void> {
    let checked = await this.readChanged();
    if (checked !== undefined && 'problem' in checked && settleMs > 0) {
      await this.sleep(settleMs);
      checked = await this.readChanged();
    }
    if (checked === undefined) {
      this.reportedProblem = undefined;
      return;
    }
    if ('problem' in checked) {
      this.refused(checked);
      return;
    }
    const caChanged = !sameBytes(checked.ca, this.material.ca);
    this.material = checked;
    this.reportedProblem = undefined;
    // The identity first: a new CA with the old certificate, or the reverse, is each a working pair.
    for (const listener of this.identityListeners) listener(this.identityUpdate());
    if (caChanged) for (const listener of this.caListeners) listener(this.caUpdate());
    this.observer.loaded(checked, true);
  }

  private refused(problem: LocatedProblem): void {
    const key = `${problem.setting}\0${problem.problem}`;
    if (key !== this.reportedProblem) this.observer.rotationRefused(problem);
    this.reportedProblem = key;
  }

  /** undefined: the files hold what is served. */
  private async readChanged(): Promise<(TlsMaterial | (TlsFileProblem & { readonly file: string })) | undefined> {
    const read = await readTlsFiles(this.settings);
    if ('bytes' in read && sameMaterial(read.bytes, this.material)) return undefined;
    return 'bytes' in read ? withFile(checkTlsMaterial(read.bytes), this.settings) : withFile(read, this.settings);
  }

  private identityUpdate(): experimental.IdentityCertificateUpdate {
    return { certificate: this.material.cert, privateKey: this.material.key };
  }

  private caUpdate(): experimental.CaCertificateUpdate | null {
    return this.material.ca === undefined ? null : { caCertificate: this.material.ca };
  }

  // CertificateProvider. grpc-js registers its listeners while it builds the listener, and takes the update only once
  // that registration has returned: the current material is delivered on the next tick, as its own providers do.
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener(this.identityUpdate());
    });
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener(this.caUpdate());
    });
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function readAndCheck(settings: GrpcTlsSettings): Promise<TlsMaterial | (TlsFileProblem & { readonly file: string })> {
  const read = await readTlsFiles(settings);
  return 'bytes' in read ? withFile(checkTlsMaterial(read.bytes), settings) : withFile(read, settings);
}

type LocatedProblem = TlsFileProblem & { readonly file: string };

function withFile(result: TlsMaterial | TlsFileProblem, settings: GrpcTlsSettings): TlsMaterial | LocatedProblem {
  if (!('problem' in result)) return result;
  const file = { cert_file: settings.certFile, key_file: settings.keyFile, client_ca_file: settings.clientCaFile ?? '' }[result.setting];
  return { ...result, file };
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

function sameMaterial(a: TlsFileBytes, b: TlsFileBytes): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key) && sameBytes(a.ca, b.ca);
}
