// Where a cluster says its whole pod range (pure parsers, and the rule that combines them). The
// nodes' spec.podCIDRs are per node (a /24 each): a node added later brings a range that pods admitted
// earlier were not given. These sources name the cluster-wide range instead:
//
//   kubeadm-config       ClusterConfiguration networking.podSubnet            (node allocation range)
//   kube-proxy           ConfigMap kube-system/kube-proxy, config.conf clusterCIDR
//   Flannel              ConfigMap kube-flannel-cfg (namespace kube-flannel, or kube-system), net-conf.json Network
//   k3s                  a server node's annotation k3s.io/node-args: --cluster-cidr (k3s's default 10.42.0.0/16 when absent)
//   Calico               IPPools (crd.projectcalico.org/v1), spec.cidr of the enabled ones   (IPAM: where pods get addresses)
//   Cilium               ConfigMap kube-system/cilium-config, cluster-pool-ipv4-cidr when ipam is cluster-pool (IPAM)
//
// The node allocation ranges are used only when they cover every node's range (else they are stale
// or wrong, and the nodes are the evidence); the IPAM pools are where pods really get their
// addresses (Calico and Cilium ignore the nodes' podCIDRs), so they are always included.

import { parse as parseYaml } from 'yaml';
import { containsCidr, mergeCidrStrings, parseCidr } from '../cidr/cidr.js';
import type { Found } from './ranges.js';

/** kube-proxy's KubeProxyConfiguration (config.conf): clusterCIDR, comma-separated for dual stack. */
export function kubeProxyClusterCIDR(configConf: string | undefined): string[] {
  if (configConf === undefined) return [];
  const parsed = parseYaml(configConf) as { clusterCIDR?: unknown } | null;
  return splitList(parsed?.clusterCIDR);
}

/** Flannel's net-conf.json: {"Network": "10.244.0.0/16", ...}. */
export function flannelNetwork(netConf: string | undefined): string[] {
  if (netConf === undefined) return [];
  const parsed = JSON.parse(netConf) as { Network?: unknown } | null;
  return splitList(parsed?.Network);
}

/** Calico IPPools: the spec.cidr of every pool that is not disabled. */
export function calicoPools(items: Array<{ spec?: { cidr?: unknown; disabled?: unknown } }>): string[] {
  return items.filter((p) => p.spec?.disabled !== true).flatMap((p) => splitList(p.spec?.cidr));
}

/** Cilium's cilium-config: the cluster-pool ranges, only when IPAM is cluster-pool (the default). */
export function ciliumClusterPool(data: Record<string, string> | undefined): string[] {
  if (data === undefined) return [];
  const ipam = data.ipam ?? 'cluster-pool';
  if (ipam !== 'cluster-pool') return [];
  return (data['cluster-pool-ipv4-cidr'] ?? '').split(/[\s,]+/).filter((s) => s !== '');
}

/** k3s's built-in default --cluster-cidr. */
export const K3S_DEFAULT_CLUSTER_CIDR = '10.42.0.0/16';

/**
 * k3s records a server's command line in the node annotation k3s.io/node-args (a JSON array). Its
 * --cluster-cidr is the cluster's pod range; a server without it runs with k3s's default. (A value
 * set in k3s's config file is not in the args: the coverage check against the nodes catches that.)
 */
export function k3sClusterCIDR(nodes: Array<{ annotations?: Record<string, string> }>): { values: string[]; defaulted: boolean } | undefined {
  for (const n of nodes) {
    const raw = n.annotations?.['k3s.io/node-args'];
    if (raw === undefined) continue;
    let args: unknown;
    try {
      args = JSON.parse(raw);
    } catch {
      continue;
    }
    if (!Array.isArray(args) || args[0] !== 'server') continue;
    for (let i = 0; i < args.length; i++) {
      const a = String(args[i]);
      if (a === '--cluster-cidr' && i + 1 < args.length) return { values: splitList(args[i + 1]), defaulted: false };
      if (a.startsWith('--cluster-cidr=')) return { values: splitList(a.slice('--cluster-cidr='.length)), defaulted: false };
    }
    return { values: [K3S_DEFAULT_CLUSTER_CIDR], defaulted: true };
  }
  return undefined;
}

/**
 * The pod range: the first node-allocation source that covers every node's range (or the first one,
 * when no node has a range), else the nodes' own ranges; plus every IPAM pool found.
 */
export function combinePodRanges(nodes: Found | undefined, wide: Found[], ipam: Found[]): Found | undefined {
  const nodeCidrs = (nodes?.values ?? []).map((c) => parseCidr(c));
  const covers = (f: Found) => {
    const w = f.values.map((c) => parseCidr(c));
    return nodeCidrs.every((n) => w.some((x) => containsCidr(x, n)));
  };
  const chosen = wide.find((w) => w.values.length > 0 && (nodes === undefined || covers(w)));
  const base: Found | undefined =
    chosen === undefined ? nodes : { values: chosen.values, source: nodes === undefined ? chosen.source : `${chosen.source}, which covers ${nodes.source}` };
  const pools = ipam.filter((p) => p.values.length > 0);
  if (pools.length === 0) return base;
  const parts = [...pools, ...(base === undefined ? [] : [base])];
  return { values: mergeCidrStrings(parts.flatMap((p) => p.values)), source: parts.map((p) => p.source).join(' + ') };
}

function splitList(value: unknown): string[] {
  return typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s !== '') : [];
}
