// A CA and serving certificate kept under a directory (`podvpn certs`, and `podvpn serve` outside a
// cluster without --tls-cert). Reused only while they cover every requested name and address and are
// not due for renewal (the rule in rotation.ts); otherwise the serving certificate is re-issued under
// the same CA while that CA is usable, and both are replaced when it is not. Keys are written 0600.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Assessment, type Observed, assess } from './rotation.js';
import { type IssueOptions, type KeyPairPem, certFacts, generateCA, generateServingCert, issuedBy, keyMatches, splitNames } from './x509.js';

interface LocalCertPaths {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export type LocalCertsResult = LocalCertPaths & {
  /** created: nothing usable was there; kept: reused as is; renewed: new serving cert, same CA; replaced: new CA too. */
  outcome: 'created' | 'kept' | 'renewed' | 'replaced';
  /** Why it was renewed or replaced. */
  why?: string;
};

function localCertPaths(dir: string): LocalCertPaths {
  return { caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
}

/** Reuse, renew or create the CA and serving certificate in `dir` for `names` (DNS names and IPs). */
export async function ensureLocalCerts(dir: string, names: readonly string[], opts: IssueOptions & { force?: boolean } = {}): Promise<LocalCertsResult> {
  const paths = localCertPaths(dir);
  const present = [paths.caCert, paths.caKey, paths.cert, paths.key].every((p) => existsSync(p));
  const now = opts.now ?? new Date();
  const stored = present && opts.force !== true ? await observe(paths) : undefined;
  const assessment: Assessment = stored === undefined ? { action: 'replace', why: present ? 'forced' : 'none there' } : assess(stored.observed, splitNames(names), now);
  if (assessment.action === 'keep') return { ...paths, outcome: 'kept' };

  const reuseCa = assessment.action === 'renew-serving' && stored !== undefined;
  const ca: KeyPairPem = reuseCa ? stored.ca : await generateCA({ now });
  const serving = await generateServingCert(ca, names, opts);
  mkdirSync(dir, { recursive: true });
  if (!reuseCa) {
    writeFileSync(paths.caCert, ca.certPem);
    writeFileSync(paths.caKey, ca.keyPem, { mode: 0o600 });
  }
  writeFileSync(paths.key, serving.keyPem, { mode: 0o600 });
  writeFileSync(paths.cert, serving.certPem);
  if (!present || opts.force === true) return { ...paths, outcome: 'created' };
  return { ...paths, outcome: reuseCa ? 'renewed' : 'replaced', why: assessment.why };
}

/** What is on disk, parsed; `observed` undefined when the files do not make a usable CA and pair. */
async function observe(paths: LocalCertPaths): Promise<{ ca: KeyPairPem; observed: Observed | undefined }> {
  const ca = { certPem: readFileSync(paths.caCert, 'utf8'), keyPem: readFileSync(paths.caKey, 'utf8') };
  const certPem = readFileSync(paths.cert, 'utf8');
  const keyPem = readFileSync(paths.key, 'utf8');
  try {
    if (!keyMatches(ca.certPem, ca.keyPem) || !keyMatches(certPem, keyPem)) return { ca, observed: undefined };
    return { ca, observed: { ca: certFacts(ca.certPem), leaf: certFacts(certPem), leafIssuedByCa: await issuedBy(certPem, ca.certPem) } };
  } catch {
    return { ca, observed: undefined };
  }
}
