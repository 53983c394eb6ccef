// The agent's core loop, between the pure plan and the kernel: for each routed pod on the node, read
// its namespace back, plan, run the steps with nsenter, record metrics. The edges (the API, /proc, the
// commands) are ports, so the same code runs against real namespaces in tests.

import { execFile } from 'node:child_process';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { Gateway } from '../config/schema.js';
import { AGENT_READY_LINK } from '../constants.js';
import { parseAddress, parseFdbRemotes, parseLinks, parseNftSet, parseRoutes } from './observe.js';
import { type Action, type GatewayState, type LeaseMemory, type PodDesired, type PodObserved, planPod, planStandby, standbyHeld, type StandbyMemory, tunnelTarget } from './reconcile.js';
import {
  dhcpStep,
  type GatewayFacts,
  inNetns,
  type PodNetFacts,
  parseLease,
  readyMarker,
  repointTunnel,
  retunnel,
  batchIp,
  stepOutcome,
  STANDBY_LINK,
  setupAfterLease,
  setupBeforeLease,
  standbyLease,
  type Step,
  tunnelMac,
  TUNNEL,
  updateRanges,
} from './tunnel.js';
import { FIREWALL_TABLE, firewallRuleset } from './firewall.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface AgentPorts {
  /** The pod's netns path (/proc/<pid>/ns/net), or why not. */
  netnsOf(uid: string): { ok: true; nsPath: string } | { ok: false; reason: string };
  run(step: Step): Promise<RunResult>;
  now(): number;
}

export interface AgentEvents {
  routed?(pod: PodDesired, gateway: string, ms: number): void;
  rebuilt?(pod: PodDesired, gateway: string, reason: Action['kind']): void;
  failed?(pod: PodDesired, message: string): void;
  /** A standby lease on the pod's next exit taken (or renewed), or why not. */
  standby?(pod: PodDesired, exit: string, result: { ok: true; ms: number } | { ok: false; message: string }): void;
}

/** Run a command with bounded time and output; stdin optional. */
export function execRun(step: Step, timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(step.argv[0]!, step.argv.slice(1), { timeout: timeoutMs, maxBuffer: 1 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ code, stdout, stderr });
    });
    if (step.stdin !== undefined) child.stdin?.end(step.stdin);
  });
}

export class Agent {
  private readonly leases = new Map<string, LeaseMemory>();
  private readonly firstSeen = new Map<string, number>();
  private readonly standbys = new Map<string, StandbyMemory>();
  private readonly standbyRunning = new Map<string, Promise<void>>();
  /** Exits with a standby exchange under way (one at a time each). */
  private readonly standbyBusy = new Set<string>();
  readonly routedNow = new Map<string, string>(); // uid -> gateway

  constructor(
    private readonly ports: AgentPorts,
    private readonly events: AgentEvents = {},
  ) {}

