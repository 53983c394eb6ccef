// The agent's exit plans and admission with loads: who moves, who stays, and the balance that
// results. Goldens for a 30-pod, 3-exit group; properties over random groups.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { expectGoldenFile } from '../../test/golden.js';
import { chooseExit } from './assign.js';
import { deploymentPodKeys } from './fixtures.js';
import { drainPlan, type ExitHealth, type ExitPlan, failoverPlan, type PodExit, rebalancePlan } from './plan.js';

const DIR = `${import.meta.dirname}/testdata`;
const EXITS3 = ['vpn-a', 'vpn-b', 'vpn-c'];
const allHealthy = (exits: readonly string[]): ExitHealth[] => exits.map((name) => ({ name, healthy: true }));

/** Admit pods one by one as the webhook does with loads known: what the group looks like after. */
function admitAll(keys: readonly string[], exits: readonly string[], pins: Record<string, string> = {}): PodExit[] {
  const loads = new Map(exits.map((e) => [e, 0]));
  return keys.map((key, i) => {
    const choice = chooseExit({ key, exits, pin: pins[key], loads });
    if (!choice.ok) throw new Error('unexpected unknown exit');
    loads.set(choice.exit, loads.get(choice.exit)! + 1);
    return { uid: `uid-${i}`, key, exit: choice.exit, ...(pins[key] === undefined ? {} : { pin: pins[key] }) };
  });
}

function apply(pods: readonly PodExit[], plan: ExitPlan): PodExit[] {
  const to = new Map(plan.moves.map((m) => [m.uid, m.to]));
  return pods.map((p) => ({ ...p, exit: to.get(p.uid) ?? p.exit }));
}

function countsOf(pods: readonly PodExit[], exits: readonly string[]): Record<string, number> {
  const out = Object.fromEntries(exits.map((e) => [e, 0]));
  for (const p of pods) out[p.exit]! += 1;
  return out;
}

function withinOfEven(counts: number[], total: number, slack: number): boolean {
  const even = total / counts.length;
  return counts.every((c) => Math.abs(c - even) <= slack * even + 1e-9);
}

describe('admission with loads (webhook) keeps the group balanced', () => {
  it('30 Deployment-style pods over 3 exits: within 20 % of even (hashing alone gave 5 / 9 / 16)', () => {
    const pods = admitAll(deploymentPodKeys(30), EXITS3);
    const c = countsOf(pods, EXITS3);
    console.log(`[exits] admission with loads, 30 pods over 3 exits: ${JSON.stringify(c)}`);
    expect(withinOfEven(Object.values(c), 30, 0.2)).toBe(true);
  });

  it('property: any 30..300 pods over 2..6 exits end within 20 % of even', () => {
    fc.assert(
      fc.property(fc.integer({ min: 30, max: 300 }), fc.integer({ min: 2, max: 6 }), fc.integer(), (n, k, seed) => {
        const exits = Array.from({ length: k }, (_, i) => `exit-${i}`);
        const pods = admitAll(deploymentPodKeys(n, seed), exits);
        return withinOfEven(Object.values(countsOf(pods, exits)), n, 0.2);
      }),
      { numRuns: 200 },
    );
  });
});

