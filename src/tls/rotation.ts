// When to keep, renew or replace a certificate: pure, over facts read once at the edge and a clock
// passed in. Used by both the self-managed Secret and the CA generated under certs/.
//
// The rule (cert-manager's): renew once 2/3 of a certificate's life has passed. A serving certificate
// is renewed under the same CA; the CA is replaced (and the old one kept trusted while it is valid) only
// when it is itself due or unusable.

import type { CertFacts } from './x509.js';

/** The names a serving certificate must cover: DNS names and normalised IP addresses. */
export interface WantedNames {
  dnsNames: readonly string[];
  ips: readonly string[];
}

/** Everything the decision reads, gathered by the edge (which did the parsing and the signature check). */
export interface Observed {
  ca: CertFacts;
  leaf: CertFacts;
  /** Does the CA's key verify the leaf's signature (and the names chain)? */
  leafIssuedByCa: boolean;
}

export type Assessment =
  | { action: 'keep' }
  | { action: 'renew-serving'; why: string }
  | { action: 'renew-ca'; why: string }
  | { action: 'replace'; why: string };

/** Default share of a certificate's life after which it is renewed. */
export const RENEW_AFTER_FRACTION = 2 / 3;

/** The instant after which `cert` is due for renewal. */
export function renewAt(cert: Pick<CertFacts, 'notBefore' | 'notAfter'>, fraction = RENEW_AFTER_FRACTION): Date {
  const from = cert.notBefore.getTime();
  return new Date(from + (cert.notAfter.getTime() - from) * fraction);
}

/** Names the certificate should cover but does not. */
export function missingNames(leaf: Pick<CertFacts, 'dnsNames' | 'ips'>, want: WantedNames): string[] {
  return [...want.dnsNames.filter((n) => !leaf.dnsNames.includes(n)), ...want.ips.filter((ip) => !leaf.ips.includes(ip))];
}

/** Keep, renew the serving certificate, renew the CA, or replace both. `undefined`: nothing usable. */
export function assess(observed: Observed | undefined, want: WantedNames, now: Date, fraction = RENEW_AFTER_FRACTION): Assessment {
  if (observed === undefined) return { action: 'replace', why: 'no usable CA and certificate' };
  const { ca, leaf } = observed;
  if (!ca.isCA) return { action: 'replace', why: 'the CA certificate is not a CA' };
  if (now >= renewAt(ca, fraction)) return { action: 'renew-ca', why: `the CA expires ${ca.notAfter.toISOString()}` };
  if (!observed.leafIssuedByCa) return { action: 'renew-serving', why: 'the serving certificate was not issued by the CA' };
  if (now >= renewAt(leaf, fraction)) return { action: 'renew-serving', why: `the serving certificate expires ${leaf.notAfter.toISOString()}` };
  const missing = missingNames(leaf, want);
  if (missing.length > 0) return { action: 'renew-serving', why: `the serving certificate lacks ${missing.join(', ')}` };
  return { action: 'keep' };
}

/**
 * The CAs to trust: the current one first, then older ones still valid at `now`, each once. Entries
 * whose facts are `undefined` (unreadable) are dropped.
 */
export function trustedCAs<T extends { pem: string; facts: Pick<CertFacts, 'notAfter'> | undefined }>(current: T, older: readonly T[], now: Date): T[] {
  const kept = older.filter((c) => c.pem !== current.pem && c.facts !== undefined && c.facts.notAfter > now);
  return [current, ...kept.filter((c, i) => kept.findIndex((d) => d.pem === c.pem) === i)];
}
