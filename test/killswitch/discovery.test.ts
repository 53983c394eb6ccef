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
