// The kill switch as admission needs it. Admission owns this interface; the kill switch (connected or
// standalone) implements it, so nothing here depends on how the policies are kept.

import type { ClusterRanges } from '../cluster/ranges.js';

export type EnsureResult = { ok: true; warning?: string } | { ok: false; message: string };

export interface KillSwitchGuard {
  /** The ranges in force; undefined when unknown or refused (routed pods are then denied). */
  ranges(): ClusterRanges | undefined;
  /** Why ranges() is undefined, with what to configure (the denial says it); undefined when usable. */
  problem(): string | undefined;
  /** Make sure the policy for (namespace, gateway) is in place before a routed pod is admitted. */
  ensure(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult>;
}
