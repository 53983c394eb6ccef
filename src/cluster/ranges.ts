// The cluster's address ranges: one source for the client's not-routed CIDRs and the kill-switch
// policy's allowed ranges, so routes and policy can never disagree.

export interface ClusterRanges {
  podCIDRs: string[];
  serviceCIDRs: string[];
  /** Configured extra ranges the pods reach directly (the user's LAN). */
  extraCIDRs: string[];
  /** Cluster DNS Service IPs: the client resolves the gateway through them. */
  dnsIPs: string[];
  /** Where each kind of range came from, for the log ("config", "nodes' spec.podCIDRs", ...). */
  sources: { podCIDRs: string; serviceCIDRs: string; dnsIPs: string };
}

/** What the client routes around the tunnel: every in-cluster destination. */
export function notRoutedCIDRs(ranges: ClusterRanges): string[] {
  return [...new Set([...ranges.podCIDRs, ...ranges.serviceCIDRs, ...ranges.extraCIDRs])];
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
