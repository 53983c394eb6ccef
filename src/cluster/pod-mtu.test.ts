// The pod network's MTU read from what the CNIs publish (shapes as their manifests and Helm charts
// install them), and the rule a gateway's tunnel MTU must meet.

import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/schema.js';
import { gatewayMTUProblem, podMTUFromCni } from './pod-mtu.js';

/** calico.yaml's calico-config (Calico v3.28 manifest), with veth_mtu as given. */
const calicoConfig = (vethMTU: string): Record<string, string> => ({
  typha_service_name: 'none',
  calico_backend: 'bird',
  veth_mtu: vethMTU,
  cni_network_config:
    '{\n  "name": "k8s-pod-network",\n  "cniVersion": "0.3.1",\n  "plugins": [\n    {\n      "type": "calico",\n      "log_level": "info",\n      "datastore_type": "kubernetes",\n      "nodename": "__KUBERNETES_NODE_NAME__",\n      "mtu": __CNI_MTU__,\n      "ipam": { "type": "calico-ipam" },\n      "policy": { "type": "k8s" },\n      "kubernetes": { "kubeconfig": "__KUBECONFIG_FILEPATH__" }\n    },\n    { "type": "portmap", "snat": true, "capabilities": {"portMappings": true} },\n    { "type": "bandwidth", "capabilities": {"bandwidth": true} }\n  ]\n}',
});

/** cilium-config as the Cilium 1.16 Helm chart writes it (an excerpt of its ~100 keys). */
const ciliumConfig = (extra: Record<string, string>): Record<string, string> => ({
  'identity-allocation-mode': 'crd',
  'cluster-name': 'default',
  ipam: 'cluster-pool',
  'cluster-pool-ipv4-cidr': '10.0.0.0/8',
  'cluster-pool-ipv4-mask-size': '24',
  'routing-mode': 'tunnel',
  'tunnel-protocol': 'vxlan',
  'enable-ipv4': 'true',
  'enable-ipv6': 'false',
  ...extra,
});

const flannelCfg = {
  namespace: 'kube-flannel',
  data: {
    'cni-conf.json': '{\n  "name": "cbr0",\n  "cniVersion": "0.3.1",\n  "plugins": [ { "type": "flannel", "delegate": { "hairpinMode": true, "isDefaultGateway": true } }, { "type": "portmap", "capabilities": { "portMappings": true } } ]\n}\n',
    'net-conf.json': '{\n  "Network": "10.244.0.0/16",\n  "EnableNFTables": false,\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n',
  },
};

describe('podMTUFromCni: Calico', () => {
  it("calico-config veth_mtu set: that is every pod's veth MTU", () => {
    expect(podMTUFromCni({ calicoConfig: calicoConfig('1380') })).toEqual({
      found: { value: 1380, source: 'ConfigMap kube-system/calico-config veth_mtu 1380' },
      notes: [],
    });
  });

  it('veth_mtu "0" (the manifests\' default since 3.23) or absent: auto-detected on each node, unknown here', () => {
    for (const data of [calicoConfig('0'), { calico_backend: 'vxlan' }]) {
      const r = podMTUFromCni({ calicoConfig: data });
      expect(r.found).toBeUndefined();
      expect(r.notes.join('\n')).toMatch(/calico-config veth_mtu: 0 or absent, Calico auto-detects/);
    }
  });

  it('a veth_mtu that is no MTU (a template left unrendered, garbage, out of range) is noted, not used', () => {
    for (const bad of ['__CNI_MTU__', '1440a', '-1', '99999', '100']) {
      const r = podMTUFromCni({ calicoConfig: calicoConfig(bad) });
      expect(r.found, bad).toBeUndefined();
      expect(r.notes.join('\n'), bad).toMatch(/is not an MTU/);
    }
  });

  it("the Tigera operator's Installation spec.calicoNetwork.mtu; unset means auto-detected", () => {
    const installation = (mtu?: number) => ({
      apiVersion: 'operator.tigera.io/v1',
      kind: 'Installation',
      metadata: { name: 'default' },
      spec: { calicoNetwork: { ...(mtu !== undefined ? { mtu } : {}), ipPools: [{ cidr: '192.168.0.0/16', encapsulation: 'VXLANCrossSubnet', natOutgoing: 'Enabled', nodeSelector: 'all()' }] } },
    });
    expect(podMTUFromCni({ tigeraInstallation: installation(1410) }).found).toEqual({
      value: 1410,
      source: 'Installation default (operator.tigera.io/v1) spec.calicoNetwork.mtu 1410',
    });
    const auto = podMTUFromCni({ tigeraInstallation: installation() });
    expect(auto.found).toBeUndefined();
    expect(auto.notes.join('\n')).toMatch(/not set, Calico auto-detects/);
  });
});

