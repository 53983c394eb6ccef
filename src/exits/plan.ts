// The agent's exit plans (pure): which pods move to which exit, and which stay put. The agent runs
// them over each group (src/agent/exit-moves.ts: failoverPlan with draining exits as targets no more,
// which is drainPlan's rule; rebalancePlan on request) and carries out its own node's moves.
//
// Three plans, one rule set:
//   - failover: only pods whose exit is unhealthy (or gone from the group) move; each to its best
//     ranked healthy exit (rankExits) that still has room. Pods on healthy exits never move, and a
//     pod is never moved back when its old exit recovers: that would break its live flows. A pod
//     pinned (podvpn.io/exit) to an unhealthy exit stays and fails closed until the exit is back.
//   - drain(exit): before an exit stops (a rollout, a node drain), its unpinned pods move to the other
//     healthy exits, with the same rule; nothing else moves.
//   - rebalance: on request only. First the failover moves, then pods move from the fullest healthy
//     exit to the emptiest, one at a time (the pod whose ranking prefers the receiver most), until
//     every exit is within BALANCE_SLACK of even: as few moves as that takes, since each breaks flows.
//
// Room: an exit takes at most capacity() pods while it is a target (within BALANCE_SLACK of even),
// so the pods of a dead exit spread over the others instead of landing where their hashes happen to
// cluster ("consistent hashing with bounded loads", Mirrokni, Thorup, Zadimoghaddam 2018).
// A pod whose every healthy exit is full goes to the least loaded one (never left without an exit).

import { BALANCE_SLACK, capacity, rankExits } from './assign.js';

export interface PodExit {
  /** The pod's uid: what a move names. */
  uid: string;
  /** Its rendezvous key (the agent uses `<namespace>/<name>`). */
  key: string;
  /** The exit it leaves through now. */
  exit: string;
  /** podvpn.io/exit, when the user pinned it. */
  pin?: string | undefined;
}

export interface ExitHealth {
  name: string;
  healthy: boolean;
}

export interface Move {
  uid: string;
  from: string;
  to: string;
}

export interface Stay {
  uid: string;
  exit: string;
  why: 'pinned-to-unhealthy-exit' | 'no-healthy-exit' | 'pinned-to-draining-exit';
}

export interface ExitPlan {
  moves: Move[];
  /** Pods that should move but cannot: they fail closed where they are. */
  stuck: Stay[];
}

export function failoverPlan(pods: readonly PodExit[], exits: readonly ExitHealth[]): ExitPlan {
  const healthy = exits.filter((e) => e.healthy).map((e) => e.name);
  return moveOff(pods, healthy, (p) => !healthy.includes(p.exit), 'pinned-to-unhealthy-exit');
}

export function drainPlan(pods: readonly PodExit[], exits: readonly ExitHealth[], draining: string): ExitPlan {
  const healthy = exits.filter((e) => e.healthy && e.name !== draining).map((e) => e.name);
  return moveOff(pods, healthy, (p) => p.exit === draining, 'pinned-to-draining-exit');
}

export function rebalancePlan(pods: readonly PodExit[], exits: readonly ExitHealth[]): ExitPlan {
  const healthy = exits.filter((e) => e.healthy).map((e) => e.name);
  // First what a failover would do (pods on dead exits), then even out with as few moves as it takes.
  const first = failoverPlan(pods, exits);
  if (healthy.length === 0) return first;
  const moved = new Map(first.moves.map((m) => [m.uid, m.to]));
  const current = pods.map((p) => ({ ...p, exit: moved.get(p.uid) ?? p.exit }));
  const load = new Map(healthy.map((e) => [e, 0]));
  for (const p of current) if (load.has(p.exit)) load.set(p.exit, load.get(p.exit)! + 1);
  const placed = [...load.values()].reduce((a, b) => a + b, 0);
  const cap = capacity(placed, healthy.length);
  const floor = Math.ceil((1 - BALANCE_SLACK) * (placed / healthy.length) - 1e-9);
  const moves = [...first.moves];
  const byLoad = (dir: 1 | -1) => [...healthy].sort((a, b) => dir * (load.get(a)! - load.get(b)!) || (a < b ? -1 : 1));
  for (let guard = 0; guard < pods.length; guard++) {
    const receiver = byLoad(1)[0]!;
    const donor = byLoad(-1)[0]!;
    const needed = load.get(receiver)! < floor || load.get(donor)! > cap;
    if (!needed || load.get(donor)! - load.get(receiver)! < 2) break;
    // The donor's unpinned pod that ranks the receiver highest: the move its hash would agree with.
    const candidates = current.filter((p) => p.exit === donor && p.pin === undefined);
    if (candidates.length === 0) break;
    const score = (p: PodExit) => rankExits(p.key, healthy).indexOf(receiver);
    const chosen = candidates.reduce((best, p) => (score(p) < score(best) || (score(p) === score(best) && p.key < best.key) ? p : best));
    const original = pods.find((p) => p.uid === chosen.uid)!;
    const earlier = moves.findIndex((m) => m.uid === chosen.uid);
    if (earlier >= 0) moves.splice(earlier, 1);
    if (original.exit !== receiver) moves.push({ uid: chosen.uid, from: original.exit, to: receiver });
    chosen.exit = receiver;
    load.set(donor, load.get(donor)! - 1);
    load.set(receiver, load.get(receiver)! + 1);
  }
  return { moves, stuck: first.stuck };
}

function moveOff(
  pods: readonly PodExit[],
  targets: readonly string[],
  mustMove: (p: PodExit) => boolean,
  pinnedWhy: Stay['why'],
): ExitPlan {
  const plan: ExitPlan = { moves: [], stuck: [] };
  const load = new Map(targets.map((e) => [e, 0]));
  for (const p of pods) if (!mustMove(p) && load.has(p.exit)) load.set(p.exit, load.get(p.exit)! + 1);
  const cap = capacity(pods.length, targets.length);
  const movers = pods.filter(mustMove).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const p of movers) {
    if (p.pin !== undefined) {
      plan.stuck.push({ uid: p.uid, exit: p.exit, why: pinnedWhy });
      continue;
    }
    if (targets.length === 0) {
      plan.stuck.push({ uid: p.uid, exit: p.exit, why: 'no-healthy-exit' });
      continue;
    }
    const to = pick(p.key, targets, load, cap);
    load.set(to, load.get(to)! + 1);
    plan.moves.push({ uid: p.uid, from: p.exit, to });
  }
  return plan;
}

/** The best ranked exit with room; when all are full, the least loaded (best ranked among equals). */
function pick(key: string, exits: readonly string[], load: ReadonlyMap<string, number>, cap: number): string {
  const ranked = rankExits(key, exits);
  const roomy = ranked.find((e) => load.get(e)! < cap);
  if (roomy !== undefined) return roomy;
  return ranked.reduce((best, e) => (load.get(e)! < load.get(best)! ? e : best));
}
