// The kill switch's shared state, with one owner: the ranges in force (and why not), each node's pod
// ranges, the live kill-switch policies (fed by the watch and by our own applies), the desired policy
// per (namespace, gateway), and the egress bypasses found by the last pass. The guard reads it on the
// admission path; the reconciler feeds it from discovery and the watch. Neither reaches into the other.

import type { NodeRange } from '../cluster/discovery.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { EgressBypass } from './bypass.js';
import type { LivePolicy } from './client.js';
import { buildKillSwitchPolicy, type KillSwitchPolicy } from './policy.js';

export interface RangesUpdate {
  ranges: ClusterRanges | undefined;
  problem?: string | undefined;
  nodeRanges?: NodeRange[] | undefined;
}

export class KillSwitchState {
  private current: ClusterRanges | undefined;
  private why: string | undefined = 'cluster ranges not discovered yet';
  private nodes: NodeRange[] | undefined;
  private readonly built = new Map<string, KillSwitchPolicy>();
  private readonly live = new Map<string, LivePolicy>();
  private bypasses = new Map<string, EgressBypass[]>();

  ranges(): ClusterRanges | undefined {
    return this.current;
  }

  /** Why ranges() is undefined (the deny message), or undefined when the ranges are usable. */
  problem(): string | undefined {
    return this.current === undefined ? this.why : undefined;
  }

  /** Each node's pod ranges, as last discovered (undefined when the nodes were not listed). */
  nodeRanges(): NodeRange[] | undefined {
    return this.nodes;
  }

  /** New ranges (from discovery); returns true when the allowed set changed (policies need rewriting). */
  setRanges(outcome: RangesUpdate): boolean {
    if (outcome.nodeRanges !== undefined) this.nodes = outcome.nodeRanges;
    const before = rangesKey(this.current);
    this.current = outcome.ranges;
    this.built.clear();
    this.why = outcome.ranges === undefined ? (outcome.problem ?? 'cluster ranges unknown') : undefined;
    return before !== rangesKey(this.current);
  }

  /** The policy we want for (namespace, gateway), or undefined without ranges. */
  desired(namespace: string, gateway: string): KillSwitchPolicy | undefined {
    if (this.current === undefined) return undefined;
    const key = `${namespace}/${gateway}`;
    let policy = this.built.get(key);
    if (policy === undefined) {
      policy = buildKillSwitchPolicy({ namespace, gateway, ranges: this.current });
      this.built.set(key, policy);
    }
    return policy;
  }

  /** A live kill-switch policy by namespace and name (undefined when not seen). */
  livePolicy(namespace: string, name: string): LivePolicy | undefined {
    return this.live.get(`${namespace}/${name}`);
  }

  /** Every live kill-switch policy seen. */
  livePolicies(): LivePolicy[] {
    return [...this.live.values()];
  }

  /** A policy as the API server has it now (watch event, or the reply to our apply). */
  observe(policy: LivePolicy): void {
    const ns = policy.metadata?.namespace;
    const name = policy.metadata?.name;
    if (ns !== undefined && name !== undefined) this.live.set(`${ns}/${name}`, policy);
  }

  /** A policy is gone (watch delete, or our own delete). */
  forget(namespace: string, name: string): void {
    this.live.delete(`${namespace}/${name}`);
  }

  /** Other egress policies that void the kill switch (from the reconciler's last pass). */
  setBypasses(bypasses: readonly EgressBypass[]): void {
    this.bypasses = new Map();
    for (const b of bypasses) this.bypasses.set(b.namespace, [...(this.bypasses.get(b.namespace) ?? []), b]);
  }

  /** The first bypass found in this namespace, if any. */
  bypassIn(namespace: string): EgressBypass | undefined {
    return this.bypasses.get(namespace)?.[0];
  }
}

function rangesKey(r: ClusterRanges | undefined): string {
  return r === undefined ? '' : JSON.stringify([r.podCIDRs, r.serviceCIDRs, r.extraCIDRs, r.dnsIPs]);
}
