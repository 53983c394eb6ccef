// The edge of loads.ts: one pod watch, label podvpn.io/exit (routed pods of exit groups only), and the
// admissions this replica made that the watch has not shown yet. Started only when the config has an
// exit group.

import { CoreV1Api, type KubeConfig, makeInformer, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LABEL_EXIT } from '../constants.js';
import { keepWatching } from '../kube/watch.js';
import { accountsFor, loadsOf, type Pending, PENDING_MS, WatchedCounts, watchedPod } from './loads.js';

export interface ExitLoads {
  /** undefined until the watch has listed: partial counts would skew rather than balance. */
  loads(gateway: string): Map<string, number> | undefined;
  /** An admission that gave a pod an exit (not a dry run). */
  admitted(p: Omit<Pending, 'at'>): void;
  synced(): boolean;
  stop(): Promise<void>;
}

export async function startExitLoads(kc: KubeConfig, log: Logger, opts: { now?: () => number } = {}): Promise<ExitLoads> {
  const now = opts.now ?? Date.now;
  const api = kc.makeApiClient(CoreV1Api);
  const pods = new WatchedCounts();
  let pending: Pending[] = [];
  const informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => api.listPodForAllNamespaces({ labelSelector: LABEL_EXIT }), LABEL_EXIT);
  const key = (p: V1Pod) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
  const put = (p: V1Pod): void => {
    const w = watchedPod(p);
    if (pods.set(key(p), w) && w !== undefined) {
      // A pod seen for the first time settles the admission that made it.
      const i = pending.findIndex((x) => accountsFor(w, x));
      if (i >= 0) pending.splice(i, 1);
    }
  };
  informer.on('add', put);
  informer.on('update', put);
  informer.on('delete', (p) => void pods.set(key(p), undefined));
  const watch = keepWatching(informer, 'exit pods', log);
  await watch.start();
  return {
    loads: (gateway) => {
      if (!watch.synced()) return undefined;
      const t = now();
      pending = pending.filter((p) => t - p.at <= PENDING_MS);
      return loadsOf(gateway, pods.of(gateway), pending, t);
    },
    admitted: (p) => {
      pending.push({ ...p, at: now() });
      // Bounded: a flood of admissions never grows this past what 30 s of reviews can hold.
      if (pending.length > 10_000) pending = pending.slice(-10_000);
    },
    synced: () => watch.synced(),
    stop: () => watch.stop(),
  };
}
