// The agent's loop on real network namespaces (root): observe, plan and apply with nsenter against a
// pod-gateway-shaped gateway (netns-lab.mjs). The API side is not here: pods and gateways are given.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/config/schema.js';
import { Agent, type AgentPorts, execRun } from '../../src/agent/agent.js';
import { canRunNetnsLab, type NetnsLab, startNetnsLab } from './netns-lab.mjs';
import type { PodDesired } from '../../src/agent/reconcile.js';
import { RANGES } from './fixtures.js';
import type { Step } from '../../src/agent/tunnel.js';

const GATE = join(import.meta.dirname, '..', '..', 'dist', 'agent', 'gate.js');
const SCRIPT = join(import.meta.dirname, '..', '..', 'src', 'agent', 'udhcpc-lease.sh');
const POD: PodDesired = { uid: '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b', namespace: 'apps', name: 'web', gateway: 'default' };
const GW_CONFIG: Gateway = {
  name: 'default', address: 'x', vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', dns: '172.16.0.1', mtu: 1370, connectionRetryCount: 3,
};
const READ_ONLY = /^(ip -4 -d -j -force -batch -$|bridge -j fdb show|nft -j list)/;

describe.skipIf(!canRunNetnsLab())('agent loop on real network namespaces (root)', () => {
  let lab: NetnsLab;
  const commands: string[] = [];
  const routed: number[] = [];
  const rebuilt: string[] = [];
  const failed: string[] = [];
  const ports = (): AgentPorts => ({
    netnsOf: () => ({ ok: true, nsPath: `/run/netns/${lab.pod}` }),
    run: (s: Step) => {
      // an ip batch (tunnel.ts batchIp) as its lines, each as `ip <line>`
      commands.push(...(s.batch !== undefined ? s.batch.map((b) => b.argv.join(' ')) : [s.argv.slice(3).join(' ')]));
      return execRun(s);
    },
    now: () => Date.now(),
  });
  const newAgent = () => {
    const a = new Agent(ports(), {
      routed: (_p, _g, ms) => routed.push(ms),
      rebuilt: (_p, _g, why) => rebuilt.push(why),
      failed: (_p, m) => failed.push(m),
    });
    a.udhcpcScript = SCRIPT;
    return a;
  };
  const gateways = (podIP: string, ready = true) => new Map([['default', { config: GW_CONFIG, state: { name: 'default', podIP, ready } }]]);
  const changes = () => commands.filter((c) => !READ_ONLY.test(c));
  const gatePasses = () =>
    lab.exec(lab.pod, ['setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
      process.execPath, GATE, '--gateway=172.16.0.1', '--timeout=3']).status === 0;

  beforeAll(async () => {
    expect(existsSync(GATE), 'npm run build first').toBe(true);
    lab = await startNetnsLab(String(process.pid));
  });
  afterAll(async () => lab?.close());

  let agent: Agent;
  let address = '';
  it('routes a new pod: the gate passes, the gateway answers through the tunnel', async () => {
    agent = newAgent();
    expect(gatePasses(), 'control: the gate fails before the agent ran').toBe(false);
    await agent.reconcile([POD], gateways('10.42.2.9'), RANGES);
    expect(failed).toEqual([]);
    expect(routed).toHaveLength(1);
    expect(gatePasses()).toBe(true);
    expect(lab.exec(lab.pod, ['ping', '-c3', '-i0.3', '-W2', '172.16.0.1']).status, 'one of three echoes answered (the first may wait on neighbour discovery)').toBe(0);
    address = /inet (\S+)\//.exec(lab.must(lab.pod, 'ip', '-4', 'addr', 'show', 'dev', 'vxlan0'))![1]!;
  });

  it('a second pass changes nothing', async () => {
    commands.length = 0;
    await agent.reconcile([POD], gateways('10.42.2.9'), RANGES);
    expect(changes()).toEqual([]);
  });

  it('a restarted agent (no memory) reads the state back: only a lease renewal for the same address, no rebuild', async () => {
    commands.length = 0;
    rebuilt.length = 0;
    const restarted = newAgent();
    await restarted.reconcile([POD], gateways('10.42.2.9'), RANGES);
    expect(failed).toEqual([]);
    expect(rebuilt).toEqual([]);
    expect(changes().filter((c) => !/^(ip link set vxlan0 up|busybox udhcpc .* -r |ip addr replace |ip route replace default |ip route del ::\/0$)/.test(c))).toEqual([]);
    expect(lab.must(lab.pod, 'ip', '-4', 'addr', 'show', 'dev', 'vxlan0')).toContain(`inet ${address}/24`);
    agent = restarted;
  });

  it('a replaced gateway (new pod IP, new dnsmasq): repointed, the same address leased again, traffic flows', async () => {
    await lab.replaceGateway('10.42.2.10');
    expect(lab.exec(lab.pod, ['ping', '-c1', '-W1', '172.16.0.1']).status, 'control: broken before the agent acts').not.toBe(0);
    rebuilt.length = 0;
    await agent.reconcile([POD], gateways('10.42.2.10'), RANGES);
    expect(failed).toEqual([]);
    expect(rebuilt).toEqual(['repoint', 'lease']);
    expect(lab.must(lab.pod, 'bridge', 'fdb', 'show', 'dev', 'vxlan0')).toMatch(/00:00:00:00:00:00 dst 10\.42\.2\.10/);
    expect(lab.must(lab.pod, 'ip', '-4', 'addr', 'show', 'dev', 'vxlan0')).toContain(`inet ${address}/24`);
    expect(lab.exec(lab.pod, ['ping', '-c3', '-i0.3', '-W2', '172.16.0.1']).status, 'one of three echoes answered (the first may wait on neighbour discovery)').toBe(0);
  });

  it('a new node range: firewall set and route updated in place, the tunnel untouched', async () => {
    rebuilt.length = 0;
    commands.length = 0;
    const grown = { ...RANGES, podCIDRs: [...RANGES.podCIDRs, '10.52.0.0/16'] };
    await agent.reconcile([POD], gateways('10.42.2.10'), grown);
    expect(failed).toEqual([]);
    expect(rebuilt).toEqual(['update-ranges']);
    expect(lab.must(lab.pod, 'ip', 'route')).toMatch(/^10\.52\.0\.0\/16 via 10\.42\.1\.1 dev eth0/m);
    expect(lab.must(lab.pod, 'nft', 'list', 'set', 'inet', 'podvpn', 'cluster4')).toContain('10.52.0.0/16');
    expect(changes().some((c) => /vxlan0 type vxlan|fdb/.test(c))).toBe(false);
    commands.length = 0;
    await agent.reconcile([POD], gateways('10.42.2.10'), grown);
    expect(changes()).toEqual([]);
  });

  it('an agent stopped mid-setup (link down, no default route, no marker): the next round finishes it', async () => {
    lab.must(lab.pod, 'ip', 'link', 'del', 'podvpn-ready');
    lab.must(lab.pod, 'ip', 'route', 'del', 'default');
    lab.must(lab.pod, 'ip', 'link', 'set', 'vxlan0', 'down');
    expect(gatePasses(), 'control: the gate holds the pod meanwhile').toBe(false);
    await newAgent().reconcile([POD], gateways('10.42.2.10'), RANGES);
    expect(failed).toEqual([]);
    expect(gatePasses()).toBe(true);
    expect(lab.exec(lab.pod, ['ping', '-c3', '-i0.3', '-W2', '172.16.0.1']).status, 'one of three echoes answered (the first may wait on neighbour discovery)').toBe(0);
  });
});
