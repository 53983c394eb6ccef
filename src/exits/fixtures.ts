// Fixtures for the exit tests: the cluster ranges they admit with, and realistic pod names (what
// Deployments and StatefulSets of a download stack make). Deterministic (a seeded generator), so
// goldens are stable.

import type { ClusterRanges } from '../cluster/ranges.js';
import { rankExits } from './assign.js';

/** The cluster ranges the exit tests admit pods and build policies with (k3s defaults). */
export const RANGES: ClusterRanges = {
  podCIDRs: ['10.42.0.0/16'],
  serviceCIDRs: ['10.43.0.0/16'],
  extraCIDRs: [],
  dnsIPs: ['10.43.0.10'],
  sources: { podCIDRs: 'test', serviceCIDRs: 'test', dnsIPs: 'test' },
};

/** kube's name suffix alphabet (k8s.io/apimachinery/pkg/util/rand: no vowels, no 0/1/3). */
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const APPS = ['qbittorrent', 'sabnzbd', 'prowlarr', 'radarr', 'sonarr', 'lidarr', 'readarr', 'bazarr', 'jackett', 'flaresolverr', 'transmission', 'nzbget'];

/** mulberry32: a small seeded PRNG. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function word(rand: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

/**
 * `count` Deployment pod names, `<app>-<pod-template-hash>-<5 chars>`, as `<namespace>/<name>` keys:
 * apps take turns, three replicas each, one ReplicaSet hash per app.
 */
export function deploymentPodKeys(count: number, seed = 1, namespace = 'downloads'): string[] {
  const rand = seeded(seed);
  const hashes = new Map<string, string>();
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const app = `${APPS[Math.floor(i / 3) % APPS.length]}${i >= APPS.length * 3 ? `-${Math.floor(i / (APPS.length * 3))}` : ''}`;
    if (!hashes.has(app)) hashes.set(app, word(rand, 10));
    out.push(`${namespace}/${app}-${hashes.get(app)}-${word(rand, 5)}`);
  }
  return out;
}

/** How many of `keys` rank each exit first (hashing alone, no loads). */
export function topExitCounts(keys: readonly string[], exits: readonly string[]): Record<string, number> {
  const out = Object.fromEntries(exits.map((e) => [e, 0]));
  for (const k of keys) out[rankExits(k, exits)[0]!]! += 1;
  return out;
}
