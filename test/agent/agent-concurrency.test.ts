// The agent's round over many pods, with its command port faked (no namespaces): pods are reconciled
// several at a time (bounded), and DHCP exchanges with one gateway are queued one at a time (the
// gateway's dnsmasq answers no other request while it pings an address before offering it), while
// different gateways' run side by side.

import { describe, expect, it } from 'vitest';
import { Agent, type RunResult } from '../../src/agent/agent.js';
import type { Gateway } from '../../src/config/schema.js';
import type { PodDesired } from '../../src/agent/reconcile.js';
import type { Step } from '../../src/agent/tunnel.js';
import { RANGES } from './fixtures.js';

const gwConfig = (name: string, vxlanId: number): Gateway => ({
  name, address: 'x', vxlanId, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', dns: '172.16.0.1', mtu: 1370, connectionRetryCount: 3,
});
const uid = (i: number) => `6f1d2c3b-4a5e-4f60-8a7b-${String(i).padStart(12, '0')}`;

/** A fresh pod's namespace as `ip -j` shows it, and a DHCP answer after a delay; counts what runs at once. */
function fakeNode(dhcpMs: number) {
  const now = { pods: new Set<string>(), dhcp: new Map<string, number>() };
  const max = { pods: 0, dhcpPerGateway: 0, dhcpAll: 0 };
  let leases = 20;
  const run = async (step: Step): Promise<RunResult> => {
    const ns = step.argv[1]!.slice('--net='.length);
    const argv = step.argv.slice(3);
    now.pods.add(ns);
    max.pods = Math.max(max.pods, now.pods.size);
    await new Promise((r) => setTimeout(r, 1));
    try {
      if (argv.join(' ') === 'ip -4 -d -j -force -batch -') {
        // links, routes, addresses: one JSON document per line, as `ip -batch` prints them
        const lines = [[{ ifname: 'lo', mtu: 65536 }, { ifname: 'eth0', mtu: 1450 }], [{ dst: 'default', gateway: '10.42.1.1', dev: 'eth0' }], []];
        return { code: 0, stdout: `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`, stderr: '' };
      }
      if (argv[0] === 'nft' && argv[1] === '-j') return { code: 1, stdout: '', stderr: 'No such file or directory' };
      if (argv[0] === 'busybox') {
        const gateway = ns.split('/')[0]!;
        now.dhcp.set(gateway, (now.dhcp.get(gateway) ?? 0) + 1);
        max.dhcpPerGateway = Math.max(max.dhcpPerGateway, now.dhcp.get(gateway)!);
        max.dhcpAll = Math.max(max.dhcpAll, [...now.dhcp.values()].reduce((a, b) => a + b, 0));
        await new Promise((r) => setTimeout(r, dhcpMs));
        now.dhcp.set(gateway, now.dhcp.get(gateway)! - 1);
        return { code: 0, stdout: `ip=172.16.0.${leases++}\nsubnet=255.255.255.0\nrouter=172.16.0.1\nlease=43200\n`, stderr: '' };
      }
      return { code: 0, stdout: '', stderr: '' };
    } finally {
      now.pods.delete(ns);
    }
  };
  return { run, max };
}

describe('agent round over many pods (command port faked)', () => {
  it('routes pods several at a time, at most `concurrency`; DHCP one at a time per gateway, gateways side by side', async () => {
    const node = fakeNode(20);
    const routed: string[] = [];
    const failed: string[] = [];
    // The fake tells pods apart by their namespace path, which names the gateway: "<gateway>/<uid>"
    const pods: PodDesired[] = Array.from({ length: 20 }, (_, i) => ({ uid: uid(i), namespace: 'apps', name: `web-${i}`, gateway: i % 2 === 0 ? 'default' : 'nl' }));
    const agent = new Agent(
      { netnsOf: (u) => ({ ok: true, nsPath: `${pods.find((p) => p.uid === u)!.gateway}/${u}` }), run: node.run, now: () => Date.now() },
      { routed: (p) => routed.push(p.uid), failed: (_p, m) => failed.push(m) },
    );
    agent.concurrency = 6;
    const gateways = new Map([
      ['default', { config: gwConfig('default', 42), state: { name: 'default', podIP: '10.42.2.9', ready: true } }],
      ['nl', { config: gwConfig('nl', 43), state: { name: 'nl', podIP: '10.42.2.10', ready: true } }],
    ]);
    await agent.reconcile(pods, gateways, RANGES);
    expect(failed).toEqual([]);
    expect(routed.sort()).toEqual(pods.map((p) => p.uid).sort());
    expect(node.max.pods).toBeGreaterThan(1);
    expect(node.max.pods).toBeLessThanOrEqual(6);
    expect(node.max.dhcpPerGateway).toBe(1);
    expect(node.max.dhcpAll, 'two gateways: their exchanges overlap').toBe(2);
  });

  it('a failed DHCP exchange does not stall the queue behind it', async () => {
    const node = fakeNode(5);
    let first = true;
    const failing = async (step: Step): Promise<RunResult> => {
      if (step.argv.includes('busybox') && first) {
        first = false;
        return { code: 1, stdout: '', stderr: 'udhcpc: no lease, failing' };
      }
      return node.run(step);
    };
    const failed: string[] = [];
    const routed: string[] = [];
    const pods: PodDesired[] = Array.from({ length: 4 }, (_, i) => ({ uid: uid(i), namespace: 'apps', name: `web-${i}`, gateway: 'default' }));
    const agent = new Agent(
      { netnsOf: (u) => ({ ok: true, nsPath: `default/${u}` }), run: failing, now: () => Date.now() },
      { routed: (p) => routed.push(p.uid), failed: (_p, m) => failed.push(m) },
    );
    const gateways = new Map([['default', { config: gwConfig('default', 42), state: { name: 'default', podIP: '10.42.2.9', ready: true } }]]);
    await agent.reconcile(pods, gateways, RANGES);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/DHCP from gateway default/);
    expect(routed).toHaveLength(3);
  });
});
