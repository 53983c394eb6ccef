// A CA and a serving certificate for the webhook, made with node-forge. Generation is pure (no
// files); ensureLocalCerts() is the edge that reuses or writes them under a directory.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { SYSTEM_NAMESPACE, WEBHOOK_SERVICE_NAME } from '../constants.js';

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface CertOptions {
  /** Validity in days. */
  days?: number;
  now?: Date;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The webhook Service's DNS names, as the API server dials it. */
export function webhookDnsNames(namespace = SYSTEM_NAMESPACE, service = WEBHOOK_SERVICE_NAME): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

function serialNumber(): string {
  // Positive 128-bit serial: the top bit clear keeps it positive in DER.
  const bytes = forge.random.getBytesSync(16);
  const hex = forge.util.bytesToHex(bytes);
  return (parseInt(hex[0]!, 16) & 0x7).toString(16) + hex.slice(1);
}

function validity(cert: forge.pki.Certificate, opts: CertOptions, defaultDays: number): void {
  const now = opts.now ?? new Date();
  // Backdate a little: clocks across a cluster are rarely in step.
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60 * 1000);
  cert.validity.notAfter = new Date(now.getTime() + (opts.days ?? defaultDays) * DAY_MS);
}

export function generateCA(opts: CertOptions = {}): KeyPairPem {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, opts, 3650);
  const subject = [{ name: 'commonName', value: 'podvpn-ca' }, { name: 'organizationName', value: 'podvpn' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

export function generateServingCert(ca: KeyPairPem, dnsNames: string[], opts: CertOptions = {}): KeyPairPem {
  if (dnsNames.length === 0) throw new Error('a serving certificate needs at least one DNS name');
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, opts, 365);
  cert.setSubject([{ name: 'commonName', value: dnsNames[0]! }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = dnsNames.map((name) =>
    /^\d+\.\d+\.\d+\.\d+$/.test(name) ? { type: 7, ip: name } : { type: 2, value: name },
  );
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** notAfter of a PEM certificate. */
export function certificateExpiry(certPem: string): Date {
  return forge.pki.certificateFromPem(certPem).validity.notAfter;
}

export interface LocalCertPaths {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
  created: boolean;
}

/**
 * Reuse the CA and serving certificate in `dir`, or create them. Keys are written 0600. Used by
 * `podvpn serve` without --tls-cert/--tls-key and by `podvpn certs`.
 */
export function ensureLocalCerts(dir: string, dnsNames: string[], opts: CertOptions & { force?: boolean } = {}): LocalCertPaths {
  const paths = {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'tls.crt'),
    key: join(dir, 'tls.key'),
  };
  const present = Object.values(paths).every((p) => existsSync(p));
  if (present && opts.force !== true) {
    const expiry = certificateExpiry(readFileSync(paths.cert, 'utf8'));
    if (expiry.getTime() - (opts.now ?? new Date()).getTime() > 7 * DAY_MS) return { ...paths, created: false };
  }
  mkdirSync(dir, { recursive: true });
  const ca =
    present && opts.force !== true
      ? { certPem: readFileSync(paths.caCert, 'utf8'), keyPem: readFileSync(paths.caKey, 'utf8') }
      : generateCA(opts);
  const serving = generateServingCert(ca, dnsNames, opts);
  writeFileSync(paths.caCert, ca.certPem);
  writeFileSync(paths.caKey, ca.keyPem, { mode: 0o600 });
  writeFileSync(paths.cert, serving.certPem);
  writeFileSync(paths.key, serving.keyPem, { mode: 0o600 });
  return { ...paths, created: true };
}
