// The cluster's address ranges: one source for the client's not-routed CIDRs and the kill-switch
// policy's allowed ranges, so routes and policy can never disagree. Both are derived here from the
// same merged set (`allowedCIDRs`).

import { assertNoPublicRanges, containsCidr, formatCidr, mergeCidrStringsStable, parseAddress, parseCidr } from '../cidr/cidr.js';
import type { Logger } from 'pino';
import { type Config, MTU_OVERHEAD, STANDALONE_CLUSTER_DEFAULTS } from '../config/schema.js';
import { gatewayMTUProblem, type PodMTU } from './pod-mtu.js';

export interface ClusterRanges {
  podCIDRs: string[];
  serviceCIDRs: string[];
  /** Configured extra ranges the pods reach directly (the user's LAN). */
  extraCIDRs: string[];
  /** Cluster DNS Service IPs: the client resolves the gateway through them. */
  dnsIPs: string[];
  /** Where each kind of range came from, for the log ("config", "nodes' spec.podCIDRs", ...). */
  sources: { podCIDRs: string; serviceCIDRs: string; dnsIPs: string };
  /**
   * The pod network's MTU: config cluster.podMTU, else what the CNI publishes (src/cluster/pod-mtu.ts);
   * undefined when neither says it. A gateway whose mtu does not fit it gets no routed pods.
   */
  podMTU?: PodMTU;
}

/**
 * Every in-cluster destination, merged (duplicates and nested ranges removed, touching ranges
 * joined), in the order the ranges were given. The kill-switch policy allows exactly these.
 */
export function allowedCIDRs(ranges: ClusterRanges): string[] {
  return mergeCidrStringsStable([...ranges.podCIDRs, ...ranges.serviceCIDRs, ...ranges.extraCIDRs]);
}

/**
 * What the client routes around the tunnel: every in-cluster destination, IPv4 only. pod-gateway's
 * client is IPv4-only (it deletes the IPv6 default route and adds these routes `via` the pod's IPv4
 * gateway, under `set -e`), so an IPv6 range here would fail its init container.
 */
export function notRoutedCIDRs(ranges: ClusterRanges): string[] {
  const allowed = allowedCIDRs(ranges).filter((c) => parseCidr(c).family === 4);
  // A cluster DNS IP outside the ranges (NodeLocal DNSCache's 169.254.20.10) must stay reachable
  // off the tunnel too: client_init.sh resolves the gateway through it after it removed the default
  // route. The kill-switch policy allows it as the same /32 (port 53 only).
  const parsed = allowed.map((c) => parseCidr(c));
  const dns = ranges.dnsIPs
    .map((ip) => parseAddress(ip))
    .filter((a) => a.family === 4 && !parsed.some((r) => containsCidr(r, a)))
    .map((a) => formatCidr(a));
  return [...allowed, ...new Set(dns)];
}

/** The ranges are usable only when both the pod and service ranges and a DNS IP are known. */
export function missingRanges(ranges: ClusterRanges | undefined): string[] {
  if (ranges === undefined) return ['cluster.podCIDRs', 'cluster.serviceCIDRs', 'cluster.dnsIPs'];
  const missing: string[] = [];
  if (ranges.podCIDRs.length === 0) missing.push('cluster.podCIDRs');
  if (ranges.serviceCIDRs.length === 0) missing.push('cluster.serviceCIDRs');
  if (ranges.dnsIPs.length === 0) missing.push('cluster.dnsIPs');
  return missing;
}

/** One kind of range as found: the values and where they came from. */
export interface Found {
  values: string[];
  source: string;
}

/**
 * The ranges in force: each kind from config when the config gives it (config always wins), else from
 * what discovery found, else empty (then `missingRanges` says what to configure). Pure.
 */
export function resolveRanges(
  cluster: { podCIDRs: string[]; serviceCIDRs: string[]; extraAllowedCIDRs: string[]; dnsIPs: string[]; podMTU?: number | undefined },
  discovered: { podCIDRs?: Found; serviceCIDRs?: Found; dnsIPs?: Found; podMTU?: PodMTU | undefined },
): ClusterRanges {
  const pick = (configured: string[], key: 'podCIDRs' | 'serviceCIDRs' | 'dnsIPs'): Found => {
    if (configured.length > 0) return { values: [...configured], source: `config cluster.${key}` };
    const found = discovered[key];
    if (found !== undefined && found.values.length > 0) return found;
    return { values: [], source: 'not found' };
  };
  const pod = pick(cluster.podCIDRs, 'podCIDRs');
  const svc = pick(cluster.serviceCIDRs, 'serviceCIDRs');
  const dns = pick(cluster.dnsIPs, 'dnsIPs');
  return {
    podCIDRs: pod.values,
    serviceCIDRs: svc.values,
    extraCIDRs: [...cluster.extraAllowedCIDRs],
    dnsIPs: dns.values,
    sources: { podCIDRs: pod.source, serviceCIDRs: svc.source, dnsIPs: dns.source },
    ...podMTUOf(cluster.podMTU, discovered.podMTU),
  };
}

/** Config cluster.podMTU over the discovered MTU. */
function podMTUOf(configured: number | undefined, discovered: PodMTU | undefined): { podMTU?: PodMTU } {
  if (configured !== undefined) return { podMTU: { value: configured, source: 'config cluster.podMTU' } };
  return discovered === undefined ? {} : { podMTU: discovered };
}

