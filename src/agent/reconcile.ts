// The agent's reconcile plan (pure): for each routed agent-mode pod on this node, compare what it
// should have (its gateway's current pod IP, the cluster's ranges) with what its network namespace
// has (read back from the kernel: the agent keeps no state that a restart could lose), and say what
// to do. The clock is an input. Nothing is ever torn down: a pod that goes away takes its namespace
// with it, and an agent that exits leaves every tunnel and firewall in place.

import { allowedCIDRs, type ClusterRanges } from '../cluster/ranges.js';

export interface GatewayState {
  name: string;
  /** The gateway pod's IP, undefined when no gateway pod is scheduled. */
  podIP: string | undefined;
  /**
   * The gateway pod's Ready condition. manifests/gateway's readiness probe is gluetun's own
   * healthcheck, so Ready=false means the VPN tunnel is down, not only that a ping failed.
   */
  ready: boolean;
  /**
   * The VXLAN id pods must use to reach it (the gateway's, or for an exit group the exit's own). When
   * set, a tunnel with another id is rebuilt (an id cannot be changed in place): a failover or a
   * rebalance to another exit, or a changed config.
   */
  vxlanId?: number;
}

/** What the agent read from the pod's namespace (observe.ts parses `ip -j` and `nft -j`). */
export interface PodObserved {
  /** undefined: the namespace was not found (reason says why). */
  netns: string | undefined;
  netnsProblem?: string;
  /** The cluster ranges in the firewall's sets; undefined: no podvpn table. */
  firewallCIDRs: string[] | undefined;
  /**
   * The VXLAN default destinations (all-zeros FDB entries; one when healthy); undefined: no vxlan0;
   * []: none, or not read (a vxlan0 with another exit's VXLAN id is rebuilt whatever it points at).
   */
  tunnelRemote: string[] | undefined;
  /** vxlan0's IPv4 address, if any. */
  tunnelAddress: string | undefined;
  defaultViaTunnel: boolean;
  readyMarker: boolean;
  /** vxlan0's VXLAN id, when read (`ip -d`). */
  tunnelVxlanId?: number | undefined;
}

export interface PodDesired {
  uid: string;
  namespace: string;
  name: string;
  /** podvpn.io/routed: the gateway, or for an exit group the group. */
  gateway: string;
  /** An exit group's pod: the exit it should leave through (label podvpn.io/exit, or the agent's move). */
  exit?: string | undefined;
  /**
   * An exit group's pod: the exit a failure or drain of its exit would move it to under the group's
   * current loads (exit-moves.ts standbyExits), where the agent keeps a standby lease (planStandby).
   */
  standby?: string | undefined;
  /** An exit group's pod: its pin (annotation podvpn.io/exit). */
  pin?: string | undefined;
  /** Set when the pod cannot be routed as it is (an exit group's pod without a usable exit): why. */
  waitReason?: string | undefined;
}

/** The key of the gateway a pod's tunnel goes to: its exit for an exit group, else its gateway. */
export function tunnelTarget(pod: PodDesired): string {
  return pod.exit ?? pod.gateway;
}

/** What the agent remembers between rounds (lost on restart, which is safe: see renew). */
export interface LeaseMemory {
  /** ms since epoch when the lease was taken, and its length in seconds. */
  takenAt: number;
  seconds: number;
}

export type Action =
  | { kind: 'wait'; reason: string }
  | { kind: 'firewall' }
  | { kind: 'setup' }
  | { kind: 'repoint'; from: string[]; to: string }
  /** vxlan0 to another VXLAN id (another exit): delete and recreate it, then a lease from that exit. */
  | { kind: 'retunnel'; fromVxlanId: number; toVxlanId: number; to: string }
  | { kind: 'update-ranges' }
  | { kind: 'lease'; requestIP?: string }
  | { kind: 'mark-ready' }
  | { kind: 'renew'; requestIP: string };

export interface PodPlan {
  uid: string;
  actions: Action[];
  /** For the metrics: routed = tunnel, route and marker in place. */
  routed: boolean;
}

