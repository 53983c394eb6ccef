// Do the routed pods' not-routed lists cover every node's pod range? (pure) Each pod's list is fixed at
// admission (its podvpn.io/client-settings annotation). A pod whose list misses a node's range sends
// traffic for the pods on that node into the tunnel: in-cluster traffic breaks (nothing leaks: the
// gateway does not route cluster ranges out). That happens when a node with a new range joins after
// the pod was admitted and the pod range in force is the nodes' own /24s, or when a configured range
// is too narrow.

import { containsCidr, parseCidr } from '../cidr/cidr.js';

export interface RoutedPodRanges {
  namespace: string;
  name?: string;
  /** NOT_ROUTED_TO_GATEWAY_CIDRS from the pod's settings; undefined when the pod has none to read. */
  notRouted?: string[];
}

export interface CoverageReport {
  /** Node ranges that the pod ranges in force do not cover (new pods will not get them either). */
  notInForce: Array<{ node: string; cidr: string }>;
  /** Node ranges missing from some routed pod's not-routed list, with how many pods and one example. */
  missingFromPods: Array<{ node: string; cidr: string; pods: number; example: string }>;
  /** Routed pods whose not-routed list misses at least one node's range. */
  podsMissing: number;
}

/** The CIDRs in a settings.sh text: NOT_ROUTED_TO_GATEWAY_CIDRS='a b c'. */
export function notRoutedFromSettings(settings: string | undefined): string[] | undefined {
  if (settings === undefined) return undefined;
  const m = /^NOT_ROUTED_TO_GATEWAY_CIDRS='([^']*)'$/m.exec(settings);
  return m === null ? undefined : m[1]!.split(/\s+/).filter((s) => s !== '');
}

export function nodeRangeCoverage(
  nodeRanges: ReadonlyArray<{ node: string; cidrs: string[] }>,
  podCIDRsInForce: readonly string[],
  pods: readonly RoutedPodRanges[],
): CoverageReport {
  const parse = (list: readonly string[]) =>
    list.flatMap((c) => {
      try {
        return [parseCidr(c)];
      } catch {
        return [];
      }
    });
  const inForce = parse(podCIDRsInForce);
  const podLists = pods.filter((p) => p.notRouted !== undefined).map((p) => ({ pod: p, ranges: parse(p.notRouted!) }));
  const report: CoverageReport = { notInForce: [], missingFromPods: [], podsMissing: 0 };
  const missingPods = new Set<RoutedPodRanges>();
  for (const { node, cidrs } of nodeRanges) {
    for (const cidr of cidrs) {
      const range = parse([cidr])[0];
      if (range === undefined || range.family !== 4) continue;
      if (!inForce.some((r) => containsCidr(r, range))) report.notInForce.push({ node, cidr });
      const lacking = podLists.filter((p) => !p.ranges.some((r) => containsCidr(r, range)));
      if (lacking.length > 0) {
        const first = lacking[0]!.pod;
        report.missingFromPods.push({ node, cidr, pods: lacking.length, example: `${first.namespace}/${first.name ?? '?'}` });
        for (const l of lacking) missingPods.add(l.pod);
      }
    }
  }
  report.podsMissing = missingPods.size;
  return report;
}
