// The agent's exit moves as kube-apiserver takes them (the API double): the pod's label
// podvpn.io/exit patched to the new exit (a merge patch naming the pod's uid: a pod recreated under
// the same name is not relabelled), and an Event on the pod (core/v1, validated as the API server
// does: its schema, and involvedObject.namespace = the Event's namespace). The tunnel follows the
// returned exit (reconcile.ts); here only the API side and the round's decisions.
import { CoreV1Api } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import { agentPods } from '../../src/agent/cluster-view.js';
import { createExitEvent, patchExitLabel } from '../../src/agent/exit-api.js';
import { ExitControl, rebalanceRequests } from '../../src/agent/exit-control.js';
import type { ExitVerdict } from '../../src/agent/exit-health.js';
import { DEFAULT_RESOURCES, EVENTS_RESOURCE, KubeApiDouble, type KubeObject } from '../kube-api-double/index.js';


const config = parseConfig({
  gateways: { vpn: { exits: [{ name: 'vpn-a', vxlanId: 101 }, { name: 'vpn-b', vxlanId: 102 }, { name: 'vpn-c', vxlanId: 103 }] } },
  defaultGateway: 'vpn',
});
const status = JSON.stringify({ version: '0.1.0', gateway: 'vpn', dataPlane: 'agent', exit: 'x' });
const pod = (name: string, exit: string, node = 'n1', pin?: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name,
    namespace: 'downloads',
    labels: { 'podvpn.io/routed': 'vpn', 'podvpn.io/exit': exit },
    annotations: { 'podvpn.io/status': status, ...(pin === undefined ? {} : { 'podvpn.io/exit': pin }) },
  },
  spec: { nodeName: node, containers: [{ name: 'app', image: 'x' }] },
  status: { phase: 'Running' },
});
const verdicts = (dead: string): Map<string, ExitVerdict> =>
  new Map(['vpn-a', 'vpn-b', 'vpn-c'].map((name) => [name, name === dead ? { name, state: 'unhealthy', reason: 'exit probe: dial tcp 1.1.1.1:443: i/o timeout', by: 'probe' } : { name, state: 'healthy', reason: 'ok', by: 'probe' }]));

