// The replica's one namespace watch: labels and annotations of every namespace, so a review never
// waits on the API, and the reconciler sees namespaces opt in and out (onChange) from the same watch.
// Restart, backoff and start timeout follow the one watch rule (watch.ts).

import { CoreV1Api, type KubeConfig, type V1Namespace, makeInformer } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { NamespaceFacts } from '../inject/types.js';
import { TokenBucket } from '../util/token-bucket.js';
import { describeError } from './errors.js';
import { keepWatching } from './watch.js';

export interface NamespaceCache {
  /** From the watch; undefined when the cache has not seen the namespace. */
  get(name: string): NamespaceFacts | undefined;
  /**
   * Read the namespace from the API now: only when the cache may lag behind the API server.
   * 'throttled' when the live-read budget is spent (see LIVE_READS): the caller must not guess.
   */
  fetch(name: string): Promise<NamespaceFacts | undefined | 'throttled'>;
  synced(): boolean;
  stop(): Promise<void>;
}

/** The namespace cache plus what the reconciler reads from the same watch. */
export interface NamespaceWatch extends NamespaceCache {
  /** Every namespace the watch has seen, with its facts. */
  all(): IterableIterator<[string, NamespaceFacts]>;
  /** Called after each change: the namespace's new facts, or undefined when it was deleted. */
  onChange(listener: (name: string, facts: NamespaceFacts | undefined) => void): void;
}

/**
 * Live namespace reads a replica makes for reviews the cache cannot answer. The webhook has no caller
 * authentication, so a flood of reviews for namespaces that did not opt in must not turn into a flood
 * of API reads: a burst of 20, then 10 per second, and at most 4 at a time. A real lag (a label added
 * a moment before the pod) needs one read per new namespace.
 */
export const LIVE_READS = { burst: 20, perSecond: 10, concurrent: 4 };

export async function startNamespaceCache(
  kc: KubeConfig,
  logger: Logger,
  opts: { liveReads?: typeof LIVE_READS; now?: () => number; startTimeoutMs?: number } = {},
): Promise<NamespaceWatch> {
  const api = kc.makeApiClient(CoreV1Api);
  const facts = new Map<string, NamespaceFacts>();
  const listeners: Array<(name: string, facts: NamespaceFacts | undefined) => void> = [];
  const limits = opts.liveReads ?? LIVE_READS;
  const bucket = new TokenBucket(limits.burst, limits.perSecond, opts.now);
  let inFlight = 0;
  let throttledSince: number | undefined;
  const informer = makeInformer<V1Namespace>(kc, '/api/v1/namespaces', () => api.listNamespace());
  const factsOf = (ns: V1Namespace): NamespaceFacts => ({
    labels: { ...(ns.metadata?.labels ?? {}) },
    annotations: { ...(ns.metadata?.annotations ?? {}) },
  });
  const put = (ns: V1Namespace): void => {
    const name = ns.metadata?.name;
    if (name === undefined) return;
    const f = factsOf(ns);
    facts.set(name, f);
    for (const l of listeners) l(name, f);
  };
  informer.on('add', put);
  informer.on('update', put);
  informer.on('delete', (ns) => {
    const name = ns.metadata?.name;
    if (name === undefined) return;
    facts.delete(name);
    for (const l of listeners) l(name, undefined);
  });
  const watch = keepWatching(informer, 'namespaces', logger, { startTimeoutMs: opts.startTimeoutMs });
  await watch.start();
  if (watch.synced()) logger.info({ namespaces: facts.size }, 'namespace cache synced');
  return {
    get: (name) => facts.get(name),
    fetch: async (name) => {
      if (inFlight >= limits.concurrent || !bucket.take()) {
        if (throttledSince === undefined) {
          throttledSince = Date.now();
          logger.warn({ namespace: name, limits }, 'live namespace reads over budget; reviews the cache cannot answer are denied until it refills');
        }
        return 'throttled';
      }
      throttledSince = undefined;
      inFlight++;
      try {
        return factsOf(await api.readNamespace({ name }));
      } catch (err) {
        logger.warn({ err: describeError(err), namespace: name }, 'could not read namespace');
        return undefined;
      } finally {
        inFlight--;
      }
    },
    synced: () => watch.synced(),
    stop: () => watch.stop(),
    all: () => facts.entries(),
    onChange: (listener) => {
      listeners.push(listener);
    },
  };
}
