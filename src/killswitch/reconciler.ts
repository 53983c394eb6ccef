// Keeps every kill-switch policy converged, in every replica at once without fighting:
//
// - watches podvpn's NetworkPolicies (label app.kubernetes.io/managed-by=podvpn) into the shared
//   state, and reads opted-in namespaces (podvpn.io/inject=enabled) from the replica's one namespace watch;
// - on any change (a policy deleted or edited, a namespace opted in) and every `resyncMs`, reconciles:
//   the wanted set is every (namespace, gateway) with a routed pod (a fresh list of pods labelled
//   podvpn.io/routed) plus every opted-in namespace with its gateway; each wanted policy that is
//   missing or differs is applied (server-side apply, field manager podvpn, force);
// - rediscovers the ranges every `rediscoverMs` (sooner while they are unknown); a change rewrites
//   every policy;
// - removes a policy only when its namespace has had no routed pod of that gateway in every fresh
//   list for `removalGraceMs` (10 min), is not opted in for it, the policy is older than that, and
//   this replica has not ensured it for a pod within that time (a pod admitted a moment ago may not
//   be listed yet). Should another replica admit a pod at the very moment of removal, the deletion's
//   own watch event starts a pass that lists the new pod and puts the policy back.
//
// Replicas share the field manager and build identical content, so a second apply is a no-op on the
// server (no new resourceVersion, no watch event): they converge instead of fighting. A delete
// racing another replica's delete gets 404, which is fine.

import { type KubeConfig, makeInformer, NetworkingV1Api, type V1NetworkPolicy } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { type CoverageReport, nodeRangeCoverage } from '../cluster/coverage.js';
import type { RangesOutcome } from '../cluster/discovery.js';
import type { Config } from '../config/schema.js';
import { EXCLUDED_NAMESPACES, LABEL_INJECT, LABEL_MANAGED_BY, NAMESPACE_INJECT_VALUE, PRODUCT } from '../constants.js';
import type { EnsureResult } from '../admission/ports.js';
import { gatewayNameFor, namespaceOptedIn } from '../inject/rules.js';
import { describeError } from '../kube/errors.js';
import type { NamespaceWatch } from '../kube/namespace-cache.js';
import type { NamespaceFacts } from '../inject/types.js';
import { type KeptWatch, keepWatching, WATCH_START_TIMEOUT_MS } from '../kube/watch.js';
import { type EgressBypass, findEgressBypasses } from './bypass.js';
import type { LivePolicy, PolicyClient } from './client.js';
import { planReconcile, type Wanted } from './plan.js';
import { isPolicyCurrent } from './policy.js';
import type { KillSwitchState } from './state.js';

/**
 * What the reconciler asks the guard (it owns these facts: its own applies). The reconciler needs
 * nothing else of it; ClusterKillSwitchGuard implements this.
 */
