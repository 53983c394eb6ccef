import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/schema.js';
import { GATE_INIT_NAME } from '../constants.js';
import { dataPlaneFor, decide } from './decision.js';
import jsonpatch from 'fast-json-patch';
import { planInjection } from './offline.js';
import { clientsFirstPatch } from './reorder.js';

const ranges = {
  podCIDRs: ['10.42.0.0/16'],
  serviceCIDRs: ['10.43.0.0/16'],
  extraCIDRs: [],
  dnsIPs: ['10.43.0.10'],
  sources: { podCIDRs: 'test', serviceCIDRs: 'test', dnsIPs: 'test' },
};
const pod = { metadata: { name: 'p' }, spec: { containers: [{ name: 'app', image: 'x' }] } };
const facts = (annotations: Record<string, string>, labels: Record<string, string> = {}) => ({
  labels: { 'podvpn.io/inject': 'enabled', ...labels },
  annotations,
});

describe('data-plane mode', () => {
  it('config default is pod-gateway; the config key and the namespace annotation choose, the annotation wins', () => {
    expect(parseConfig({}).dataPlane).toBe('pod-gateway');
    expect(dataPlaneFor('pod-gateway', undefined)).toEqual({ ok: true, dataPlane: 'pod-gateway' });
    expect(dataPlaneFor('agent', facts({}))).toEqual({ ok: true, dataPlane: 'agent' });
    expect(dataPlaneFor('pod-gateway', facts({ 'podvpn.io/data-plane': 'agent' }))).toEqual({ ok: true, dataPlane: 'agent' });
    expect(dataPlaneFor('agent', facts({ 'podvpn.io/data-plane': 'pod-gateway' }))).toEqual({ ok: true, dataPlane: 'pod-gateway' });
  });

  it('an unknown value, an empty one or a prototype name is reported, not defaulted', () => {
    for (const value of ['Agent', '', 'constructor', 'sidecar']) {
      expect(dataPlaneFor('pod-gateway', facts({ 'podvpn.io/data-plane': value }))).toEqual({ ok: false, value });
    }
    expect(() => parseConfig({ dataPlane: 'agnet' })).toThrow(/dataPlane/);
  });

  it('Pod Security enforce=restricted denies pod-gateway mode but not agent mode', () => {
    const config = parseConfig({});
    const base = { operation: 'CREATE', resource: 'pods', namespace: 'n', pod, ranges, config };
    const restricted = { 'pod-security.kubernetes.io/enforce': 'restricted' };
    expect(decide({ ...base, namespaceFacts: facts({}, restricted) })).toMatchObject({ action: 'deny', reason: 'pod-security' });
    expect(decide({ ...base, namespaceFacts: facts({ 'podvpn.io/data-plane': 'agent' }, restricted) })).toMatchObject({
      action: 'inject',
      dataPlane: 'agent',
      warnings: [],
    });
  });

  it('the gate is put back first when another webhook prepends an init container', () => {
    const moved = {
      spec: { containers: [], initContainers: [{ name: 'vault-agent-init' }, { name: GATE_INIT_NAME }, { name: 'migrate' }] },
    };
    expect(clientsFirstPatch(moved as never)).toEqual([
      { op: 'test', path: '/spec/initContainers/1/name', value: GATE_INIT_NAME },
      { op: 'move', from: '/spec/initContainers/1', path: '/spec/initContainers/0' },
    ]);
  });

  it('podvpn inject (offline) honours dataPlane: agent from the config: a Deployment gets only the gate', () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'apps' },
      spec: { template: { metadata: { labels: { 'podvpn.io/inject': 'true' } }, spec: { containers: [{ name: 'app', image: 'x' }] } } },
    };
    const injected = (config: unknown): Array<{ name: string }> => {
      const plan = planInjection([deployment], { config: parseConfig(config), ranges, namespace: 'apps' });
      expect(plan.refused).toBe(false);
      const doc = jsonpatch.applyPatch(structuredClone(deployment), plan.documents[0]!.patch as jsonpatch.Operation[], true, false)
        .newDocument as unknown as { spec: { template: { spec: { initContainers: Array<{ name: string }>; containers: Array<{ name: string }> } } } };
      expect(doc.spec.template.spec.containers.map((c) => c.name)).toEqual(['app']);
      return doc.spec.template.spec.initContainers;
    };
    expect(injected({ dataPlane: 'agent' }).map((c) => c.name)).toEqual([GATE_INIT_NAME]);
    expect(injected({}).map((c) => c.name)).toEqual(['podvpn-client-init', 'podvpn-client']);
  });
});
