// Pods per exit for balanced admission: what counts, pending admissions, and a burst of 30 replicas
// admitted faster than the watch reports them.
import { describe, expect, it } from 'vitest';
import { chooseExit, podExitKey } from './assign.js';
import { accountsFor, loadsOf, type Pending, PENDING_MS, WatchedCounts, watchedPod } from './loads.js';

const labels = { 'podvpn.io/routed': 'vpn', 'podvpn.io/exit': 'vpn-a' };

describe('watchedPod', () => {
  it('counts a routed pod of a group with an exit label', () => {
    expect(watchedPod({ metadata: { namespace: 'd', name: 'web-1', generateName: 'web-', labels } })).toEqual({ namespace: 'd', name: 'web-1', generateName: 'web-', gateway: 'vpn', exit: 'vpn-a' });
  });
  it('does not count a finished or terminating pod, or one without both labels', () => {
    expect(watchedPod({ metadata: { name: 'a', labels }, status: { phase: 'Succeeded' } })).toBeUndefined();
    expect(watchedPod({ metadata: { name: 'a', labels }, status: { phase: 'Failed' } })).toBeUndefined();
    expect(watchedPod({ metadata: { name: 'a', labels, deletionTimestamp: new Date(0) } })).toBeUndefined();
    expect(watchedPod({ metadata: { name: 'a', labels: { 'podvpn.io/exit': 'vpn-a' } } })).toBeUndefined();
  });
});

describe('loadsOf and WatchedCounts', () => {
  const counts = new WatchedCounts();
  counts.set('d/a', { namespace: 'd', name: 'a', gateway: 'vpn', exit: 'vpn-a' });
  counts.set('d/b', { namespace: 'd', name: 'b', gateway: 'vpn', exit: 'vpn-a' });
  counts.set('d/c', { namespace: 'd', name: 'c', gateway: 'other', exit: 'other-a' });
  it("adds young pending admissions to the watch's counts, per group; old ones expire", () => {
    const pending: Pending[] = [
      { namespace: 'd', prefix: 'x-', gateway: 'vpn', exit: 'vpn-b', at: 1000 },
      { namespace: 'd', prefix: 'y-', gateway: 'vpn', exit: 'vpn-b', at: 1000 - PENDING_MS - 1 },
    ];
    expect(loadsOf('vpn', counts.of('vpn'), pending, 1000)).toEqual(new Map([['vpn-a', 2], ['vpn-b', 1]]));
  });
  it('follows a pod that changes exit, finishes or goes, and says when a pod is new', () => {
    const c = new WatchedCounts();
    expect(c.set('d/a', { namespace: 'd', name: 'a', gateway: 'vpn', exit: 'vpn-a' })).toBe(true);
    expect(c.set('d/a', { namespace: 'd', name: 'a', gateway: 'vpn', exit: 'vpn-b' })).toBe(false);
    expect(c.of('vpn')).toEqual(new Map([['vpn-b', 1]]));
    c.set('d/a', undefined);
    expect(c.of('vpn')).toEqual(new Map());
  });
  it('a pod seen by the watch accounts for its pending admission (name, or generateName)', () => {
    const p: Pending = { namespace: 'd', prefix: 'web-7d9c8b6f5-', gateway: 'vpn', exit: 'vpn-a', at: 0 };
    expect(accountsFor({ namespace: 'd', name: 'web-7d9c8b6f5-x7k2p', generateName: 'web-7d9c8b6f5-', gateway: 'vpn', exit: 'vpn-a' }, p)).toBe(true);
    expect(accountsFor({ namespace: 'd', name: 'web-7d9c8b6f5-x7k2p', generateName: 'web-7d9c8b6f5-', gateway: 'vpn', exit: 'vpn-b' }, p)).toBe(false);
    expect(accountsFor({ namespace: 'e', name: 'web-7d9c8b6f5-x7k2p', generateName: 'web-7d9c8b6f5-', gateway: 'vpn', exit: 'vpn-a' }, p)).toBe(false);
  });
});

describe('a burst: one ReplicaSet scaled to 30 before the watch reports any pod', () => {
  it('ends within 20 % of even with the pending admissions counted (hashing alone does not promise it)', () => {
    const exits = ['vpn-a', 'vpn-b', 'vpn-c'];
    const pending: Pending[] = [];
    for (let i = 0; i < 30; i++) {
      const key = podExitKey({ namespace: 'downloads', generateName: 'sonarr-7d9c8b6f5-', reviewUid: `3f9a1c2e-0000-4000-8000-${String(i).padStart(12, '0')}` });
      const choice = chooseExit({ key, exits, loads: loadsOf('vpn', undefined, pending, 0) });
      if (!choice.ok) throw new Error('unexpected');
      pending.push({ namespace: 'downloads', prefix: 'sonarr-7d9c8b6f5-', gateway: 'vpn', exit: choice.exit, at: 0 });
    }
    const counts = [...loadsOf('vpn', undefined, pending, 0).values()];
    console.log(`[exits] burst of 30 replicas with pending admissions counted: ${counts.join(' / ')}`);
    for (const c of counts) expect(Math.abs(c - 10)).toBeLessThanOrEqual(2);
  });
});
