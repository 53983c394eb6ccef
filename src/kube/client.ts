// Which cluster, if any: in-cluster service account, an explicit kubeconfig, or the user's default
// kubeconfig. None of them (or --no-kube) means standalone. Deciding that needs no Kubernetes client:
// @kubernetes/client-node costs about a second and 75 MiB to load, so a standalone webhook never does.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';

export type KubeSource = { kind: 'file'; path: string } | { kind: 'in-cluster' };

export interface KubeTarget {
  kubeConfig: KubeConfig;
  source: string;
  /** Running in a pod with a service account: the webhook's own deployment. */
  inCluster: boolean;
}

export function findKubeSource(opts: { noKube: boolean; kubeconfig?: string | undefined; env?: NodeJS.ProcessEnv }): KubeSource | undefined {
  if (opts.noKube) return undefined;
  const env = opts.env ?? process.env;
  if (opts.kubeconfig !== undefined) return { kind: 'file', path: opts.kubeconfig };
  if (env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_PORT !== undefined) return { kind: 'in-cluster' };
  const fromEnv = env.KUBECONFIG?.split(':').find((p) => p !== '' && existsSync(p));
  const file = fromEnv ?? join(homedir(), '.kube', 'config');
  return existsSync(file) ? { kind: 'file', path: file } : undefined;
}

export async function loadKubeConfig(source: KubeSource): Promise<KubeTarget> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (source.kind === 'in-cluster') {
    kc.loadFromCluster();
    return { kubeConfig: kc, source: 'in-cluster service account', inCluster: true };
  }
  kc.loadFromFile(source.path);
  return { kubeConfig: kc, source: `kubeconfig ${source.path}`, inCluster: false };
}
