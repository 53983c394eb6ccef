// Which cluster, if any: in-cluster service account, an explicit kubeconfig, or the user's default
// kubeconfig. None of them (or --no-kube) means standalone.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export interface KubeTarget {
  kubeConfig: KubeConfig;
  source: string;
  /** Running in a pod with a service account: the webhook's own deployment. */
  inCluster: boolean;
}

export function resolveKubeConfig(opts: { noKube: boolean; kubeconfig?: string | undefined; env?: NodeJS.ProcessEnv }): KubeTarget | undefined {
  if (opts.noKube) return undefined;
  const env = opts.env ?? process.env;
  const kc = new KubeConfig();
  if (opts.kubeconfig !== undefined) {
    kc.loadFromFile(opts.kubeconfig);
    return { kubeConfig: kc, source: `kubeconfig ${opts.kubeconfig}`, inCluster: false };
  }
  if (env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_PORT !== undefined) {
    kc.loadFromCluster();
    return { kubeConfig: kc, source: 'in-cluster service account', inCluster: true };
  }
  const fromEnv = env.KUBECONFIG?.split(':').find((p) => p !== '' && existsSync(p));
  const file = fromEnv ?? join(homedir(), '.kube', 'config');
  if (existsSync(file)) {
    kc.loadFromFile(file);
    return { kubeConfig: kc, source: `kubeconfig ${file}`, inCluster: false };
  }
  return undefined;
}
