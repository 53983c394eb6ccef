// Keep the MutatingWebhookConfiguration's caBundle equal to the CAs the serving certificate chains to.
// The patch is pure (caBundlePatch); ensureCaBundle reads, patches if needed, and says what it did.

import type { AdmissionregistrationV1Api, V1MutatingWebhook } from '@kubernetes/client-node';

export type PatchOperation = { op: 'test'; path: string; value: string } | { op: 'add'; path: string; value: string };

/**
 * JSON-patch operations that set `bundlePem` (base64-encoded) into every entry lacking it. Each `add`
 * is preceded by a `test` on the entry's name, so a list that changed since it was read fails whole.
 */
export function caBundlePatch(webhooks: readonly Pick<V1MutatingWebhook, 'name' | 'clientConfig'>[], bundlePem: string): PatchOperation[] {
  const want = Buffer.from(bundlePem, 'utf8').toString('base64');
  return webhooks.flatMap((w, i): PatchOperation[] =>
    w.clientConfig.caBundle === want
      ? []
      : [
          { op: 'test', path: `/webhooks/${i}/name`, value: w.name },
          { op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: want },
        ],
  );
}

export type CaBundleResult = { result: 'current' } | { result: 'missing' } | { result: 'written'; entries: number };

export async function ensureCaBundle(api: AdmissionregistrationV1Api, webhookName: string, bundlePem: string): Promise<CaBundleResult> {
  // client-node (and ../kube/errors.js, which loads it) are loaded here, not at the top: the pure
  // patch above is unit-tested without client-node's start-up cost (about half a second of the unit
  // run); whoever calls this already holds a client, so the modules are loaded.
  const [{ PatchStrategy, setHeaderOptions }, { isStatus }] = await Promise.all([import('@kubernetes/client-node'), import('../kube/errors.js')]);
  let config;
  try {
    config = await api.readMutatingWebhookConfiguration({ name: webhookName });
  } catch (err) {
    if (isStatus(err, 404)) return { result: 'missing' };
    throw err;
  }
  const ops = caBundlePatch(config.webhooks ?? [], bundlePem);
  if (ops.length === 0) return { result: 'current' };
  await api.patchMutatingWebhookConfiguration({ name: webhookName, body: ops }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
  return { result: 'written', entries: ops.length / 2 };
}
