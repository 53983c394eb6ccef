// Which of this node's exit-group pods move, and which stay: the failover moves only the dead exit's
// unpinned pods, pinned pods stay (fail closed), nobody moves back, a draining exit's pods move as
// drainPlan says, a pod without an exit gets one, and only this node's pods are moved by this agent.
import { describe, expect, it } from 'vitest';
import { deploymentPodKeys } from '../exits/fixtures.js';
import { drainPlan, type ExitHealth, failoverPlan, rebalancePlan } from '../exits/plan.js';
import { chooseExit } from '../exits/assign.js';
import type { ExitVerdict } from './exit-health.js';
import { exitMoves, type GroupPod, standbyExits } from './exit-moves.js';
import { rankExits } from '../exits/assign.js';

const EXITS = ['vpn-a', 'vpn-b', 'vpn-c'];
const verdicts = (states: Record<string, ExitVerdict['state']>): Map<string, ExitVerdict> =>
  new Map(EXITS.map((name) => [name, { name, state: states[name] ?? 'healthy', reason: states[name] === 'unhealthy' ? 'exit probe: 500 tunnel down' : 'ok', by: 'probe' }]));

/** 30 pods admitted as the webhook does (loads known); the first `mine` of them on this node. */
function group(mine = 30): GroupPod[] {
  const loads = new Map(EXITS.map((e) => [e, 0]));
  return deploymentPodKeys(30).map((key, i) => {
    const c = chooseExit({ key, exits: EXITS, loads });
    if (!c.ok) throw new Error('no exit');
    loads.set(c.exit, loads.get(c.exit)! + 1);
    return { uid: `u${i}`, key, exit: c.exit, mine: i < mine, movable: true };
  });
}

