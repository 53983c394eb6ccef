// The kill-switch NetworkPolicy, pure: (namespace, gateway, ranges) in, the policy object out.
//
// One policy per namespace and gateway, `podvpn-killswitch-<gateway>`, selecting the pods the webhook
// labelled `podvpn.io/routed: <gateway>`. Egress only; it allows nothing but the cluster:
//   1. the merged pod, service and configured extra ranges, as ipBlocks (IPv6 only if configured);
//   2. every pod in every namespace by selector: Cilium does not match pod IPs against ipBlock, so
//      without this rule the VXLAN packets to the gateway pod would be dropped there;
//   3. cluster DNS on UDP and TCP 53: the DNS pods by selector, plus any DNS IP outside the ranges
//      above (NodeLocal DNSCache's link-local address, say) as a /32.
// VXLAN to the gateway passes because its outer destination is the gateway pod. Anything else, the
// internet above all, matches no rule and is dropped at the node.

import type {
  V1LabelSelector,
  V1NetworkPolicy,
  V1NetworkPolicyEgressRule,
  V1NetworkPolicyPeer,
  V1NetworkPolicyPort,
  V1NetworkPolicySpec,
  V1ObjectMeta,
} from '@kubernetes/client-node';
import { containsCidr, parseAddress, parseCidr } from '../cidr/cidr.js';
import { allowedCIDRs, assertRangesSafe, type ClusterRanges } from '../cluster/ranges.js';
import { LABEL_MANAGED_BY, LABEL_NAMESPACE_NAME, LABEL_ROUTED, PRODUCT } from '../constants.js';

/** Label on the policy naming its gateway (the reconciler maps policies back by it). */
export const LABEL_POLICY_GATEWAY = 'podvpn.io/gateway';
export const POLICY_NAME_PREFIX = 'podvpn-killswitch-';
/** The DNS pods: CoreDNS/kube-dns carry this label on kubeadm, k3s, kind, EKS, GKE and AKS. */
export const DNS_NAMESPACE = 'kube-system';
export const DNS_POD_LABELS = { 'k8s-app': 'kube-dns' } as const;

/** client-node's V1NetworkPolicy, with what podvpn always sets made required. */
export interface KillSwitchPolicy extends V1NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: V1ObjectMeta & { name: string; namespace: string; labels: Record<string, string> };
  spec: Omit<V1NetworkPolicySpec, 'egress'> & {
    podSelector: V1LabelSelector;
    policyTypes: ['Egress'];
    egress: Array<V1NetworkPolicyEgressRule & { to: V1NetworkPolicyPeer[] }>;
  };
}

export function killSwitchPolicyName(gateway: string): string {
  return `${POLICY_NAME_PREFIX}${gateway}`;
}

export function buildKillSwitchPolicy(input: {
  namespace: string;
  gateway: string;
  ranges: ClusterRanges;
}): KillSwitchPolicy {
  const { namespace, gateway, ranges } = input;
  const allowed = allowedCIDRs(ranges);
  if (allowed.length === 0) {
    // An egress rule with an empty `to` allows everything: never build one.
    throw new Error('kill-switch policy needs at least one allowed range');
  }
  const allowedParsed = allowed.map((c) => parseCidr(c));
  const dnsOutside = ranges.dnsIPs.filter((ip) => {
    const host = parseAddress(ip);
    return !allowedParsed.some((r) => containsCidr(r, host));
  });
  const dnsPorts: V1NetworkPolicyPort[] = [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: killSwitchPolicyName(gateway),
      namespace,
      labels: { [LABEL_MANAGED_BY]: PRODUCT, [LABEL_POLICY_GATEWAY]: gateway },
    },
    spec: {
      podSelector: { matchLabels: { [LABEL_ROUTED]: gateway } },
      policyTypes: ['Egress'],
      egress: [
        { to: allowed.map((cidr) => ({ ipBlock: { cidr } })) },
        { to: [{ namespaceSelector: {} }] },
        {
          to: [
            {
              namespaceSelector: { matchLabels: { [LABEL_NAMESPACE_NAME]: DNS_NAMESPACE } },
              podSelector: { matchLabels: { ...DNS_POD_LABELS } },
            },
            ...dnsOutside.map((ip) => {
              const host = parseAddress(ip);
              return { ipBlock: { cidr: `${ip}/${host.family === 4 ? 32 : 128}` } };
            }),
          ],
          ports: dnsPorts,
        },
      ],
    },
  };
}

/**
 * Policies for offline `podvpn inject`: one per distinct (namespace, gateway), sorted. With `config`,
 * the public-range guard runs first (throws PublicRangeError unless `cluster.allowPublicRanges`), so
 * the offline path can never print an open kill switch either.
 */
export function policiesForNamespaces(
  namespaces: ReadonlyArray<{ namespace: string; gateway: string }>,
  ranges: ClusterRanges,
  config?: { cluster: { allowPublicRanges: boolean } },
): KillSwitchPolicy[] {
  if (config !== undefined) assertRangesSafe(ranges, { allowPublicRanges: config.cluster.allowPublicRanges });
  const seen = new Map<string, { namespace: string; gateway: string }>();
  for (const n of namespaces) seen.set(`${n.namespace}/${n.gateway}`, n);
  return [...seen.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, n]) => buildKillSwitchPolicy({ ...n, ranges }));
}

/**
 * Is a live policy the one we would write? Compares what we own: the spec and our labels. Other
 * labels and annotations a user adds are left alone and do not make it stale.
 */
export function isPolicyCurrent(
  live: V1NetworkPolicy | undefined,
  desired: KillSwitchPolicy,
): boolean {
  if (live === undefined) return false;
  const labels = live.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(desired.metadata.labels)) if (labels[k] !== v) return false;
  return canonicalOf(live.spec) === canonicalOf(desired.spec);
}

// The hot path compares the same cached objects again and again: remember each one's canonical form.
// (Objects from the watch cache and the memoised desired policies are never mutated.)
const canonicalMemo = new WeakMap<object, string>();

/** A policy spec as comparable text: sorted keys, undefined fields dropped (memoised per object). */
export function canonicalSpec(spec: unknown): string {
  return canonicalOf(spec);
}

function canonicalOf(value: unknown): string {
  if (value === null || typeof value !== 'object') return canonical(value);
  let text = canonicalMemo.get(value);
  if (text === undefined) {
    text = canonical(value);
    canonicalMemo.set(value, text);
  }
  return text;
}

/** JSON with sorted keys; `undefined` fields dropped (the API server omits empty optionals). */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, x]) => x !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      );
    }
    return v;
  });
}
