// Namespace labels and annotations from a watch (informer), so a review never waits on the API.

import { CoreV1Api, type KubeConfig, type V1Namespace, makeInformer } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { NamespaceFacts } from '../inject/types.js';
import { TokenBucket } from '../util/token-bucket.js';

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
  opts: { liveReads?: typeof LIVE_READS; now?: () => number } = {},
): Promise<NamespaceCache> {
  const api = kc.makeApiClient(CoreV1Api);
  const facts = new Map<string, NamespaceFacts>();
  let synced = false;
  let stopped = false;
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
    if (name !== undefined) facts.set(name, factsOf(ns));
  };
  informer.on('add', put);
  informer.on('update', put);
  informer.on('delete', (ns) => {
    if (ns.metadata?.name !== undefined) facts.delete(ns.metadata.name);
  });
  informer.on('connect', () => {
    synced = true;
  });
  informer.on('error', (err: unknown) => {
    // stop() aborts the watch: that is no failure, and nothing is to be restarted.
    if (stopped || (err as { name?: string } | null)?.name === 'AbortError') return;
    logger.warn({ err: (err as Error)?.message ?? String(err) }, 'namespace watch failed; retrying in 5 s');
    setTimeout(() => void informer.start().catch(() => undefined), 5000).unref();
  });
  await informer.start();
  synced = true;
  logger.info({ namespaces: facts.size }, 'namespace cache synced');
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
        logger.warn({ err: (err as Error).message, namespace: name }, 'could not read namespace');
        return undefined;
      } finally {
        inFlight--;
      }
    },
    synced: () => synced,
    stop: () => {
      stopped = true;
      return informer.stop();
    },
  };
}
