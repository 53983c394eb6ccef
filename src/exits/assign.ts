// Which exit of a group a pod leaves through (pure): rendezvous (highest-random-weight) hashing.
//
// Each (pod key, exit) pair gets a weight from a hash; a pod takes the exit with the highest weight
// among those it may use. Two properties follow, and are what a user expects of N exits:
//   - spread: each exit is the top of a uniform 1/N share of keys;
//   - minimal movement: removing (or losing) an exit changes the top only for the keys whose top it
//     was; every other pod keeps its exit. Adding one takes ~1/(N+1) of the keys, from all exits alike.
// The ranking of a key over all exits is also its failover order.
//
// The pod key (podExitKey) must be stable for the pod's life and differ between replicas:
//   - a pod with a name at admission (a bare pod, a StatefulSet's `web-0`): `<namespace>/<name>`.
//     A StatefulSet pod that is recreated keeps its exit (and its public address: port forwards,
//     trackers).
//   - a pod created with generateName (Deployment, ReplicaSet, Job, DaemonSet): the API server names it
//     only after admission, and its uid too (both are empty in the AdmissionReview: a real
//     kube-apiserver, research/real-apiserver.md). Its replicas share the generateName
//     (`web-7d9c8b6f5-`), so that alone would send a Deployment's every pod to one exit. The review's
//     own uid (unique per request) tells them apart: `<namespace>/<generateName>#<review uid>`. It is
//     used once, at admission; what was chosen is recorded on the pod (label podvpn.io/exit) and never
//     recomputed from the key (the agent ranks a running pod by `<namespace>/<name>`).
//   - offline `podvpn inject` sees templates, not pods: `<namespace>/<Kind>/<name>`, so all replicas of
//     one workload leave through one exit (spread is per workload there; pin, or let the webhook
//     inject, for per-pod spread).

import * as crypto from 'node:crypto';

// crypto.hash (Node 20.12 and later) hashes in one call, about three times faster than a createHash
// object for inputs this short (a rebalance ranks every pod); earlier Node 20 releases lack it.
const sha256Hex: (data: string) => string =
  typeof crypto.hash === 'function' ? (data) => crypto.hash('sha256', data, 'hex') : (data) => crypto.createHash('sha256').update(data).digest('hex');

/** The weight of `exit` for `key`: the first 64 bits of SHA-256(key NUL exit). */
export function exitWeight(key: string, exit: string): bigint {
  return BigInt(`0x${sha256Hex(`${key}\0${exit}`).slice(0, 16)}`);
}

/** The exits ranked for `key`, best first: its assignment and then its failover order. Ties by name. */
export function rankExits(key: string, exits: readonly string[]): string[] {
  const weighted = exits.map((name) => ({ name, w: exitWeight(key, name) }));
  weighted.sort((a, b) => (a.w === b.w ? (a.name < b.name ? -1 : 1) : a.w > b.w ? -1 : 1));
  return weighted.map((e) => e.name);
}

export interface PodKeyInput {
  namespace: string;
  name?: string | null | undefined;
  generateName?: string | null | undefined;
  /** The AdmissionReview's request.uid: tells apart replicas that have no name yet. */
  reviewUid?: string | undefined;
}

/** The key a pod is hashed by at admission (see the header for why). */
export function podExitKey(p: PodKeyInput): string {
  if (typeof p.name === 'string' && p.name !== '') return `${p.namespace}/${p.name}`;
  return `${p.namespace}/${typeof p.generateName === 'string' ? p.generateName : ''}#${p.reviewUid ?? ''}`;
}

/** How far from an even share the exits may end up (0.2: within 20 % of even). */
export const BALANCE_SLACK = 0.2;

/**
 * Most pods an exit takes as a target. Bounding the fullest exit by (1 + s/(k-1)) * even bounds the
 * emptiest too: it holds at least n - (k-1) * cap >= (1 - s) * even. Never below an even share
 * rounded up, or the pods would not fit.
 */
export function capacity(pods: number, exits: number): number {
  if (exits === 0) return 0;
  const even = pods / exits;
  const slack = exits === 1 ? BALANCE_SLACK : BALANCE_SLACK / (exits - 1);
  return Math.max(Math.ceil(even), Math.floor((1 + slack) * even + 1e-9));
}

export type ExitChoice =
  | { ok: true; exit: string; how: 'pinned' | 'rendezvous' | 'rendezvous-all-unhealthy'; pinnedUnhealthy?: boolean }
  | { ok: false; problem: 'unknown-exit'; pin: string };

/**
 * The exit for a new pod: its pin (podvpn.io/exit) if it names an exit of the group, else the best
 * ranked exit among the healthy ones. `healthy` undefined (no health information) or empty (none is
 * healthy): ranked over all exits, so a pod waits on its own exit (fails closed) rather than piling
 * onto one guess. A pin is kept even when its exit is unhealthy: the user asked for that exit.
 */
export function chooseExit(input: {
  key: string;
  exits: readonly string[];
  pin?: string | undefined;
  healthy?: ReadonlySet<string> | undefined;
  /**
   * Pods per exit now, when known. Then the best ranked usable exit with room takes the pod (room:
   * capacity() over the usable exits' pods plus this one): hashing alone leaves 30 pods over 3 exits
   * within 20 % of even only 41 % of the time; with the loads, every time (plan.test.ts).
   */
  loads?: ReadonlyMap<string, number> | undefined;
}): ExitChoice {
  const { key, exits, pin, healthy, loads } = input;
  if (pin !== undefined) {
    if (!exits.includes(pin)) return { ok: false, problem: 'unknown-exit', pin };
    return { ok: true, exit: pin, how: 'pinned', ...(healthy !== undefined && !healthy.has(pin) ? { pinnedUnhealthy: true } : {}) };
  }
  let usable = healthy === undefined ? exits : exits.filter((e) => healthy.has(e));
  const how = usable.length === 0 ? 'rendezvous-all-unhealthy' : 'rendezvous';
  if (usable.length === 0) usable = exits;
  const ranked = rankExits(key, usable);
  if (loads === undefined) return { ok: true, exit: ranked[0]!, how };
  const load = (e: string) => loads.get(e) ?? 0;
  const cap = capacity(usable.reduce((n, e) => n + load(e), 0) + 1, usable.length);
  const roomy = ranked.find((e) => load(e) < cap) ?? ranked.reduce((best, e) => (load(e) < load(best) ? e : best));
  return { ok: true, exit: roomy, how };
}