describe('exit moves (agent)', () => {
  it("a dead exit: exactly its pods move, to healthy exits, balanced; nobody else moves", () => {
    const pods = group();
    const onA = pods.filter((p) => p.exit === 'vpn-a').map((p) => p.uid).sort();
    const round = exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy' }), pods);
    expect(round.moves.map((m) => m.uid).sort()).toEqual(onA);
    expect(new Set(round.moves.map((m) => m.to))).toEqual(new Set(['vpn-b', 'vpn-c']));
    expect(round.moves.every((m) => m.from === 'vpn-a' && m.why === 'failover' && m.reason === 'exit probe: 500 tunnel down')).toBe(true);
    const after = new Map(pods.map((p) => [p.uid, round.moves.find((m) => m.uid === p.uid)?.to ?? p.exit]));
    const count = (e: string) => [...after.values()].filter((x) => x === e).length;
    expect(count('vpn-b') + count('vpn-c')).toBe(30);
    expect(Math.abs(count('vpn-b') - count('vpn-c'))).toBeLessThanOrEqual(3);
    // the same as plan.ts's failoverPlan over the group
    const plan = failoverPlan(pods.map((p) => ({ uid: p.uid, key: p.key, exit: p.exit! })), EXITS.map((name) => ({ name, healthy: name !== 'vpn-a' })));
    expect(round.moves.map(({ uid, from, to }) => ({ uid, from, to }))).toEqual(plan.moves);
  });

  it('no move back: once moved, a recovered exit takes nobody back; all healthy is no move', () => {
    const pods = group();
    const round = exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy' }), pods);
    const moved = pods.map((p) => ({ ...p, exit: round.moves.find((m) => m.uid === p.uid)?.to ?? p.exit }));
    expect(exitMoves(EXITS, verdicts({}), moved).moves).toEqual([]);
    expect(exitMoves(EXITS, verdicts({}), pods).moves).toEqual([]);
  });

  it('a pinned pod on a dead exit stays and fails closed; the others of that exit move', () => {
    const pods = group();
    const pinned = pods.find((p) => p.exit === 'vpn-a')!;
    pinned.pin = 'vpn-a';
    const round = exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy' }), pods);
    expect(round.moves.some((m) => m.uid === pinned.uid)).toBe(false);
    expect(round.stuck).toEqual([{ uid: pinned.uid, exit: 'vpn-a', why: 'pinned-to-unhealthy-exit' }]);
    expect(round.moves.length).toBe(pods.filter((p) => p.exit === 'vpn-a').length - 1);
  });

  it('a draining exit: its unpinned pods move exactly as drainPlan says; a pinned one stays', () => {
    const pods = group();
    const pinned = pods.find((p) => p.exit === 'vpn-c')!;
    pinned.pin = 'vpn-c';
    const round = exitMoves(EXITS, verdicts({ 'vpn-c': 'draining' }), pods);
    const health: ExitHealth[] = EXITS.map((name) => ({ name, healthy: true }));
    const plan = drainPlan(pods.map((p) => ({ uid: p.uid, key: p.key, exit: p.exit!, pin: p.pin })), health, 'vpn-c');
    expect(round.moves.map(({ uid, from, to }) => ({ uid, from, to }))).toEqual(plan.moves);
    expect(round.moves.length).toBeGreaterThan(0);
    expect(round.moves.every((m) => m.why === 'drain' && m.from === 'vpn-c')).toBe(true);
    expect(round.stuck).toEqual([{ uid: pinned.uid, exit: 'vpn-c', why: 'pinned-to-draining-exit' }]);
  });

  it("only this node's pods are moved here; the others' moves are still planned (the loads agree between agents)", () => {
    const pods = group(10);
    const all = exitMoves(EXITS, verdicts({ 'vpn-b': 'unhealthy' }), pods.map((p) => ({ ...p, mine: true })));
    const here = exitMoves(EXITS, verdicts({ 'vpn-b': 'unhealthy' }), pods);
    expect(here.moves).toEqual(all.moves.filter((m) => pods.find((p) => p.uid === m.uid)!.mine));
  });

  it('a pod without an exit is assigned one (rendezvous with the loads); never to an unhealthy exit', () => {
    const pods = group();
    const fresh: GroupPod = { uid: 'new', key: 'downloads/qbittorrent-0', exit: undefined, mine: true, movable: true };
    const round = exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy' }), [...pods.map((p) => ({ ...p, mine: false })), fresh]);
    expect(round.moves).toEqual([{ uid: 'new', from: undefined, to: expect.stringMatching(/^vpn-[bc]$/), why: 'assign', reason: 'no exit assigned' }]);
    // no healthy exit: it waits (stuck), it is not given a dead one
    expect(exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy', 'vpn-b': 'unhealthy', 'vpn-c': 'unhealthy' }), [fresh])).toEqual({
      moves: [],
      stuck: [{ uid: 'new', exit: undefined, why: 'no-healthy-exit' }],
    });
  });

  it('pod-gateway-mode pods count as load on their exit but never move; an exit gone from the group is a failover', () => {
    const pods = group().map((p, i) => (i % 2 === 0 ? { ...p, movable: false, mine: false } : p));
    const round = exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy' }), pods);
    expect(round.moves.every((m) => pods.find((p) => p.uid === m.uid)!.movable)).toBe(true);
    const gone = exitMoves(EXITS, verdicts({}), [{ uid: 'x', key: 'downloads/x', exit: 'vpn-old', mine: true, movable: true }]);
    expect(gone.moves).toEqual([{ uid: 'x', from: 'vpn-old', to: expect.stringMatching(/^vpn-/), why: 'failover', reason: 'not an exit of the group' }]);
  });

  it('rebalance on request: moves off the fullest exit until within 20 % of even, as rebalancePlan says; only on request', () => {
    // 30 pods after a failover of vpn-a and its recovery: vpn-a empty, the others full
    const pods = group();
    const failed = exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy' }), pods);
    const after = pods.map((p) => ({ ...p, exit: failed.moves.find((m) => m.uid === p.uid)?.to ?? p.exit }));
    expect(exitMoves(EXITS, verdicts({}), after).moves, 'without a request, a recovered exit takes nobody').toEqual([]);
    const round = exitMoves(EXITS, verdicts({}), after, 'rebalance');
    const plan = rebalancePlan(after.map((p) => ({ uid: p.uid, key: p.key, exit: p.exit! })), EXITS.map((name) => ({ name, healthy: true })));
    expect(round.moves.map(({ uid, from, to }) => ({ uid, from, to }))).toEqual(plan.moves);
    expect(round.moves.length).toBeGreaterThanOrEqual(8);
    expect(round.moves.every((m) => m.to === 'vpn-a' && m.why === 'rebalance')).toBe(true);
  });
});

