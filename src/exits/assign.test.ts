// Rendezvous assignment: spread, minimal movement, pinning, health. Figures are printed (balance is
// statistical for hashing alone; the plans in plan.ts bound it). The large-sample checks of the
// spread (thousands of keys, the hash against the multinomial law) are in
// test/exits/rendezvous-statistics.test.ts: they run in npm test, not in the sub-5-second unit run.
import { createHash, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { expectGoldenFile } from '../../test/golden.js';
import { chooseExit, exitWeight, podExitKey, rankExits } from './assign.js';
import { deploymentPodKeys, topExitCounts as counts } from './fixtures.js';

const DIR = `${import.meta.dirname}/testdata`;
const EXITS3 = ['vpn-a', 'vpn-b', 'vpn-c'];

describe('rendezvous hashing', () => {
  it('gives 30 Deployment-style pods over 3 exits the golden assignment (deterministic, order-free)', () => {
    const keys = deploymentPodKeys(30);
    const assignment = Object.fromEntries(keys.map((k) => [k, rankExits(k, EXITS3)]));
    // The order the exits are listed in changes nothing.
    for (const k of keys) expect(rankExits(k, [...EXITS3].reverse())).toEqual(assignment[k]);
    const c = counts(keys, EXITS3);
    console.log(`[exits] hashing alone, 30 Deployment-style pods over 3 exits: ${JSON.stringify(c)}`);
    expectGoldenFile(`${DIR}/rendezvous-30-pods.golden.yaml`, stringify({ counts: c, ranking: assignment }, { lineWidth: 0 }));
  });

  it('removing one exit of N moves exactly the pods that were on it, for N = 2..6', () => {
    const keys = deploymentPodKeys(600, 3);
    for (let n = 2; n <= 6; n++) {
      const exits = Array.from({ length: n }, (_, i) => `exit-${i}`);
      // Each key's ranking over all N, computed once per N (it does not depend on which exit goes).
      const ranked = keys.map((k) => rankExits(k, exits));
      for (const gone of exits) {
        const rest = exits.filter((e) => e !== gone);
        let moved = 0;
        let onGone = 0;
        keys.forEach((k, i) => {
          const before = ranked[i]![0];
          const after = rankExits(k, rest)[0];
          if (before === gone) onGone += 1;
          if (before !== after) {
            moved += 1;
            expect(before, 'only the pods of the removed exit move').toBe(gone);
            // ... and each goes to its second choice: the failover order is the ranking.
            expect(after).toBe(ranked[i]![1]);
          }
        });
        expect(moved).toBe(onGone);
        if (n === 3 && gone === 'exit-0') console.log(`[exits] 600 pods, 3 exits, one removed: ${moved} moved (${((100 * moved) / keys.length).toFixed(1)} %, ideal 1/3), all of them its own`);
      }
    }
  });

  it('adding an exit takes pods only onto the new exit, about 1/(N+1) of them', () => {
    const keys = deploymentPodKeys(600, 4);
    const four = [...EXITS3, 'vpn-d'];
    let moved = 0;
    for (const k of keys) {
      const before = rankExits(k, EXITS3)[0];
      const after = rankExits(k, four)[0];
      if (before !== after) {
        moved += 1;
        expect(after).toBe('vpn-d');
      }
    }
    expect(moved / keys.length).toBeGreaterThan(0.18);
    expect(moved / keys.length).toBeLessThan(0.32);
  });

  it('a weight is the first 64 bits of SHA-256(key NUL exit), big-endian', () => {
    for (const [key, exit] of [['downloads/qbittorrent-0', 'vpn-a'], ['médias/sonarr-7d9c8b6f5-#1f2e', 'vpn-ü'], ['', '']]) {
      const digest = createHash('sha256').update(key!).update('\0').update(exit!).digest();
      expect(exitWeight(key!, exit!)).toBe(digest.readBigUInt64BE(0));
    }
  });

  it('weights are 64-bit and differ per exit and per key', () => {
    expect(exitWeight('a/b', 'vpn-a')).not.toBe(exitWeight('a/b', 'vpn-b'));
    expect(exitWeight('a/b', 'vpn-a')).not.toBe(exitWeight('a/c', 'vpn-a'));
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    expect(exitWeight('ab', 'c')).not.toBe(exitWeight('a', 'bc'));
  });
});

describe('podExitKey', () => {
  it('is <namespace>/<name> for a named pod (a StatefulSet pod keeps its exit when recreated)', () => {
    expect(podExitKey({ namespace: 'downloads', name: 'qbittorrent-0', reviewUid: 'u1' })).toBe('downloads/qbittorrent-0');
    expect(podExitKey({ namespace: 'downloads', name: 'qbittorrent-0', reviewUid: 'u2' })).toBe('downloads/qbittorrent-0');
  });

  it('tells apart replicas that arrive with only a generateName, by the review uid', () => {
    const keys = Array.from({ length: 300 }, () => podExitKey({ namespace: 'downloads', generateName: 'sonarr-7d9c8b6f5-', reviewUid: randomUUID() }));
    expect(new Set(keys).size).toBe(300);
    const c = Object.values(counts(keys, EXITS3));
    // One ReplicaSet's 300 replicas spread like any other keys (not all on one exit).
    for (const x of c) expect(x).toBeGreaterThan(70);
  });
});

describe('chooseExit', () => {
  const key = 'downloads/qbittorrent-0';
  const ranked = rankExits(key, EXITS3);

  it('takes the best ranked exit; with no health information, over all exits', () => {
    expect(chooseExit({ key, exits: EXITS3 })).toEqual({ ok: true, exit: ranked[0], how: 'rendezvous' });
  });

  it('skips unhealthy exits, taking the next in the ranking', () => {
    const healthy = new Set(EXITS3.filter((e) => e !== ranked[0]));
    expect(chooseExit({ key, exits: EXITS3, healthy })).toEqual({ ok: true, exit: ranked[1], how: 'rendezvous' });
  });

  it('with no healthy exit, ranks over all (the pod waits on its own exit) and says so', () => {
    expect(chooseExit({ key, exits: EXITS3, healthy: new Set() })).toEqual({ ok: true, exit: ranked[0], how: 'rendezvous-all-unhealthy' });
  });

  it('honours a pin, even to an unhealthy exit (flagged), and refuses a pin outside the group', () => {
    expect(chooseExit({ key, exits: EXITS3, pin: 'vpn-c' })).toEqual({ ok: true, exit: 'vpn-c', how: 'pinned' });
    expect(chooseExit({ key, exits: EXITS3, pin: 'vpn-c', healthy: new Set(['vpn-a']) })).toEqual({ ok: true, exit: 'vpn-c', how: 'pinned', pinnedUnhealthy: true });
    expect(chooseExit({ key, exits: EXITS3, pin: 'vpn-z' })).toEqual({ ok: false, problem: 'unknown-exit', pin: 'vpn-z' });
  });
});
