// A move to another exit on real network namespaces (root): the pod routed through exit A (the lab's
// gateway, VXLAN id 42) is moved to exit B (a second gateway namespace, VXLAN id 102, its own dnsmasq,
// the same overlay and .1). The kernel cannot change a vxlan link's id, so vxlan0 is deleted and made
// again: afterwards it has B's id and B's pod IP, the pod keeps its address (B's dnsmasq grants it),
// traffic to .1 reaches B, and the in-pod firewall is byte for byte what it was (never reloaded).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/config/schema.js';
import { Agent, execRun } from '../../src/agent/agent.js';
import type { PodDesired } from '../../src/agent/reconcile.js';
import { tunnelMac } from '../../src/agent/tunnel.js';
import { canRunNetnsLab, type NetnsLab, startNetnsLab } from './netns-lab.mjs';
import { RANGES } from './fixtures.js';

const SCRIPT = join(import.meta.dirname, '..', '..', 'src', 'agent', 'udhcpc-lease.sh');
const POD: PodDesired = { uid: '7a1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b', namespace: 'apps', name: 'web', gateway: 'vpn' };
const GROUP: Gateway = { name: 'vpn', address: 'x', vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', dns: '172.16.0.1', mtu: 1370, connectionRetryCount: 3 };
const EXIT_B_IP = '10.42.3.9';

describe.skipIf(!canRunNetnsLab())('a move to another exit on real network namespaces (root)', () => {
  let lab: NetnsLab;
  let gwB = '';
  let tmp = '';
  let dnsmasqB: ChildProcess | undefined;
  const rebuilt: string[] = [];
  const failed: string[] = [];
  const standbys: string[] = [];
  const targets = new Map([
    ['vpn-a', { config: { ...GROUP, vxlanId: 42 }, state: { name: 'vpn-a', podIP: '10.42.2.9', ready: true, vxlanId: 42 } }],
    ['vpn-b', { config: { ...GROUP, vxlanId: 102 }, state: { name: 'vpn-b', podIP: EXIT_B_IP, ready: true, vxlanId: 102 } }],
  ]);

  beforeAll(async () => {
    lab = await startNetnsLab(`x${process.pid}`);
    // Exit B: a second gateway namespace on the node, as gateway_init.sh builds one with VXLAN_ID 102
    gwB = `pv-gwb-${process.pid}`;
    tmp = mkdtempSync(join(tmpdir(), 'podvpn-gwb-'));
    spawnSync('ip', ['netns', 'del', gwB]);
    expect(spawnSync('ip', ['netns', 'add', gwB]).status).toBe(0);
    lab.must(gwB, 'ip', 'link', 'set', 'lo', 'up');
    lab.must(gwB, 'ip', 'link', 'add', 'eth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'b0', 'netns', lab.node);
    lab.must(gwB, 'ip', 'addr', 'add', `${EXIT_B_IP}/24`, 'dev', 'eth0');
    lab.must(gwB, 'ip', 'link', 'set', 'eth0', 'up');
    lab.must(gwB, 'ip', 'route', 'add', 'default', 'via', '10.42.3.1');
    lab.must(lab.node, 'ip', 'addr', 'add', '10.42.3.1/24', 'dev', 'b0');
    lab.must(lab.node, 'ip', 'link', 'set', 'b0', 'mtu', '1450', 'up');
    lab.must(gwB, 'ip', 'link', 'add', 'vxlan0', 'type', 'vxlan', 'id', '102', 'dev', 'eth0', 'dstport', '4789');
    lab.must(gwB, 'ip', 'addr', 'add', '172.16.0.1/24', 'dev', 'vxlan0');
    lab.must(gwB, 'ip', 'link', 'set', 'up', 'dev', 'vxlan0');
    await startDnsmasqB();
  });
  const stopDnsmasqB = async () => {
    if (dnsmasqB !== undefined && dnsmasqB.exitCode === null) await new Promise((r) => { dnsmasqB!.once('exit', r); dnsmasqB!.kill('SIGTERM'); });
  };
  let generationB = 0;
  const leasesB = () => join(tmp, `leases-${generationB}`);
  // gateway_sidecar.sh's dnsmasq settings; a new generation starts with an empty lease file
  const startDnsmasqB = async () => {
    generationB += 1;
    dnsmasqB = spawn('ip', ['netns', 'exec', gwB, 'dnsmasq', '--keep-in-foreground', '--port=0', '--interface=vxlan0', '--bind-interfaces',
      '--dhcp-range=172.16.0.20,172.16.0.255,12h', `--dhcp-leasefile=${leasesB()}`, `--pid-file=${join(tmp, `pid-${generationB}`)}`, '--log-facility=-'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
  };
  afterAll(async () => {
    await stopDnsmasqB();
    if (gwB !== '') spawnSync('ip', ['netns', 'del', gwB]);
    if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
    await lab?.close();
  });

  const newAgent = () => {
    const a = new Agent(
      { netnsOf: () => ({ ok: true, nsPath: `/run/netns/${lab.pod}` }), run: (s) => execRun(s), now: () => Date.now() },
      {
        rebuilt: (_p, _g, why) => rebuilt.push(why),
        failed: (_p, m) => failed.push(m),
        standby: (_p, exit, r) => standbys.push(r.ok ? `${exit} ok` : `${exit}: ${r.message}`),
      },
    );
    a.udhcpcScript = SCRIPT;
    return a;
  };
  const vxlanId = () => (JSON.parse(lab.must(lab.pod, 'ip', '-d', '-j', 'link', 'show', 'vxlan0')) as Array<{ linkinfo: { info_data: { id: number } } }>)[0]!.linkinfo.info_data.id;
  const address = () => /inet (\S+)\//.exec(lab.must(lab.pod, 'ip', '-4', 'addr', 'show', 'dev', 'vxlan0'))?.[1];
  const ruleset = () => lab.must(lab.pod, 'nft', 'list', 'table', 'inet', 'podvpn').replace(/packets \d+ bytes \d+/g, 'packets N bytes N');
  const rxOnB = () => Number(lab.must(gwB, 'cat', '/sys/class/net/vxlan0/statistics/rx_packets').trim());

  it('routed through exit A, then moved to exit B: new VXLAN id and remote, same address, .1 answers from B, firewall untouched', async () => {
    const agent = newAgent();
    await agent.reconcile([{ ...POD, exit: 'vpn-a' }], targets, RANGES);
    expect(failed).toEqual([]);
    expect(vxlanId()).toBe(42);
    const before = address();
    const firewall = ruleset();
    expect(before).toMatch(/^172\.16\.0\./);

    // A standby device with B's id left behind (an agent stopped mid-exchange): the kernel would refuse
    // vxlan0 with that id ("A VXLAN device with the specified VNI already exists"); the move removes it
    lab.must(lab.pod, 'ip', 'link', 'add', 'podvpn-standby', 'type', 'vxlan', 'id', '102', 'dev', 'eth0', 'dstport', '4789');
    const rxBefore = rxOnB();
    const t0 = Date.now();
    await agent.reconcile([{ ...POD, exit: 'vpn-b' }], targets, RANGES);
    const moveMs = Date.now() - t0;
    expect(failed).toEqual([]);
    expect(rebuilt).toEqual(['retunnel', 'lease']);
    expect(vxlanId()).toBe(102);
    expect(lab.must(lab.pod, 'bridge', 'fdb', 'show', 'dev', 'vxlan0')).toMatch(new RegExp(`00:00:00:00:00:00 dst ${EXIT_B_IP.replace(/\./g, '\\.')}`));
    expect(address(), "B's dnsmasq granted the address the pod asked for (no pod of B held it)").toBe(before);
    expect(readFileSync(leasesB(), 'utf8')).toContain(` ${before} `);
    expect(lab.must(lab.pod, 'ip', 'route', 'show', 'default')).toMatch(/^default via 172\.16\.0\.1 dev vxlan0/);
    expect(ruleset(), 'the firewall was not reloaded').toBe(firewall);
    expect(lab.exec(lab.pod, ['ping', '-c3', '-i0.3', '-W2', '172.16.0.1']).status, 'one of three echoes answered').toBe(0);
    expect(rxOnB() - rxBefore, "the pod's traffic arrives at exit B's vxlan0").toBeGreaterThan(0);
    process.stdout.write(`exit move on real namespaces: ${moveMs} ms (delete/recreate vxlan0, DHCP from the new exit's dnsmasq, route)\n`);

    // A second round: nothing more
    rebuilt.length = 0;
    await agent.reconcile([{ ...POD, exit: 'vpn-b' }], targets, RANGES);
    expect(rebuilt).toEqual([]);
  });

  it('a move to an exit that holds a standby lease for the pod skips dnsmasq\'s ping wait; to one that does not, it waits', async () => {
    // Each move is timed from the round that sees the new exit to the round's end (vxlan0 recreated,
    // leased, routed). Starting point: the pod on exit A (A leased to it: vxlan0's MAC is the pod's
    // own, tunnelMac), and exit B's dnsmasq restarted with an empty lease file.
    const agent = newAgent();
    await agent.reconcile([{ ...POD, exit: 'vpn-a' }], targets, RANGES);
    await stopDnsmasqB();
    await startDnsmasqB();
    expect(failed).toEqual([]);
    const mac = tunnelMac(POD.uid);
    expect(lab.must(lab.pod, 'ip', 'link', 'show', 'vxlan0')).toContain(mac);

    // Without a standby lease: B pings the address ~3 s before it offers it
    let t0 = Date.now();
    await agent.reconcile([{ ...POD, exit: 'vpn-b' }], targets, RANGES);
    const plainMs = Date.now() - t0;
    expect(failed).toEqual([]);
    expect(vxlanId()).toBe(102);
    expect(lab.must(lab.pod, 'ip', 'link', 'show', 'vxlan0'), 'the recreated vxlan0 has the same MAC').toContain(mac);
    expect(plainMs, 'negative control: a move with no lease on the new exit waits for the ping check').toBeGreaterThanOrEqual(2500);

    // Back to A (it still holds the pod's lease from the first route), then B forgets the pod
    await agent.reconcile([{ ...POD, exit: 'vpn-a' }], targets, RANGES);
    expect(vxlanId()).toBe(42);
    await stopDnsmasqB();
    await startDnsmasqB();

    // On A with B as its next exit: the round after the pod is routed takes a standby lease on B in
    // the background, through a second device that is gone afterwards; the firewall is not touched
    const firewall = ruleset();
    const address0 = address();
    t0 = Date.now();
    await agent.reconcile([{ ...POD, exit: 'vpn-a', standby: 'vpn-b' }], targets, RANGES);
    const roundMs = Date.now() - t0;
    await agent.standbyIdle();
    expect(standbys).toEqual(['vpn-b ok']);
    expect(roundMs, 'the round did not wait for the standby lease (~3 s of ping check)').toBeLessThan(2000);
    expect(readFileSync(leasesB(), 'utf8')).toContain(` ${mac} ${address0!} `);
    expect(lab.exec(lab.pod, ['ip', 'link', 'show', 'podvpn-standby']).status, 'the standby device is removed').not.toBe(0);
    expect(ruleset()).toBe(firewall);
    expect(vxlanId()).toBe(42);
    // Known this agent lifetime: not taken again
    await agent.reconcile([{ ...POD, exit: 'vpn-a', standby: 'vpn-b' }], targets, RANGES);
    await agent.standbyIdle();
    expect(standbys).toEqual(['vpn-b ok']);

    // The move to B: its dnsmasq finds the client's lease and answers at once
    t0 = Date.now();
    await agent.reconcile([{ ...POD, exit: 'vpn-b' }], targets, RANGES);
    const standbyMs = Date.now() - t0;
    expect(failed).toEqual([]);
    expect(vxlanId()).toBe(102);
    expect(address()).toBe(address0);
    expect(lab.exec(lab.pod, ['ping', '-c3', '-i0.3', '-W2', '172.16.0.1']).status, 'one of three echoes answered').toBe(0);
    expect(standbyMs, 'no ping wait with the standby lease').toBeLessThan(1500);
    process.stdout.write(`exit move on real namespaces: ${plainMs} ms without a standby lease, ${standbyMs} ms with one (standby round ${roundMs} ms)\n`);
  });
});
