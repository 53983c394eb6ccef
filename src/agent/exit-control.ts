// The agent's exit control, between the pure plan (exit-moves.ts) and the API: each round it decides
// this node's moves, remembers them until the pod's label says so, and writes the label and an Event.
// The tunnels follow by themselves: a pod's exit is the tunnel target the reconcile builds
// (reconcile.ts: another VXLAN id is a retunnel), so a move is "this pod's exit is now X".
//
// Order and failure: the move is remembered here first, so this round's reconcile rebuilds the
// tunnel whatever the API does; the label patch and the Event are sent at once, side by side with
// the rebuild (not after: the label is also the load other agents count). A failed patch is retried
// every round until the label matches; a failed Event is logged and dropped (Events are best effort,
// as for any controller). An agent restarted before its patch landed reads the old label, plans again
// and (same inputs, same ranking) picks the same exit, or another healthy one: never the dead one.

import type { V1Pod } from '@kubernetes/client-node';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Config } from '../config/schema.js';
import { ANNOTATION_EXIT, ANNOTATION_REBALANCE, ANNOTATION_STATUS, LABEL_EXIT, LABEL_ROUTED } from '../constants.js';
import { gatewayServiceName } from '../config/schema.js';
import { GATEWAY_INSTANCE_LABEL } from './cluster-view.js';
import { exitEvent, type PodRef } from './exit-api.js';
import type { ExitVerdict } from './exit-health.js';
import { type ExitMove, exitMoves, type GroupPod, standbyExits } from './exit-moves.js';
import type { PodDesired } from './reconcile.js';

export interface ExitControlPorts {
  patchLabel(pod: PodRef, exit: string): Promise<void>;
  createEvent(event: CoreV1Event): Promise<void>;
  now(): number;
  log(msg: string, fields?: Record<string, unknown>): void;
}

export interface ExitControlEvents {
  moved?(group: string, move: ExitMove, pod: PodDesired): void;
}

interface Override {
  to: string;
  since: number;
}

/** Every routed pod of `group` in the cluster (the exit-label watch), as the plan's loads. */
export function groupPodsOf(pods: Iterable<V1Pod>, group: string): GroupPod[] {
  const out: GroupPod[] = [];
  for (const p of pods) {
    const m = p.metadata;
    if (m?.uid === undefined || m.labels?.[LABEL_ROUTED] !== group) continue;
    if (m.deletionTimestamp !== undefined && m.deletionTimestamp !== null) continue;
    if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    let dataPlane: unknown;
    try {
      dataPlane = (JSON.parse(m.annotations?.[ANNOTATION_STATUS] ?? '{}') as { dataPlane?: unknown }).dataPlane;
    } catch {
      dataPlane = undefined;
    }
    const pin = m.annotations?.[ANNOTATION_EXIT];
    out.push({ uid: m.uid, key: `${m.namespace ?? ''}/${m.name ?? ''}`, exit: m.labels?.[LABEL_EXIT], pin: typeof pin === 'string' ? pin : undefined, mine: false, movable: dataPlane === 'agent' });
  }
  return out;
}

/** The podvpn.io/rebalance values on each group's exit pods (app.kubernetes.io/instance=podvpn-gateway-<exit>). */
export function rebalanceRequests(gatewayPods: Iterable<V1Pod>, config: Config): Map<string, Set<string>> {
  const groupOfInstance = new Map<string, string>();
  for (const g of Object.values(config.gateways)) for (const e of g.exits ?? []) groupOfInstance.set(gatewayServiceName(e.name), g.name);
  const out = new Map<string, Set<string>>();
  for (const p of gatewayPods) {
    const group = groupOfInstance.get(p.metadata?.labels?.[GATEWAY_INSTANCE_LABEL] ?? '');
    const value = p.metadata?.annotations?.[ANNOTATION_REBALANCE];
    if (group === undefined || typeof value !== 'string' || value === '') continue;
    let set = out.get(group);
    if (set === undefined) out.set(group, (set = new Set()));
    set.add(value.slice(0, 253));
  }
  return out;
}

export class ExitControl {
  private readonly overrides = new Map<string, Override>();
  private readonly inFlight = new Set<string>();
  private readonly lastStuck = new Map<string, string>();
  private readonly pending = new Set<Promise<void>>();
  /** Rebalance request values already acted on (or present when the agent started), per group. */
  private readonly seenRequests = new Map<string, Set<string>>();
  private primed = false;

  constructor(
    private readonly config: Config,
    private readonly node: string,
    private readonly ports: ExitControlPorts,
    private readonly events: ExitControlEvents = {},
  ) {}

