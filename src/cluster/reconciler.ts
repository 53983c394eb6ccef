// Keeps every kill-switch policy converged, in every replica at once without fighting:
//
// - watches podvpn's NetworkPolicies (label app.kubernetes.io/managed-by=podvpn) into the guard's
//   cache, and opted-in namespaces (podvpn.io/inject=enabled);
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

import { CoreV1Api, type KubeConfig, makeInformer, NetworkingV1Api, type V1Namespace, type V1NetworkPolicy } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { ANNOTATION_GATEWAY, EXCLUDED_NAMESPACES, LABEL_INJECT, LABEL_MANAGED_BY, NAMESPACE_INJECT_VALUE, PRODUCT } from '../constants.js';
import type { PolicyClient } from '../policy/client.js';
import type { ReconcilerGuard } from '../policy/guard-types.js';
import { isPolicyCurrent, LABEL_POLICY_GATEWAY, POLICY_NAME_PREFIX } from '../policy/killswitch.js';
import { type EgressBypass, findEgressBypasses } from '../policy/bypass.js';
import { type CoverageReport, nodeRangeCoverage } from './coverage.js';
import { describeError, type RangesOutcome } from './discovery.js';

/** Namespace label values that plainly mean "not opted in" (no warning for those). */
const NAMESPACE_OFF_VALUES = ['disabled', 'false'];

export interface ReconcilerOptions {
  kc: KubeConfig;
  guard: ReconcilerGuard;
  client: PolicyClient;
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
}

export interface ReconcileReport {
  applied: string[];
  removed: string[];
  failed: string[];
  /** Stale policies last written by another replica, left for now (see peerBackoffMs). */
  deferred: string[];
  skipped?: string;
}