describe('standbyExits: where a pod keeps its standby lease', () => {
  /** Where the pods of `exit` go when it is judged `state` now, by this node's agent. */
  const movesOff = (pods: GroupPod[], exit: string, state: ExitVerdict['state']) =>
    new Map(exitMoves(EXITS, verdicts({ [exit]: state }), pods).moves.filter((m) => m.from === exit).map((m) => [m.uid, m.to]));

  it('exactly where a failover or a drain of its exit sends it now, for every pod of a 30-pod group', () => {
    const pods = group();
    const standby = standbyExits(EXITS, verdicts({}), pods);
    expect(standby.size).toBe(30);
    for (const exit of EXITS) {
      const mine = new Map([...standby].filter(([uid]) => pods.find((p) => p.uid === uid)!.exit === exit));
      expect(mine, `${exit} fails`).toEqual(movesOff(pods, exit, 'unhealthy'));
      expect(mine, `${exit} drains`).toEqual(movesOff(pods, exit, 'draining'));
    }
  });

  it("with uneven loads (after a failover and the exit's return) it follows the loads, not the ranking alone", () => {
    const pods = group();
    const failed = exitMoves(EXITS, verdicts({ 'vpn-a': 'unhealthy' }), pods);
    const after = pods.map((p) => ({ ...p, exit: failed.moves.find((m) => m.uid === p.uid)?.to ?? p.exit }));
    const standby = standbyExits(EXITS, verdicts({}), after);
    // the best ranked other exit alone would send some of vpn-c's pods to the full vpn-b
    const onC = after.filter((p) => p.exit === 'vpn-c');
    const byRank = onC.filter((p) => rankExits(p.key, EXITS.filter((e) => e !== 'vpn-c'))[0] !== standby.get(p.uid));
    expect(byRank.length, 'pods whose standby is not their best ranked other exit').toBeGreaterThan(0);
    expect(new Map(onC.map((p) => [p.uid, standby.get(p.uid)]))).toEqual(movesOff(after, 'vpn-c', 'draining'));
  });

  it("none for a pinned pod, a pod on an exit that is not healthy (it is moving), another node's pod, or when no other exit is healthy", () => {
    const pods = group(20);
    const pinned = pods.find((p) => p.exit === 'vpn-a' && p.mine)!;
    pinned.pin = 'vpn-a';
    const standby = standbyExits(EXITS, verdicts({ 'vpn-b': 'unhealthy' }), pods);
    expect(standby.has(pinned.uid)).toBe(false);
    expect(pods.filter((p) => p.exit === 'vpn-b').some((p) => standby.has(p.uid))).toBe(false);
    expect(pods.filter((p) => !p.mine).some((p) => standby.has(p.uid))).toBe(false);
    // vpn-b unhealthy: vpn-a's pods stand by on vpn-c only, and vpn-c's on vpn-a
    for (const p of pods.filter((x) => x.mine && x !== pinned && x.exit !== 'vpn-b')) expect(standby.get(p.uid)).toBe(p.exit === 'vpn-a' ? 'vpn-c' : 'vpn-a');
    expect(standbyExits(EXITS, verdicts({ 'vpn-b': 'unhealthy', 'vpn-c': 'draining' }), pods).size).toBe(0);
  });
});
