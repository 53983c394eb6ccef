// The kill switch's interfaces, apart from their implementations so that guard.ts, standalone-guard.ts
// and the reconciler depend on these and not on each other (no import cycle, types included).

import type { NodeRange } from '../cluster/discovery.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { EgressBypass } from './bypass.js';
import type { LivePolicy } from './client.js';
import type { KillSwitchPolicy } from './killswitch.js';
import type { PolicyCache } from './policy-cache.js';

export type EnsureResult = { ok: true; warning?: string } | { ok: false; message: string };

export interface KillSwitchGuard {
  /** The ranges in force; undefined when unknown or refused (routed pods are then denied). */
  ranges(): ClusterRanges | undefined;
  /** Make sure the policy for (namespace, gateway) is in place before a routed pod is admitted. */
  ensure(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult>;
}

/** What the reconciler uses of the cluster guard (ClusterKillSwitchGuard implements it). */
export interface ReconcilerGuard extends KillSwitchGuard {
  readonly cache: PolicyCache;
  problem(): string | undefined;
  setRanges(outcome: { ranges: ClusterRanges | undefined; problem?: string; nodeRanges?: NodeRange[] }): boolean;
  /** Each node's pod ranges, as last discovered (undefined when the nodes were not listed). */
  nodeRanges(): NodeRange[] | undefined;
  /** Was a create in this namespace refused within `ms` because the namespace is being deleted? */
  terminatingWithin(namespace: string, ms: number, now?: number): boolean;
  desired(namespace: string, gateway: string): KillSwitchPolicy | undefined;
  writtenByPeer(live: LivePolicy | undefined): boolean;
  recentlyEnsured(namespace: string, gateway: string, ms: number, now?: number): boolean;
  setBypasses(bypasses: readonly EgressBypass[]): void;
}
