// The CNI stand-in on its own: NetworkPolicy semantics -> nft rules (pure; no root needed).
import { describe, expect, it } from 'vitest';
import {
  type Inventory,
  type NetworkPolicy,
  UnsupportedPolicyError,
  egressAllowMatches,
  isolatedPods,
  peerPods,
  selectorMatches,
  translatePolicies,
} from './lib/netpol.js';
import { CLIENT_NAMESPACE, productInputs } from './lib/inputs.js';
import { ADDR, labInventory } from './lib/lab.js';

const inv: Inventory = {
  namespaces: [{ name: 'downloads', labels: { team: 'media' } }, { name: 'kube-system' }, { name: 'other' }],
  pods: [
    { name: 'qbt', namespace: 'downloads', labels: { app: 'qbt', 'podvpn.io/routed': 'default' }, ips: ['10.244.0.10', 'fd00::10'], hostIf: 'v-qbt' },
    { name: 'sonarr', namespace: 'downloads', labels: { app: 'sonarr' }, ips: ['10.244.0.11'], hostIf: 'v-sonarr' },
    { name: 'coredns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ips: ['10.244.0.53'], hostIf: 'v-dns' },
    { name: 'web', namespace: 'other', labels: { app: 'web' }, ips: ['10.244.0.30'], hostIf: 'v-web' },
  ],
};

const policy = (egress: NetworkPolicy['spec']['egress'], extra: Partial<NetworkPolicy['spec']> = {}): NetworkPolicy => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'ks', namespace: 'downloads' },
  spec: { podSelector: { matchLabels: { 'podvpn.io/routed': 'default' } }, policyTypes: ['Egress'], egress, ...extra },
});

describe('label selectors', () => {
  it('matchLabels and every matchExpressions operator', () => {
    const labels = { a: '1', b: '2' };
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { a: '1' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { a: '2' } }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '3'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['1'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'Exists' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'DoesNotExist' }] }, labels)).toBe(true);
  });
});

describe('peers', () => {
  it('podSelector alone stays in the policy namespace; namespaceSelector alone takes every pod there', () => {
    expect(peerPods({ podSelector: {} }, 'downloads', inv).map((p) => p.name)).toEqual(['qbt', 'sonarr']);
    expect(peerPods({ namespaceSelector: {} }, 'downloads', inv)).toHaveLength(4);
    expect(
      peerPods(
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
        'downloads',
        inv,
      ).map((p) => p.name),
    ).toEqual(['coredns']);
    expect(peerPods({ namespaceSelector: { matchLabels: { team: 'media' } } }, 'x', inv).map((p) => p.name)).toEqual(['qbt', 'sonarr']);
  });

  it('ipBlock with except; rules are OR of peers times ports', () => {
    const m = egressAllowMatches(
      policy([
        { to: [{ ipBlock: { cidr: '10.244.0.0/16', except: ['10.244.9.0/24'] } }, { ipBlock: { cidr: 'fd00::/64' } }] },
        {
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [{ protocol: 'UDP', port: 53 }, { port: 53 }, { protocol: 'TCP', port: 8000, endPort: 8080 }],
        },
      ]),
      inv,
    );
    expect(m).toEqual([
      'ip daddr 10.244.0.0/16 ip daddr != { 10.244.9.0/24 }',
      'ip6 daddr fd00::/64',
      'ip daddr { 10.244.0.53 } udp dport 53',
      'ip daddr { 10.244.0.53 } tcp dport 53',
      'ip daddr { 10.244.0.53 } tcp dport 8000-8080',
    ]);
  });

  it('an empty `to` allows every destination on the given ports; a selector that matches nothing allows nothing', () => {
    expect(egressAllowMatches(policy([{ ports: [{ protocol: 'UDP', port: 53 }] }]), inv)).toEqual(['udp dport 53']);
    expect(egressAllowMatches(policy([{ to: [{ podSelector: { matchLabels: { none: 'x' } } }] }]), inv)).toEqual([]);
  });

  it('refuses what it cannot translate faithfully', () => {
    expect(() => egressAllowMatches(policy([{ ports: [{ port: 'dns' }] }]), inv)).toThrow(UnsupportedPolicyError);
    expect(() => translatePolicies([{ ...policy([]), kind: 'Pod' }], inv, 't')).toThrow(UnsupportedPolicyError);
  });
});

