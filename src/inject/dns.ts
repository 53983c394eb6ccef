// The pod's DNS under podvpn (pure): the namespace's cluster searches first, then the user's own,
// within the limits the API server validates after every mutating webhook has run. Mutating webhooks
// see the pod before validation, so these lists can be any length: every function here is one pass
// over them, and nothing longer than what the API server accepts is copied into the patch.

import { clip } from '../util/clip.js';

/** Kubernetes' validation (pkg/apis/core/validation, KEP-2595, GA in 1.28): more is rejected. */
export const MAX_DNS_NAMESERVERS = 3;
export const MAX_DNS_SEARCH_PATHS = 32;
/** The search list joined by single spaces. */
export const MAX_DNS_SEARCH_LIST_CHARS = 2048;

/** The searches the pod needs for in-cluster names, as the kubelet writes them for ClusterFirst. */
export function clusterSearches(namespace: string, domain: string): string[] {
  return [`${namespace}.svc.${domain}`, `svc.${domain}`, domain];
}

export interface MergedSearches {
  /** Ours, then the user's in order, de-duplicated; never beyond the API server's limits. */
  searches: string[];
  /** The user's list did not fit: the API server would reject the pod after our mutation. */
  overLimit: boolean;
}

/** One pass over the user's list, stopping at the first entry that would break a limit. */
export function mergeSearches(ours: readonly string[], user: unknown): MergedSearches {
  const searches = [...ours];
  const seen = new Set(searches);
  let chars = searches.join(' ').length;
  if (!Array.isArray(user)) return { searches, overLimit: false };
  for (const s of user as unknown[]) {
    if (typeof s !== 'string' || s === '' || seen.has(s)) continue;
    if (searches.length + 1 > MAX_DNS_SEARCH_PATHS || chars + 1 + s.length > MAX_DNS_SEARCH_LIST_CHARS) {
      return { searches, overLimit: true };
    }
    seen.add(s);
    searches.push(s);
    chars += 1 + s.length;
  }
  return { searches, overLimit: false };
}

/** The denial for a search list that cannot take podvpn's searches, or undefined when it fits. */
export function searchesProblem(namespace: string, domain: string, user: unknown): string | undefined {
  if (!mergeSearches(clusterSearches(namespace, domain), user).overLimit) return undefined;
  const count = Array.isArray(user) ? user.length : 0;
  const ours = clusterSearches(namespace, domain).length;
  return (
    `the pod's dnsConfig.searches (${count} entries) and podvpn's ${ours} cluster searches together exceed what the API server accepts ` +
    `(${MAX_DNS_SEARCH_PATHS} search paths, ${MAX_DNS_SEARCH_LIST_CHARS} characters); keep at most ${MAX_DNS_SEARCH_PATHS - ours} searches of your own`
  );
}

/** The user's nameservers other than the gateway's, for the warning: at most the API server's 3, each clipped. */
export function droppedNameservers(user: unknown, gatewayDns: string): string[] {
  if (!Array.isArray(user)) return [];
  const shown: string[] = [];
  let more = 0;
  for (const n of user as unknown[]) {
    if (n === gatewayDns) continue;
    const text = clip(String(n), 64);
    if (shown.length < MAX_DNS_NAMESERVERS) {
      if (!shown.includes(text)) shown.push(text); // at most 3 entries: constant work
    } else {
      more += 1;
    }
  }
  return more > 0 ? [...shown, `and ${more} more`] : shown;
}
