// Pods per exit, for balanced admission (pure): what the pod watch shows, plus the pods this replica
// admitted that the watch has not shown yet (a Deployment scaled to 30 sends 30 reviews within a
// second, faster than a watch event comes back: without them every review of the burst would see the
// same counts and hashing alone would decide).

import { LABEL_EXIT, LABEL_ROUTED } from '../constants.js';

export interface WatchedPod {
  namespace: string;
  name: string;
  generateName?: string | undefined;
  gateway: string;
  exit: string;
}

/** A routed pod of an exit group as the watch shows it; undefined when it does not count (finished, terminating, no exit). */
export function watchedPod(p: {
  metadata?: { namespace?: string; name?: string; generateName?: string; labels?: Record<string, string>; deletionTimestamp?: unknown };
  status?: { phase?: string };
}): WatchedPod | undefined {
  const m = p.metadata;
  const gateway = m?.labels?.[LABEL_ROUTED];
  const exit = m?.labels?.[LABEL_EXIT];
  if (m === undefined || gateway === undefined || exit === undefined || m.name === undefined) return undefined;
  if (m.deletionTimestamp !== undefined && m.deletionTimestamp !== null) return undefined;
  if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return undefined;
  return { namespace: m.namespace ?? '', name: m.name, generateName: m.generateName, gateway, exit };
}

/** How long an admission counts before the watch shows its pod (or it never comes: a later webhook denied it). */
export const PENDING_MS = 30_000;

export interface Pending {
  namespace: string;
  /** The pod's name, or its generateName when it had none at admission. */
  prefix: string;
  gateway: string;
  exit: string;
  at: number;
}

/** Does the watched pod account for this admission? */
export function accountsFor(pod: WatchedPod, p: Pending): boolean {
  return pod.namespace === p.namespace && pod.gateway === p.gateway && pod.exit === p.exit && (pod.name === p.prefix || pod.generateName === p.prefix);
}

/** Pods per exit of one group: the watched counts plus the pending admissions still young. */
export function loadsOf(gateway: string, watched: ReadonlyMap<string, number> | undefined, pending: readonly Pending[], now: number): Map<string, number> {
  const out = new Map(watched ?? []);
  for (const p of pending) if (p.gateway === gateway && now - p.at <= PENDING_MS) out.set(p.exit, (out.get(p.exit) ?? 0) + 1);
  return out;
}

/** Watched pods counted per group and exit, kept as pods come, change and go (no pass over all pods per review). */
export class WatchedCounts {
  private readonly pods = new Map<string, WatchedPod>();
  private readonly counts = new Map<string, Map<string, number>>();

  /** Set (or with undefined, drop) the pod at `key` (namespace/name); true when it was not counted before. */
  set(key: string, pod: WatchedPod | undefined): boolean {
    const before = this.pods.get(key);
    if (before !== undefined) this.bump(before, -1);
    if (pod === undefined) {
      this.pods.delete(key);
      return false;
    }
    this.pods.set(key, pod);
    this.bump(pod, 1);
    return before === undefined;
  }

  of(gateway: string): ReadonlyMap<string, number> | undefined {
    return this.counts.get(gateway);
  }

  private bump(pod: WatchedPod, by: number): void {
    let g = this.counts.get(pod.gateway);
    if (g === undefined) this.counts.set(pod.gateway, (g = new Map<string, number>()));
    const n = (g.get(pod.exit) ?? 0) + by;
    if (n === 0) g.delete(pod.exit);
    else g.set(pod.exit, n);
  }
}
