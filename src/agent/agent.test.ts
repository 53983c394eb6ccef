// The agent's loop over many pods, with fake ports (no kernel): pods are worked on side by side, and
// their DHCP exchanges with one gateway are queued (its dnsmasq serves one new address at a time; see
// test/agent/agent-concurrency.test.ts for pods in flight and two gateways side by side).

import { describe, expect, it } from 'vitest';
import type { Gateway } from '../config/schema.js';
import { Agent, type AgentPorts, type RunResult } from './agent.js';
import type { PodDesired } from './reconcile.js';
import { GW, RANGES } from '../../test/agent/fixtures.js';
import { type Step, tunnelMac } from './tunnel.js';

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

/** Records, in order, what `pick` takes from each step the agent runs (undefined: nothing). */
function recordSteps(ports: AgentPorts, pick: (step: Step) => string | string[] | undefined): string[] {
  const seen: string[] = [];
  const run = ports.run.bind(ports);
  ports.run = async (step: Step) => {
    const v = pick(step);
    if (v !== undefined) seen.push(...(Array.isArray(v) ? v : [v]));
    return run(step);
  };
  return seen;
}
/** The commands a step runs in the pod (after the nsenter prefix): an ip batch's lines, each as `ip <line>`. */
const commandsOf = (step: Step): string[] => (step.batch !== undefined ? step.batch.map((s) => s.argv.join(' ')) : [step.argv.slice(3).join(' ')]);
/** Every command the agent runs in a pod (after the nsenter prefix), in order. */
const recordCommands = (ports: AgentPorts) => recordSteps(ports, commandsOf);
/** The namespaces whose links the agent read (observe's `ip -batch`), in order: the pods a round reached. */
const recordLinkReads = (ports: AgentPorts) => recordSteps(ports, (step) => (step.argv.slice(3).join(' ').startsWith('ip -4 -d -j') ? step.argv[1] : undefined));

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

  it("a namespace whose links cannot be read is left alone this round (reported), not set up again as if it had no tunnel", async () => {
    const ports = fakePorts();
    const writes: string[] = [];
    const read = ports.run.bind(ports);
    ports.run = async (step: Step) => {
      const argv = step.argv.slice(3).join(' ');
      if (argv.startsWith('ip -4 -d -j -force -batch -')) return { code: 1, stdout: '', stderr: 'nsenter: cannot open /proc/1/ns/net: No such process' };
      if (!argv.startsWith('nft -j list') && !argv.startsWith('bridge -j')) writes.push(argv);
      return read(step);
    };
    const failed: string[] = [];
    const agent = new Agent(ports, { failed: (p, m) => failed.push(`${p.name}: ${m}`) });
    await agent.reconcile(pods.slice(0, 1), gateways, RANGES);
    expect(writes).toEqual([]);
    expect(failed).toEqual([`web-0: cannot read the pod's links, routes and addresses: nsenter: cannot open /proc/1/ns/net: No such process`]);
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
    const seen = recordCommands(ports);
    const exitView = (name: string, vxlanId: number) => ({ config: { ...GW_CONFIG, name: 'vpn', vxlanId }, state: { name, podIP: name === 'vpn-a' ? '10.42.5.1' : '10.42.5.2', ready: true, vxlanId } });
    const targets = new Map([['vpn-a', exitView('vpn-a', 101)], ['vpn-b', exitView('vpn-b', 102)]]);
    const agent = new Agent(ports);
    agent.concurrency = 4;
    const onB = pods.slice(0, 2).map((p) => ({ ...p, gateway: 'vpn', exit: 'vpn-b' }));
    const onA = pods.slice(2, 4).map((p) => ({ ...p, gateway: 'vpn', exit: 'vpn-a' }));
    await agent.reconcile([...onB, ...onA], targets, RANGES);
    expect(seen.filter((a) => a.startsWith('ip link add vxlan0')).sort()).toEqual(
      [...onA.map((p) => `ip link add vxlan0 address ${tunnelMac(p.uid)} mtu 1370 up type vxlan id 101 dev eth0 dstport 4789`),
        ...onB.map((p) => `ip link add vxlan0 address ${tunnelMac(p.uid)} mtu 1370 up type vxlan id 102 dev eth0 dstport 4789`)].sort(),
    );
    expect(seen.filter((a) => a.startsWith('bridge fdb append')).sort()).toEqual([
      ...Array(2).fill('bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 10.42.5.1'),
      ...Array(2).fill('bridge fdb append 00:00:00:00:00:00 dev vxlan0 dst 10.42.5.2'),
    ]);
    // two exits, two dnsmasqs: their exchanges side by side, one at a time each
    expect(ports.maxInFlight).toBe(2);
    expect([...agent.routedNow.values()]).toEqual(Array(4).fill('vpn'));
  });
});

