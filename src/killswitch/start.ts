// Connected start-up of the kill switch, composed from its parts: one KillSwitchState, the guard on the
// admission path (reads it), the reconciler (feeds it from discovery and the watches, and asks the guard
// three questions through its Ensurer interface). guard.ts and reconciler.ts never import each other.

import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KillSwitchGuard } from '../admission/ports.js';
import { resolveClusterRanges } from '../cluster/discovery.js';
import type { Config } from '../config/schema.js';
import type { NamespaceWatch } from '../kube/namespace-cache.js';
import { kubePolicyClient, type PolicyClient } from './client.js';
import { ClusterKillSwitchGuard } from './guard.js';
import { KillSwitchReconciler, type ReconcilerOptions } from './reconciler.js';
import { KillSwitchState } from './state.js';

export interface KillSwitch {
  guard: KillSwitchGuard;
  reconciler: KillSwitchReconciler;
  stop(): Promise<void>;
}

export type StartOptions = Partial<Omit<ReconcilerOptions, 'kc' | 'state' | 'ensurer' | 'client' | 'config' | 'log' | 'namespaces'>> & {
  client?: PolicyClient;
  /** Per apply in ensure() (default 2 s). */
  timeoutMs?: number;
  /** Per discovery call (default 5 s). */
  discoveryTimeoutMs?: number;
};

/**
 * Discover the ranges (config first), start the reconciler (watches, periodic resync and rediscovery),
 * and return the guard for the webhook's hot path. Never throws for an unreachable API or missing
 * ranges: the guard then denies routed pods with the reason, and discovery is retried until it
 * succeeds. `namespaces` is the replica's one namespace watch, shared with admission.
 */
export async function startKillSwitch(kc: KubeConfig, config: Config, log: Logger, namespaces: NamespaceWatch, opts: StartOptions = {}): Promise<KillSwitch> {
  const client = opts.client ?? kubePolicyClient(kc);
  const state = new KillSwitchState();
  const guard = new ClusterKillSwitchGuard({ state, client, log, timeoutMs: opts.timeoutMs, now: opts.now });
  const discovery = { timeoutMs: opts.discoveryTimeoutMs };
  state.setRanges(await resolveClusterRanges(kc, config, log, discovery));
  const reconciler = new KillSwitchReconciler({
    ...opts,
    kc,
    state,
    ensurer: guard,
    client,
    config,
    log,
    namespaces,
    // Rediscovery logs only problems; the reconciler logs a change of ranges.
    rediscover: opts.rediscover ?? (() => resolveClusterRanges(kc, config, log.child({ phase: 'rediscovery' }, { level: 'warn' }), discovery)),
  });
  await reconciler.start();
  return { guard, reconciler, stop: () => reconciler.stop() };
}
