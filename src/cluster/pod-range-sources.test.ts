import { describe, expect, it } from 'vitest';
import { calicoPools, ciliumClusterPool, combinePodRanges, flannelNetwork, k3sClusterCIDR, kubeProxyClusterCIDR } from './pod-range-sources.js';

describe('pod range sources (parsers)', () => {
  it("kube-proxy's config.conf clusterCIDR (kubeadm's shape; dual stack; unset)", () => {
    const conf = 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16,fd00:10:244::/56\nmode: ""\n';
    expect(kubeProxyClusterCIDR(conf)).toEqual(['10.244.0.0/16', 'fd00:10:244::/56']);
    expect(kubeProxyClusterCIDR('clusterCIDR: ""\n')).toEqual([]);
    expect(kubeProxyClusterCIDR(undefined)).toEqual([]);
  });

  it("Flannel's net-conf.json Network", () => {
    expect(flannelNetwork('{\n  "Network": "10.244.0.0/16",\n  "EnableNFTables": false,\n  "Backend": {"Type": "vxlan"}\n}')).toEqual(['10.244.0.0/16']);
    expect(flannelNetwork('{"EnableIPv6": true, "IPv6Network": "2001:db8::/64"}')).toEqual([]);
    expect(() => flannelNetwork('{not json')).toThrow();
  });

  it('Calico IPPools: enabled pools only', () => {
    expect(calicoPools([{ spec: { cidr: '192.168.0.0/16' } }, { spec: { cidr: '10.10.0.0/16', disabled: true } }, {}])).toEqual(['192.168.0.0/16']);
  });

  it("Cilium's cluster pool, only in cluster-pool IPAM mode (the default)", () => {
    expect(ciliumClusterPool({ ipam: 'cluster-pool', 'cluster-pool-ipv4-cidr': '10.0.0.0/8' })).toEqual(['10.0.0.0/8']);
    expect(ciliumClusterPool({ 'cluster-pool-ipv4-cidr': '10.0.0.0/16 10.1.0.0/16' })).toEqual(['10.0.0.0/16', '10.1.0.0/16']);
    expect(ciliumClusterPool({ ipam: 'kubernetes', 'cluster-pool-ipv4-cidr': '10.0.0.0/8' })).toEqual([]);
  });

  it("k3s: a server's --cluster-cidr (both spellings), else k3s's default; agents say nothing", () => {
    const node = (args: string[]) => ({ annotations: { 'k3s.io/node-args': JSON.stringify(args) } });
    expect(k3sClusterCIDR([node(['agent']), node(['server', '--cluster-cidr', '10.52.0.0/16'])])).toEqual({ values: ['10.52.0.0/16'], defaulted: false });
    expect(k3sClusterCIDR([node(['server', '--cluster-cidr=10.52.0.0/16,fd00::/56'])])).toEqual({ values: ['10.52.0.0/16', 'fd00::/56'], defaulted: false });
    expect(k3sClusterCIDR([node(['server', '--disable', 'traefik'])])).toEqual({ values: ['10.42.0.0/16'], defaulted: true });
    expect(k3sClusterCIDR([node(['agent']), {}])).toBeUndefined();
    expect(k3sClusterCIDR([{ annotations: { 'k3s.io/node-args': 'garbage' } }])).toBeUndefined();
  });
});

describe('combinePodRanges', () => {
  const nodes = { values: ['10.244.0.0/24', '10.244.1.0/24'], source: 'nodes' };
  const kubeadm = { values: ['10.244.0.0/16'], source: 'kubeadm' };
  const proxy = { values: ['10.244.0.0/16'], source: 'kube-proxy' };
  const stale = { values: ['10.32.0.0/12'], source: 'stale' };
  const calico = { values: ['192.168.0.0/16'], source: 'calico' };

  it('the first cluster-wide range that covers every node; a stale one is passed over', () => {
    expect(combinePodRanges(nodes, [stale, proxy, kubeadm], [])).toEqual({ values: ['10.244.0.0/16'], source: 'kube-proxy, which covers nodes' });
    expect(combinePodRanges(nodes, [stale], [])).toEqual(nodes);
    expect(combinePodRanges(undefined, [stale, proxy], [])).toEqual(stale);
    expect(combinePodRanges(undefined, [], [])).toBeUndefined();
  });

  it('IPAM pools are always included (Calico gives pods addresses outside the nodes\' ranges)', () => {
    expect(combinePodRanges(nodes, [kubeadm], [calico])).toEqual({ values: ['10.244.0.0/16', '192.168.0.0/16'], source: 'calico + kubeadm, which covers nodes' });
    expect(combinePodRanges(undefined, [], [calico])).toEqual({ values: ['192.168.0.0/16'], source: 'calico' });
  });
});
