// NetworkPolicy -> nftables: the lab's stand-in for the CNI's policy engine.
//
// Covered (egress of the pods the policy selects, as the Kubernetes docs define it):
//   - spec.podSelector / namespace: which lab pods are isolated for egress;
//   - policyTypes (and its default: Egress when spec.egress is present);
//   - egress rules: `to` peers OR-ed, `ports` OR-ed, rules OR-ed; an absent or empty `to` means every
//     destination, an absent or empty `ports` every port;
//   - ipBlock with `except`; podSelector, namespaceSelector and both together, with matchLabels and
//     matchExpressions (In, NotIn, Exists, DoesNotExist), resolved to the lab's pod addresses through a
//     small inventory (the lab's "API server"); an empty selector selects all;
//   - ports: protocol TCP (the default), UDP, SCTP; numeric port; endPort ranges.
// Enforced like Calico/Cilium do: on the pod's node-side veth, after service DNAT, stateful (replies
// of allowed or inbound connections pass), everything else dropped and counted. IPv4 and IPv6 alike:
// an isolated pod gets no IPv6 egress unless an ipBlock allows it (IPv6 neighbour discovery is exempt,
// as ARP is: link plumbing, not policy traffic).
// Not covered: ingress rules, named ports (rejected, never silently widened), host-network pods,
// CNI differences beyond ipBlock matching of pod IPs (Calico matches them, the default; Cilium does
// not: option ipBlockMatchesPods false).

export interface LabelSelectorRequirement {
  key: string;
  /** In, NotIn, Exists, DoesNotExist; anything else is refused (as client-node types it: a string). */
  operator: string;
  values?: string[];
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}
export interface NetworkPolicyPeer {
  ipBlock?: { cidr: string; except?: string[] };
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
}
export interface NetworkPolicyPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}
export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}
export interface NetworkPolicy {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: string[];
    egress?: NetworkPolicyEgressRule[];
    ingress?: unknown[];
  };
}

/** The lab's view of the cluster: namespaces with labels, pods with labels and addresses. */
export interface Inventory {
  namespaces: { name: string; labels?: Record<string, string> }[];
  pods: { name: string; namespace: string; labels: Record<string, string>; ips: string[]; hostIf: string }[];
}

export class UnsupportedPolicyError extends Error {
  override name = 'UnsupportedPolicyError';
}

export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    switch (req.operator) {
      case 'In':
        if (!has || !(req.values ?? []).includes(value as string)) return false;
        break;
      case 'NotIn':
        if (has && (req.values ?? []).includes(value as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new UnsupportedPolicyError(`selector operator ${req.operator}`);
    }
  }
  return true;
}

function namespaceLabels(inv: Inventory, name: string): Record<string, string> {
  const ns = inv.namespaces.find((n) => n.name === name);
  // The API server sets this label on every namespace.
  return { ...(ns?.labels ?? {}), 'kubernetes.io/metadata.name': name };
}

/** Pods selected by a peer's selectors (not its ipBlock), in the policy's namespace's frame. */
export function peerPods(peer: NetworkPolicyPeer, policyNamespace: string, inv: Inventory): Inventory['pods'] {
  return inv.pods.filter((pod) => {
    if (peer.namespaceSelector === undefined) {
      if (pod.namespace !== policyNamespace) return false;
    } else if (!selectorMatches(peer.namespaceSelector, namespaceLabels(inv, pod.namespace))) {
      return false;
    }
    return selectorMatches(peer.podSelector ?? {}, pod.labels);
  });
}

const isV6 = (addr: string) => addr.includes(':');

function portMatch(p: NetworkPolicyPort): string {
  const proto = (p.protocol ?? 'TCP').toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new UnsupportedPolicyError(`protocol ${p.protocol}`);
  if (p.port === undefined) return `meta l4proto ${proto}`;
  if (typeof p.port === 'string') {
    if (/^\d+$/.test(p.port)) p = { ...p, port: Number(p.port) };
    else throw new UnsupportedPolicyError(`named port "${p.port}": the lab translates numeric ports only`);
  }
  const range = p.endPort !== undefined ? `${p.port}-${p.endPort}` : `${p.port}`;
  return `${proto} dport ${range}`;
}

