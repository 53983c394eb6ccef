// The reconcile plan (pure): desired versus observed kill-switch policies, into actions. The reconciler
// gathers the facts (routed pods, opted-in namespaces, live policies, what the guard knows) and runs
// the plan; time comes in as `now`, so the grace period and the peer backoff are table-tested.

import { isPolicyCurrent, type KillSwitchPolicy, LABEL_POLICY_GATEWAY, POLICY_NAME_PREFIX } from './policy.js';
import type { LivePolicy } from './client.js';

export interface Wanted {
  namespace: string;
  gateway: string;
}

export interface PlanInput {
  /** Every (namespace, gateway) whose policy must exist (routed pods and opted-in namespaces). */
  wanted: readonly Wanted[];
  /** The policy we want for each wanted entry (undefined only without ranges: the pass is skipped). */
  desired(namespace: string, gateway: string): KillSwitchPolicy | undefined;
  live: readonly LivePolicy[];
  now: number;
  removalGraceMs: number;
  peerBackoffMs: number;
  terminatingRetryMs: number;
  /** What the guard knows (the Ensurer questions). */
  terminatingWithin(namespace: string, ms: number, now: number): boolean;
  writtenByPeer(live: LivePolicy | undefined): boolean;
  recentlyEnsured(namespace: string, gateway: string, ms: number, now: number): boolean;
  /** Memory across passes: id (namespace/gateway) → since when its policy has been unneeded. */
  unneededSince: ReadonlyMap<string, number>;
  /** Memory across passes: id (namespace/policy) → when we last overrode a peer's write. */
  peerApplied: ReadonlyMap<string, number>;
}

export interface PlannedApply extends Wanted {
  /** namespace/policy-name */
  id: string;
  /** A peer replica wrote it: rediscover first, then apply only if still stale. */
  overridesPeer: boolean;
}

export interface Plan {
  apply: PlannedApply[];
  /** namespace/policy-name, left alone this pass (namespace being deleted, or peer backoff). */
  defer: string[];
  remove: Array<{ namespace: string; name: string; gateway: string }>;
  /** The unneeded-since memory for the next pass. */
  unneededSince: Map<string, number>;
}

export function planReconcile(input: PlanInput): Plan {
  const { now } = input;
  const plan: Plan = { apply: [], defer: [], remove: [], unneededSince: new Map(input.unneededSince) };
  const liveByKey = new Map(input.live.map((p) => [`${p.metadata?.namespace}/${p.metadata?.name}`, p]));
  const wantedIds = new Set<string>();
  for (const { namespace, gateway } of input.wanted) {
    const key = `${namespace}/${gateway}`;
    if (wantedIds.has(key)) continue;
    wantedIds.add(key);
    const desired = input.desired(namespace, gateway);
    if (desired === undefined) continue;
    const id = `${namespace}/${desired.metadata.name}`;
    const live = liveByKey.get(id);
    if (isPolicyCurrent(live, desired)) continue;
    if (input.terminatingWithin(namespace, input.terminatingRetryMs, now)) {
      plan.defer.push(id); // being deleted: creates are refused until it is gone
      continue;
    }
    const peer = input.writtenByPeer(live);
    if (peer) {
      // Another replica disagrees: never a write loop. Back off.
      const last = input.peerApplied.get(id);
      if (last !== undefined && now - last < input.peerBackoffMs) {
        plan.defer.push(id);
        continue;
      }
    }
    plan.apply.push({ namespace, gateway, id, overridesPeer: peer });
  }

  for (const live of input.live) {
    const namespace = live.metadata?.namespace;
    const name = live.metadata?.name;
    if (namespace === undefined || name === undefined || !name.startsWith(POLICY_NAME_PREFIX)) continue;
    const gateway = live.metadata?.labels?.[LABEL_POLICY_GATEWAY] ?? name.slice(POLICY_NAME_PREFIX.length);
    const id = `${namespace}/${gateway}`;
    if (wantedIds.has(id)) {
      plan.unneededSince.delete(id);
      continue;
    }
    const since = plan.unneededSince.get(id) ?? now;
    plan.unneededSince.set(id, since);
    if (now - since < input.removalGraceMs) continue;
    const created = live.metadata?.creationTimestamp === undefined ? now : new Date(live.metadata.creationTimestamp).getTime();
    if (now - created < input.removalGraceMs) continue;
    if (input.recentlyEnsured(namespace, gateway, input.removalGraceMs, now)) continue;
    plan.remove.push({ namespace, name, gateway });
  }
  return plan;
}