  /**
   * One round: this node's pods (agentPods) with their exit as it should be now, this round's moves
   * applied and the moved pods first (their tunnels are rebuilt before the rest are looked at), and
   * each with its standby exit (exit-moves.ts standbyExits).
   * `clusterPods`: every pod with the exit label (any node); `labels`: this node's pods' current
   * exit labels by uid.
   */
  round(
    nodePods: PodDesired[],
    labels: ReadonlyMap<string, string | undefined>,
    clusterPods: Iterable<V1Pod>,
    verdicts: ReadonlyMap<string, ExitVerdict>,
    requests: ReadonlyMap<string, ReadonlySet<string>> = new Map(),
  ): PodDesired[] {
    const rebalance = this.newRequests(requests);
    const live = new Set(nodePods.map((p) => p.uid));
    for (const uid of [...this.overrides.keys()]) if (!live.has(uid)) this.overrides.delete(uid);
    for (const uid of [...this.lastStuck.keys()]) if (!live.has(uid)) this.lastStuck.delete(uid);
    const cluster = [...clusterPods];
    let pods = nodePods.map((p) => this.withOverride(p, labels.get(p.uid)));
    const movedNow = new Set<string>();
    const standby = new Map<string, string>();
    for (const [group, gw] of Object.entries(this.config.gateways)) {
      if (gw.exits === undefined) continue;
      const exits = gw.exits.map((e) => e.name);
      const mine = pods.filter((p) => p.gateway === group);
      if (mine.length === 0) continue;
      const byUid = new Map(groupPodsOf(cluster, group).map((g) => [g.uid, g]));
      for (const p of mine) byUid.set(p.uid, { uid: p.uid, key: `${p.namespace}/${p.name}`, exit: p.exit, pin: p.pin, mine: true, movable: true });
      const plan = exitMoves(exits, verdicts, [...byUid.values()], rebalance.has(group) ? 'rebalance' : 'failover');
      if (rebalance.has(group)) this.ports.log('rebalance requested', { gateway: group, moves: plan.moves.length });
      for (const move of plan.moves) {
        const pod = mine.find((p) => p.uid === move.uid)!;
        this.overrides.set(move.uid, { to: move.to, since: this.ports.now() });
        movedNow.add(move.uid);
        this.events.moved?.(group, move, pod);
        const what = { assign: 'pod assigned an exit', drain: 'pod drained to another exit', failover: 'pod failed over to another exit', rebalance: 'pod rebalanced to another exit' };
        this.ports.log(what[move.why], {
          pod: `${pod.namespace}/${pod.name}`,
          gateway: group,
          from: move.from,
          to: move.to,
          why: move.reason,
        });
        this.track(this.ports.createEvent(exitEvent(pod, group, move, this.node, new Date(this.ports.now()))).catch((err: unknown) => {
          this.ports.log('event not recorded', { pod: `${pod.namespace}/${pod.name}`, error: (err as Error)?.message ?? String(err) });
        }));
      }
      for (const s of plan.stuck) {
        const pod = mine.find((p) => p.uid === s.uid)!;
        const text = `${s.why}:${s.exit ?? ''}`;
        if (this.lastStuck.get(s.uid) === text) continue;
        this.lastStuck.set(s.uid, text);
        this.ports.log('pod stays on its exit and has no internet until it is back', { pod: `${pod.namespace}/${pod.name}`, gateway: group, exit: s.exit, why: s.why });
      }
      for (const p of mine) if (!plan.stuck.some((s) => s.uid === p.uid)) this.lastStuck.delete(p.uid);
      // Each pod's standby exit: where its exit's failure or drain would send it, from where the
      // group stands after this round's moves
      const after = [...byUid.values()].map((g) => {
        const m = plan.moves.find((x) => x.uid === g.uid);
        return m === undefined ? g : { ...g, exit: m.to };
      });
      for (const [uid, exit] of standbyExits(exits, verdicts, after)) standby.set(uid, exit);
    }
    pods = pods.map((p) => this.withOverride(p, labels.get(p.uid)));
    pods = pods.map((p) => (p.exit === undefined ? p : { ...p, standby: standby.get(p.uid) }));
    this.syncLabels(pods, labels);
    return [...pods.filter((p) => movedNow.has(p.uid)), ...pods.filter((p) => !movedNow.has(p.uid))];
  }

  /**
   * Groups with a rebalance value not acted on yet. The values present at the first round are taken
   * as done: a restarted agent does not act again on an old request (it would move pods nobody asked
   * to move now); a request made while this agent was down is so missed here (the other agents act).
   */
  private newRequests(requests: ReadonlyMap<string, ReadonlySet<string>>): Set<string> {
    const out = new Set<string>();
    for (const group of [...this.seenRequests.keys()]) if (!requests.has(group)) this.seenRequests.delete(group);
    for (const [group, values] of requests) {
      let seen = this.seenRequests.get(group);
      if (seen === undefined) this.seenRequests.set(group, (seen = new Set()));
      for (const v of values) {
        if (seen.has(v)) continue;
        seen.add(v);
        if (this.primed) out.add(group);
      }
      // bounded: only the values still on the pods are remembered
      for (const v of [...seen]) if (!values.has(v)) seen.delete(v);
    }
    this.primed = true;
    return out;
  }

  /** The pod with this agent's move applied; a move the label has caught up with is forgotten. */
  private withOverride(p: PodDesired, label: string | undefined): PodDesired {
    const o = this.overrides.get(p.uid);
    if (o === undefined) return p;
    if (label === o.to) {
      this.overrides.delete(p.uid);
      return p.exit === o.to ? p : { ...p, exit: o.to, waitReason: undefined };
    }
    const { waitReason: _drop, ...rest } = p;
    return { ...rest, exit: o.to };
  }

  /** This node's group pods whose label is not their exit: patch it (once at a time per pod; retried next round on failure). */
  private syncLabels(pods: PodDesired[], labels: ReadonlyMap<string, string | undefined>): void {
    for (const p of pods) {
      if (p.exit === undefined || labels.get(p.uid) === p.exit || this.inFlight.has(p.uid)) continue;
      const exit = p.exit;
      this.inFlight.add(p.uid);
      this.track(
        this.ports
          .patchLabel({ namespace: p.namespace, name: p.name, uid: p.uid }, exit)
          .catch((err: unknown) => this.ports.log('exit label not written; again next round', { pod: `${p.namespace}/${p.name}`, exit, error: (err as Error)?.message ?? String(err) }))
          .finally(() => this.inFlight.delete(p.uid)),
      );
    }
  }

  private track(p: Promise<void>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** The API writes started so far, settled (tests). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
