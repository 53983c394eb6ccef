// What `podvpn inject` reads from the live cluster of the kubeconfig, like `istioctl kube-inject`:
// the ranges (config over discovery, the webhook's own code and checks), the context's namespace, and
// the namespaces the input's workloads land in (Pod Security, gateway and opt-in labels). Read only.

import { CoreV1Api } from '@kubernetes/client-node';
import pino from 'pino';
import type { Config } from '../config/schema.js';
import type { NamespaceFacts } from '../inject/types.js';
import { type KubeSource, loadKubeConfig } from '../kube/client.js';
import { withDeadline } from '../util/deadline.js';
import { describeError } from '../kube/errors.js';
import { resolveClusterRanges } from './discovery.js';
import type { ClusterRanges } from './ranges.js';

const TIMEOUT_MS = 5000;

export interface ClusterRead {
  ranges: ClusterRanges | undefined;
  problem?: string;
  contextNamespace?: string;
  namespaces: Map<string, NamespaceFacts>;
  lines: string[];
}

export async function readCluster(source: KubeSource, config: Config, documents: unknown[], namespaceFlag: string | undefined): Promise<ClusterRead> {
  const target = await loadKubeConfig(source);
  const kc = target.kubeConfig;
  const lines: string[] = [];
  const outcome = await resolveClusterRanges(kc, config, pino({ level: 'silent' }), { timeoutMs: TIMEOUT_MS });
  const context = kc.getContextObject(kc.getCurrentContext());
  const contextNamespace = context?.namespace ?? 'default';
  if (outcome.ranges !== undefined) {
    const r = outcome.ranges;
    lines.push(
      `cluster ranges from ${target.source} (context ${kc.getCurrentContext()}): pods ${r.podCIDRs.join(' ')} (${r.sources.podCIDRs}), ` +
        `services ${r.serviceCIDRs.join(' ')} (${r.sources.serviceCIDRs}), DNS ${r.dnsIPs.join(' ')} (${r.sources.dnsIPs})`,
    );
  }
  const namespaces = new Map<string, NamespaceFacts>();
  const wanted = new Set<string>([namespaceFlag ?? contextNamespace]);
  for (const d of documents.flatMap((x) => (isMap(x) && Array.isArray(x.items) ? (x.items as unknown[]) : [x]))) {
    const ns = isMap(d) && isMap(d.metadata) ? d.metadata.namespace : undefined;
    if (typeof ns === 'string' && ns !== '') wanted.add(ns);
  }
  if (outcome.ranges !== undefined) {
    const core = kc.makeApiClient(CoreV1Api);
    for (const name of [...wanted].slice(0, 50)) {
      try {
        const ns = await withDeadline(core.readNamespace({ name }), TIMEOUT_MS);
        namespaces.set(name, { labels: { ...(ns.metadata?.labels ?? {}) }, annotations: { ...(ns.metadata?.annotations ?? {}) } });
      } catch (err) {
        const text = describeError(err);
        if (!text.startsWith('HTTP 404')) lines.push(`namespace ${name} could not be read (${text}); decided as if it opted in`);
      }
    }
  }
  return { ranges: outcome.ranges, problem: outcome.problem, contextNamespace, namespaces, lines };
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
