// The agent's loop over many pods, with fake ports (no kernel): pods are worked on side by side, and
// their DHCP exchanges with one gateway are queued (its dnsmasq serves one new address at a time; see
// test/agent/agent-concurrency.test.ts for pods in flight and two gateways side by side).

import { describe, expect, it } from 'vitest';
import type { Gateway } from '../config/schema.js';
import { Agent, type AgentPorts, type RunResult } from './agent.js';
import type { PodDesired } from './reconcile.js';
import { GW, RANGES } from '../../test/agent/fixtures.js';
import type { Step } from './tunnel.js';

const GW_CONFIG: Gateway = { name: 'default', address: 'x', vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', dns: '172.16.0.1', mtu: 1370, connectionRetryCount: 3 };
const DHCP_MS = 20;
const pods: PodDesired[] = Array.from({ length: 6 }, (_, i) => ({ uid: `0000000${i}-0000-4000-8000-000000000000`, namespace: 'apps', name: `web-${i}`, gateway: 'default' }));

/** A namespace with eth0 only, whose DHCP answers after DHCP_MS; counts DHCP exchanges in flight. */
function fakePorts(): AgentPorts & { maxInFlight: number } {
  let inFlight = 0;
  const ports = {
    maxInFlight: 0,
    netnsOf: (uid: string) => ({ ok: true as const, nsPath: `/proc/${uid}/ns/net` }),
    now: () => Date.now(),
    async run(step: Step): Promise<RunResult> {
      const argv = step.argv.slice(3).join(' '); // after "nsenter --net=... --"
      // links, routes, addresses: one JSON document per line, as `ip -batch` prints them
      if (argv.startsWith('ip -4 -d -j -force -batch -')) return { code: 0, stdout: '[{"ifname":"lo","mtu":65536},{"ifname":"eth0","mtu":1450}]\n[{"dst":"default","gateway":"169.254.1.1","dev":"eth0"}]\n[]\n', stderr: '' };
      if (argv.startsWith('nft -j list table')) return { code: 1, stdout: '', stderr: 'No such file or directory' };
      if (argv.startsWith('busybox udhcpc')) {
        inFlight += 1;
        ports.maxInFlight = Math.max(ports.maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, DHCP_MS));
        inFlight -= 1;
        return { code: 0, stdout: 'ip=172.16.0.20\nsubnet=255.255.255.0\nrouter=172.16.0.1\nlease=43200\n', stderr: '' };
      }
      return { code: 0, stdout: '', stderr: '' };
    },
  };
  return ports;
}

describe('Agent.reconcile over many pods', () => {
  const gateways = new Map([['default', { config: GW_CONFIG, state: { name: 'default', podIP: GW.podIP, ready: true } }]]);

  it('routes every pod; DHCP exchanges with one gateway one at a time, whatever the concurrency', async () => {
    const ports = fakePorts();
    const routed: string[] = [];
    const agent = new Agent(ports, { routed: (p) => routed.push(p.name), failed: (p, m) => routed.push(`FAILED ${p.name}: ${m}`) });
    agent.concurrency = 4;
    await agent.reconcile(pods, gateways, RANGES);
    expect(routed.sort()).toEqual(pods.map((p) => p.name).sort());
    expect(ports.maxInFlight).toBe(1);
  });

  it('concurrency 1 is one pod after another', async () => {
    const ports = fakePorts();
    const agent = new Agent(ports);
    agent.concurrency = 1;
    await agent.reconcile(pods, gateways, RANGES);
    expect(ports.maxInFlight).toBe(1);
  });

  it("exit group: a pod is routed through its exit, with the exit's VXLAN id to the exit's pod; DHCP queued per exit (each is its own dnsmasq)", async () => {
    const ports = fakePorts();
    const seen: string[] = [];
    const run = ports.run.bind(ports);
    ports.run = async (step: Step) => {
      seen.push(step.argv.slice(3).join(' '));
      return run(step);
    };
    const exitView = (name: string, vxlanId: number) => ({ config: { ...GW_CONFIG, name: 'vpn', vxlanId }, state: { name, podIP: name === 'vpn-a' ? '10.42.5.1' : '10.42.5.2', ready: true, vxlanId } });
    const targets = new Map([['vpn-a', exitView('vpn-a', 101)], ['vpn-b', exitView('vpn-b', 102)]]);
    const agent = new Agent(ports);
    agent.concurrency = 4;
    const onB = pods.slice(0, 2).map((p) => ({ ...p, gateway: 'vpn', exit: 'vpn-b' }));
    const onA = pods.slice(2, 4).map((p) => ({ ...p, gateway: 'vpn', exit: 'vpn-a' }));
    await agent.reconcile([...onB, ...onA], targets, RANGES);
    expect(seen.filter((a) => a.startsWith('ip link add vxlan0')).sort()).toEqual([
      ...Array(2).fill('ip link add vxlan0 type vxlan id 101 dev eth0 dstport 4789'),
      ...Array(2).fill('ip link add vxlan0 type vxlan id 102 dev eth0 dstport 4789'),
    ]);
    expect(seen.filter((a) => a.startsWith('bridge fdb append')).sort()).toEqual([
      ...Array(2).fill('bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 10.42.5.1'),
      ...Array(2).fill('bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 10.42.5.2'),
    ]);
    // two exits, two dnsmasqs: their exchanges side by side, one at a time each
    expect(ports.maxInFlight).toBe(2);
    expect([...agent.routedNow.values()]).toEqual(Array(4).fill('vpn'));
  });
});