describe('agent exit control against the API', () => {
  let api: KubeApiDouble | undefined;
  afterEach(async () => api?.close());

  async function setup() {
    api = await KubeApiDouble.start({ resources: [...DEFAULT_RESOURCES, EVENTS_RESOURCE] });
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads' } });
    for (let i = 0; i < 9; i++) api.put(pod(`web-${i}`, ['vpn-a', 'vpn-b', 'vpn-c'][i % 3]!, i < 6 ? 'n1' : 'n2'));
    api.put(pod('pinned', 'vpn-a', 'n1', 'vpn-a'));
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    const logs: Array<{ msg: string; fields?: Record<string, unknown> }> = [];
    const control = new ExitControl(config, 'n1', {
      patchLabel: (p, exit) => patchExitLabel(core, p, exit),
      createEvent: (e) => createExitEvent(core, e),
      now: () => Date.parse('2026-12-01T17:00:00Z'),
      log: (msg, fields) => logs.push({ msg, ...(fields === undefined ? {} : { fields }) }),
    });
    const all = () => api!.list('v1', 'Pod', 'downloads');
    const round = (dead: string) => {
      const pods = all();
      const mine = agentPods(pods, 'n1', config);
      const labels = new Map<string, string | undefined>(pods.map((p) => [String(p.metadata!.uid), p.metadata!.labels?.['podvpn.io/exit']]));
      return control.round(mine, labels, pods as never, verdicts(dead));
    };
    return { core, control, logs, all, round };
  }

  it("a dead exit: this node's unpinned pods on it are relabelled and get an ExitFailover Event; nothing else is written", async () => {
    const { control, logs, all, round } = await setup();
    const before = new Map(all().map((p) => [p.metadata!.name!, p.metadata!.labels!['podvpn.io/exit']]));
    const out = round('vpn-a');
    await control.settled();
    const after = new Map(all().map((p) => [p.metadata!.name!, p.metadata!.labels!['podvpn.io/exit']]));
    // n1's pods on vpn-a: web-0 and web-3 (web-6 is on n2: its own agent moves it); "pinned" stays
    const moved = [...after].filter(([n, e]) => before.get(n) !== e).map(([n]) => n).sort();
    expect(moved).toEqual(['web-0', 'web-3']);
    for (const n of moved) expect(['vpn-b', 'vpn-c']).toContain(after.get(n));
    expect(after.get('pinned')).toBe('vpn-a');
    expect(after.get('web-6')).toBe('vpn-a');
    // the moved pods come first in the round, with their new exit (the tunnel is rebuilt to it)
    expect(out.slice(0, 2).map((p) => [p.name, p.exit])).toEqual(moved.map((n) => [n, after.get(n)]));
    // each with its standby exit (where its exit's failure would send it: vpn-a is dead, so the other
    // healthy one), the moved ones from their new exit; none for the pinned pod (it never moves)
    expect(out.map((p) => [p.name, p.standby])).toEqual(out.map((p) => [p.name, p.name === 'pinned' ? undefined : p.exit === 'vpn-b' ? 'vpn-c' : 'vpn-b']));

    const events = api!.list('v1', 'Event', 'downloads') as Array<KubeObject & Record<string, any>>;
    expect(events.map((e) => e.involvedObject.name).sort()).toEqual(moved);
    const e = events.find((x) => x.involvedObject.name === 'web-0')!;
    expect(e).toMatchObject({
      reason: 'ExitFailover',
      type: 'Warning',
      message: `exit vpn-a of gateway vpn is unhealthy (exit probe: dial tcp 1.1.1.1:443: i/o timeout): moved to exit ${after.get('web-0')}`,
      involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace: 'downloads', name: 'web-0', uid: all().find((p) => p.metadata!.name === 'web-0')!.metadata!.uid },
      source: { component: 'podvpn-agent', host: 'n1' },
      count: 1,
    });
    expect(e.metadata!.name).toMatch(/^web-0\./);
    // the writes: exactly two label patches (merge patches) and two Event creates
    const writes = api!.requests.filter((r) => r.verb !== 'list' && r.verb !== 'watch' && r.verb !== 'get');
    expect(writes.map((r) => `${r.verb} ${r.resource} ${r.contentType ?? ''}`.trim()).sort()).toEqual([
      'create events application/json',
      'create events application/json',
      'patch pods application/merge-patch+json',
      'patch pods application/merge-patch+json',
    ]);
    expect(logs.filter((l) => l.msg === 'pod stays on its exit and has no internet until it is back').map((l) => l.fields?.pod)).toEqual(['downloads/pinned']);

    // The next round, labels caught up: nothing more is written, nobody moves (and never back)
    api!.requests.length = 0;
    round('vpn-a');
    round('');
    await control.settled();
    expect(api!.requests.filter((r) => r.verb === 'patch' || r.verb === 'create')).toEqual([]);
  });

  it('a failed label patch is retried next round; the tunnel move does not wait for it', async () => {
    const { control, all, round, logs } = await setup();
    api!.fault({ verb: 'patch', resource: 'pods', status: 500, times: 2 });
    const first = round('vpn-a');
    await control.settled();
    expect(first.filter((p) => p.exit !== all().find((x) => x.metadata!.uid === p.uid)!.metadata!.labels!['podvpn.io/exit']).map((p) => p.name).sort()).toEqual(['web-0', 'web-3']);
    expect(logs.filter((l) => l.msg.startsWith('exit label not written')).length).toBe(2);
    const second = round('vpn-a');
    await control.settled();
    // same exits as decided in the first round (the agent remembers its moves), now in the labels
    for (const p of first.filter((x) => x.name === 'web-0' || x.name === 'web-3')) {
      expect(second.find((x) => x.uid === p.uid)!.exit).toBe(p.exit);
      expect(all().find((x) => x.metadata!.uid === p.uid)!.metadata!.labels!['podvpn.io/exit']).toBe(p.exit);
    }
  });

  it('the label patch names the uid: a pod recreated under the same name is not relabelled', async () => {
    const { core } = await setup();
    const old = api!.get('v1', 'Pod', 'downloads', 'web-0')!;
    api!.remove('v1', 'Pod', 'downloads', 'web-0');
    api!.put(pod('web-0', 'vpn-a'));
    await expect(patchExitLabel(core, { namespace: 'downloads', name: 'web-0', uid: String(old.metadata!.uid) }, 'vpn-b')).rejects.toMatchObject({ code: 409 });
    expect(api!.get('v1', 'Pod', 'downloads', 'web-0')!.metadata!.labels!['podvpn.io/exit']).toBe('vpn-a');
  });

  it('rebalance on request: a new podvpn.io/rebalance value on the exit pods moves pods once (ExitRebalance); a value present at start does nothing', async () => {
    api = await KubeApiDouble.start({ resources: [...DEFAULT_RESOURCES, EVENTS_RESOURCE] });
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads' } });
    // After a failover of vpn-c and its recovery: vpn-c empty
    for (let i = 0; i < 12; i++) api.put(pod(`web-${i}`, i % 2 === 0 ? 'vpn-a' : 'vpn-b'));
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    const control = new ExitControl(config, 'n1', {
      patchLabel: (p, exit) => patchExitLabel(core, p, exit),
      createEvent: (e) => createExitEvent(core, e),
      now: () => Date.parse('2026-12-01T17:00:00Z'),
      log: () => undefined,
    });
    const exitPod = (exit: string, request?: string) => ({
      metadata: { name: `podvpn-gateway-${exit}-x`, namespace: 'podvpn-system', labels: { 'app.kubernetes.io/instance': `podvpn-gateway-${exit}` }, annotations: request === undefined ? {} : { 'podvpn.io/rebalance': request } },
    });
    const round = (request?: string) => {
      const pods = api!.list('v1', 'Pod', 'downloads');
      const labels = new Map<string, string | undefined>(pods.map((p) => [String(p.metadata!.uid), p.metadata!.labels?.['podvpn.io/exit']]));
      const requests = rebalanceRequests([exitPod('vpn-a', request), exitPod('vpn-b'), exitPod('vpn-c')] as never, config);
      control.round(agentPods(pods, 'n1', config), labels, pods as never, verdicts(''), requests);
    };
    const counts = () => {
      const out: Record<string, number> = {};
      for (const p of api!.list('v1', 'Pod', 'downloads')) out[p.metadata!.labels!['podvpn.io/exit']!] = (out[p.metadata!.labels!['podvpn.io/exit']!] ?? 0) + 1;
      return out;
    };
    round('old-request');
    round('old-request');
    await control.settled();
    expect(counts(), 'a value present when the agent started is not acted on').toEqual({ 'vpn-a': 6, 'vpn-b': 6 });
    round('2026-12-01T17:05:00Z');
    await control.settled();
    expect(counts()).toEqual({ 'vpn-a': 4, 'vpn-b': 4, 'vpn-c': 4 });
    const events = api.list('v1', 'Event', 'downloads') as Array<KubeObject & Record<string, any>>;
    expect(events.length).toBe(4);
    expect(events.every((e) => e.reason === 'ExitRebalance' && e.type === 'Normal')).toBe(true);
    round('2026-12-01T17:05:00Z');
    await control.settled();
    expect(api.list('v1', 'Event', 'downloads').length, 'each value once').toBe(4);
  });
});