export interface Ensurer {
  ensure(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult>;
  recentlyEnsured(namespace: string, gateway: string, ms: number, now: number): boolean;
  writtenByPeer(live: LivePolicy | undefined): boolean;
  terminatingWithin(namespace: string, ms: number, now: number): boolean;
}

/** Namespace label values that plainly mean "not opted in" (no warning for those). */
const NAMESPACE_OFF_VALUES = ['disabled', 'false'];

export interface ReconcilerOptions {
  kc: KubeConfig;
  state: KillSwitchState;
  ensurer: Ensurer;
  client: PolicyClient;
  /** The replica's one namespace watch (shared with admission): opt-ins come from it. */
  namespaces: NamespaceWatch;
  config: Config;
  log: Logger;
  /** Full reconcile at least this often (default 30 s). */
  resyncMs?: number;
  /** Events within this window are reconciled together (default 100 ms). */
  debounceMs?: number;
  /** A policy is removed only after it has been unneeded (and existed) this long (default 10 min). */
  removalGraceMs?: number;
  /**
   * When another replica wrote a policy with different content (its ranges differ from ours for a
   * moment), re-apply ours at most this often per policy, rediscovering first (default 60 s).
   */
  peerBackoffMs?: number;
  /** Re-run discovery this often (default 5 min; 10 s while the ranges are unknown). */
  rediscoverMs?: number;
  rediscover?: () => Promise<RangesOutcome>;
  /** start() waits this long for the first lists (default 10 s); the watches go on starting after. */
  startTimeoutMs?: number;
  /** A namespace being deleted (creates refused) is tried again only this often (default 5 min). */
  terminatingRetryMs?: number;
  /** After each pass: do the routed pods' not-routed lists cover every node's pod range? (metrics) */
  onCoverage?: (report: CoverageReport) => void;
  /** The clock (tests inject one). */
  now?: () => number;
}

export interface ReconcileReport {
  applied: string[];
  removed: string[];
  failed: string[];
  /** Stale policies last written by another replica, left for now (see peerBackoffMs). */
  deferred: string[];
  skipped?: string;
}

export class KillSwitchReconciler {
  private readonly o: Required<Omit<ReconcilerOptions, 'rediscover'>> & Pick<ReconcilerOptions, 'rediscover'>;
    private watch: KeptWatch | undefined;
  private timers: NodeJS.Timeout[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private running: Promise<ReconcileReport> | undefined;
  private next: Promise<ReconcileReport> | undefined;
  private stopped = false;
  private lastDiscovery = 0;
  private readonly peerApplied = new Map<string, number>();
  private unneededSince = new Map<string, number>();
  private reportedBypasses = new Set<string>();
  private readonly warnedLabels = new Map<string, string>();
  private reportedCoverage = new Set<string>();

  constructor(opts: ReconcilerOptions) {
    this.o = { resyncMs: 30_000, debounceMs: 100, removalGraceMs: 600_000, rediscoverMs: 300_000, peerBackoffMs: 60_000, startTimeoutMs: WATCH_START_TIMEOUT_MS, terminatingRetryMs: 300_000, onCoverage: () => undefined, now: Date.now, ...opts };
  }

  async start(): Promise<void> {
    const { kc, state, log, namespaces } = this.o;
    const net = kc.makeApiClient(NetworkingV1Api);
    const managed = `${LABEL_MANAGED_BY}=${PRODUCT}`;
    const policies = makeInformer<V1NetworkPolicy>(
      kc,
      '/apis/networking.k8s.io/v1/networkpolicies',
      () => net.listNetworkPolicyForAllNamespaces({ labelSelector: managed }),
      managed,
    );
    const put = (p: V1NetworkPolicy) => {
      state.observe(p);
      this.trigger();
    };
    policies.on('add', put);
    policies.on('update', put);
    policies.on('delete', (p) => {
      if (p.metadata?.namespace !== undefined && p.metadata.name !== undefined) state.forget(p.metadata.namespace, p.metadata.name);
      log.info({ namespace: p.metadata?.namespace, policy: p.metadata?.name }, 'kill-switch policy deleted; restoring it if still needed');
      this.trigger();
    });

    // Opt-ins come from the replica's one namespace watch. Every namespace carrying the label is
    // checked, whatever its value: only "enabled" opts in, and a value that looks meant to (say "true",
    // the pod label's value) would otherwise leave its pods unrouted in silence, since the webhook's
    // selector never sends them.
    for (const [name, facts] of namespaces.all()) this.warnIfMeantToOptIn(name, facts.labels[LABEL_INJECT]);
    // The watch sees every namespace; a pass (which lists the routed pods) follows only a change that
    // matters here: the namespace opting in or out, or its gateway annotation changing.
    const optIn = new Map<string, string>();
    const optInOf = (facts: NamespaceFacts | undefined): string | undefined =>
      facts !== undefined && namespaceOptedIn(facts.labels) ? gatewayNameFor({}, facts.annotations, this.o.config) : undefined;
    for (const [name, facts] of namespaces.all()) {
      const o = optInOf(facts);
      if (o !== undefined) optIn.set(name, o);
    }
    namespaces.onChange((name, facts) => {
      if (facts !== undefined) this.warnIfMeantToOptIn(name, facts.labels[LABEL_INJECT]);
      const o = optInOf(facts);
      if (o === optIn.get(name)) return;
      if (o === undefined) optIn.delete(name);
      else optIn.set(name, o);
      this.trigger();
    });

    // A hung API server must not hang the webhook's start: the hot path works without the cache.
    this.watch = keepWatching(policies, 'kill-switch networkpolicies', log, { startTimeoutMs: this.o.startTimeoutMs });
    await this.watch.start();

    const resync = setInterval(() => this.trigger(), this.o.resyncMs);
    resync.unref();
    this.timers.push(resync);
    if (this.o.rediscover !== undefined) {
      const tick = setInterval(() => void this.maybeRediscover(), Math.min(this.o.rediscoverMs, 10_000));
      tick.unref();
      this.timers.push(tick);
    }
    this.lastDiscovery = this.o.now();
    this.trigger();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.debounce !== undefined) clearTimeout(this.debounce);
    await this.watch?.stop();
    await this.running?.catch(() => undefined);
  }