/** Without a cluster (standalone `serve`, offline `inject`): config, else kubeadm's defaults. */
export function standaloneRanges(cluster: {
  podCIDRs: string[];
  serviceCIDRs: string[];
  extraAllowedCIDRs: string[];
  dnsIPs: string[];
  podMTU?: number | undefined;
}): ClusterRanges {
  const fallback = 'built-in standalone default (kubeadm)';
  return resolveRanges(cluster, {
    podCIDRs: { values: [...STANDALONE_CLUSTER_DEFAULTS.podCIDRs], source: fallback },
    serviceCIDRs: { values: [...STANDALONE_CLUSTER_DEFAULTS.serviceCIDRs], source: fallback },
    dnsIPs: { values: [...STANDALONE_CLUSTER_DEFAULTS.dnsIPs], source: fallback },
  });
}

/**
 * The start-up safety guard over every range the policy would allow: throws a PublicRangeError that
 * names each offending range and where it came from, unless `allowPublicRanges` forces it.
 */
export function assertRangesSafe(ranges: ClusterRanges, opts: { allowPublicRanges: boolean }): void {
  assertNoPublicRanges(
    [
      ...ranges.podCIDRs.map((range) => ({ range, source: ranges.sources.podCIDRs })),
      ...ranges.serviceCIDRs.map((range) => ({ range, source: ranges.sources.serviceCIDRs })),
      ...ranges.extraCIDRs.map((range) => ({ range, source: 'config cluster.extraAllowedCIDRs' })),
    ],
    opts,
  );
}

export interface RangeCheck {
  /** Undefined when the ranges cannot be used: `problem` says why and what to do. */
  ranges: ClusterRanges | undefined;
  problem?: string;
  notes: string[];
}

/**
 * The pure part of discovery's resolveClusterRanges: decide whether these ranges may be used. Here, not
 * in discovery.ts, so offline inject without a cluster never loads the Kubernetes client.
 */
export function checkRanges(ranges: ClusterRanges, config: Config, notes: string[], log?: Logger): RangeCheck {
  for (const note of notes) log?.info({ note }, 'cluster range discovery: a source did not answer');
  const missing = missingRanges(ranges);
  if (missing.length > 0) {
    const problem =
      `podvpn does not know the cluster's ${missing.join(', ')}, so it cannot build a kill switch and ` +
      `will not admit routed pods. Set them in the podvpn config, e.g.\n` +
      `  cluster:\n    podCIDRs: [10.244.0.0/16]     # kubectl get nodes -o jsonpath='{.items[*].spec.podCIDRs}'\n` +
      `    serviceCIDRs: [10.96.0.0/12]  # kubectl get servicecidrs, or the kube-apiserver --service-cluster-ip-range\n` +
      `    dnsIPs: [10.96.0.10]          # kubectl -n kube-system get service kube-dns\n` +
      (notes.length > 0 ? `Discovery tried: ${notes.join('; ')}` : '');
    log?.error({ missing, notes }, problem);
    return { ranges: undefined, problem, notes };
  }
  try {
    for (const cidr of [...ranges.podCIDRs, ...ranges.serviceCIDRs, ...ranges.extraCIDRs]) parseCidr(cidr);
    assertRangesSafe(ranges, { allowPublicRanges: config.cluster.allowPublicRanges });
  } catch (err) {
    const problem = (err as Error).message;
    log?.error({ sources: ranges.sources }, problem);
    return { ranges: undefined, problem, notes };
  }
  log?.info(
    {
      podCIDRs: ranges.podCIDRs,
      serviceCIDRs: ranges.serviceCIDRs,
      extraCIDRs: ranges.extraCIDRs,
      dnsIPs: ranges.dnsIPs,
      sources: ranges.sources,
    },
    `cluster ranges: pods ${ranges.podCIDRs.join(' ')} from ${ranges.sources.podCIDRs}; services ${ranges.serviceCIDRs.join(' ')} from ${ranges.sources.serviceCIDRs}; DNS ${ranges.dnsIPs.join(' ')} from ${ranges.sources.dnsIPs}`,
  );
  if (log !== undefined) logPodMTUOnce(ranges, config, log);
  return { ranges, notes };
}

/** What was last logged about the pod MTU, per config: start-up logs it, rediscovery only a change. */
const loggedPodMTU = new WeakMap<Config, string>();

/**
 * Say once (and again when it changes) what the pod network's MTU is, and which gateways do not fit
 * it (their routed pods are denied: src/admission/review.ts), or that it is unknown.
 */
function logPodMTUOnce(ranges: ClusterRanges, config: Config, log: Logger): void {
  const podMTU = ranges.podMTU;
  const problems = Object.values(config.gateways).flatMap((g) => {
    const problem = gatewayMTUProblem(g, podMTU);
    return problem === undefined ? [] : [{ gateway: g.name, mtu: g.mtu, problem }];
  });
  const key = JSON.stringify([podMTU ?? null, problems.map((p) => p.gateway)]);
  if (loggedPodMTU.get(config) === key) return;
  loggedPodMTU.set(config, key);
  const mtus = Object.values(config.gateways).map((g) => `${g.name} ${g.mtu}`).join(', ');
  if (podMTU === undefined) {
    log.warn(
      { gatewayMTUs: mtus },
      `pod network MTU: not discovered (the CNI does not publish it); gateway tunnel MTUs used unchecked (${mtus}). If your pod network's MTU is below ${Math.min(...Object.values(config.gateways).map((g) => g.mtu)) + MTU_OVERHEAD}, set cluster.podMTU and lower the gateways' mtu`,
    );
    return;
  }
  log.info({ podMTU: podMTU.value, source: podMTU.source, gatewayMTUs: mtus }, `pod network MTU ${podMTU.value} from ${podMTU.source}`);
  for (const p of problems) log.error({ gateway: p.gateway, mtu: p.mtu, podMTU: podMTU.value }, p.problem);
}
