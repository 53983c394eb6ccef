// Which of this node's exit-group pods move to another exit this round (pure), from the exits'
// verdicts (exit-health.ts) and every routed pod of the group in the cluster (the loads).
//
// One pass of src/exits/plan.ts's failoverPlan over the group, with the targets = the healthy exits:
//   - a pod on an unhealthy exit, or on an exit that is no longer in the group: a failover;
//   - a pod on a draining exit (its gateway pod is terminating): a drain. A draining exit is not a
//     target, so this is drainPlan(pods, exits, draining) (the same moveOff rule; exit-moves.test.ts
//     checks they agree), and with a dead exit and a draining one at once, one plan for both;
//   - an agent-mode pod with no exit (no usable label or pin, cluster-view.ts): assigned one, by the
//     same rendezvous ranking and bounded loads as the webhook.
// Pods on healthy exits never move (no move back when an exit recovers: that would break live flows).
// A pinned pod never moves: on a dead or draining exit it stays and fails closed.
//
// On request (a new podvpn.io/rebalance value on the group's exit pods, exit-control.ts), the pass is
// rebalancePlan instead: the same moves first, then pods off the fullest healthy exits until every
// exit is within 20 % of even, as few as that takes (each breaks the moved pod's flows).
//
// Every agent computes the plan over the whole group (each pod with its current exit: the label, or
// this agent's own move not yet seen in the label), so the agents of all nodes agree on where the
// pods of a dead exit go (each moves only its own); pods that no agent can move (pod-gateway mode:
// their client is in the pod) count as load and enter the plan as pinned, so no capacity is kept for
// them.

import { type ExitHealth, failoverPlan, type PodExit, rebalancePlan } from '../exits/plan.js';
import type { ExitVerdict } from './exit-health.js';

export interface GroupPod {
  uid: string;
  /** The rendezvous key: `<namespace>/<name>` (assign.ts: a running pod is ranked by its name). */
  key: string;
  /** The exit it leaves through now; undefined: none yet. */
  exit: string | undefined;
  /** Its pin (annotation podvpn.io/exit), when it names an exit of the group. */
  pin?: string | undefined;
  /** On this node, in agent mode: this agent moves it. */
  mine: boolean;
  /** Some agent can move it (agent mode); false: pod-gateway mode. */
  movable: boolean;
}

export type MoveWhy = 'failover' | 'drain' | 'assign' | 'rebalance';

export interface ExitMove {
  uid: string;
  /** undefined: the pod had no exit (an assignment). */
  from: string | undefined;
  to: string;
  why: MoveWhy;
  /** The from exit's verdict reason, for the Event and the log. */
  reason: string;
}

export interface StuckPod {
  uid: string;
  exit: string | undefined;
  why: 'pinned-to-unhealthy-exit' | 'pinned-to-draining-exit' | 'no-healthy-exit';
}

export interface ExitRound {
  /** This node's moves only. */
  moves: ExitMove[];
  /** This node's pods that should move and cannot: they fail closed where they are. */
  stuck: StuckPod[];
}

const NONE = '';

export function exitMoves(exits: readonly string[], verdicts: ReadonlyMap<string, ExitVerdict>, pods: readonly GroupPod[], mode: 'failover' | 'rebalance' = 'failover'): ExitRound {
  const health: ExitHealth[] = exits.map((name) => ({ name, healthy: verdicts.get(name)?.state === 'healthy' }));
  const byUid = new Map(pods.map((p) => [p.uid, p]));
  const input: PodExit[] = [];
  for (const p of pods) {
    const pin = p.pin !== undefined && exits.includes(p.pin) ? p.pin : undefined;
    if (!p.movable) {
      // pod-gateway mode: load on its exit, never a mover
      if (p.exit !== undefined) input.push({ uid: p.uid, key: p.key, exit: p.exit, pin: p.exit });
      continue;
    }
    input.push({ uid: p.uid, key: p.key, exit: p.exit ?? NONE, pin });
  }
  const plan = mode === 'rebalance' ? rebalancePlan(input, health) : failoverPlan(input, health);
  const moves: ExitMove[] = [];
  for (const m of plan.moves) {
    if (byUid.get(m.uid)?.mine !== true) continue;
    if (m.from === NONE) {
      moves.push({ uid: m.uid, from: undefined, to: m.to, why: 'assign', reason: 'no exit assigned' });
      continue;
    }
    const v = verdicts.get(m.from);
    if (v?.state === 'healthy') {
      moves.push({ uid: m.uid, from: m.from, to: m.to, why: 'rebalance', reason: 'rebalance requested' });
      continue;
    }
    const why: MoveWhy = v?.state === 'draining' ? 'drain' : 'failover';
    const reason = !exits.includes(m.from) ? 'not an exit of the group' : (v?.reason ?? 'unhealthy');
    moves.push({ uid: m.uid, from: m.from, to: m.to, why, reason });
  }
  const stuck: StuckPod[] = [];
  for (const s of plan.stuck) {
    if (byUid.get(s.uid)?.mine !== true) continue;
    const exit = s.exit === NONE ? undefined : s.exit;
    const draining = exit !== undefined && verdicts.get(exit)?.state === 'draining';
    stuck.push({ uid: s.uid, exit, why: s.why === 'no-healthy-exit' ? 'no-healthy-exit' : draining ? 'pinned-to-draining-exit' : 'pinned-to-unhealthy-exit' });
  }
  return { moves, stuck };
}

/**
 * Where each of this node's pods would go if its exit failed or drained now: for each healthy exit
 * holding some of them, this same plan with that exit unhealthy (a drain moves as a failover does:
 * drainPlan and failoverPlan share one rule, plan.ts), over the whole group and its current loads.
 * The agent keeps a standby lease there (tunnel.ts standbyLease), so the move does not wait for
 * dnsmasq's ping check. The best ranked exit alone (rendezvous without the loads) was wrong for about
 * one pod in six of a drained exit in the lab: the loads sent it elsewhere, and its move then queued
 * behind the pings (12 s instead of 6). None for a pinned pod (it never moves), a pod without an exit
 * or on an exit that is not healthy (it is moving), or when no other exit is healthy.
 */
export function standbyExits(exits: readonly string[], verdicts: ReadonlyMap<string, ExitVerdict>, pods: readonly GroupPod[]): Map<string, string> {
  const out = new Map<string, string>();
  const holding = new Set(pods.filter((p) => p.mine && p.movable && p.exit !== undefined && verdicts.get(p.exit)?.state === 'healthy').map((p) => p.exit!));
  for (const exit of holding) {
    const ifDown = new Map(verdicts);
    ifDown.set(exit, { name: exit, state: 'unhealthy', reason: 'standby plan', by: 'probe' });
    for (const m of exitMoves(exits, ifDown, pods).moves) if (m.from === exit) out.set(m.uid, m.to);
  }
  return out;
}