  /** Ask for a reconcile soon (events within `debounceMs` are taken together). */
  trigger(): void {
    if (this.stopped || this.debounce !== undefined) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.reconcileNow();
    }, this.o.debounceMs);
  }

  /** Re-run discovery now; a change of ranges rewrites every policy. Returns whether they changed. */
  async rediscover(): Promise<boolean> {
    if (this.o.rediscover === undefined) return false;
    this.lastDiscovery = this.o.now();
    const outcome = await this.o.rediscover();
    if (outcome.ranges === undefined && this.o.state.ranges() !== undefined) {
      // A failed rediscovery keeps the last good ranges: a transient API error must not deny pods.
      this.o.log.warn({ problem: outcome.problem }, 'cluster range rediscovery failed; keeping the ranges in force');
      return false;
    }
    const changed = this.o.state.setRanges(outcome);
    if (changed) {
      this.o.log.info({ ranges: outcome.ranges }, 'cluster ranges changed; rewriting every kill-switch policy');
      this.trigger();
    }
    return changed;
  }

  private async maybeRediscover(): Promise<void> {
    const due = this.o.state.ranges() === undefined ? Math.min(this.o.rediscoverMs, 10_000) : this.o.rediscoverMs;
    if (this.o.now() - this.lastDiscovery < due) return;
    await this.rediscover().catch((err: unknown) => this.o.log.warn({ err: describeError(err) }, 'cluster range rediscovery failed'));
  }

  /**
   * One full pass that starts after this call: while a pass runs, callers wait for it and then share
   * the single next pass (so a change made just before the call is always seen).
   */
  async reconcileNow(): Promise<ReconcileReport> {
    if (this.running !== undefined) {
      this.next ??= this.running
        .catch(() => undefined)
        .then(() => {
          this.next = undefined;
          return this.reconcileNow();
        });
      return this.next;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Every (namespace, gateway) whose policy must exist: routed pods, then opted-in namespaces. */
  private wanted(routed: readonly Wanted[]): Wanted[] {
    const { config, namespaces } = this.o;
    const wanted: Wanted[] = routed.map(({ namespace, gateway }) => ({ namespace, gateway }));
    for (const [namespace, facts] of namespaces.all()) {
      if (!namespaceOptedIn(facts.labels) || EXCLUDED_NAMESPACES.includes(namespace)) continue;
      const gateway = gatewayNameFor({}, facts.annotations, config);
      if (!Object.hasOwn(config.gateways, gateway)) continue; // the webhook denies its pods anyway
      wanted.push({ namespace, gateway });
    }
    return wanted;
  }

  private async pass(): Promise<ReconcileReport> {
    const { state, ensurer, client, log } = this.o;
    const report: ReconcileReport = { applied: [], removed: [], failed: [], deferred: [] };
    if (state.ranges() === undefined) {
      // Without ranges nothing correct can be written; existing policies stay (they still protect).
      report.skipped = state.problem();
      return report;
    }
    let routed: Array<{ namespace: string; gateway: string }>;
    try {
      routed = await client.listRoutedPods();
    } catch (err) {
      report.skipped = `cannot list routed pods: ${describeError(err)}`;
      log.warn({ err: describeError(err) }, 'kill-switch reconcile skipped: cannot list routed pods');
      return report;
    }
    this.checkCoverage(routed);
    const wanted = this.wanted(routed);
    await this.checkBypasses(new Set(wanted.map((w) => w.namespace)));

    const plan = planReconcile({
      wanted,
      desired: (ns, gw) => state.desired(ns, gw),
      live: state.livePolicies(),
      now: this.o.now(),
      removalGraceMs: this.o.removalGraceMs,
      peerBackoffMs: this.o.peerBackoffMs,
      terminatingRetryMs: this.o.terminatingRetryMs,
      terminatingWithin: (ns, ms, now) => ensurer.terminatingWithin(ns, ms, now),
      writtenByPeer: (live) => ensurer.writtenByPeer(live),
      recentlyEnsured: (ns, gw, ms, now) => ensurer.recentlyEnsured(ns, gw, ms, now),
      unneededSince: this.unneededSince,
      peerApplied: this.peerApplied,
    });
    this.unneededSince = plan.unneededSince;
    report.deferred.push(...plan.defer);

    let rediscovered = false;
    for (const { namespace, gateway, id, overridesPeer } of plan.apply) {
      if (overridesPeer) {
        // Another replica disagrees: check our own ranges first (once a pass), then override it.
        if (!rediscovered && this.o.rediscover !== undefined) {
          rediscovered = true;
          await this.rediscover().catch(() => false);
          const desired = state.desired(namespace, gateway);
          if (desired !== undefined && isPolicyCurrent(state.livePolicy(namespace, desired.metadata.name), desired)) continue;
        }
        this.peerApplied.set(id, this.o.now());
      }
      const result = await ensurer.ensure(namespace, gateway, { dryRun: false });
      if (result.ok) report.applied.push(id);
      else report.failed.push(`${id}: ${result.message}`);
    }

    for (const { namespace, name, gateway } of plan.remove) {
      try {
        await client.delete(namespace, name);
        state.forget(namespace, name);
        this.unneededSince.delete(`${namespace}/${gateway}`);
        report.removed.push(`${namespace}/${name}`);
        log.info({ namespace, policy: name }, `kill-switch policy ${namespace}/${name} removed: no routed pod of gateway "${gateway}" left`);
      } catch (err) {
        report.failed.push(`${namespace}/${name}: ${describeError(err)}`);
      }
    }
    if (report.applied.length > 0 || report.failed.length > 0) {
      log.info({ applied: report.applied, removed: report.removed, failed: report.failed }, 'kill-switch reconcile');
    }
    return report;
  }

  private warnIfMeantToOptIn(name: string, value: string | undefined): void {
    if (value === undefined || value === NAMESPACE_INJECT_VALUE || NAMESPACE_OFF_VALUES.includes(value) || this.warnedLabels.get(name) === value) return;
    this.warnedLabels.set(name, value);
    this.o.log.warn(
      { namespace: name, label: `${LABEL_INJECT}=${value}` },
      `namespace ${name} has ${LABEL_INJECT}=${value}, which opts nothing in: its pods are NOT routed through the VPN; use ${LABEL_INJECT}=${NAMESPACE_INJECT_VALUE}`,
    );
  }

  /** Say (once per node range and kind) when routed pods were not given a node's pod range. */
  private checkCoverage(routed: Array<{ namespace: string; name?: string; notRouted?: string[] }>): void {
    const { state, log } = this.o;
    const nodes = state.nodeRanges();
    const ranges = state.ranges();
    if (nodes === undefined || ranges === undefined) return;
    const report = nodeRangeCoverage(nodes, ranges.podCIDRs, routed);
    const now = new Set<string>();
    for (const r of report.notInForce) {
      const key = `force/${r.node}/${r.cidr}`;
      now.add(key);
      if (this.reportedCoverage.has(key)) continue;
      log.warn(
        { node: r.node, podCIDR: r.cidr, podCIDRs: ranges.podCIDRs, source: ranges.sources.podCIDRs },
        `node ${r.node}'s pod range ${r.cidr} is not in the cluster pod ranges in force (${ranges.podCIDRs.join(' ')}, from ${ranges.sources.podCIDRs}): routed pods will send traffic for its pods into the tunnel; set cluster.podCIDRs to the whole cluster range`,
      );
    }
    for (const r of report.missingFromPods) {
      const key = `pods/${r.node}/${r.cidr}`;
      now.add(key);
      if (this.reportedCoverage.has(key)) continue;
      log.warn(
        { node: r.node, podCIDR: r.cidr, pods: r.pods, example: r.example },
        `node ${r.node}'s pod range ${r.cidr} is missing from the not-routed list of ${r.pods} routed pod(s) (e.g. ${r.example}), given at their admission: they send traffic for pods on ${r.node} into the tunnel (cluster traffic breaks, nothing leaks); restart them to give them the current ranges`,
      );
    }
    this.reportedCoverage = now;
    this.o.onCoverage(report);
  }

  /** Find other egress policies that void the kill switch; say so once each, and record them in the state (the guard warns with them). */
  private async checkBypasses(namespaces: ReadonlySet<string>): Promise<void> {
    const { state, client, log } = this.o;
    if (client.listAllPolicies === undefined) return;
    let bypasses: EgressBypass[];
    try {
      bypasses = findEgressBypasses(await client.listAllPolicies(), namespaces);
    } catch (err) {
      log.warn({ err: describeError(err) }, 'could not check for NetworkPolicies that void the kill switch');
      return;
    }
    state.setBypasses(bypasses);
    const now = new Set(bypasses.map((b) => `${b.namespace}/${b.name}`));
    for (const b of bypasses) {
      if (this.reportedBypasses.has(`${b.namespace}/${b.name}`)) continue;
      log.warn(
        { namespace: b.namespace, policy: b.name, allows: b.allows },
        `NetworkPolicy ${b.namespace}/${b.name} allows ${b.allows}; NetworkPolicies only add allowances, so if it selects routed pods the kill switch cannot stop their traffic leaving outside the VPN`,
      );
    }
    this.reportedBypasses = now;
  }
}
