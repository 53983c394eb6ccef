import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { expectGolden, goldenCases, orphanGoldens, readInput } from '../../test/golden.js';
import { containsAddress, parseAddress, parseCidr } from '../cidr/cidr.js';
import { notRoutedCIDRs, resolveRanges, type ClusterRanges } from '../cluster/ranges.js';
import { parseConfig } from '../config/schema.js';
import {
  buildKillSwitchPolicy,
  isPolicyCurrent,
  killSwitchPolicyName,
  policiesForNamespaces,
  type KillSwitchPolicy,
} from './policy.js';

const here = dirname(fileURLToPath(import.meta.url));
const dataDir = join(here, 'testdata');

interface Case {
  namespace: string;
  gateway: string;
  cluster: unknown;
}

function rangesOf(cluster: unknown): ClusterRanges {
  const config = parseConfig({ cluster });
  return resolveRanges(config.cluster, {});
}

const inputs = goldenCases(dataDir);

describe('kill-switch policy goldens', () => {
  it('has cases', () => expect(inputs.length).toBeGreaterThanOrEqual(5));

  it.each(inputs)('%s', (name) => {
    const input = parse(readInput(dataDir, name)) as Case;
    const policy = buildKillSwitchPolicy({ namespace: input.namespace, gateway: input.gateway, ranges: rangesOf(input.cluster) });
    // Valid against the Kubernetes schema: the API server would accept it.
    expect(() => new NetworkPolicy(policy as never).validate()).not.toThrow();
    expectGolden(dataDir, name, undefined, stringify(policy));
  });

  it('no golden without an input (orphans fail)', () => {
    expect(orphanGoldens(dataDir, [undefined])).toEqual([]);
  });
});

const kubeadm: ClusterRanges = rangesOf({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], dnsIPs: ['10.96.0.10'] });

/** Which egress rules would let a packet to `ip`:`port`/`proto` out, ignoring selector rules. */
function ipBlockAllows(policy: KillSwitchPolicy, ip: string, port: number, proto: 'TCP' | 'UDP'): boolean {
  const addr = parseAddress(ip);
  return policy.spec.egress.some((rule) => {
    const portOk = rule.ports === undefined || rule.ports.some((p) => p.port === port && p.protocol === proto);
    return portOk && rule.to.some((peer) => peer.ipBlock !== undefined && containsAddress([parseCidr(peer.ipBlock.cidr)], addr.family, addr.network));
  });
}

describe('kill-switch policy semantics', () => {
  const policy = buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges: kubeadm });

  it('is named after the gateway and selects the routed pods of that gateway only', () => {
    expect(policy.metadata.name).toBe(killSwitchPolicyName('default'));
    expect(policy.metadata.name).toBe('podvpn-killswitch-default');
    expect(policy.spec.podSelector).toEqual({ matchLabels: { 'podvpn.io/routed': 'default' } });
    expect(policy.spec.policyTypes).toEqual(['Egress']);
    expect(policy.metadata.labels['app.kubernetes.io/managed-by']).toBe('podvpn');
  });

  it.each(['1.1.1.1', '8.8.8.8', '192.168.1.10', '172.16.0.1', '11.0.0.1'])('blocks %s on any port', (ip) => {
    for (const port of [53, 443, 51820]) {
      expect(ipBlockAllows(policy, ip, port, 'UDP')).toBe(false);
      expect(ipBlockAllows(policy, ip, port, 'TCP')).toBe(false);
    }
  });

  it.each(['10.244.3.7', '10.96.0.1', '10.111.255.255'])('allows in-cluster %s', (ip) => {
    expect(ipBlockAllows(policy, ip, 443, 'TCP')).toBe(true);
  });

  it('negative control: the checker notices an open policy', () => {
    const open = structuredClone(policy);
    open.spec.egress.push({ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] });
    expect(ipBlockAllows(open, '1.1.1.1', 443, 'TCP')).toBe(true);
  });

  it('has no IPv6 unless configured, and no rule without peers', () => {
    expect(JSON.stringify(policy)).not.toMatch(/::/);
    for (const rule of policy.spec.egress) expect(rule.to.length).toBeGreaterThan(0);
  });

  it('allows exactly what the client routes around the tunnel (routes and policy agree)', () => {
    const ipBlocks = policy.spec.egress[0]!.to.map((p) => p.ipBlock?.cidr);
    expect(ipBlocks).toEqual(notRoutedCIDRs(kubeadm));
  });

  it('refuses to build with no ranges (an empty `to` would allow everything)', () => {
    const empty = resolveRanges({ podCIDRs: [], serviceCIDRs: [], extraAllowedCIDRs: [], dnsIPs: [] }, {});
    expect(() => buildKillSwitchPolicy({ namespace: 'a', gateway: 'b', ranges: empty })).toThrow(/at least one/);
  });
});

describe('isPolicyCurrent', () => {
  const desired = buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges: kubeadm });
  it('a copy as the API server returns it is current, with extra user labels too', () => {
    const live = JSON.parse(JSON.stringify(desired)) as KillSwitchPolicy & { metadata: Record<string, unknown> };
    live.metadata.labels['team'] = 'media';
    (live.metadata as Record<string, unknown>)['resourceVersion'] = '12';
    expect(isPolicyCurrent(live, desired)).toBe(true);
  });
  it('missing, edited spec or dropped label is stale', () => {
    expect(isPolicyCurrent(undefined, desired)).toBe(false);
    const edited = structuredClone(desired);
    edited.spec.egress.push({ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] });
    expect(isPolicyCurrent(edited, desired)).toBe(false);
    const unlabelled = structuredClone(desired) as { metadata: { labels: Record<string, string> } };
    delete unlabelled.metadata.labels['app.kubernetes.io/managed-by'];
    expect(isPolicyCurrent(unlabelled as never, desired)).toBe(false);
  });
  it('a CIDR change makes every policy stale', () => {
    const wider = rangesOf({ podCIDRs: ['10.244.0.0/15'], serviceCIDRs: ['10.96.0.0/12'], dnsIPs: ['10.96.0.10'] });
    expect(isPolicyCurrent(desired, buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges: wider }))).toBe(false);
  });
});

describe('policiesForNamespaces', () => {
  it('with config, refuses public ranges unless forced', () => {
    const open = rangesOf({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraAllowedCIDRs: ['8.8.8.0/24'], dnsIPs: ['10.96.0.10'] });
    const ns = [{ namespace: 'downloads', gateway: 'default' }];
    expect(() => policiesForNamespaces(ns, open, parseConfig({}))).toThrow(/8\.8\.8\.0\/24/);
    expect(policiesForNamespaces(ns, open, parseConfig({ cluster: { allowPublicRanges: true } }))).toHaveLength(1);
    expect(policiesForNamespaces(ns, kubeadm, parseConfig({}))).toHaveLength(1);
  });

  it('one per distinct namespace and gateway, sorted', () => {
    const out = policiesForNamespaces(
      [
        { namespace: 'media', gateway: 'default' },
        { namespace: 'downloads', gateway: 'vpn-eu' },
        { namespace: 'media', gateway: 'default' },
        { namespace: 'downloads', gateway: 'default' },
      ],
      kubeadm,
    );
    expect(out.map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual([
      'downloads/podvpn-killswitch-default',
      'downloads/podvpn-killswitch-vpn-eu',
      'media/podvpn-killswitch-default',
    ]);
  });
});
