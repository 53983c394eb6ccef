// The thin edge between the kill switch and the API server: apply, delete, and list routed pods.
// Every call is one listed in src/kube/permissions.ts.

import { ApiException, CoreV1Api, type KubeConfig, KubernetesObjectApi, NetworkingV1Api, PatchStrategy, type V1NetworkPolicy } from '@kubernetes/client-node';
import { notRoutedFromSettings } from '../cluster/coverage.js';
import { ANNOTATION_CLIENT_SETTINGS, FIELD_MANAGER, LABEL_ROUTED } from '../constants.js';
import type { KillSwitchPolicy } from './policy.js';

/** A NetworkPolicy as read back from the API: client-node's own type (type-only, erased at run time). */
export type LivePolicy = V1NetworkPolicy;

export interface PolicyClient {
  /**
   * Server-side apply with field manager `podvpn` and force: the fields we apply are ours (our name,
   * our label), so an edit by anyone else is taken back rather than answered with a 409 that would
   * deny every routed pod. Replicas share the field manager, so they never conflict with each other,
   * and applying identical content is a no-op on the server.
   */
  apply(policy: KillSwitchPolicy, opts: { dryRun: boolean }): Promise<LivePolicy>;
  /** Delete; an already missing policy is not an error. */
  delete(namespace: string, name: string): Promise<void>;
  /**
   * Routed pods (label `podvpn.io/routed`), fresh from the API: namespace and gateway of each, and
   * (when the pod has podvpn's settings) its name and the not-routed list it was given at admission.
   */
  listRoutedPods(): Promise<Array<{ namespace: string; gateway: string; name?: string; notRouted?: string[] }>>;
  /** Every NetworkPolicy, to find other egress policies that would void the kill switch. */
  listAllPolicies?(): Promise<LivePolicy[]>;
}

export function kubePolicyClient(kc: KubeConfig): PolicyClient {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const net = kc.makeApiClient(NetworkingV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    async apply(policy, opts) {
      return await objects.patch<V1NetworkPolicy>(
        policy,
        undefined,
        opts.dryRun ? 'All' : undefined,
        FIELD_MANAGER,
        true,
        PatchStrategy.ServerSideApply,
      );
    },
    async delete(namespace, name) {
      try {
        await net.deleteNamespacedNetworkPolicy({ namespace, name });
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return;
        throw err;
      }
    },
    async listAllPolicies() {
      return (await net.listNetworkPolicyForAllNamespaces()).items;
    },
    async listRoutedPods() {
      const pods = await core.listPodForAllNamespaces({ labelSelector: LABEL_ROUTED });
      return pods.items.flatMap((p) => {
        const namespace = p.metadata?.namespace;
        const gateway = p.metadata?.labels?.[LABEL_ROUTED];
        if (namespace === undefined || gateway === undefined || gateway === '') return [];
        const notRouted = notRoutedFromSettings(p.metadata?.annotations?.[ANNOTATION_CLIENT_SETTINGS]);
        return [{ namespace, gateway, name: p.metadata?.name, ...(notRouted === undefined ? {} : { notRouted }) }];
      });
    },
  };
}
