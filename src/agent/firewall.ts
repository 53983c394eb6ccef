// The in-pod firewall (pure): an nftables ruleset the agent loads into the pod's network namespace.
// Deny first: the pod has no CAP_NET_ADMIN, so it can neither read nor change it. A third layer under
// the kill-switch NetworkPolicy and the gateway's own firewall, and the one that holds on a CNI that
// does not enforce NetworkPolicy.
//
// Egress (the output hook; the pod's own traffic, including the kernel's VXLAN packets):
//   1. loopback: allowed.
//   2. DNS (53/udp, 53/tcp): only to the gateway's dnsmasq (.1) through the tunnel. Cluster DNS on eth0
//      is refused too: it would forward an internet name outside the tunnel. Cluster names still
//      resolve: the gateway's dnsmasq forwards the cluster domain to cluster DNS.
//   3. eth0 (the pod's own interface): only the cluster's ranges (pods, services, extra). The VXLAN
//      packets to the gateway's pod IP fall here (a pod range).
//   4. vxlan0: IPv4 only (the gateway routes no IPv6).
//   5. everything else, IPv6 internet included: dropped, counted (the lab reads the counters).
// Ingress is not filtered here (the NetworkPolicy decides who may reach the pod), with one exception:
// the gateway's echo requests on vxlan0 are dropped, unanswered. They are dnsmasq's check that an
// address is unused before it offers it. After a gateway replacement the new dnsmasq knows no lease,
// and a pod asking to keep its address would answer that check itself and be handed another address
// (the data-plane lab captured it: the pod's echo reply, then an offer of the next address). Silent,
// it keeps its address. The check still protects what it is for: the agent keeps every agent-mode
// pod's lease known to dnsmasq (it renews at half-life and re-registers within a round of a
// replacement), and pod-gateway-mode pods, whose leases are never renewed, still answer it.
// Forwarding: dropped.
//
// Loaded as one nft transaction ("table; delete table; table {...}"): replacing the ranges is atomic,
// and re-applying the same ruleset changes nothing observable.

import { allowedCIDRs, type ClusterRanges } from '../cluster/ranges.js';
import { parseCidr } from '../cidr/cidr.js';

export const FIREWALL_TABLE = 'podvpn';

export interface FirewallInput {
  ranges: ClusterRanges;
  /** The gateway's overlay address, the only DNS server. */
  gatewayOverlayIP: string;
  podLink?: string;
  tunnelLink?: string;
}

export function firewallRuleset(input: FirewallInput): string {
  const pod = input.podLink ?? 'eth0';
  const tunnel = input.tunnelLink ?? 'vxlan0';
  const cidrs = allowedCIDRs(input.ranges);
  const v4 = cidrs.filter((c) => parseCidr(c).family === 4);
  const v6 = cidrs.filter((c) => parseCidr(c).family === 6);
  const set = (name: string, type: string, elements: string[]) =>
    [
      `\tset ${name} {`,
      `\t\ttype ${type}`,
      '\t\tflags interval',
      ...(elements.length > 0 ? [`\t\telements = { ${elements.join(', ')} }`] : []),
      '\t}',
    ].join('\n');
  const lines = [
    '# podvpn in-pod firewall: written by podvpn-agent, one transaction',
    `table inet ${FIREWALL_TABLE}`,
    `delete table inet ${FIREWALL_TABLE}`,
    `table inet ${FIREWALL_TABLE} {`,
    set('cluster4', 'ipv4_addr', v4),
    set('cluster6', 'ipv6_addr', v6),
    '\tchain output {',
    '\t\ttype filter hook output priority filter; policy drop;',
    '\t\toifname "lo" accept',
    `\t\toifname "${tunnel}" ip daddr ${input.gatewayOverlayIP} meta l4proto { tcp, udp } th dport 53 accept`,
    '\t\tmeta l4proto { tcp, udp } th dport 53 counter drop comment "dns outside the tunnel"',
    `\t\toifname "${pod}" ip daddr @cluster4 accept`,
    ...(v6.length > 0
      ? [
          `\t\toifname "${pod}" ip6 daddr @cluster6 accept`,
          // Neighbour discovery to reach the IPv6 cluster ranges on the pod's own link
          `\t\toifname "${pod}" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept`,
        ]
      : []),
    `\t\toifname "${tunnel}" meta nfproto ipv4 accept`,
    '\t\tmeta nfproto ipv6 counter drop comment "ipv6 outside the cluster"',
    '\t\tcounter drop comment "not cluster, not tunnel"',
    '\t}',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    `\t\tiifname "${tunnel}" ip saddr ${input.gatewayOverlayIP} icmp type echo-request counter drop comment "dnsmasq's address check"`,
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy drop;',
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}