describe('translation', () => {
  it('isolates only the selected pods, only for egress policies', () => {
    expect(isolatedPods([policy([])], inv).map((p) => p.name)).toEqual(['qbt']);
    expect(isolatedPods([policy([], { policyTypes: ['Ingress'] })], inv)).toEqual([]);
    const noTypes = policy([{}]);
    delete noTypes.spec.policyTypes;
    expect(isolatedPods([noTypes], inv).map((p) => p.name)).toEqual(['qbt']);
  });

  it('writes one stateful chain per isolated pod, hooked on its veth, counting drops', () => {
    const nft = translatePolicies([policy([{ to: [{ ipBlock: { cidr: '10.244.0.0/16' } }] }])], inv, 'netpol');
    expect(nft).toContain('table inet netpol {');
    expect(nft).toContain('iifname "v-qbt" jump egress_downloads_qbt');
    expect(nft).not.toContain('v-sonarr');
    expect(nft).toContain('ct state established,related accept');
    expect(nft).toContain('ip daddr 10.244.0.0/16 accept comment "ks"');
    expect(nft).toMatch(/counter name egress_downloads_qbt_dropped counter name dropped drop/);
    expect(nft).toContain('type filter hook forward priority filter; policy accept;');
    expect(nft).toContain('type filter hook input priority filter; policy accept;');
  });

  it('an egress policy with no rules denies all egress (only the drop remains)', () => {
    const nft = translatePolicies([policy([])], inv, 'netpol');
    expect(nft).not.toMatch(/ accept comment/);
  });
});

describe("the product's kill-switch policy, as the lab enforces it", () => {
  const product = productInputs();
  const labInv = labInventory(CLIENT_NAMESPACE, product.clientLabels);
  const nft = translatePolicies(product.policies, labInv, 'podvpn_netpol');
  it('isolates exactly the routed pods (the webhook label), not the app, DNS or gateway pods', () => {
    expect(isolatedPods(product.policies, labInv).map((p) => p.name)).toEqual(['client', 'nogw', 'c1400']);
  });
  it('allows the cluster ranges, every cluster pod and DNS; nothing else', () => {
    expect(nft).toContain(`ip daddr ${ADDR.podCIDR} accept`);
    expect(nft).toContain(`ip daddr ${ADDR.serviceCIDR} accept`);
    expect(nft).toMatch(new RegExp(`ip daddr \\{ [^}]*${ADDR.gw.replaceAll('.', '\\.')}[^}]* \\} accept`));
    expect(nft).toContain(`ip daddr { ${ADDR.dns} } udp dport 53 accept`);
    expect(nft).toContain(`ip daddr { ${ADDR.dns} } tcp dport 53 accept`);
    expect(nft).not.toMatch(/0\.0\.0\.0\/0|::\/0/);
    // Every accept names a destination: no rule opens all destinations.
    for (const line of nft.split('\n').filter((l) => l.includes(' accept comment'))) expect(line).toMatch(/daddr/);
  });
});

describe('Cilium: ipBlock does not match pod addresses', () => {
  const product = productInputs();
  const labInv = labInventory(CLIENT_NAMESPACE, product.clientLabels);
  it('ipBlocks exclude every pod address; pods are reached only through selectors', () => {
    const m = egressAllowMatches(
      { ...policy([{ to: [{ ipBlock: { cidr: '10.244.0.0/16' } }] }]) },
      labInv,
      { ipBlockMatchesPods: false },
    );
    expect(m).toHaveLength(1);
    expect(m[0]).toContain(`ip daddr != {`);
    expect(m[0]).toContain(ADDR.gw);
  });
  it("the product's policy reaches the gateway pod on Cilium only through its peer-selector rule", () => {
    const allows = (policies: NetworkPolicy[]) =>
      policies.flatMap((p) => egressAllowMatches(p, labInv, { ipBlockMatchesPods: false })).filter((m) => /^ip daddr \{/.test(m) && m.includes(ADDR.gw));
    expect(allows(product.policies).length).toBeGreaterThan(0);
    const withoutSelector = product.policies.map((p) => ({
      ...p,
      spec: { ...p.spec, egress: (p.spec.egress ?? []).filter((r) => !(r.to ?? []).some((peer) => peer.namespaceSelector !== undefined && peer.podSelector === undefined)) },
    }));
    expect(allows(withoutSelector)).toEqual([]);
  });
});
