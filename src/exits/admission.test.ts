// Exit groups at admission, through the webhook's admit() and offline planInjection(): replicas with
// no name spread, health and loads are honoured, templates are keyed by their workload.
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import { type AdmissionPorts, admit } from '../admission/review.js';
import { parseConfig } from '../config/schema.js';
import { planInjection } from '../inject/offline.js';
import type { Pod } from '../inject/types.js';
import type { ExitFacts } from './admission.js';
import { RANGES } from './fixtures.js';

const config = parseConfig({
  gateways: { vpn: { exits: [{ name: 'vpn-a', vxlanId: 101 }, { name: 'vpn-b', vxlanId: 102 }, { name: 'vpn-c', vxlanId: 103 }] } },
  defaultGateway: 'vpn',
});

function ports(facts?: ExitFacts): AdmissionPorts {
  return {
    config,
    namespaceFacts: () => ({ labels: { 'podvpn.io/inject': 'enabled' }, annotations: {} }),
    ranges: () => RANGES,
    ensureKillSwitch: async () => ({ ok: true }),
    ...(facts === undefined ? {} : { exitFacts: () => facts }),
  };
}

async function exitOf(pod: Pod, uid: string, facts?: ExitFacts): Promise<{ exit: string | undefined; settings: string; warnings: string[] }> {
  const out = await admit({ uid, operation: 'CREATE', resource: { resource: 'pods' }, namespace: 'downloads', name: '', dryRun: false, object: pod }, ports(facts));
  if (out.outcome !== 'injected') throw new Error(`not injected: ${JSON.stringify(out)}`);
  const patched = jsonpatch.applyPatch(structuredClone(pod), out.patch as jsonpatch.Operation[]).newDocument;
  const label = patched.metadata?.labels?.['podvpn.io/exit'];
  expect(label).toBe(out.exit);
  return { exit: label, settings: patched.metadata!.annotations!['podvpn.io/client-settings']!, warnings: out.warnings };
}

const replica = (): Pod => ({ metadata: { generateName: 'sonarr-7d9c8b6f5-', labels: { 'pod-template-hash': '7d9c8b6f5' } }, spec: { containers: [{ name: 'app', image: 'x' }] } });

describe('exit groups in the webhook', () => {
  it('spreads the replicas of one ReplicaSet (no name at admission) over the exits, by review uid', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const { exit } = await exitOf(replica(), `uid-${i}`);
      seen.set(exit!, (seen.get(exit!) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['vpn-a', 'vpn-b', 'vpn-c']);
  });

  it('points the client at the chosen exit: its Service and VXLAN id, the group overlay', async () => {
    const { exit, settings } = await exitOf(replica(), 'uid-1');
    const id = { 'vpn-a': 101, 'vpn-b': 102, 'vpn-c': 103 }[exit!];
    expect(settings).toContain(`GATEWAY_NAME='podvpn-gateway-${exit}.podvpn-system.svc.cluster.local'`);
    expect(settings).toContain(`VXLAN_ID='${id}'`);
    expect(settings).toContain("VXLAN_IP_NETWORK='172.16.0'");
  });

  it('never assigns an exit its health check calls unhealthy while another is healthy', async () => {
    for (let i = 0; i < 30; i++) {
      const { exit } = await exitOf(replica(), `uid-${i}`, { healthy: new Set(['vpn-b']) });
      expect(exit).toBe('vpn-b');
    }
  });

  it('with loads known, fills the emptiest exits first (bounded load)', async () => {
    const loads = new Map([['vpn-a', 20], ['vpn-b', 20], ['vpn-c', 5]]);
    for (let i = 0; i < 10; i++) expect((await exitOf(replica(), `uid-${i}`, { loads })).exit).toBe('vpn-c');
  });

  it('keeps a pin to an unhealthy exit and warns that the pod fails closed', async () => {
    const pod: Pod = { metadata: { name: 'qbittorrent-0', annotations: { 'podvpn.io/exit': 'vpn-a' } }, spec: { containers: [{ name: 'app', image: 'x' }] } };
    const { exit, warnings } = await exitOf(pod, 'u', { healthy: new Set(['vpn-b', 'vpn-c']) });
    expect(exit).toBe('vpn-a');
    expect(warnings).toEqual(['podvpn: pinned exit vpn-a is not healthy; the pod has no internet until it is (it fails closed)']);
  });
});

describe('exit groups in offline inject', () => {
  it('keys a workload template by namespace/kind/name: stable across runs, one exit for its replicas, named in the report', () => {
    const deployment = (name: string) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'downloads' },
      spec: { template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'x' }] } } },
    });
    const docs = ['radarr', 'sonarr', 'lidarr', 'prowlarr', 'readarr', 'bazarr'].map(deployment);
    const plan = () => planInjection(docs, { config, ranges: RANGES, namespaceFacts: () => ({ labels: { 'podvpn.io/inject': 'enabled' }, annotations: {} }) });
    const first = plan();
    const again = plan();
    expect(again).toEqual(first);
    const exits = first.documents.map((d) => /exit (vpn-[abc])$/.exec(d.reports[0]!.detail)?.[1]);
    expect(exits.every((e) => e !== undefined)).toBe(true);
    // Six workloads land on more than one exit (they are keyed apart).
    expect(new Set(exits).size).toBeGreaterThan(1);
    const label = first.documents[0]!.patch.find((op) => op.path === '/spec/template/metadata/labels/podvpn.io~1exit');
    expect(label).toMatchObject({ op: 'add', value: exits[0] });
  });
});