export function planPod(
  pod: PodDesired,
  observed: PodObserved,
  gateway: GatewayState | undefined,
  ranges: ClusterRanges,
  lease: LeaseMemory | undefined,
  now: number,
): PodPlan {
  const routed = observed.tunnelRemote !== undefined && observed.defaultViaTunnel && observed.readyMarker;
  const plan = (actions: Action[]): PodPlan => ({ uid: pod.uid, actions, routed });
  if (observed.netns === undefined) return plan([{ kind: 'wait', reason: observed.netnsProblem ?? 'network namespace not found' }]);

  const actions: Action[] = [];
  const wantCIDRs = [...allowedCIDRs(ranges)].sort();
  const rangesStale = observed.firewallCIDRs !== undefined && !sameSet(observed.firewallCIDRs, wantCIDRs);
  // The firewall goes in first and whatever the gateway's state: it only closes things.
  if (observed.firewallCIDRs === undefined) actions.push({ kind: 'firewall' });
  else if (rangesStale) actions.push({ kind: 'update-ranges' });

  if (pod.waitReason !== undefined) return plan([...actions, { kind: 'wait', reason: pod.waitReason }]);
  if (gateway === undefined) return plan([...actions, { kind: 'wait', reason: `gateway "${tunnelTarget(pod)}" is not configured on this agent` }]);
  if (gateway.podIP === undefined) return plan([...actions, { kind: 'wait', reason: `gateway "${gateway.name}" has no pod` }]);

  if (observed.tunnelRemote === undefined) {
    // setup includes the firewall; do not list it twice
    return plan([{ kind: 'setup' }, { kind: 'lease' }, { kind: 'mark-ready' }]);
  }
  if (gateway.vxlanId !== undefined && observed.tunnelVxlanId !== undefined && observed.tunnelVxlanId !== gateway.vxlanId) {
    // Another exit (a failover, a drain, a rebalance): a new vxlan0 with the exit's id to its pod, then
    // a lease from that exit's dnsmasq, asking for the same address (granted when no pod of that exit
    // holds it; else another). Fail closed meanwhile: the default route goes with the old vxlan0 and
    // the firewall, untouched, lets nothing out but the cluster and vxlan0.
    actions.push({ kind: 'retunnel', fromVxlanId: observed.tunnelVxlanId, toVxlanId: gateway.vxlanId, to: gateway.podIP });
    actions.push({ kind: 'lease', requestIP: observed.tunnelAddress });
  } else if (observed.tunnelRemote.length !== 1 || observed.tunnelRemote[0] !== gateway.podIP) {
    // A replaced gateway: a new pod IP and a new dnsmasq that does not know our lease. Ask for the
    // same address so the pod's flows keep their source.
    actions.push({ kind: 'repoint', from: observed.tunnelRemote, to: gateway.podIP });
    actions.push({ kind: 'lease', requestIP: observed.tunnelAddress });
  } else if (observed.tunnelAddress === undefined || !observed.defaultViaTunnel) {
    actions.push({ kind: 'lease', requestIP: observed.tunnelAddress });
  } else if (gateway.ready && (lease === undefined || now >= lease.takenAt + (lease.seconds * 1000) / 2)) {
    // Half-life renewal, as a DHCP client does. After an agent restart the lease time is unknown: renew
    // once, asking for the address the pod already has (the same address comes back; nothing changes).
    actions.push({ kind: 'renew', requestIP: observed.tunnelAddress });
  }
  if (!observed.readyMarker) actions.push({ kind: 'mark-ready' });
  return plan(actions);
}

function sameSet(a: string[], b: string[]): boolean {
  const sa = [...new Set(a)].sort();
  return sa.length === b.length && sa.every((x, i) => x === b[i]);
}

/** The standby lease this agent took for a pod (lost on restart: then taken again, see planStandby). */
export interface StandbyMemory {
  exit: string;
  /** The exit's gateway pod that granted it (its IP): a new pod's dnsmasq starts with no leases. */
  exitPodIP: string;
  takenAt: number;
  seconds: number;
}

/**
 * Whether to take (or renew) a pod's standby lease on its next exit now (tunnel.ts standbyLease): an
 * exit group's pod with a next exit other than its own, already routed when the round began (so it
 * never delays a pod's first route), and no standby lease known to this agent from that exit's
 * current gateway pod (`exitPodIP`), or one past half its time. A replaced gateway pod (a rollout, a
 * crash) holds none of the old one's leases, so a lease from it counts for nothing. After an agent
 * restart nothing is known: the lease is taken again, which costs nothing when the exit still holds
 * it (dnsmasq answers a client's own lease at once).
 */
export function planStandby(pod: PodDesired, routed: boolean, memory: StandbyMemory | undefined, exitPodIP: string | undefined, now: number): { exit: string } | undefined {
  if (pod.exit === undefined || pod.standby === undefined || pod.standby === pod.exit || !routed) return undefined;
  if (standbyHeld(memory, pod.standby, exitPodIP, now, 0.5)) return undefined;
  return { exit: pod.standby };
}

/**
 * Whether a remembered standby lease counts: on `exit`, granted by its current gateway pod
 * (`exitPodIP`), and within `share` of its time (planStandby renews at half; a move may use it to the
 * end, Agent's DHCP queue).
 */
export function standbyHeld(memory: StandbyMemory | undefined, exit: string, exitPodIP: string | undefined, now: number, share = 1): boolean {
  return memory !== undefined && memory.exit === exit && memory.exitPodIP === exitPodIP && now < memory.takenAt + memory.seconds * 1000 * share;
}
