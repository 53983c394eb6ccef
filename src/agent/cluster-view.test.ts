import type { V1Node, V1Pod, V1ServiceCIDR } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/schema.js';
import { agentPods, agentRanges, gatewayStates } from './cluster-view.js';

const status = (dataPlane?: string) => JSON.stringify({ version: '0.1.0', gateway: 'default', ...(dataPlane ? { dataPlane } : {}) });
const pod = (uid: string, extra: Partial<V1Pod> & { annotations?: Record<string, string>; labels?: Record<string, string> } = {}): V1Pod => ({
  metadata: {
    uid,
    name: uid,
    namespace: 'apps',
    labels: extra.labels ?? { 'podvpn.io/routed': 'default' },
    annotations: extra.annotations ?? { 'podvpn.io/status': status('agent') },
    deletionTimestamp: extra.metadata?.deletionTimestamp,
  },
  spec: { nodeName: 'n1', containers: [] },
  status: extra.status ?? { phase: 'Pending' },
});

describe('agent cluster view', () => {
  it('takes agent-mode routed pods on its node only', () => {
    const pods: V1Pod[] = [
      pod('a'),
      pod('pod-gateway-mode', { annotations: { 'podvpn.io/status': status() } }),
      pod('bad-status', { annotations: { 'podvpn.io/status': '{' } }),
      pod('not-routed', { labels: {} }),
      pod('done', { status: { phase: 'Succeeded' } }),
      { ...pod('other-node'), spec: { nodeName: 'n2', containers: [] } },
    ];
    expect(agentPods(pods, 'n1')).toEqual([{ uid: 'a', namespace: 'apps', name: 'a', gateway: 'default' }]);
  });

  it("picks each gateway's live pod, Ready preferred, ignoring a terminating one", () => {
    const config = parseConfig({ gateways: { default: {}, nl: { vxlanId: 43 } } });
    const gw = (name: string, ip: string, ready: boolean, terminating = false): V1Pod => ({
      metadata: { name: `${name}-${ip}`, labels: { 'app.kubernetes.io/instance': `podvpn-gateway-${name}` }, ...(terminating ? { deletionTimestamp: new Date() } : {}) },
      status: { podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
    const states = gatewayStates([gw('default', '10.0.0.1', true, true), gw('default', '10.0.0.2', false), gw('default', '10.0.0.3', true)], config);
    expect(states.get('default')).toEqual({ name: 'default', podIP: '10.0.0.3', ready: true, vxlanId: 42, terminating: false });
    expect(states.get('nl')).toEqual({ name: 'nl', podIP: undefined, ready: false, vxlanId: 43, terminating: false });
    expect(gatewayStates([gw('default', '10.0.0.2', false)], config).get('default')).toEqual({ name: 'default', podIP: '10.0.0.2', ready: false, vxlanId: 42, terminating: false });
    // a single gateway's terminating pod is not used (as before exit groups)
    expect(gatewayStates([gw('default', '10.0.0.1', true, true)], config).get('default')?.podIP).toBeUndefined();
  });

  const group = parseConfig({
    gateways: { default: {}, vpn: { exits: [{ name: 'vpn-a', vxlanId: 101 }, { name: 'vpn-b', vxlanId: 102 }] } },
  });
  // An exit's gateway pod as manifests/examples/exit-group labels it
  const exitPod = (exit: string, ip: string, ready: boolean, terminating = false): V1Pod => ({
    metadata: {
      name: `podvpn-gateway-${exit}-x`,
      labels: { 'app.kubernetes.io/name': 'podvpn-gateway', 'app.kubernetes.io/instance': `podvpn-gateway-${exit}`, 'podvpn.io/gateway': 'vpn' },
      ...(terminating ? { deletionTimestamp: new Date() } : {}),
    },
    status: { podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });

  it("exit group: one state per exit, keyed by the exit, with the exit's VXLAN id; a terminating exit pod is kept and marked (it serves while it drains)", () => {
    const states = gatewayStates([exitPod('vpn-a', '10.0.1.1', true), exitPod('vpn-b', '10.0.1.2', true, true)], group);
    expect([...states.keys()].sort()).toEqual(['default', 'vpn-a', 'vpn-b']);
    expect(states.get('vpn-a')).toEqual({ name: 'vpn-a', podIP: '10.0.1.1', ready: true, vxlanId: 101, terminating: false });
    expect(states.get('vpn-b')).toEqual({ name: 'vpn-b', podIP: '10.0.1.2', ready: true, vxlanId: 102, terminating: true });
    // its replacement, once it has an IP, is preferred to the terminating pod
    expect(gatewayStates([exitPod('vpn-b', '10.0.1.2', true, true), exitPod('vpn-b', '10.0.1.9', false)], group).get('vpn-b')).toMatchObject({ podIP: '10.0.1.9', terminating: false });
  });

  it('exit group: the pod takes its exit from its pin, else the label; no usable exit is a reason to wait, never a guess', () => {
    const routed = (labels: Record<string, string>, annotations: Record<string, string> = {}) =>
      pod('p', { labels: { 'podvpn.io/routed': 'vpn', ...labels }, annotations: { 'podvpn.io/status': status('agent'), ...annotations } });
    const one = (p: V1Pod) => agentPods([p], 'n1', group)[0]!;
    expect(one(routed({ 'podvpn.io/exit': 'vpn-b' }))).toEqual({ uid: 'p', namespace: 'apps', name: 'p', gateway: 'vpn', exit: 'vpn-b' });
    expect(one(routed({}, { 'podvpn.io/exit': 'vpn-a' }))).toMatchObject({ exit: 'vpn-a', pin: 'vpn-a' });
    expect(one(routed({ 'podvpn.io/exit': 'vpn-b' }, { 'podvpn.io/exit': 'vpn-a' })), 'the pin wins over a label that says otherwise').toMatchObject({ exit: 'vpn-a' });
    expect(one(routed({})).exit).toBeUndefined();
    expect(one(routed({}))).toMatchObject({ waitReason: expect.stringMatching(/no podvpn.io\/exit label/) });
    expect(one(routed({ 'podvpn.io/exit': 'vpn-z' }))).toMatchObject({ waitReason: expect.stringMatching(/"vpn-z" names no exit of group "vpn"/) });
    // a single gateway's pod is as before: no exit
    expect(agentPods([pod('s')], 'n1', group)[0]).toEqual({ uid: 's', namespace: 'apps', name: 's', gateway: 'default' });
  });

  it("ranges: config plus nodes' podCIDRs; unknown service range means none", () => {
    const config = parseConfig({ cluster: { serviceCIDRs: ['10.43.0.0/16'], dnsIPs: ['10.43.0.10'] } });
    const nodes: V1Node[] = [{ spec: { podCIDRs: ['10.42.0.0/24'] } }, { spec: { podCIDR: '10.42.1.0/24' } }];
    expect(agentRanges(config, nodes)?.podCIDRs).toEqual(['10.42.0.0/24', '10.42.1.0/24']);
    expect(agentRanges(parseConfig({}), nodes)).toBeUndefined();
  });

  const serviceCIDR = (...cidrs: string[]): V1ServiceCIDR => ({ metadata: { name: 'kubernetes' }, spec: { cidrs } });
  const nodes: V1Node[] = [{ spec: { podCIDRs: ['10.244.0.0/24', 'fd00:10:244::/64'] } }];

  it('service ranges: from the ServiceCIDR API when the config sets none (IPv4 only, malformed ignored)', () => {
    const r = agentRanges(parseConfig({}), nodes, [serviceCIDR('10.96.0.0/16', 'fd00:10:96::/112'), serviceCIDR('10.97.0.0/24', 'not-a-cidr')]);
    expect(r?.serviceCIDRs).toEqual(['10.96.0.0/16', '10.97.0.0/24']);
    expect(r?.sources.serviceCIDRs).toBe('ServiceCIDR API (networking.k8s.io/v1)');
    expect(agentRanges(parseConfig({}), nodes, [serviceCIDR('fd00:10:96::/112')]), 'an IPv6-only answer is no IPv4 range').toBeUndefined();
  });

  it('service and pod ranges: the config wins over the ServiceCIDR API; nodes still add their IPv4 ranges', () => {
    const config = parseConfig({ cluster: { podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.43.0.0/16'] } });
    const r = agentRanges(config, nodes, [serviceCIDR('10.96.0.0/16')]);
    expect(r?.serviceCIDRs).toEqual(['10.43.0.0/16']);
    expect(r?.sources.serviceCIDRs).toBe('config cluster.serviceCIDRs');
    // The node's IPv6 range is not used unless configured (as the webhook's discovery)
    expect(r?.podCIDRs).toEqual(['10.244.0.0/16', '10.244.0.0/24']);
    expect(r?.sources.podCIDRs).toBe("config cluster.podCIDRs + nodes' spec.podCIDRs");
    // Pod ranges from the config alone (nodes without podCIDRs, as on some Calico and Cilium installs)
    expect(agentRanges(config, [{ spec: {} }])?.podCIDRs).toEqual(['10.244.0.0/16']);
  });
});
