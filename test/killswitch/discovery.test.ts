// Cluster range discovery from each source, against the API double through @kubernetes/client-node.

import { afterEach, describe, expect, it } from 'vitest';
import { discover, parseValidRange, PROBE_CLUSTER_IP, resolveClusterRanges } from '../../src/cluster/discovery.js';
import { parseConfig } from '../../src/config/schema.js';
import { DEFAULT_RESOURCES, KubeApiDouble, type KubeApiDoubleOptions, type ResourceType, withoutResource } from '../kube-api-double/index.js';
import { captureLogger } from './log.js';

let api: KubeApiDouble | undefined;
afterEach(async () => {
  await api?.close();
  api = undefined;
});

const noServiceCIDRApi = withoutResource(DEFAULT_RESOURCES, 'networking.k8s.io', 'v1', 'servicecidrs');
const serviceCIDRv1beta1: ResourceType = { group: 'networking.k8s.io', version: 'v1beta1', resource: 'servicecidrs', kind: 'ServiceCIDR', namespaced: false };

async function cluster(opts: KubeApiDoubleOptions & { nodes?: string[][]; kubeadm?: string; kubeDns?: string[] } = {}): Promise<KubeApiDouble> {
  api = await KubeApiDouble.start(opts);
  for (const name of ['kube-system', 'default', 'podvpn-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  (opts.nodes ?? []).forEach((podCIDRs, i) =>
    api!.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${i}` }, spec: podCIDRs.length > 0 ? { podCIDR: podCIDRs[0], podCIDRs } : {} }),
  );
  if (opts.kubeadm !== undefined) {
    api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kubeadm-config', namespace: 'kube-system' }, data: { ClusterConfiguration: opts.kubeadm } });
  }
  if (opts.kubeDns !== undefined) {
    api.put({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: 'kube-system' },
      spec: { clusterIP: opts.kubeDns[0], clusterIPs: opts.kubeDns, ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] },
    });
  }
  return api;
}

const KUBEADM = `apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  dnsDomain: cluster.local
  podSubnet: 10.32.0.0/12
  serviceSubnet: 10.112.0.0/12
`;

describe('pod CIDRs', () => {
  it("from nodes' spec.podCIDRs, merged; IPv6 ignored with a note", async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24', 'fd00:10:244::/64'], ['10.244.1.0/24'], ['10.244.2.0/24']] });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs).toEqual({ values: ['10.244.0.0/23', '10.244.2.0/24'], source: "nodes' spec.podCIDRs (3 node(s))" });
    expect(found.notes.join('\n')).toMatch(/IPv6 range fd00:10:244::\/64 ignored/);
    expect(a.requests.some((r) => r.resource === 'nodes' && r.verb === 'list')).toBe(true);
  });

  it('from kubeadm-config podSubnet when no node has a pod range', async () => {
    const a = await cluster({ nodes: [[], []], kubeadm: KUBEADM });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs).toEqual({ values: ['10.32.0.0/12'], source: 'kubeadm-config ConfigMap (networking.podSubnet)' });
  });

  it("kubeadm-config podSubnet when it covers every node's range (cluster-wide, stable as nodes come)", async () => {
    const a = await cluster({ nodes: [['10.32.0.0/24'], ['10.32.1.0/24']], kubeadm: KUBEADM });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs?.values).toEqual(['10.32.0.0/12']);
    expect(found.podCIDRs?.source).toMatch(/kubeadm-config ConfigMap \(networking\.podSubnet\), which covers nodes' spec\.podCIDRs/);
  });

  it('the nodes win when kubeadm-config disagrees with them (stale config)', async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24']], kubeadm: KUBEADM });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs?.values).toEqual(['10.244.0.0/24']);
  });

  it('not found: no node range, no kubeadm-config', async () => {
    const a = await cluster({ nodes: [[]] });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs).toBeUndefined();
    expect(found.notes.join('\n')).toMatch(/kubeadm-config: HTTP 404 NotFound/);
  });
});

describe('service CIDRs', () => {
  it('from the ServiceCIDR API (networking.k8s.io/v1), before any probe', async () => {
    const a = await cluster();
    a.put({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/12', 'fd00:10:96::/112'] } });
    a.put({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'extra' }, spec: { cidrs: ['10.200.0.0/16'] } });
    const found = await discover(a.kubeConfig(), ['serviceCIDRs']);
    expect(found.serviceCIDRs).toEqual({ values: ['10.96.0.0/12', '10.200.0.0/16'], source: 'ServiceCIDR API (networking.k8s.io/v1)' });
    expect(a.writes()).toEqual([]);
  });

  it('from ServiceCIDR networking.k8s.io/v1beta1 when v1 is not served', async () => {
    const a = await cluster({ resources: [...noServiceCIDRApi, serviceCIDRv1beta1] });
    a.put({ apiVersion: 'networking.k8s.io/v1beta1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.43.0.0/16'] } });
    const found = await discover(a.kubeConfig(), ['serviceCIDRs']);
    expect(found.serviceCIDRs).toEqual({ values: ['10.43.0.0/16'], source: 'ServiceCIDR API (networking.k8s.io/v1beta1)' });
  });

  it('from the error of a dry-run Service create when there is no ServiceCIDR API; nothing is created', async () => {
    const a = await cluster({ resources: noServiceCIDRApi, serviceCIDRs: ['10.43.0.0/16'] });
    const found = await discover(a.kubeConfig(), ['serviceCIDRs']);
    expect(found.serviceCIDRs).toEqual({ values: ['10.43.0.0/16'], source: 'dry-run Service probe (the API server named its service range)' });
    const probe = a.requests.find((r) => r.resource === 'services' && r.verb === 'create');
    expect(probe).toMatchObject({ namespace: 'podvpn-system', dryRun: true });
    expect(a.list('v1', 'Service')).toEqual([]);
  });

  it('from kubeadm-config serviceSubnet when the probe is forbidden', async () => {
    const a = await cluster({ resources: noServiceCIDRApi, kubeadm: KUBEADM });
    a.fault({ verb: 'create', resource: 'services', status: 403, message: 'services is forbidden' });
    const found = await discover(a.kubeConfig(), ['serviceCIDRs']);
    expect(found.serviceCIDRs).toEqual({ values: ['10.112.0.0/12'], source: 'kubeadm-config ConfigMap (networking.serviceSubnet)' });
    expect(found.notes.join('\n')).toMatch(/dry-run Service probe: HTTP 403 Forbidden: services is forbidden/);
  });

  it('a ServiceCIDR API that refuses (403) falls through to the probe', async () => {
    const a = await cluster({ serviceCIDRs: ['10.100.0.0/16'] });
    a.fault({ resource: 'servicecidrs', status: 403 });
    const found = await discover(a.kubeConfig(), ['serviceCIDRs']);
    expect(found.serviceCIDRs?.values).toEqual(['10.100.0.0/16']);
  });

  it('parses the API server message forms', () => {
    expect(
      parseValidRange(
        `Service "p" is invalid: spec.clusterIPs: Invalid value: []string{"${PROBE_CLUSTER_IP}"}: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12`,
      ),
    ).toEqual(['10.96.0.0/12']);
    expect(parseValidRange('failed to allocated ip:1.1.1.1 with error:provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16')).toEqual(['10.43.0.0/16']);
    expect(parseValidRange('failed to allocate an IP. The range of valid IPs is CIDR 172.20.0.0/16')).toEqual(['172.20.0.0/16']);
    expect(parseValidRange('spec.clusterIPs[0]: Invalid value: "1.1.1.1": failed to allocate IP 1.1.1.1: the provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12')).toEqual(['10.96.0.0/12']);
    expect(parseValidRange('The range of valid IPs is fd00:10:96::/112')).toEqual([]); // IPv6: only when configured
    expect(parseValidRange('something else entirely')).toEqual([]);
  });
});

describe('DNS IPs', () => {
  it('from Service kube-system/kube-dns', async () => {
    const a = await cluster({ kubeDns: ['10.96.0.10'] });
    const found = await discover(a.kubeConfig(), ['dnsIPs']);
    expect(found.dnsIPs).toEqual({ values: ['10.96.0.10'], source: 'Service kube-system/kube-dns' });
  });
  it('missing kube-dns is a note, not a guess', async () => {
    const a = await cluster();
    const found = await discover(a.kubeConfig(), ['dnsIPs']);
    expect(found.dnsIPs).toBeUndefined();
  });
});

describe('resolveClusterRanges: config over discovery, checks, log', () => {
  it('a fully discovered cluster, each source logged', async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24'], ['10.244.1.0/24']], kubeDns: ['10.96.0.10'] });
    a.put({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/12'] } });
    const log = captureLogger();
    const out = await resolveClusterRanges(a.kubeConfig(), parseConfig({}), log.logger);
    expect(out.problem).toBeUndefined();
    expect(out.ranges).toMatchObject({ podCIDRs: ['10.244.0.0/23'], serviceCIDRs: ['10.96.0.0/12'], dnsIPs: ['10.96.0.10'] });
    expect(log.text()).toMatch(/pods 10\.244\.0\.0\/23 from nodes' spec\.podCIDRs.*services 10\.96\.0\.0\/12 from ServiceCIDR API.*DNS 10\.96\.0\.10 from Service kube-system\/kube-dns/);
  });

  it('config overrides: a configured kind is not looked up at all', async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24']], kubeDns: ['10.96.0.10'] });
    const config = parseConfig({ cluster: { podCIDRs: ['10.50.0.0/16'], serviceCIDRs: ['10.60.0.0/16'] } });
    const out = await resolveClusterRanges(a.kubeConfig(), config, captureLogger().logger);
    expect(out.ranges?.podCIDRs).toEqual(['10.50.0.0/16']);
    expect(out.ranges?.sources.podCIDRs).toBe('config cluster.podCIDRs');
    expect(out.ranges?.dnsIPs).toEqual(['10.96.0.10']);
    expect(a.requests.some((r) => r.resource === 'nodes' || r.resource === 'servicecidrs' || r.verb === 'create')).toBe(false);
  });

  it('nothing found and nothing configured: no ranges, and a message that says how to configure them', async () => {
    const a = await cluster({ resources: noServiceCIDRApi, nodes: [[]] });
    a.fault({ verb: 'create', resource: 'services', status: 403 });
    const log = captureLogger();
    const out = await resolveClusterRanges(a.kubeConfig(), parseConfig({}), log.logger);
    expect(out.ranges).toBeUndefined();
    expect(out.problem).toMatch(/cluster\.podCIDRs, cluster\.serviceCIDRs, cluster\.dnsIPs/);
    expect(out.problem).toMatch(/podCIDRs: \[10\.244\.0\.0\/16\]/);
    expect(out.problem).toMatch(/Discovery tried: .*nodes' spec\.podCIDRs/);
    expect(log.lines.some((l) => l.level === 50)).toBe(true);
  });

  it('the API down at start: a problem naming the connection failure, never a guess', async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24']], kubeDns: ['10.96.0.10'] });
    await a.down();
    const out = await resolveClusterRanges(a.kubeConfig(), parseConfig({}), captureLogger().logger);
    expect(out.ranges).toBeUndefined();
    expect(out.problem).toMatch(/ECONNREFUSED/);
  });

  it('a public range is refused at start with its source, unless forced', async () => {
    const a = await cluster({ kubeDns: ['10.96.0.10'] });
    const cluster1 = { podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraAllowedCIDRs: ['0.0.0.0/0'] };
    const refused = await resolveClusterRanges(a.kubeConfig(), parseConfig({ cluster: cluster1 }), captureLogger().logger);
    expect(refused.ranges).toBeUndefined();
    expect(refused.problem).toMatch(/0\.0\.0\.0\/0 \(from config cluster\.extraAllowedCIDRs\) covers public addresses/);
    const forced = await resolveClusterRanges(a.kubeConfig(), parseConfig({ cluster: { ...cluster1, allowPublicRanges: true } }), captureLogger().logger);
    expect(forced.ranges?.extraCIDRs).toEqual(['0.0.0.0/0']);
  });
});

describe('the whole cluster pod range, where the cluster says it', () => {
  const ippools: ResourceType = { group: 'crd.projectcalico.org', version: 'v1', resource: 'ippools', kind: 'IPPool', namespaced: false };
  const configMap = (a: KubeApiDouble, namespace: string, name: string, data: Record<string, string>) => {
    if (a.get('v1', 'Namespace', undefined, namespace) === undefined) a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    a.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data });
  };
  const twoNodes = [['10.244.0.0/24'], ['10.244.1.0/24']];

  it("kube-proxy's clusterCIDR, which covers the nodes' /24s: a node added later is already in it", async () => {
    const a = await cluster({ nodes: twoNodes });
    configMap(a, 'kube-system', 'kube-proxy', { 'config.conf': 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\n' });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs).toEqual({ values: ['10.244.0.0/16'], source: "ConfigMap kube-system/kube-proxy (config.conf clusterCIDR), which covers nodes' spec.podCIDRs (2 node(s))" });
    expect(found.nodeRanges).toEqual([
      { node: 'node-0', cidrs: ['10.244.0.0/24'] },
      { node: 'node-1', cidrs: ['10.244.1.0/24'] },
    ]);
  });

  it("Flannel's net-conf.json in namespace kube-flannel", async () => {
    const a = await cluster({ nodes: twoNodes });
    configMap(a, 'kube-flannel', 'kube-flannel-cfg', { 'net-conf.json': '{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n' });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs?.values).toEqual(['10.244.0.0/16']);
    expect(found.podCIDRs?.source).toMatch(/^ConfigMap kube-flannel\/kube-flannel-cfg \(net-conf.json Network\)/);
  });

  it("Calico's enabled IPPools are added: Calico gives pods addresses outside the nodes' ranges", async () => {
    const a = await cluster({ nodes: twoNodes, resources: [...DEFAULT_RESOURCES, ippools] });
    a.put({ apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/16', ipipMode: 'Always', natOutgoing: true } });
    a.put({ apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'old' }, spec: { cidr: '172.30.0.0/16', disabled: true } });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs?.values).toEqual(['10.244.0.0/23', '192.168.0.0/16']);
    expect(found.podCIDRs?.source).toBe("Calico IPPools (crd.projectcalico.org/v1) + nodes' spec.podCIDRs (2 node(s))");
  });

  it("Cilium's cluster pool (cluster-pool IPAM), with no node ranges at all", async () => {
    const a = await cluster({ nodes: [[], []] });
    configMap(a, 'kube-system', 'cilium-config', { ipam: 'cluster-pool', 'cluster-pool-ipv4-cidr': '10.0.0.0/8', 'cluster-pool-ipv4-mask-size': '24' });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs).toEqual({ values: ['10.0.0.0/8'], source: 'ConfigMap kube-system/cilium-config (cluster-pool-ipv4-cidr)' });
  });

  it("k3s: a server node's --cluster-cidr, or k3s's default when it sets none", async () => {
    const a = await cluster();
    const k3sNode = (name: string, cidr: string, args: string[]) =>
      a.put({ apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'k3s.io/node-args': JSON.stringify(args) } }, spec: { podCIDR: cidr, podCIDRs: [cidr] } });
    k3sNode('server-0', '10.42.0.0/24', ['server', '--write-kubeconfig-mode', '644']);
    k3sNode('agent-0', '10.42.1.0/24', ['agent']);
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.podCIDRs?.values).toEqual(['10.42.0.0/16']);
    expect(found.podCIDRs?.source).toMatch(/^k3s's default --cluster-cidr/);
    // a k3s configured elsewhere (its config file): the default does not cover the nodes, the nodes win
    k3sNode('server-0', '10.52.0.0/24', ['server']);
    k3sNode('agent-0', '10.52.1.0/24', ['agent']);
    expect((await discover(a.kubeConfig(), ['podCIDRs'])).podCIDRs?.values).toEqual(['10.52.0.0/23']);
  });

  it('absent sources are quiet (a 404 is the normal case), and every call is one the RBAC grants', async () => {
    const { API_PERMISSIONS } = await import('../../src/kube/permissions.js');
    const a = await cluster({ nodes: twoNodes, resources: [...DEFAULT_RESOURCES, ippools] });
    const found = await discover(a.kubeConfig(), ['podCIDRs']);
    expect(found.notes.filter((n) => /kube-proxy|flannel|cilium|Calico/i.test(n))).toEqual([]);
    const configMaps = a.requests.filter((r) => r.resource === 'configmaps').map((r) => `${r.namespace}/${r.name}`);
    expect(configMaps.sort()).toEqual(['kube-flannel/kube-flannel-cfg', 'kube-system/cilium-config', 'kube-system/kube-flannel-cfg', 'kube-system/kube-proxy', 'kube-system/kubeadm-config']);
    for (const r of a.requests.filter((x) => x.resource !== undefined)) {
      const granted = API_PERMISSIONS.some(
        (p) =>
          p.resource === r.resource &&
          p.verbs.includes(r.verb as never) &&
          (p.scope === 'cluster' || p.scope === r.namespace) &&
          (p.resourceNames === undefined || p.resourceNames.includes(r.name!)),
      );
      expect(granted, `${r.verb} ${r.resource} ${r.namespace ?? ''}/${r.name ?? ''}`).toBe(true);
    }
  });
});

describe('the pod network MTU, where the CNI publishes it', () => {
  const ippools: ResourceType = { group: 'crd.projectcalico.org', version: 'v1', resource: 'ippools', kind: 'IPPool', namespaced: false };
  const installations: ResourceType = { group: 'operator.tigera.io', version: 'v1', resource: 'installations', kind: 'Installation', namespaced: false };
  const configMap = (a: KubeApiDouble, namespace: string, name: string, data: Record<string, string>) => {
    if (a.get('v1', 'Namespace', undefined, namespace) === undefined) a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    a.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data });
  };
  const configMapGets = (a: KubeApiDouble) => a.requests.filter((r) => r.resource === 'configmaps' && r.verb === 'get').map((r) => `${r.namespace}/${r.name}`);
  const everyCallGranted = async (a: KubeApiDouble) => {
    const { API_PERMISSIONS } = await import('../../src/kube/permissions.js');
    for (const r of a.requests.filter((x) => x.resource !== undefined)) {
      const granted = API_PERMISSIONS.some(
        (p) =>
          p.resource === r.resource &&
          p.verbs.includes(r.verb as never) &&
          (p.scope === 'cluster' || p.scope === r.namespace) &&
          (p.resourceNames === undefined || p.resourceNames.includes(r.name!)),
      );
      expect(granted, `${r.verb} ${r.resource} ${r.namespace ?? ''}/${r.name ?? ''}`).toBe(true);
    }
  };
  const calicoManifest = (vethMTU: string) => ({ typha_service_name: 'none', calico_backend: 'bird', veth_mtu: vethMTU, cni_network_config: '{"name":"k8s-pod-network","plugins":[{"type":"calico","mtu":__CNI_MTU__}]}' });

  it("Calico (manifest install): calico-config veth_mtu, beside its IPPools; every call granted by the RBAC", async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24']], kubeDns: ['10.96.0.10'], resources: [...DEFAULT_RESOURCES, ippools, installations] });
    a.put({ apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'default-ipv4-ippool' }, spec: { cidr: '192.168.0.0/16', ipipMode: 'Always' } });
    configMap(a, 'kube-system', 'calico-config', calicoManifest('1380'));
    const found = await discover(a.kubeConfig());
    expect(found.podMTU).toEqual({ value: 1380, source: 'ConfigMap kube-system/calico-config veth_mtu 1380' });
    expect(a.requests.some((r) => r.resource === 'installations' && r.verb === 'get' && r.name === 'default')).toBe(true);
    await everyCallGranted(a);
  });

  it('Calico with veth_mtu "0" (auto-detect, the manifests\' default): unknown, with a note', async () => {
    const a = await cluster();
    configMap(a, 'kube-system', 'calico-config', calicoManifest('0'));
    const found = await discover(a.kubeConfig(), ['podMTU']);
    expect(found.podMTU).toBeUndefined();
    expect(found.notes.join('\n')).toMatch(/pod MTU: ConfigMap kube-system\/calico-config veth_mtu: 0 or absent, Calico auto-detects/);
  });

  it("the Tigera operator's Installation default: spec.calicoNetwork.mtu", async () => {
    const a = await cluster({ resources: [...DEFAULT_RESOURCES, installations] });
    a.put({ apiVersion: 'operator.tigera.io/v1', kind: 'Installation', metadata: { name: 'default' }, spec: { calicoNetwork: { mtu: 1410, ipPools: [{ cidr: '192.168.0.0/16', encapsulation: 'VXLAN' }] } } });
    const found = await discover(a.kubeConfig(), ['podMTU']);
    expect(found.podMTU).toEqual({ value: 1410, source: 'Installation default (operator.tigera.io/v1) spec.calicoNetwork.mtu 1410' });
  });

  it('Cilium: cilium-config mtu less the tunnel, from the same single read that gives the cluster pool', async () => {
    const a = await cluster({ nodes: [[], []], kubeDns: ['10.96.0.10'] });
    configMap(a, 'kube-system', 'cilium-config', { ipam: 'cluster-pool', 'cluster-pool-ipv4-cidr': '10.0.0.0/8', 'routing-mode': 'tunnel', 'tunnel-protocol': 'vxlan', mtu: '1450' });
    const found = await discover(a.kubeConfig());
    expect(found.podCIDRs?.values).toEqual(['10.0.0.0/8']);
    expect(found.podMTU).toEqual({ value: 1400, source: 'ConfigMap kube-system/cilium-config mtu 1450 (tunnel - 50)' });
    const gets = configMapGets(a);
    expect(gets.filter((g) => g === 'kube-system/cilium-config')).toHaveLength(1);
    expect(gets.length, `one GET per ConfigMap: ${gets.join(', ')}`).toBe(new Set(gets).size);
  });

  it('Flannel: no MTU in the API, so unknown, and the note says why; a refused read is noted too', async () => {
    const a = await cluster();
    configMap(a, 'kube-flannel', 'kube-flannel-cfg', { 'net-conf.json': '{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n' });
    a.fault({ verb: 'get', resource: 'configmaps', name: 'calico-config', status: 403, message: 'configmaps "calico-config" is forbidden' });
    const found = await discover(a.kubeConfig(), ['podMTU']);
    expect(found.podMTU).toBeUndefined();
    expect(found.notes).toContain('pod MTU: ConfigMap kube-flannel/kube-flannel-cfg: Flannel publishes no MTU (backend vxlan: flanneld derives it on each node from the underlay - 50)');
    expect(found.notes.join('\n')).toMatch(/pod MTU: ConfigMap kube-system\/calico-config: HTTP 403 Forbidden/);
  });

  it('config cluster.podMTU overrides: the CNI is not asked, and the source says config', async () => {
    const a = await cluster({ kubeDns: ['10.96.0.10'], resources: [...DEFAULT_RESOURCES, installations] });
    configMap(a, 'kube-system', 'calico-config', calicoManifest('1380'));
    const config = parseConfig({ cluster: { podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], podMTU: 1500 } });
    const out = await resolveClusterRanges(a.kubeConfig(), config, captureLogger().logger);
    expect(out.ranges?.podMTU).toEqual({ value: 1500, source: 'config cluster.podMTU' });
    expect(configMapGets(a)).toEqual([]);
    expect(a.requests.some((r) => r.resource === 'installations')).toBe(false);
  });

  it('a gateway whose mtu does not fit is logged once with the fix (a second discovery does not repeat it)', async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24']], kubeDns: ['10.96.0.10'] });
    a.put({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/12'] } });
    configMap(a, 'kube-system', 'calico-config', calicoManifest('1380'));
    const config = parseConfig({ gateways: { default: {}, big: { mtu: 1300, vxlanId: 43, overlayNetwork: '172.16.1.0/24' } } });
    const log = captureLogger();
    const out = await resolveClusterRanges(a.kubeConfig(), config, log.logger);
    expect(out.ranges?.podMTU?.value).toBe(1380);
    await resolveClusterRanges(a.kubeConfig(), config, log.logger);
    const errors = log.lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1); // "big" (1300) fits 1380 - 80; "default" (1320) does not
    expect(errors[0]).toMatchObject({ gateway: 'default', mtu: 1320, podMTU: 1380 });
    expect(log.text()).toMatch(/pod network MTU 1380 from ConfigMap kube-system\/calico-config veth_mtu 1380/);

  });

  it('an MTU no CNI publishes is logged once, as unknown (the gateways are used as configured)', async () => {
    const a = await cluster({ nodes: [['10.244.0.0/24']], kubeDns: ['10.96.0.10'] });
    a.put({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/12'] } });
    const log = captureLogger();
    const config = parseConfig({});
    const first = await resolveClusterRanges(a.kubeConfig(), config, log.logger);
    expect(first.ranges).toBeDefined();
    expect(first.ranges?.podMTU).toBeUndefined();
    await resolveClusterRanges(a.kubeConfig(), config, log.logger);
    const warned = log.lines.filter((l) => /pod network MTU: not discovered/.test(String(l.msg)));
    expect(warned).toHaveLength(1);
    expect(String(warned[0]!.msg)).toMatch(/below 1400, set cluster\.podMTU/);
  });
});
