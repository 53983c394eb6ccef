// The reconcile plan as a table: desired vs observed policies, the guard's facts and an injected clock
// in, actions out. No API double, no sleeps: the grace period and the peer backoff are plain numbers.

import { describe, expect, it } from 'vitest';
import { resolveRanges } from '../cluster/ranges.js';
import type { LivePolicy } from './client.js';
import { planReconcile, type PlanInput } from './plan.js';
import { buildKillSwitchPolicy } from './policy.js';

const ranges = resolveRanges({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraAllowedCIDRs: [], dnsIPs: ['10.96.0.10'] }, {});
const other = resolveRanges({ podCIDRs: ['10.245.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraAllowedCIDRs: [], dnsIPs: ['10.96.0.10'] }, {});
const GRACE = 600_000;
const T0 = Date.parse('2026-12-01T12:00:00Z');

function live(namespace: string, gateway = 'default', opts: { created?: number; stale?: boolean } = {}): LivePolicy {
  const p = buildKillSwitchPolicy({ namespace, gateway, ranges: opts.stale === true ? other : ranges });
  return { ...p, metadata: { ...p.metadata, creationTimestamp: new Date(opts.created ?? T0 - 2 * GRACE) } };
}

function input(over: Partial<PlanInput>): PlanInput {
  return {
    wanted: [],
    desired: (namespace, gateway) => buildKillSwitchPolicy({ namespace, gateway, ranges }),
    live: [],
    now: T0,
    removalGraceMs: GRACE,
    peerBackoffMs: 60_000,
    terminatingRetryMs: 300_000,
    terminatingWithin: () => false,
    writtenByPeer: () => false,
    recentlyEnsured: () => false,
    unneededSince: new Map(),
    peerApplied: new Map(),
    ...over,
  };
}

describe('reconcile plan', () => {
  it('applies a wanted policy that is missing or stale, and leaves a current one alone', () => {
    const plan = planReconcile(
      input({
        wanted: [
          { namespace: 'downloads', gateway: 'default' },
          { namespace: 'media', gateway: 'vpn-eu' },
          { namespace: 'books', gateway: 'default' },
          { namespace: 'downloads', gateway: 'default' }, // routed pod and opted-in namespace: once
        ],
        live: [live('media', 'vpn-eu', { stale: true }), live('books')],
      }),
    );
    expect(plan.apply).toEqual([
      { namespace: 'downloads', gateway: 'default', id: 'downloads/podvpn-killswitch-default', overridesPeer: false },
      { namespace: 'media', gateway: 'vpn-eu', id: 'media/podvpn-killswitch-vpn-eu', overridesPeer: false },
    ]);
    expect(plan.defer).toEqual([]);
    expect(plan.remove).toEqual([]);
  });

  it('defers a namespace being deleted instead of retrying its create on every pass', () => {
    const plan = planReconcile(input({ wanted: [{ namespace: 'gone', gateway: 'default' }], terminatingWithin: (ns) => ns === 'gone' }));
    expect(plan.apply).toEqual([]);
    expect(plan.defer).toEqual(['gone/podvpn-killswitch-default']);
  });

  it('a policy a peer replica wrote: overridden (after rediscovery) at most once per backoff', () => {
    const peer = input({ wanted: [{ namespace: 'downloads', gateway: 'default' }], live: [live('downloads', 'default', { stale: true })], writtenByPeer: () => true });
    expect(planReconcile(peer).apply).toEqual([{ namespace: 'downloads', gateway: 'default', id: 'downloads/podvpn-killswitch-default', overridesPeer: true }]);
    const within = planReconcile({ ...peer, peerApplied: new Map([['downloads/podvpn-killswitch-default', T0 - 59_999]]) });
    expect(within.apply).toEqual([]);
    expect(within.defer).toEqual(['downloads/podvpn-killswitch-default']);
    const after = planReconcile({ ...peer, peerApplied: new Map([['downloads/podvpn-killswitch-default', T0 - 60_000]]) });
    expect(after.apply).toHaveLength(1);
  });

  it('removes only after the policy has been unneeded for the whole grace period', () => {
    const base = input({ live: [live('old')] });
    const first = planReconcile(base);
    expect(first.remove).toEqual([]);
    expect(first.unneededSince.get('old/default')).toBe(T0);
    const almost = planReconcile({ ...base, now: T0 + GRACE - 1, unneededSince: first.unneededSince });
    expect(almost.remove).toEqual([]);
    const due = planReconcile({ ...base, now: T0 + GRACE, unneededSince: first.unneededSince });
    expect(due.remove).toEqual([{ namespace: 'old', name: 'podvpn-killswitch-default', gateway: 'default' }]);
  });

  it('a policy wanted again in between starts its grace period over', () => {
    const base = input({ live: [live('old')] });
    const first = planReconcile(base);
    const wantedAgain = planReconcile({ ...base, now: T0 + 1000, wanted: [{ namespace: 'old', gateway: 'default' }], unneededSince: first.unneededSince });
    expect(wantedAgain.unneededSince.has('old/default')).toBe(false);
    const later = planReconcile({ ...base, now: T0 + GRACE, unneededSince: wantedAgain.unneededSince });
    expect(later.remove).toEqual([]);
    expect(later.unneededSince.get('old/default')).toBe(T0 + GRACE);
  });

  it('never removes a policy younger than the grace period, or one this replica ensured within it', () => {
    const young = input({ live: [live('new', 'default', { created: T0 - GRACE + 1 })], unneededSince: new Map([['new/default', T0 - GRACE]]) });
    expect(planReconcile(young).remove).toEqual([]);
    const ensured = input({ live: [live('old')], unneededSince: new Map([['old/default', T0 - GRACE]]), recentlyEnsured: (ns, gw, ms, now) => ns === 'old' && gw === 'default' && ms === GRACE && now === T0 });
    expect(planReconcile(ensured).remove).toEqual([]);
    // negative control: the same policy, not ensured recently, is removed
    expect(planReconcile({ ...ensured, recentlyEnsured: () => false }).remove).toHaveLength(1);
  });

  it('leaves policies that are not podvpn kill switches alone, and reads the gateway from the label', () => {
    const foreign: LivePolicy = { metadata: { namespace: 'x', name: 'allow-all', creationTimestamp: new Date(0) } };
    const labelled = live('media', 'vpn-eu');
    const plan = planReconcile(input({ live: [foreign, labelled], unneededSince: new Map([['media/vpn-eu', T0 - GRACE]]) }));
    expect(plan.remove).toEqual([{ namespace: 'media', name: 'podvpn-killswitch-vpn-eu', gateway: 'vpn-eu' }]);
  });

  it('does not change the memory it was given (the reconciler swaps in the new one)', () => {
    const memory = new Map<string, number>();
    planReconcile(input({ live: [live('old')], unneededSince: memory }));
    expect(memory.size).toBe(0);
  });
});
