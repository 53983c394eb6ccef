// Namespace labels and annotations from a watch (informer), so a review never waits on the API.

import { CoreV1Api, type KubeConfig, type V1Namespace, makeInformer } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { NamespaceFacts } from '../inject/types.js';

export interface NamespaceCache {
  /** From the watch; undefined when the cache has not seen the namespace. */
  get(name: string): NamespaceFacts | undefined;
  /** Read the namespace from the API now: only when the cache may lag behind the API server. */
  fetch(name: string): Promise<NamespaceFacts | undefined>;
  synced(): boolean;
  stop(): Promise<void>;
}

export async function startNamespaceCache(kc: KubeConfig, logger: Logger): Promise<NamespaceCache> {
  const api = kc.makeApiClient(CoreV1Api);
  const facts = new Map<string, NamespaceFacts>();
  let synced = false;
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
    logger.warn({ err }, 'namespace watch failed; retrying in 5 s');
    setTimeout(() => void informer.start().catch(() => undefined), 5000).unref();
  });
  await informer.start();
  synced = true;
  logger.info({ namespaces: facts.size }, 'namespace cache synced');
  return {
    get: (name) => facts.get(name),
    fetch: async (name) => {
      try {
        return factsOf(await api.readNamespace({ name }));
      } catch (err) {
        logger.warn({ err: (err as Error).message, namespace: name }, 'could not read namespace');
        return undefined;
      }
    },
    synced: () => synced,
    stop: () => informer.stop(),
  };
}