describe('failover plan', () => {
  const keys = deploymentPodKeys(30);
  const pins = { [keys[4]!]: 'vpn-b', [keys[11]!]: 'vpn-a' };
  const group = admitAll(keys, EXITS3, pins);
  const bDown: ExitHealth[] = [{ name: 'vpn-a', healthy: true }, { name: 'vpn-b', healthy: false }, { name: 'vpn-c', healthy: true }];

  it('moves exactly the unpinned pods of the dead exit, spread over the others; the pinned one stays (golden)', () => {
    const plan = failoverPlan(group, bDown);
    const onB = group.filter((p) => p.exit === 'vpn-b');
    expect(plan.moves.map((m) => m.uid).sort()).toEqual(onB.filter((p) => p.pin === undefined).map((p) => p.uid).sort());
    expect(plan.moves.every((m) => m.from === 'vpn-b' && m.to !== 'vpn-b')).toBe(true);
    expect(plan.stuck).toEqual([{ uid: group.find((p) => p.key === keys[4])!.uid, exit: 'vpn-b', why: 'pinned-to-unhealthy-exit' }]);
    const after = countsOf(apply(group, plan), EXITS3);
    console.log(`[exits] failover, 30 pods, vpn-b dies: ${plan.moves.length} of 30 move (ideal 1/3 = 10), 1 pinned stays; before ${JSON.stringify(countsOf(group, EXITS3))}, after ${JSON.stringify(after)}`);
    // The survivors share the movers within 20 % of an even split of the 29 pods they now carry.
    expect(withinOfEven([after['vpn-a']!, after['vpn-c']!], 29, 0.2)).toBe(true);
    expectGoldenFile(`${DIR}/failover-30-pods.golden.yaml`, stringify({ before: countsOf(group, EXITS3), plan, after }, { lineWidth: 0 }));
  });

  it('never moves a pod back when its old exit recovers, and moves nothing while all are healthy', () => {
    const moved = apply(group, failoverPlan(group, bDown));
    expect(failoverPlan(moved, allHealthy(EXITS3))).toEqual({ moves: [], stuck: [] });
    expect(failoverPlan(group, allHealthy(EXITS3))).toEqual({ moves: [], stuck: [] });
  });

  it('with no healthy exit, moves nothing: every pod fails closed where it is', () => {
    const plan = failoverPlan(group, EXITS3.map((name) => ({ name, healthy: false })));
    expect(plan.moves).toEqual([]);
    expect(plan.stuck).toHaveLength(30);
  });

  it('moves a pod whose exit left the group (not in the exit list) as if its exit were dead', () => {
    const stray: PodExit[] = [{ uid: 'u1', key: 'downloads/x', exit: 'vpn-old' }];
    expect(failoverPlan(stray, allHealthy(EXITS3)).moves).toEqual([{ uid: 'u1', from: 'vpn-old', to: expect.stringMatching(/^vpn-[abc]$/) }]);
  });

  it('property: only pods on unhealthy exits move, always to a healthy exit; pinned pods never move', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ exit: fc.constantFrom(...EXITS3), pinned: fc.boolean() }), { minLength: 1, maxLength: 80 }),
        fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
        (specs, health) => {
          const pods: PodExit[] = specs.map((s, i) => ({ uid: `u${i}`, key: `ns/p-${i}`, exit: s.exit, ...(s.pinned ? { pin: s.exit } : {}) }));
          const exits = EXITS3.map((name, i) => ({ name, healthy: health[i]! }));
          const healthy = new Set(exits.filter((e) => e.healthy).map((e) => e.name));
          const plan = failoverPlan(pods, exits);
          const byUid = new Map(pods.map((p) => [p.uid, p]));
          for (const m of plan.moves) {
            const p = byUid.get(m.uid)!;
            if (healthy.has(p.exit) || p.pin !== undefined || !healthy.has(m.to)) return false;
          }
          // Every pod on an unhealthy exit either moves or is reported stuck.
          const accounted = new Set([...plan.moves.map((m) => m.uid), ...plan.stuck.map((s) => s.uid)]);
          return pods.every((p) => healthy.has(p.exit) === !accounted.has(p.uid));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('drain plan', () => {
  const keys = deploymentPodKeys(30, 2);
  const group = admitAll(keys, EXITS3, { [keys[0]!]: 'vpn-c' });

  it('moves the draining exit\'s unpinned pods before it stops; nothing else moves', () => {
    const plan = drainPlan(group, allHealthy(EXITS3), 'vpn-c');
    const onC = group.filter((p) => p.exit === 'vpn-c');
    expect(plan.moves).toHaveLength(onC.length - 1);
    expect(plan.moves.every((m) => m.from === 'vpn-c' && m.to !== 'vpn-c')).toBe(true);
    expect(plan.stuck).toEqual([{ uid: 'uid-0', exit: 'vpn-c', why: 'pinned-to-draining-exit' }]);
    console.log(`[exits] drain vpn-c (30 pods): ${plan.moves.length} move, 1 pinned stays`);
  });

  it('does not move pods onto an unhealthy exit while draining another', () => {
    const plan = drainPlan(group, [{ name: 'vpn-a', healthy: false }, { name: 'vpn-b', healthy: true }, { name: 'vpn-c', healthy: true }], 'vpn-c');
    expect(plan.moves.every((m) => m.to === 'vpn-b')).toBe(true);
  });
});

describe('rebalance plan (on request only)', () => {
  it('after a failover and recovery, brings the group back within 20 % of even; pinned pods stay', () => {
    const keys = deploymentPodKeys(30, 5);
    const pins = { [keys[3]!]: 'vpn-a' };
    const start = admitAll(keys, EXITS3, pins);
    const afterFailover = apply(start, failoverPlan(start, [{ name: 'vpn-a', healthy: true }, { name: 'vpn-b', healthy: true }, { name: 'vpn-c', healthy: false }]));
    expect(countsOf(afterFailover, EXITS3)['vpn-c']).toBe(0);
    const plan = rebalancePlan(afterFailover, allHealthy(EXITS3));
    const after = countsOf(apply(afterFailover, plan), EXITS3);
    console.log(`[exits] rebalance after vpn-c came back: ${plan.moves.length} moves, ${JSON.stringify(countsOf(afterFailover, EXITS3))} -> ${JSON.stringify(after)}`);
    expect(withinOfEven(Object.values(after), 30, 0.2)).toBe(true);
    expect(plan.moves.some((m) => m.uid === 'uid-3')).toBe(false);
    expect(rebalancePlan(apply(afterFailover, plan), allHealthy(EXITS3)).moves, 'a second rebalance moves nothing').toEqual([]);
  });

  it('property: from any unpinned group, ends within 20 % of even, moving no more pods than the excess', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...EXITS3), { minLength: 30, maxLength: 200 }), (at) => {
        const pods: PodExit[] = at.map((exit, i) => ({ uid: `u${i}`, key: `ns/p-${i}`, exit }));
        const plan = rebalancePlan(pods, allHealthy(EXITS3));
        const c = Object.values(countsOf(apply(pods, plan), EXITS3));
        const even = pods.length / 3;
        const excess = Object.values(countsOf(pods, EXITS3)).reduce((n, x) => n + Math.max(0, x - Math.floor(even)), 0);
        return withinOfEven(c, pods.length, 0.2) && plan.moves.length <= excess;
      }),
      { numRuns: 300 },
    );
  });
});
