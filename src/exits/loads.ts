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

/** Pods per exit of one group: the watched ones plus the pending admissions still young. */
export function loadsOf(gateway: string, watched: Iterable<WatchedPod>, pending: readonly Pending[], now: number): Map<string, number> {
  const out = new Map<string, number>();
  const add = (exit: string) => out.set(exit, (out.get(exit) ?? 0) + 1);
  for (const w of watched) if (w.gateway === gateway) add(w.exit);
  for (const p of pending) if (p.gateway === gateway && now - p.at <= PENDING_MS) add(p.exit);
  return out;
}
