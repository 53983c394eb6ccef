// Pick the certificate source for `podvpn serve`: files given (--tls-cert/--tls-key, reloaded when they
// change), a Secret shared by every replica (in a cluster, or with --self-managed-certs), or a CA and
// certificate generated under --certs-dir (standalone). Each source loads only what it needs.

import { resolve } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { startFileSource } from './files.js';
import { localServingNames } from './names.js';
import type { CertificateSource } from './source.js';

export interface CertificateChoice {
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  certsDir: string;
  reloadIntervalMs: number;
  kube?: { kubeConfig: KubeConfig; inCluster: boolean } | undefined;
  selfManagedCerts: boolean;
  /** The webhook's listen host: an IP there goes into a generated certificate. */
  listenHost: string;
  /** The namespace of the Service and of the self-managed Secret. */
  namespace: string;
  logger: Logger;
  /** Files that became unusable (the previous pair stays in use). */
  onFileError: (err: Error) => void;
}

export async function startCertificateSource(c: CertificateChoice): Promise<CertificateSource> {
  const poll = { intervalMs: c.reloadIntervalMs, onError: c.onFileError };
  if (c.tlsCert !== undefined && c.tlsKey !== undefined) return startFileSource({ certPath: c.tlsCert, keyPath: c.tlsKey }, poll);
  if (c.tlsCert !== undefined || c.tlsKey !== undefined) {
    throw new Error('--tls-cert and --tls-key go together: give both, or neither to use a generated certificate');
  }
  if (c.kube !== undefined && (c.kube.inCluster || c.selfManagedCerts)) {
    const { startSelfManagedCerts } = await import('./self-managed.js');
    return startSelfManagedCerts({
      kubeConfig: c.kube.kubeConfig,
      logger: c.logger,
      namespace: c.namespace,
      // In a cluster the API server dials the Service; outside one, clients dial loopback or an IP.
      ...(c.kube.inCluster ? {} : { names: localServingNames(c.listenHost, c.namespace) }),
    });
  }
  const { ensureLocalCerts } = await import('./local.js');
  const names = localServingNames(c.listenHost);
  const local = await ensureLocalCerts(resolve(c.certsDir), names);
  const message = {
    created: 'generated a CA and serving certificate',
    kept: 'reusing the CA and serving certificate',
    renewed: 'issued a new serving certificate under the existing CA',
    replaced: 'generated a new CA and serving certificate',
  }[local.outcome];
  c.logger.info({ ca: local.caCert, cert: local.cert, key: local.key, outcome: local.outcome, why: local.why, names }, message);
  // The generated files are polled like given ones: `podvpn certs` may rewrite them under a running serve.
  return startFileSource({ certPath: local.cert, keyPath: local.key }, poll);
}