describe('Agent.interrupt: a round cut short (an exit\'s verdict changed; its moves come next)', () => {
  const gateways = new Map([['default', { config: GW_CONFIG, state: { name: 'default', podIP: GW.podIP, ready: true } }]]);

  it('the workers finish the pods they are on and take no more; the next round works on every pod', async () => {
    const ports = fakePorts();
    const read = recordLinkReads(ports);
    const routed: string[] = [];
    const agent = new Agent(ports, { routed: (p) => routed.push(p.name) });
    agent.concurrency = 2;
    // Interrupted while the first two pods are being read: their work goes on, the other four wait.
    const round = agent.reconcile(pods, gateways, RANGES);
    agent.interrupt();
    await round;
    expect(routed.sort()).toEqual(['web-0', 'web-1']);
    expect(read).toEqual(pods.slice(0, 2).map((p) => `--net=/proc/${p.uid}/ns/net`));
    await agent.reconcile(pods, gateways, RANGES);
    expect(routed.sort()).toEqual(pods.map((p) => p.name).sort());
  });

  it('the round after an interrupted one is not cut (verdicts flipping faster than rounds cannot starve the last pods)', async () => {
    const ports = fakePorts();
    const routed: string[] = [];
    const agent = new Agent(ports, { routed: (p) => routed.push(p.name) });
    agent.concurrency = 1;
    const first = agent.reconcile(pods, gateways, RANGES);
    agent.interrupt();
    await first;
    expect(routed).toEqual(['web-0']);
    const second = agent.reconcile(pods, gateways, RANGES);
    agent.interrupt();
    await second;
    expect(routed.sort()).toEqual(pods.map((p) => p.name).sort());
    // and the one after that (after an uncut round) can be cut again
    const reads = recordLinkReads(ports);
    const third = agent.reconcile(pods, gateways, RANGES);
    agent.interrupt();
    await third;
    expect(reads, 'the third round is cut after its first pod').toHaveLength(1);
  });

  it('an interrupt before a round starts does not cut that round (it is the round asked for)', async () => {
    const ports = fakePorts();
    const routed: string[] = [];
    const agent = new Agent(ports, { routed: (p) => routed.push(p.name) });
    agent.interrupt();
    await agent.reconcile(pods, gateways, RANGES);
    expect(routed.sort()).toEqual(pods.map((p) => p.name).sort());
  });
});