  async observe(nsPath: string, targetVxlanId?: number): Promise<PodObserved & { eth0Gateway?: string; eth0Mtu?: number; standbyLink?: boolean }> {
    // Two reads for every pod every round, three with a tunnel: one `ip` for links, IPv4 routes and
    // IPv4 addresses (a batch: one process, one JSON document per line), one `nft` for the table with
    // both range sets, and the tunnel's FDB. Each read is an nsenter and a process: the agent's cost.
    // A vxlan0 with another VXLAN id than its target's (`targetVxlanId`: a move to another exit) is
    // rebuilt whatever its FDB says, so its FDB is not read (reported as [], "not read"): one process
    // less per move, when moves are what a busy node is waiting for.
    //
    // A read that fails is not an absence: a pod whose `ip` could not be read would look as if it had no
    // vxlan0, and the plan would set it up again (reloading its firewall, re-leasing its address). Such
    // a round throws for this pod (reported, tried again next round); only nft's "no such table" means
    // there is no firewall.
    const unreadable = (what: string, r: RunResult) => new Error(`cannot read the pod's ${what}: ${(r.stderr.trim() || `exit code ${r.code}`).slice(0, 200)}`);
    const ip = await this.ports.run(inNetns(nsPath, { argv: ['ip', '-4', '-d', '-j', '-force', '-batch', '-'], stdin: 'link show\nroute show\naddr show\n' }));
    if (ip.code !== 0) throw unreadable('links, routes and addresses', ip);
    const [linksJson = '', routesJson = '', addrsJson = ''] = ip.stdout.split('\n');
    const links = parseLinks(linksJson);
    const routes = parseRoutes(routesJson);
    const hasTunnel = links.names.includes(TUNNEL);
    const table = await this.ports.run(inNetns(nsPath, { argv: ['nft', '-j', 'list', 'table', 'inet', FIREWALL_TABLE] }));
    if (table.code !== 0 && !/No such file or directory/i.test(table.stderr)) throw unreadable('firewall', table);
    const otherExit = targetVxlanId !== undefined && links.vxlanId.get(TUNNEL) !== undefined && links.vxlanId.get(TUNNEL) !== targetVxlanId;
    const fdb = hasTunnel && !otherExit ? await this.ports.run(inNetns(nsPath, { argv: ['bridge', '-j', 'fdb', 'show', 'dev', TUNNEL] })) : undefined;
    if (fdb !== undefined && fdb.code !== 0) throw unreadable('tunnel destinations', fdb);
    return {
      netns: nsPath,
      firewallCIDRs: table.code === 0 ? [...parseNftSet(table.stdout, 4), ...parseNftSet(table.stdout, 6)] : undefined,
      tunnelRemote: fdb === undefined ? (otherExit ? [] : undefined) : parseFdbRemotes(fdb.stdout),
      tunnelAddress: hasTunnel ? parseAddress(addrsJson, TUNNEL) : undefined,
      tunnelVxlanId: links.vxlanId.get(TUNNEL),
      defaultViaTunnel: routes.defaultViaTunnel !== undefined,
      readyMarker: links.names.includes(AGENT_READY_LINK),
      eth0Gateway: routes.eth0Gateway,
      eth0Mtu: links.mtu.get('eth0'),
      standbyLink: links.names.includes(STANDBY_LINK),
    };
  }

  /**
   * Pods worked on at once. A pod's DHCP exchange takes seconds (the gateway's dnsmasq pings an address
   * before it offers it, about 3 s), so one pod after another puts the last of 50 pods minutes behind
   * after a gateway replacement; each pod's work is in its own namespace, independent of the others.
   */
  concurrency = 8;