describe('podMTUFromCni: Cilium', () => {
  it('mtu with the default tunnel routing: the pods\' routes leave 50 for VXLAN', () => {
    expect(podMTUFromCni({ ciliumConfig: ciliumConfig({ mtu: '1450' }) }).found).toEqual({
      value: 1400,
      source: 'ConfigMap kube-system/cilium-config mtu 1450 (tunnel - 50)',
    });
    // Cilium < 1.14 says tunnel: vxlan (its default when absent)
    expect(podMTUFromCni({ ciliumConfig: { tunnel: 'vxlan', mtu: '1500' } }).found?.value).toBe(1450);
  });

  it('native routing: no tunnel header; WireGuard takes 80 more', () => {
    expect(podMTUFromCni({ ciliumConfig: ciliumConfig({ mtu: '1500', 'routing-mode': 'native' }) }).found?.value).toBe(1500);
    expect(podMTUFromCni({ ciliumConfig: { tunnel: 'disabled', mtu: '9000' } }).found?.value).toBe(9000);
    expect(podMTUFromCni({ ciliumConfig: ciliumConfig({ mtu: '1500', 'routing-mode': 'native', 'enable-wireguard': 'true' }) }).found).toEqual({
      value: 1420,
      source: 'ConfigMap kube-system/cilium-config mtu 1500 (native routing, WireGuard - 80)',
    });
    // WireGuard in the default tunnel mode: both overheads (pkg/mtu getRouteMTU)
    expect(podMTUFromCni({ ciliumConfig: ciliumConfig({ mtu: '1500', 'enable-wireguard': 'true' }) }).found?.value).toBe(1370);
  });

  it('mtu "0" or absent (the chart\'s default): auto-detected, unknown here; IPsec: not read', () => {
    expect(podMTUFromCni({ ciliumConfig: ciliumConfig({}) }).found).toBeUndefined();
    expect(podMTUFromCni({ ciliumConfig: ciliumConfig({ mtu: '0' }) }).notes.join('\n')).toMatch(/Cilium auto-detects/);
    const ipsec = podMTUFromCni({ ciliumConfig: ciliumConfig({ mtu: '1500', 'enable-ipsec': 'true' }) });
    expect(ipsec.found).toBeUndefined();
    expect(ipsec.notes.join('\n')).toMatch(/IPsec/);
  });
});

describe('podMTUFromCni: Flannel, nothing, several', () => {
  it('Flannel publishes no MTU: unknown, and the note says why', () => {
    const r = podMTUFromCni({ flannelConfig: flannelCfg });
    expect(r.found).toBeUndefined();
    expect(r.notes).toEqual(['ConfigMap kube-flannel/kube-flannel-cfg: Flannel publishes no MTU (backend vxlan: flanneld derives it on each node from the underlay - 50)']);
  });

  it('no CNI object at all: unknown, nothing to note', () => {
    expect(podMTUFromCni({})).toEqual({ found: undefined, notes: [] });
  });

  it('two CNIs say different MTUs (a migration): the smallest, since every pod must fit', () => {
    const r = podMTUFromCni({ calicoConfig: calicoConfig('1440'), ciliumConfig: ciliumConfig({ mtu: '1450' }) });
    expect(r.found?.value).toBe(1400);
    expect(r.found?.source).toMatch(/^ConfigMap kube-system\/cilium-config mtu 1450 \(tunnel - 50\), the smallest of .*calico-config veth_mtu 1440/);
  });
});

describe('gatewayMTUProblem', () => {
  const gw = parseConfig({}).gateways.default!;

  it('the default 1320 fits 1400 and up; unknown MTU is no problem (behave as configured)', () => {
    expect(gatewayMTUProblem(gw, { value: 1400, source: 'x' })).toBeUndefined();
    expect(gatewayMTUProblem(gw, { value: 9000, source: 'x' })).toBeUndefined();
    expect(gatewayMTUProblem(gw, undefined)).toBeUndefined();
  });

  it('too big: the numbers, the source, the config line and the matching WIREGUARD_MTU', () => {
    const problem = gatewayMTUProblem(gw, { value: 1380, source: 'ConfigMap kube-system/calico-config veth_mtu 1380' });
    expect(problem).toMatch(/gateway "default": its tunnel MTU 1320 does not fit the pod network's MTU 1380 \(from ConfigMap kube-system\/calico-config veth_mtu 1380\), which leaves at most 1300/);
    expect(problem).toContain('gateways:\n    default:\n      mtu: 1300\n');
    expect(problem).toContain('WIREGUARD_MTU: "1300"');
    expect(problem).toContain('cluster.podMTU');
    // the line it proposes is one the config accepts, and then fits
    const fixed = parseConfig({ cluster: { podMTU: 1380 }, gateways: { default: { mtu: 1300 } } }).gateways.default!;
    expect(gatewayMTUProblem(fixed, { value: 1380, source: 'x' })).toBeUndefined();
  });

  it('a pod network too small for any tunnel podvpn accepts (min 1280) says so instead of proposing one', () => {
    const problem = gatewayMTUProblem(gw, { value: 1300, source: 'x' });
    expect(problem).toMatch(/No tunnel MTU fits: podvpn needs at least 1280 .* 1360 or more/);
    expect(problem).not.toMatch(/mtu: \d/);
  });
});