describe('Agent: standby leases on the next exit', () => {
  const exitView = (name: string, vxlanId: number) => ({ config: { ...GW_CONFIG, name: 'vpn', vxlanId }, state: { name, podIP: name === 'vpn-a' ? '10.42.5.1' : '10.42.5.2', ready: true, vxlanId } });
  const targets = new Map([['vpn-a', exitView('vpn-a', 101)], ['vpn-b', exitView('vpn-b', 102)]]);

  /** Namespaces routed through exit A (vxlan0 id 101, route, marker); the standby DHCP answers after `standbyMs`, or fails. */
  function routedPorts(standbyMs: number, standbyAnswers = true, leaseMs = 0) {
    const log: string[] = [];
    let inFlight = 0;
    let leasesInFlight = 0;
    const ports = {
      log,
      maxStandbyInFlight: 0,
      maxLeasesInFlight: 0,
      standbyDone: 0,
      netnsOf: (uid: string) => ({ ok: true as const, nsPath: `/proc/${uid}/ns/net` }),
      now: () => Date.now(),
      async run(step: Step): Promise<RunResult> {
        const argv = step.argv.slice(3).join(' ');
        const ns = step.argv[1]!;
        for (const c of commandsOf(step)) log.push(`${ns} ${c}`);
        if (argv.startsWith('ip -4 -d -j -force -batch -')) {
          return {
            code: 0,
            stdout: [
              JSON.stringify([{ ifname: 'lo', mtu: 65536 }, { ifname: 'eth0', mtu: 1450 }, { ifname: 'vxlan0', mtu: 1370, linkinfo: { info_kind: 'vxlan', info_data: { id: 101 } } }, { ifname: 'podvpn-ready', mtu: 1500 }]),
              JSON.stringify([{ dst: 'default', gateway: '172.16.0.1', dev: 'vxlan0' }, { dst: '10.42.0.0/16', gateway: '169.254.1.1', dev: 'eth0' }]),
              JSON.stringify([{ ifname: 'vxlan0', addr_info: [{ family: 'inet', local: '172.16.0.20', prefixlen: 24 }] }]),
            ].join('\n') + '\n',
            stderr: '',
          };
        }
        if (argv.startsWith('nft -j list table')) return { code: 1, stdout: '', stderr: 'No such file or directory' };
        if (argv.startsWith('bridge -j fdb show')) return { code: 0, stdout: '[{"mac":"00:00:00:00:00:00","dst":"10.42.5.1"}]', stderr: '' };
        if (argv.startsWith('busybox udhcpc') && argv.includes('-i podvpn-standby')) {
          inFlight += 1;
          ports.maxStandbyInFlight = Math.max(ports.maxStandbyInFlight, inFlight);
          await new Promise((r) => setTimeout(r, standbyMs));
          inFlight -= 1;
          ports.standbyDone += 1;
          return standbyAnswers ? { code: 0, stdout: 'ip=172.16.0.20\nsubnet=255.255.255.0\nrouter=172.16.0.1\nlease=43200\n', stderr: '' } : { code: 1, stdout: '', stderr: 'no lease, failing' };
        }
        if (argv.startsWith('busybox udhcpc')) {
          leasesInFlight += 1;
          ports.maxLeasesInFlight = Math.max(ports.maxLeasesInFlight, leasesInFlight);
          await new Promise((r) => setTimeout(r, leaseMs));
          leasesInFlight -= 1;
          return { code: 0, stdout: 'ip=172.16.0.20\nsubnet=255.255.255.0\nrouter=172.16.0.1\nlease=43200\n', stderr: '' };
        }
        return { code: 0, stdout: '', stderr: '' };
      },
    };
    return ports;
  }
  const onA = pods.slice(0, 3).map((p) => ({ ...p, gateway: 'vpn', exit: 'vpn-a', standby: 'vpn-b' }));
  /** The targets with vpn-b's gateway pod replaced (a new pod IP: its dnsmasq knows no leases). */
  const bReplaced = new Map([...targets, ['vpn-b', { ...targets.get('vpn-b')!, state: { ...targets.get('vpn-b')!.state, podIP: '10.42.5.9' } }]]);
  /** Rounds over onA, each waiting for its standby exchanges: all three taken (one round does it; three to be sure). */
  async function takeStandbys(agent: Agent, view = targets): Promise<void> {
    for (let i = 0; i < 3; i += 1) {
      await agent.reconcile(onA, view, RANGES);
      await agent.standbyIdle();
    }
  }

  it("taken in the background after the round (the round does not wait), one per exit at a time, as the pod's MAC, the device removed after; not again this lifetime", async () => {
    const ports = routedPorts(100);
    const results: string[] = [];
    const agent = new Agent(ports, { standby: (p, exit, r) => results.push(`${p.name} ${exit} ${r.ok ? 'ok' : r.message}`) });
    await agent.reconcile(onA, targets, RANGES);
    expect(ports.standbyDone, 'the round returned before the standby leases').toBe(0);
    await agent.standbyIdle();
    // one per exit at a time, each one done starting the next: all three after one round
    expect(results.sort()).toEqual(['web-0 vpn-b ok', 'web-1 vpn-b ok', 'web-2 vpn-b ok']);
    expect(ports.maxStandbyInFlight).toBe(1);
    for (const p of onA) {
      const mine = ports.log.filter((l) => l.startsWith(`--net=/proc/${p.uid}/ns/net`) && l.includes('podvpn-standby')).map((l) => l.split(' ').slice(1).join(' '));
      // (no standby device in the namespace, so none removed first)
      expect(mine[0]).toBe(`ip link add podvpn-standby address ${tunnelMac(p.uid)} mtu 1370 up type vxlan id 102 dev eth0 dstport 4789`);
      expect(mine.at(-1), 'the standby device is removed last').toBe('ip link del podvpn-standby');
    }
    const before = ports.standbyDone;
    await agent.reconcile(onA, targets, RANGES);
    await agent.standbyIdle();
    expect(ports.standbyDone, 'known this agent lifetime: not taken again').toBe(before);
  });

  it("the next exit's gateway pod replaced (its dnsmasq knows no leases): every standby on it is taken again, from the new pod", async () => {
    const ports = routedPorts(1);
    const results: string[] = [];
    const agent = new Agent(ports, { standby: (p, exit, r) => results.push(`${p.name} ${exit} ${r.ok ? 'ok' : r.message}`) });
    await takeStandbys(agent);
    expect(results.sort()).toEqual(['web-0 vpn-b ok', 'web-1 vpn-b ok', 'web-2 vpn-b ok']);
    results.length = 0;
    await takeStandbys(agent, bReplaced);
    expect(results.sort(), 'taken again, one per exit at a time').toEqual(['web-0 vpn-b ok', 'web-1 vpn-b ok', 'web-2 vpn-b ok']);
    const fdbs = ports.log.filter((l) => l.includes('bridge fdb') && l.includes('podvpn-standby')).map((l) => /dst (\S+)/.exec(l)?.[1]);
    expect(fdbs.slice(-3), 'the new exchanges go to the new pod').toEqual(['10.42.5.9', '10.42.5.9', '10.42.5.9']);
    await agent.reconcile(onA, bReplaced, RANGES);
    await agent.standbyIdle();
    expect(results.length, 'then known again: not taken a fourth time').toBe(3);
  });

  it("moves onto an exit where the pods hold standby leases (from its current pod) run their DHCP side by side; without them, one at a time", async () => {
    const movedToB = onA.map((p) => ({ ...p, exit: 'vpn-b', standby: 'vpn-a' }));
    // Control: a fresh agent knows no standby lease, so the three moves queue on vpn-b's dnsmasq.
    const cold = routedPorts(1, true, 40);
    await new Agent(cold).reconcile(movedToB, targets, RANGES);
    expect(cold.maxLeasesInFlight, 'no standby lease: one exchange at a time').toBe(1);
    // The same moves by an agent that took the three standby leases on vpn-b first.
    const warm = routedPorts(1, true, 40);
    const agent = new Agent(warm);
    await takeStandbys(agent);
    expect(warm.standbyDone).toBe(3);
    warm.maxLeasesInFlight = 0;
    await agent.reconcile(movedToB, targets, RANGES);
    expect(warm.maxLeasesInFlight, 'standby leases held: the three exchanges at once').toBe(3);
    // vpn-b's pod replaced since: those leases are gone with the old pod's dnsmasq, so the queue again.
    const again = routedPorts(1, true, 40);
    const agent2 = new Agent(again);
    await takeStandbys(agent2);
    again.maxLeasesInFlight = 0;
    await agent2.reconcile(movedToB, bReplaced, RANGES);
    expect(again.maxLeasesInFlight, "standby leases from vpn-b's previous pod: one at a time").toBe(1);
  });

  it("a move in the same round takes the exit's DHCP first; the standby lease waits for the round's end", async () => {
    const ports = routedPorts(50);
    const agent = new Agent(ports);
    agent.concurrency = 1; // the standing pod's work is done before the move starts
    const standing = onA[0]!; // on A, its standby on B
    const moving = { ...pods[3]!, gateway: 'vpn', exit: 'vpn-b' }; // vxlan0 still on A: moves to B
    await agent.reconcile([standing, moving], targets, RANGES);
    await agent.standbyIdle();
    // (the standing pod also renews on A: after a start the lease time is unknown; not B's queue)
    const dhcp = ports.log.filter((l) => l.includes('busybox udhcpc') && (l.startsWith(`--net=/proc/${moving.uid}/`) || l.includes('podvpn-standby'))).map((l) => `${l.startsWith(`--net=/proc/${moving.uid}/`) ? 'move' : 'standby'} ${/-i (\S+)/.exec(l)![1]}`);
    expect(dhcp).toEqual(['move vxlan0', 'standby podvpn-standby']);
  });

  it("a move to another exit skips what it does not need: vxlan0's FDB read (it is rebuilt whatever it points at) and a separate `ip link set up`", async () => {
    const ports = routedPorts(1);
    const procs = recordSteps(ports, (step) => `${step.argv[1]!.slice(6)} ${step.argv.slice(3).join(' ')}`);
    const staying = onA[1]!; // control: on A, its vxlan0 on A
    const moving = { ...onA[0]!, exit: 'vpn-b', standby: 'vpn-a' };
    await new Agent(ports).reconcile([moving, staying], targets, RANGES);
    const of = (p: PodDesired) => procs.filter((l) => l.startsWith(`/proc/${p.uid}/`)).map((l) => l.split(' ').slice(1, 3).join(' '));
    expect(of(staying), 'a pod that stays: its FDB read').toContain('bridge -j');
    expect(of(moving)).not.toContain('bridge -j');
    expect(ports.log.filter((l) => l.startsWith(`--net=/proc/${moving.uid}/`) && l.endsWith('ip link set vxlan0 up'))).toEqual([]);
    expect(ports.log.filter((l) => l.startsWith(`--net=/proc/${moving.uid}/`) && l.includes('ip link add vxlan0'))).toHaveLength(1);
  });

  it('once a verdict changed (interrupt), no further standby exchange starts until the next full round', async () => {
    const ports = routedPorts(30);
    const results: string[] = [];
    const agent = new Agent(ports, { standby: (p) => results.push(p.name) });
    await agent.reconcile(onA, targets, RANGES); // the chain starts: one exchange on vpn-b at a time
    agent.interrupt();
    await agent.standbyIdle();
    expect(results, 'the exchange under way ends; no next one').toHaveLength(1);
    await agent.reconcile(onA, targets, RANGES);
    await agent.standbyIdle();
    expect(results.sort()).toEqual(['web-0', 'web-1', 'web-2']);
  });

  it("a pod's rebuild waits for its own standby exchange to end (both would use the standby device and the new exit's VXLAN id)", async () => {
    const ports = routedPorts(100);
    const agent = new Agent(ports);
    await agent.reconcile(onA.slice(0, 1), targets, RANGES); // web-0's standby exchange on vpn-b: 100 ms
    const moving = { ...onA[0]!, exit: 'vpn-b', standby: 'vpn-a' };
    await agent.reconcile([moving], targets, RANGES);
    const mine = ports.log.filter((l) => l.startsWith(`--net=/proc/${moving.uid}/`)).map((l) => l.split(' ').slice(1).join(' '));
    const cleanup = mine.lastIndexOf('ip link del podvpn-standby');
    const rebuild = mine.findIndex((l) => l.startsWith('ip link add vxlan0'));
    expect(cleanup).toBeGreaterThan(-1);
    expect(rebuild, 'vxlan0 made again only after the standby device is gone').toBeGreaterThan(cleanup);
  });

  it('a failed standby lease is reported, its device still removed, and tried again next round', async () => {
    const ports = routedPorts(1, false);
    const results: string[] = [];
    const agent = new Agent(ports, { standby: (_p, _e, r) => results.push(r.ok ? 'ok' : 'failed') });
    await agent.reconcile(onA.slice(0, 1), targets, RANGES);
    await agent.standbyIdle();
    expect(results).toEqual(['failed']);
    expect(ports.log.at(-1)).toMatch(/ ip link del podvpn-standby$/);
    await agent.reconcile(onA.slice(0, 1), targets, RANGES);
    await agent.standbyIdle();
    expect(results).toEqual(['failed', 'failed']);
  });

  it('none for a pod not yet routed when the round began (its first route is never delayed)', async () => {
    const ports = fakePorts();
    const seen = recordCommands(ports);
    const agent = new Agent(ports);
    await agent.reconcile(onA, targets, RANGES);
    await agent.standbyIdle();
    expect(seen.filter((a) => a.includes('podvpn-standby'))).toEqual([]);
    expect([...agent.routedNow.keys()].length).toBe(3);
  });
});