interface Informer {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class KillSwitchReconciler {
  private readonly o: Required<Omit<ReconcilerOptions, 'rediscover'>> & Pick<ReconcilerOptions, 'rediscover'>;
  private readonly optedIn = new Map<string, string | undefined>();
  private informers: Informer[] = [];
  private timers: NodeJS.Timeout[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private running: Promise<ReconcileReport> | undefined;
  private next: Promise<ReconcileReport> | undefined;
  private stopped = false;
  private lastDiscovery = 0;
  private readonly peerApplied = new Map<string, number>();
  private readonly unneededSince = new Map<string, number>();
  private reportedBypasses = new Set<string>();
  private readonly warnedLabels = new Map<string, string>();
  private reportedCoverage = new Set<string>();

  constructor(opts: ReconcilerOptions) {
    this.o = { resyncMs: 30_000, debounceMs: 100, removalGraceMs: 600_000, rediscoverMs: 300_000, peerBackoffMs: 60_000, startTimeoutMs: 10_000, terminatingRetryMs: 300_000, onCoverage: () => undefined, ...opts };
  }

  async start(): Promise<void> {
    const { kc, guard, log } = this.o;
    const net = kc.makeApiClient(NetworkingV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const managed = `${LABEL_MANAGED_BY}=${PRODUCT}`;
    const policies = makeInformer<V1NetworkPolicy>(
      kc,
      '/apis/networking.k8s.io/v1/networkpolicies',
      () => net.listNetworkPolicyForAllNamespaces({ labelSelector: managed }),
      managed,
    );
    const put = (p: V1NetworkPolicy) => {
      guard.cache.set(p);
      this.trigger();
    };
    policies.on('add', put);
    policies.on('update', put);
    policies.on('delete', (p) => {
      if (p.metadata?.namespace !== undefined && p.metadata.name !== undefined) guard.cache.delete(p.metadata.namespace, p.metadata.name);
      log.info({ namespace: p.metadata?.namespace, policy: p.metadata?.name }, 'kill-switch policy deleted; restoring it if still needed');
      this.trigger();
    });

    // Every namespace carrying the label, whatever its value: only "enabled" opts in, and a value that
    // looks meant to (say "true", the pod label's value) would otherwise leave its pods unrouted in
    // silence, since the webhook's selector never sends them.
    const namespaces = makeInformer<V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace({ labelSelector: LABEL_INJECT }), LABEL_INJECT);
    const putNs = (ns: V1Namespace) => {
      const name = ns.metadata?.name;
      if (name === undefined) return;
      const value = ns.metadata?.labels?.[LABEL_INJECT];
      if (value === NAMESPACE_INJECT_VALUE) {
        this.optedIn.set(name, ns.metadata?.annotations?.[ANNOTATION_GATEWAY]);
      } else {
        this.optedIn.delete(name);
        if (value !== undefined && !NAMESPACE_OFF_VALUES.includes(value) && this.warnedLabels.get(name) !== value) {
          this.warnedLabels.set(name, value);
          log.warn(
            { namespace: name, label: `${LABEL_INJECT}=${value}` },
            `namespace ${name} has ${LABEL_INJECT}=${value}, which opts nothing in: its pods are NOT routed through the VPN; use ${LABEL_INJECT}=${NAMESPACE_INJECT_VALUE}`,
          );
        }
      }
      this.trigger();
    };
    namespaces.on('add', putNs);
    namespaces.on('update', putNs);
    namespaces.on('delete', (ns) => {
      if (ns.metadata?.name !== undefined) this.optedIn.delete(ns.metadata.name);
      this.trigger();
    });

    for (const [name, informer] of [
      ['networkpolicies', policies],
      ['namespaces', namespaces],
    ] as const) {
      let backoff = 1000;
      informer.on('connect', () => {
        backoff = 1000;
      });
      informer.on('error', (err: unknown) => {
        if (this.stopped) return;
        log.warn({ watch: name, err: describeError(err), retryMs: backoff }, `kill-switch ${name} watch failed; retrying`);
        const t = setTimeout(() => {
          if (!this.stopped) void informer.start().catch(() => undefined);
        }, backoff);
        t.unref();
        backoff = Math.min(backoff * 2, 30_000);
      });
      this.informers.push(informer);
    }
    // A hung API server must not hang the webhook's start: the hot path works without the cache.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.informers.map((i) => i.start().catch(() => undefined))),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.warn({ waitedMs: this.o.startTimeoutMs }, 'kill-switch watches not synced yet; starting anyway');
          resolve();
        }, this.o.startTimeoutMs);
      }),
    ]);
    clearTimeout(timer);

    const resync = setInterval(() => this.trigger(), this.o.resyncMs);
    resync.unref();
    this.timers.push(resync);
    if (this.o.rediscover !== undefined) {
      const tick = setInterval(() => void this.maybeRediscover(), Math.min(this.o.rediscoverMs, 10_000));
      tick.unref();
      this.timers.push(tick);
    }
    this.lastDiscovery = Date.now();
    this.trigger();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.debounce !== undefined) clearTimeout(this.debounce);
    await Promise.all(this.informers.map((i) => i.stop()));
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
    this.lastDiscovery = Date.now();
    const outcome = await this.o.rediscover();
    if (outcome.ranges === undefined && this.o.guard.ranges() !== undefined) {
      // A failed rediscovery keeps the last good ranges: a transient API error must not deny pods.
      this.o.log.warn({ problem: outcome.problem }, 'cluster range rediscovery failed; keeping the ranges in force');
      return false;
    }
    const changed = this.o.guard.setRanges(outcome);
    if (changed) {
      this.o.log.info({ ranges: outcome.ranges }, 'cluster ranges changed; rewriting every kill-switch policy');
      this.trigger();
    }
    return changed;
  }

  private async maybeRediscover(): Promise<void> {
    const due = this.o.guard.ranges() === undefined ? Math.min(this.o.rediscoverMs, 10_000) : this.o.rediscoverMs;
    if (Date.now() - this.lastDiscovery < due) return;
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

  private async pass(): Promise<ReconcileReport> {
    const { guard, client, config, log } = this.o;
    const report: ReconcileReport = { applied: [], removed: [], failed: [], deferred: [] };
    if (guard.ranges() === undefined) {
      // Without ranges nothing correct can be written; existing policies stay (they still protect).
      report.skipped = guard.problem();
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
    const wanted = new Map<string, { namespace: string; gateway: string }>();
    const withPods = new Set<string>();
    for (const r of routed) {
      wanted.set(`${r.namespace}/${r.gateway}`, r);
      withPods.add(`${r.namespace}/${r.gateway}`);
    }
    for (const [namespace, annotated] of this.optedIn) {
      if (EXCLUDED_NAMESPACES.includes(namespace)) continue;
      const gateway = annotated ?? config.defaultGateway;
      if (!Object.hasOwn(config.gateways, gateway)) continue; // the webhook denies its pods anyway
      wanted.set(`${namespace}/${gateway}`, { namespace, gateway });
    }

    await this.checkBypasses(new Set([...wanted.values()].map((w) => w.namespace)));

    let rediscovered = false;
    for (const { namespace, gateway } of wanted.values()) {
      const desired = guard.desired(namespace, gateway)!;
      const live = guard.cache.get(namespace, desired.metadata.name);
      if (isPolicyCurrent(live, desired)) continue;
      const id = `${namespace}/${desired.metadata.name}`;
      if (guard.terminatingWithin(namespace, this.o.terminatingRetryMs)) {
        report.deferred.push(id); // being deleted: creates are refused until it is gone
        continue;
      }
      if (guard.writtenByPeer(live)) {
        // Another replica disagrees: never a write loop. Back off, and check our own ranges first.
        const last = this.peerApplied.get(id);
        if (last !== undefined && Date.now() - last < this.o.peerBackoffMs) {
          report.deferred.push(id);
          continue;
        }
        if (!rediscovered && this.o.rediscover !== undefined) {
          rediscovered = true;
          await this.rediscover().catch(() => false);
          if (isPolicyCurrent(live, guard.desired(namespace, gateway)!)) continue;
        }
        this.peerApplied.set(id, Date.now());
      }
      const result = await guard.ensure(namespace, gateway, { dryRun: false });
      if (result.ok) report.applied.push(id);
      else report.failed.push(`${id}: ${result.message}`);
    }

    const now = Date.now();
    for (const live of guard.cache.list()) {
      const namespace = live.metadata?.namespace;
      const name = live.metadata?.name;
      if (namespace === undefined || name === undefined || !name.startsWith(POLICY_NAME_PREFIX)) continue;
      const gateway = live.metadata?.labels?.[LABEL_POLICY_GATEWAY] ?? name.slice(POLICY_NAME_PREFIX.length);
      const id = `${namespace}/${gateway}`;
      if (wanted.has(id) || withPods.has(id)) {
        this.unneededSince.delete(id);
        continue;
      }
      const since = this.unneededSince.get(id) ?? now;
      this.unneededSince.set(id, since);
      if (now - since < this.o.removalGraceMs) continue;
      const created = live.metadata?.creationTimestamp === undefined ? now : new Date(live.metadata.creationTimestamp).getTime();
      if (now - created < this.o.removalGraceMs) continue;
      if (guard.recentlyEnsured(namespace, gateway, this.o.removalGraceMs, now)) continue;
      try {
        await client.delete(namespace, name);
        guard.cache.delete(namespace, name);
        this.unneededSince.delete(id);
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

  /** Say (once per node range and kind) when routed pods were not given a node's pod range. */
  private checkCoverage(routed: Array<{ namespace: string; name?: string; notRouted?: string[] }>): void {
    const { guard, log } = this.o;
    const nodes = guard.nodeRanges();
    const ranges = guard.ranges();
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

  /** Find other egress policies that void the kill switch; say so once each, and tell the guard. */
  private async checkBypasses(namespaces: ReadonlySet<string>): Promise<void> {
    const { guard, client, log } = this.o;
    if (client.listAllPolicies === undefined) return;
    let bypasses: EgressBypass[];
    try {
      bypasses = findEgressBypasses(await client.listAllPolicies(), namespaces);
    } catch (err) {
      log.warn({ err: describeError(err) }, 'could not check for NetworkPolicies that void the kill switch');
      return;
    }
    guard.setBypasses(bypasses);
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