  /**
   * One pass over the node's routed pods, `concurrency` at a time. Errors are per pod: one broken pod
   * does not stop the rest. `gateways` is keyed by tunnel target (reconcile.ts tunnelTarget): a
   * gateway's name, or for an exit group each exit's name, with the exit's view of the group.
   */
  async reconcile(pods: PodDesired[], gateways: Map<string, { config: Gateway; state: GatewayState }>, ranges: ClusterRanges): Promise<void> {
    const live = new Set(pods.map((p) => p.uid));
    for (const uid of [...this.leases.keys()]) if (!live.has(uid)) this.leases.delete(uid);
    for (const uid of [...this.firstSeen.keys()]) if (!live.has(uid)) this.firstSeen.delete(uid);
    for (const uid of [...this.standbys.keys()]) if (!live.has(uid)) this.standbys.delete(uid);
    for (const uid of [...this.routedNow.keys()]) if (!live.has(uid)) this.routedNow.delete(uid);
    for (const m of [this.routedAtStart, this.podFacts]) for (const uid of [...m.keys()]) if (!live.has(uid)) m.delete(uid);
    const interrupts = this.interrupts;
    // A round after an interrupted one runs to its end, whatever comes: verdicts that flip faster than
    // a round lasts must not keep the pods late in the list from ever being reached.
    const interruptible = !this.lastInterrupted;
    const cut = () => interruptible && this.interrupts !== interrupts;
    let next = 0;
    this.roundRunning = true;
    const worker = async () => {
      while (next < pods.length && !cut()) {
        const pod = pods[next]!;
        next += 1;
        try {
          await this.reconcilePod(pod, gateways.get(tunnelTarget(pod)), ranges);
        } catch (err) {
          this.events.failed?.(pod, (err as Error).message);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, Math.min(this.concurrency, pods.length)) }, worker));
    } finally {
      this.roundRunning = false;
    }
    this.lastInterrupted = cut();
    // Interrupted: the round that follows does the moves; no standby exchange to queue in front of them.
    if (this.lastInterrupted) return;
    // Standby leases only after the round's own work (its moves and first routes took the exits' DHCP
    // queues first), and at most one per exit at a time: a move waits behind at most one standby
    // exchange (one ping check, ~3 s), never a queue of them. Each one done starts that exit's next
    // (nextStandbys), without waiting for a round: after an exit's pod is replaced, its dnsmasq knows
    // none of the standby leases, and one per exit per round took 18 pods 83 to 117 s (the lab, X7).
    // The scan starts one pod further each round, so a pod whose exchange keeps failing (5 s of
    // udhcpc tries) does not take its exit's turn first every round.
    this.standbyRounds += 1;
    this.standbyRound = { pods, gateways, tried: new Set(), interrupts: this.interrupts, start: this.standbyRounds % Math.max(1, pods.length) };
    this.nextStandbys();
  }

  /** The last full round's pods and exits, for the standby leases it leaves to take; each pod once. */
  private standbyRound: { pods: PodDesired[]; gateways: Map<string, { config: Gateway; state: GatewayState }>; tried: Set<string>; interrupts: number; start: number } | undefined;
  private standbyRounds = 0;
  private roundRunning = false;
  private nextStandbys(): void {
    const r = this.standbyRound;
    // None while a round runs (its moves and first routes take the exits' DHCP first, and a pod's
    // rebuild must not meet a standby exchange starting in its namespace), and none once a verdict
    // changed (interrupt) until the next full round: that round's pods, exits and moves are the truth.
    if (r === undefined || this.lastInterrupted || this.roundRunning || this.interrupts !== r.interrupts) return;
    for (let i = 0; i < r.pods.length; i += 1) {
      const pod = r.pods[(r.start + i) % r.pods.length]!;
      if (!r.tried.has(pod.uid)) this.maybeStandby(pod, r.gateways, r.tried);
    }
  }

  private interrupts = 0;
  private lastInterrupted = false;
  /**
   * Ends the round under way early: its workers finish the pods they are on and take no more (the
   * rest wait for the next round). main.ts calls it when an exit's verdict changes, just before it asks
   * for the round that moves that exit's pods: at 30 pods on a busy node a round took 3.2 s, and the
   * moves waited for all of it.
   */
  interrupt(): void {
    this.interrupts += 1;
  }

  /**
   * DHCP exchanges with one gateway, one at a time. The gateway's dnsmasq (pod-gateway's settings)
   * pings an address before offering it and answers no other DHCP request meanwhile (about 3 s), so
   * concurrent exchanges only time out and are retried a round later; queued, each one succeeds.
   */
  private readonly dhcpQueue = new Map<string, Promise<unknown>>();
  private oneAtATime<T>(gateway: string, f: () => Promise<T>): Promise<T> {
    const previous = this.dhcpQueue.get(gateway) ?? Promise.resolve();
    const next = previous.then(f, f);
    const settled = next.catch(() => undefined);
    this.dhcpQueue.set(gateway, settled);
    void settled.then(() => {
      if (this.dhcpQueue.get(gateway) === settled) this.dhcpQueue.delete(gateway);
    });
    return next;
  }

  /** The standby leases under way (tests wait for them; a round never does). */
  async standbyIdle(): Promise<void> {
    while (this.standbyRunning.size > 0) await Promise.all([...this.standbyRunning.values()]);
  }

  /** Whether routed at the start of this round, per pod (planStandby wants it routed before). */
  private readonly routedAtStart = new Map<string, boolean>();

  /**
   * A standby lease on the pod's next exit (reconcile.ts planStandby, tunnel.ts standbyLease), in the
   * background: the round does not wait for it, and its DHCP goes through that exit's queue like any
   * lease; one standby per exit at a time, the next as soon as it is done (nextStandbys). Each pod is
   * tried once per round (`tried`): failures only cost the ping wait on a later move; they are
   * reported, and tried again next round.
   */
  private maybeStandby(pod: PodDesired, gateways: Map<string, { config: Gateway; state: GatewayState }>, tried: Set<string>): void {
    if (this.standbyRunning.has(pod.uid)) return;
    const next = pod.standby === undefined ? undefined : gateways.get(pod.standby);
    const want = planStandby(pod, this.routedAtStart.get(pod.uid) === true, this.standbys.get(pod.uid), next?.state.podIP, this.ports.now());
    if (want === undefined || this.standbyBusy.has(want.exit)) return;
    const target = gateways.get(want.exit);
    const ns = this.ports.netnsOf(pod.uid);
    if (target?.state.podIP === undefined || !ns.ok) return;
    const facts = this.podFacts.get(pod.uid);
    if (facts === undefined) return;
    const gw: GatewayFacts = { ...target.config, podIP: target.state.podIP };
    const started = this.ports.now();
    tried.add(pod.uid);
    const work = (async () => {
      const plan = standbyLease(facts.pod, gw, facts.address, this.udhcpcScript, facts.standbyLink);
      try {
        await this.runSteps(ns.nsPath, plan.link);
        const dhcp = await this.oneAtATime(want.exit, () => this.runSteps(ns.nsPath, [plan.dhcp]));
        const lease = parseLease(dhcp.stdout, gw);
        if (!lease.ok) throw new Error(`standby DHCP from exit ${want.exit}: ${lease.reason}`);
        this.standbys.set(pod.uid, { exit: want.exit, exitPodIP: gw.podIP, takenAt: this.ports.now(), seconds: lease.lease.seconds });
        this.events.standby?.(pod, want.exit, { ok: true, ms: this.ports.now() - started });
      } catch (err) {
        this.events.standby?.(pod, want.exit, { ok: false, message: (err as Error).message });
      } finally {
        for (const s of plan.cleanup) await this.ports.run(inNetns(ns.nsPath, s));
      }
    })().finally(() => {
      this.standbyRunning.delete(pod.uid);
      this.standbyBusy.delete(want.exit);
      this.nextStandbys();
    });
    this.standbyRunning.set(pod.uid, work);
    this.standbyBusy.add(want.exit);
  }

  /** Per pod, from this round's observation: its net facts and vxlan0's address, for a standby lease. */
  private readonly podFacts = new Map<string, { pod: PodNetFacts; address: string | undefined; standbyLink: boolean }>();

  private async reconcilePod(pod: PodDesired, gw: { config: Gateway; state: GatewayState } | undefined, ranges: ClusterRanges): Promise<void> {
    if (!this.firstSeen.has(pod.uid)) this.firstSeen.set(pod.uid, this.ports.now());
    const ns = this.ports.netnsOf(pod.uid);
    const observed = ns.ok
      ? await this.observe(ns.nsPath, gw?.state.vxlanId)
      : { netns: undefined, netnsProblem: ns.reason, firewallCIDRs: undefined, tunnelRemote: undefined, tunnelAddress: undefined, defaultViaTunnel: false, readyMarker: false };
    const plan = planPod(pod, observed, gw?.state, ranges, this.leases.get(pod.uid), this.ports.now());
    if (!ns.ok) {
      this.events.failed?.(pod, ns.reason);
      return;
    }
    const podFacts: PodNetFacts | undefined =
      'eth0Gateway' in observed && observed.eth0Gateway !== undefined && observed.eth0Mtu !== undefined
        ? { eth0Gateway: observed.eth0Gateway, eth0Mtu: observed.eth0Mtu, tunnelMac: tunnelMac(pod.uid) }
        : undefined;
    // A standby device in the namespace (an exchange under way, or left by a stopped agent)
    const standbyLink = 'standbyLink' in observed && observed.standbyLink === true;
    this.routedAtStart.set(pod.uid, plan.routed);
    if (podFacts === undefined) this.podFacts.delete(pod.uid);
    else this.podFacts.set(pod.uid, { pod: podFacts, address: observed.tunnelAddress, standbyLink });
    const facts: GatewayFacts | undefined =
      gw?.state.podIP === undefined
        ? undefined
        : { ...gw.config, podIP: gw.state.podIP };
    // vxlan0 made in this pass (up from the start): its lease needs no `ip link set up` first
    let linkMade = false;
    for (const action of plan.actions) {
      // A standby exchange of this pod's still running (started before this round) would race the
      // rebuild for the standby device and the VXLAN id: it ends first (it removes its device)
      if (action.kind === 'setup' || action.kind === 'retunnel') await this.standbyRunning.get(pod.uid);
      await this.apply(ns.nsPath, pod, action, podFacts, facts, gw?.config, ranges, observed.firewallCIDRs, linkMade, standbyLink);
      if (action.kind === 'setup' || action.kind === 'retunnel') linkMade = true;
    }
    if (plan.actions.some((a) => a.kind === 'mark-ready') || plan.routed) {
      if (!this.routedNow.has(pod.uid) && gw !== undefined) {
        this.events.routed?.(pod, pod.gateway, this.ports.now() - this.firstSeen.get(pod.uid)!);
      }
      if (gw !== undefined) this.routedNow.set(pod.uid, pod.gateway);
    }
  }

  private async apply(
    nsPath: string,
    pod: PodDesired,
    action: Action,
    podFacts: PodNetFacts | undefined,
    gw: GatewayFacts | undefined,
    gwConfig: Gateway | undefined,
    ranges: ClusterRanges,
    previousCIDRs: string[] | undefined,
    linkMade: boolean,
    standbyLink: boolean,
  ): Promise<void> {
    const steps = async (list: Step[]): Promise<void> => {
      await this.runSteps(nsPath, list);
    };
    const need = <T>(v: T | undefined, what: string): T => {
      if (v === undefined) throw new Error(`cannot ${action.kind}: ${what} unknown`);
      return v;
    };
    switch (action.kind) {
      case 'wait':
        return;
      case 'firewall':
        return steps([{ argv: ['nft', '-f', '-'], stdin: firewallRuleset({ ranges, gatewayOverlayIP: need(gwConfig, 'gateway').overlayGatewayIP }) }]);
      case 'setup':
        return steps(setupBeforeLease(need(podFacts, "the pod's eth0 next hop"), need(gw, 'gateway'), ranges, standbyLink));
      case 'repoint':
        this.events.rebuilt?.(pod, pod.gateway, 'repoint');
        return steps(repointTunnel(need(gw, 'gateway'), action.from));
      case 'retunnel':
        this.events.rebuilt?.(pod, pod.gateway, 'retunnel');
        return steps(retunnel(need(podFacts, "the pod's eth0 next hop"), need(gw, 'gateway'), standbyLink));
      case 'update-ranges': {
        const previous = { ...ranges, podCIDRs: previousCIDRs ?? [], serviceCIDRs: [], extraCIDRs: [] };
        this.events.rebuilt?.(pod, pod.gateway, 'update-ranges');
        return steps(updateRanges(need(podFacts, "the pod's eth0 next hop"), need(gw, 'gateway'), ranges, previous));
      }
      case 'lease':
      case 'renew': {
        if (action.kind === 'lease' && action.requestIP !== undefined) this.events.rebuilt?.(pod, pod.gateway, 'lease');
        // An agent stopped between creating vxlan0 and raising it leaves it down: DHCP would never work
        // (one made in this pass is up: tunnel.ts makes it so)
        if (!linkMade) await steps([{ argv: ['ip', 'link', 'set', TUNNEL, 'up'] }]);
        // One queue per dnsmasq (each exit of a group is its own gateway pod): dnsmasq pings an address
        // for ~3 s before it offers it to a client without a lease, and answers no one else meanwhile.
        // A pod holding a standby lease there from that very gateway pod is answered at once, without
        // a ping, so it does not queue: a drain's or failover's moves onto an exit run side by side.
        const exchange = () => this.ports.run(inNetns(nsPath, dhcpStep(action.requestIP, this.udhcpcScript)));
        const held = pod.exit !== undefined && standbyHeld(this.standbys.get(pod.uid), pod.exit, gw?.podIP, this.ports.now());
        const dhcp = held ? await exchange() : await this.oneAtATime(tunnelTarget(pod), exchange);
        const lease = parseLease(dhcp.stdout, need(gw, 'gateway'));
        if (!lease.ok) throw new Error(`DHCP from gateway ${tunnelTarget(pod)}: ${lease.reason}`);
        this.leases.set(pod.uid, { takenAt: this.ports.now(), seconds: lease.lease.seconds });
        // The marker goes in by its own action, after everything else
        return steps(setupAfterLease(lease.lease, action.requestIP).filter((s) => !s.argv.includes(AGENT_READY_LINK)));
      }
      case 'mark-ready':
        return steps(readyMarker());
    }
  }

  /**
   * Runs steps in the pod's namespace, consecutive `ip` steps as one batch (tunnel.ts batchIp): a
   * move to another exit, its reads included, is 6 processes in the pod, where one per command
   * was 13. A batch stopped by a line that may fail goes on with the lines after it; the first
   * failure throws. Returns the last step's result (a DHCP exchange's lease).
   */
  private async runSteps(nsPath: string, list: Step[]): Promise<RunResult> {
    const queue = batchIp(list);
    let last: RunResult = { code: 0, stdout: '', stderr: '' };
    while (queue.length > 0) {
      const s = queue.shift()!;
      last = await this.ports.run(inNetns(nsPath, s));
      const outcome = stepOutcome(s, last);
      if (!outcome.ok) throw new Error(outcome.failure);
      queue.unshift(...batchIp(outcome.rest));
    }
    return last;
  }

  /** Overridable for tests (the image installs it at UDHCPC_SCRIPT). */
  udhcpcScript: string | undefined;
}
