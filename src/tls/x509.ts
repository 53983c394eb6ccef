// The one X.509 stack: @peculiar/x509 builds, parses and verifies certificates (over the native
// WebCrypto of node:crypto); node:crypto makes and reads the keys. Keys are ECDSA P-256: a pair costs
// about a millisecond (RSA-2048 cost hundreds) and every Kubernetes API server's TLS client accepts it.
//
// An existing RSA CA (written by podvpn before 0.2, say) still signs: its key type is read from the PEM.

import 'reflect-metadata'; // @peculiar/x509's dependency injection (tsyringe) needs the polyfill first
import { createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** Validity in days. Defaults: CA 3650, serving certificate 365. */
  days?: number;
  now?: Date;
}

/** What rotation needs to know about a certificate, read once at the edge. */
export interface CertFacts {
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
  /** Subject alternative names: DNS names as written, IP addresses normalised (see normalizeIp). */
  dnsNames: string[];
  ips: string[];
  subject: string;
  issuer: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const RSA_SIGN = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

/** A subject alternative name list split into DNS names and IP addresses (v4 or v6). */
export function splitNames(names: readonly string[]): { dnsNames: string[]; ips: string[] } {
  return {
    dnsNames: names.filter((n) => isIP(stripBrackets(n)) === 0),
    ips: names.filter((n) => isIP(stripBrackets(n)) !== 0).map(normalizeIp),
  };
}

/** One spelling per address: `::1`, `0:0:0:0:0:0:0:1` and `[::1]` are the same SAN. */
export function normalizeIp(ip: string): string {
  const bare = stripBrackets(ip);
  if (isIP(bare) !== 6) return bare;
  // The URL parser prints IPv6 in its canonical compressed form.
  return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
}

function stripBrackets(s: string): string {
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive in DER
  return bytes.toString('hex');
}

function validity(opts: IssueOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const now = (opts.now ?? new Date()).getTime();
  // Backdate a little: clocks across a cluster are rarely in step.
  return { notBefore: new Date(now - 5 * 60 * 1000), notAfter: new Date(now + (opts.days ?? defaultDays) * DAY_MS) };
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** A PEM private key (EC or RSA, any PEM encoding) as a WebCrypto signing key and its algorithm. */
async function signingKey(pem: string): Promise<{ key: CryptoKey; algorithm: typeof EC_SIGN | typeof RSA_SIGN }> {
  const key = createPrivateKey(pem);
  const der = key.export({ format: 'der', type: 'pkcs8' });
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== 'prime256v1') throw new Error(`unsupported CA key curve ${curve ?? 'unknown'} (want P-256)`);
    return { key: await webcrypto.subtle.importKey('pkcs8', der, EC_KEY, false, ['sign']), algorithm: EC_SIGN };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { key: await webcrypto.subtle.importKey('pkcs8', der, RSA_SIGN, false, ['sign']), algorithm: RSA_SIGN };
  }
  throw new Error(`unsupported CA key type ${key.asymmetricKeyType ?? 'unknown'}`);
}

export async function generateCA(opts: IssueOptions = {}): Promise<KeyPairPem> {
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: 'CN=podvpn-ca, O=podvpn',
    ...validity(opts, 3650),
    keys,
    signingAlgorithm: EC_SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A serving certificate signed by `ca` for `names` (DNS names and IP addresses, v4 or v6). */
export async function generateServingCert(ca: KeyPairPem, names: readonly string[], opts: IssueOptions = {}): Promise<KeyPairPem> {
  if (names.length === 0) throw new Error('a serving certificate needs at least one DNS name or IP address');
  const caCert = new x509.X509Certificate(ca.certPem);
  const signer = await signingKey(ca.keyPem);
  const keys = await newKeyPair();
  const { dnsNames, ips } = splitNames(names);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${dnsNames[0] ?? ips[0]!}`,
    issuer: caCert.subject,
    ...validity(opts, 365),
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** Parse a PEM certificate into the facts rotation decides on. Throws on anything unreadable. */
export function certFacts(pem: string): CertFacts {
  const cert = new x509.X509Certificate(pem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const items = san?.names.items ?? [];
  return {
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCA: cert.getExtension(x509.BasicConstraintsExtension)?.ca === true,
    dnsNames: items.filter((n) => n.type === 'dns').map((n) => n.value),
    ips: items.filter((n) => n.type === 'ip').map((n) => normalizeIp(n.value)),
    subject: cert.subject,
    issuer: cert.issuer,
  };
}

/** Does the private key belong to the certificate? False for anything unreadable. */
export function keyMatches(certPem: string, keyPem: string): boolean {
  try {
    const spki = Buffer.from(new x509.X509Certificate(certPem).publicKey.rawData);
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ format: 'der', type: 'spki' });
    return spki.equals(fromKey);
  } catch {
    return false;
  }
}

/** Was `leafPem` signed by the CA `caPem` (names chain and the signature verifies)? */
export async function issuedBy(leafPem: string, caPem: string): Promise<boolean> {
  try {
    const leaf = new x509.X509Certificate(leafPem);
    const ca = new x509.X509Certificate(caPem);
    if (leaf.issuer !== ca.subject) return false;
    return await leaf.verify({ publicKey: ca.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

export function splitPems(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(normalizePem);
}

export function normalizePem(pem: string): string {
  return `${pem.trim().replace(/\r\n/g, '\n')}\n`;
}

export function fingerprint(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}