/** Destination matches of one peer, one per address family present (empty: matches nothing). */
function peerMatches(peer: NetworkPolicyPeer, policyNamespace: string, inv: Inventory, opts: TranslateOptions): string[] {
  if (peer.ipBlock !== undefined) {
    if (peer.podSelector !== undefined || peer.namespaceSelector !== undefined) {
      throw new UnsupportedPolicyError('a peer with ipBlock and a selector is invalid');
    }
    const fam = isV6(peer.ipBlock.cidr) ? 'ip6' : 'ip';
    const except = (peer.ipBlock.except ?? []).filter((e) => isV6(e) === (fam === 'ip6'));
    const exceptMatch = except.length > 0 ? ` ${fam} daddr != { ${except.join(', ')} }` : '';
    // Cilium: an ipBlock selects only endpoints outside the cluster; pods are matched by identity.
    const pods = [...new Set(inv.pods.flatMap((p) => p.ips).filter((a) => isV6(a) === (fam === 'ip6')))];
    const podMatch = opts.ipBlockMatchesPods === false && pods.length > 0 ? ` ${fam} daddr != { ${pods.join(', ')} }` : '';
    return [`${fam} daddr ${peer.ipBlock.cidr}${exceptMatch}${podMatch}`];
  }
  const ips = peerPods(peer, policyNamespace, inv).flatMap((p) => p.ips);
  const v4 = ips.filter((a) => !isV6(a));
  const v6 = ips.filter(isV6);
  const out: string[] = [];
  if (v4.length > 0) out.push(`ip daddr { ${[...new Set(v4)].join(', ')} }`);
  if (v6.length > 0) out.push(`ip6 daddr { ${[...new Set(v6)].join(', ')} }`);
  return out;
}

export function isEgressPolicy(policy: NetworkPolicy): boolean {
  const types = policy.spec.policyTypes;
  if (types !== undefined && types.length > 0) return types.includes('Egress');
  return policy.spec.egress !== undefined;
}

/** The nft rule bodies (without the verdict) that allow traffic under one policy. */
export interface TranslateOptions {
  /**
   * Whether an ipBlock matches pod addresses. Calico: yes (the default). Cilium: no, an ipBlock
   * selects only endpoints outside the cluster, so pods must be allowed by selector.
   */
  ipBlockMatchesPods?: boolean;
}

export function egressAllowMatches(policy: NetworkPolicy, inv: Inventory, opts: TranslateOptions = {}): string[] {
  const ns = policy.metadata.namespace ?? 'default';
  const rules: string[] = [];
  for (const rule of policy.spec.egress ?? []) {
    const to = rule.to !== undefined && rule.to.length > 0 ? rule.to.flatMap((p) => peerMatches(p, ns, inv, opts)) : [''];
    const ports = rule.ports !== undefined && rule.ports.length > 0 ? rule.ports.map(portMatch) : [''];
    for (const dst of to) for (const port of ports) rules.push([dst, port].filter((s) => s !== '').join(' '));
  }
  return rules;
}

/** Lab pods the policies isolate for egress. */
export function isolatedPods(policies: NetworkPolicy[], inv: Inventory): Inventory['pods'] {
  return inv.pods.filter((pod) =>
    policies.some(
      (p) =>
        isEgressPolicy(p) &&
        (p.metadata.namespace ?? 'default') === pod.namespace &&
        selectorMatches(p.spec.podSelector, pod.labels),
    ),
  );
}

const chainName = (pod: { namespace: string; name: string }) =>
  `egress_${pod.namespace}_${pod.name}`.replace(/[^A-Za-z0-9_]/g, '_');

/**
 * An nft script (for `nft -f`) defining `table inet <table>`: for every pod a policy isolates, a chain
 * on its node-side veth that accepts what any selecting policy allows and counts and drops the rest.
 * Counters: `<table>` named counter `dropped` (all pods) plus one per pod.
 */
export function translatePolicies(policies: NetworkPolicy[], inv: Inventory, table: string, opts: TranslateOptions = {}): string {
  for (const p of policies) {
    if (p.apiVersion !== 'networking.k8s.io/v1' || p.kind !== 'NetworkPolicy') {
      throw new UnsupportedPolicyError(`not a networking.k8s.io/v1 NetworkPolicy: ${p.apiVersion}/${p.kind}`);
    }
  }
  const lines: string[] = [`table inet ${table} {`, '  counter dropped {', '  }'];
  const hooks: string[] = [];
  for (const pod of isolatedPods(policies, inv)) {
    const chain = chainName(pod);
    lines.push(`  counter ${chain}_dropped {`, '  }');
    lines.push(`  chain ${chain} {`);
    lines.push('    ct state established,related accept');
    for (const p of policies) {
      if (!isEgressPolicy(p) || (p.metadata.namespace ?? 'default') !== pod.namespace) continue;
      if (!selectorMatches(p.spec.podSelector, pod.labels)) continue;
      for (const m of egressAllowMatches(p, inv, opts)) lines.push(`    ${m === '' ? '' : `${m} `}accept comment "${p.metadata.name}"`);
    }
    lines.push(`    counter name ${chain}_dropped counter name dropped drop`);
    lines.push('  }');
    hooks.push(`    iifname "${pod.hostIf}" jump ${chain}`);
  }
  for (const hook of ['forward', 'input']) {
    lines.push(
      `  chain ${hook} {`,
      `    type filter hook ${hook} priority filter; policy accept;`,
      // Neighbour discovery is link plumbing, not traffic a NetworkPolicy governs (ARP never is).
      '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept',
      ...hooks,
      '  }',
    );
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
