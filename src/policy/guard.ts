// The kill switch as the webhook sees it: "is this namespace's policy in place? make it so, or say why
// not". Usage:
//
//   // connected to a cluster (serve):
//   const ks = await startKillSwitch(kubeConfig, config, logger);   // discovery + reconciler
//   ports.ranges = () => ks.guard.ranges();                          // undefined → deny (missingRanges)
//   ports.ensureKillSwitch = (ns, gw, o) => ks.guard.ensure(ns, gw, o);
//   ks.guard.problem();                                              // why ranges() is undefined
//   await ks.stop();                                                 // on shutdown
//
//   // no cluster (standalone serve, tests):
//   const guard = new StandaloneKillSwitchGuard(config);   // config ranges, else kubeadm defaults;
//                                                          // ensure() succeeds without writing
//   // offline `podvpn inject`:
//   policiesForNamespaces([{ namespace, gateway }], standaloneRanges(config.cluster), config)
//   // (killswitch.ts and cluster/ranges.ts; throws PublicRangeError for public ranges unless forced)
//
// ensure() reads a cache fed by a NetworkPolicy watch and writes only when the policy is missing or
// stale: one server-side apply (field manager `podvpn`, force), concurrent calls for the same policy
// sharing it. Any failure is `{ ok: false, message }`: the caller denies the pod (fail closed). With
// `dryRun`, the API server validates a dryRun=All apply and nothing is written.

import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeError, type NodeRange, resolveClusterRanges } from '../cluster/discovery.js';
import { KillSwitchReconciler, type ReconcilerOptions } from '../cluster/reconciler.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';
import { FIELD_MANAGER } from '../constants.js';
import { withDeadline } from '../util/deadline.js';
import type { EgressBypass } from './bypass.js';
import { type LivePolicy, kubePolicyClient, type PolicyClient } from './client.js';
import type { EnsureResult, ReconcilerGuard } from './guard-types.js';
import { PolicyCache } from './policy-cache.js';
import { buildKillSwitchPolicy, canonicalSpec, isPolicyCurrent, type KillSwitchPolicy } from './killswitch.js';

export interface ClusterGuardOptions {
  client: PolicyClient;
  log: Logger;
  cache?: PolicyCache;
  /**
   * An apply slower than this fails the ensure with a clear denial. Default 2 s: it must end before
   * the review's own deadline (2.5 s, REVIEW_DEADLINE_MS), which must end before the API server's
   * 5 s timeout, so the user sees "kill-switch policy could not be written" and not a timeout.
   */
  timeoutMs?: number;
}

export class ClusterKillSwitchGuard implements ReconcilerGuard {
  readonly cache: PolicyCache;
  private current: ClusterRanges | undefined;
  private why: string | undefined = 'cluster ranges not discovered yet';
  private readonly inFlight = new Map<string, Promise<EnsureResult>>();
  private bypasses = new Map<string, EgressBypass[]>();
  private readonly ensuredAt = new Map<string, number>();
  private readonly built = new Map<string, KillSwitchPolicy>();
  /** The spec this process last applied to each policy (namespace/name → canonical JSON). */
  private readonly lastApplied = new Map<string, string>();
  /** Namespaces whose create was refused because they are being deleted → when that was seen. */
  private readonly terminating = new Map<string, number>();
  private nodes: NodeRange[] | undefined;
  private readonly client: PolicyClient;
  private readonly log: Logger;
  private readonly timeoutMs: number;

  constructor(opts: ClusterGuardOptions) {
    this.client = opts.client;
    this.log = opts.log;
    this.cache = opts.cache ?? new PolicyCache();
    this.timeoutMs = opts.timeoutMs ?? 2000;
  }

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
  setRanges(outcome: { ranges: ClusterRanges | undefined; problem?: string; nodeRanges?: NodeRange[] }): boolean {
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

  /** Was this policy ensured by this process within `ms`? (The reconciler never removes those.) */
  recentlyEnsured(namespace: string, gateway: string, ms: number, now = Date.now()): boolean {
    const at = this.ensuredAt.get(`${namespace}/${gateway}`);
    return at !== undefined && now - at < ms;
  }

  /** Other egress policies that void the kill switch, by namespace (from the reconciler). */
  setBypasses(bypasses: readonly EgressBypass[]): void {
    this.bypasses = new Map();
    for (const b of bypasses) this.bypasses.set(b.namespace, [...(this.bypasses.get(b.namespace) ?? []), b]);
  }

  async ensure(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult> {
    const result = await this.ensurePolicy(namespace, gateway, opts);
    const bypass = this.bypasses.get(namespace)?.[0];
    if (!result.ok || bypass === undefined || result.warning !== undefined) return result;
    return { ok: true, warning: `podvpn: NetworkPolicy ${bypass.name} allows internet egress here and may void the kill switch` };
  }

  private async ensurePolicy(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult> {
    const desired = this.desired(namespace, gateway);
    if (desired === undefined) return { ok: false, message: this.why ?? 'cluster ranges unknown' };
    const name = desired.metadata.name;
    const live = this.cache.get(namespace, name);
    if (!opts.dryRun) this.ensuredAt.set(`${namespace}/${gateway}`, Date.now());
    if (isPolicyCurrent(live, desired)) return { ok: true };
    const verb = live === undefined ? 'create' : 'update';
    if (opts.dryRun) {
      try {
        await this.timed(this.client.apply(desired, { dryRun: true }));
      } catch (err) {
        return { ok: false, message: this.failure(namespace, name, err) };
      }
      return {
        ok: true,
        warning: `dry run: podvpn would ${verb} NetworkPolicy ${namespace}/${name} (the kill switch for gateway "${gateway}") before admitting this pod; nothing was written`,
      };
    }
    const key = `${namespace}/${name}/${JSON.stringify(desired.spec)}`;
    const pending = this.inFlight.get(key);
    if (pending !== undefined) return pending;
    const run = (async (): Promise<EnsureResult> => {
      try {
        const applied = await this.timed(this.client.apply(desired, { dryRun: false }));
        this.cache.set(applied);
        this.terminating.delete(namespace);
        this.lastApplied.set(`${namespace}/${name}`, canonicalSpec(desired.spec));
        this.log.info({ namespace, policy: name, gateway, action: verb }, `kill-switch policy ${namespace}/${name} applied (${verb})`);
        return { ok: true };
      } catch (err) {
        if (isNamespaceTerminating(err)) {
          // NamespaceLifecycle refuses every create there until the namespace is gone: say it once.
          if (!this.terminating.has(namespace)) {
            this.log.info(
              { namespace, policy: name, gateway },
              `namespace ${namespace} is being deleted: the API server refuses to create its kill-switch policy ${name}; routed pods still terminating there run without it until the namespace is gone`,
            );
          }
          this.terminating.set(namespace, Date.now());
          return { ok: false, message: `namespace ${namespace} is being deleted, so its kill-switch NetworkPolicy ${name} cannot be created` };
        }
        const message = this.failure(namespace, name, err);
        this.log.warn({ namespace, policy: name, gateway, err: describeError(err) }, message);
        return { ok: false, message };
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, run);
    return run;
  }

  /**
   * Was a create in this namespace refused within `ms` because the namespace is being deleted? The
   * reconciler leaves such a namespace alone meanwhile instead of retrying on every pass.
   */
  terminatingWithin(namespace: string, ms: number, now = Date.now()): boolean {
    const at = this.terminating.get(namespace);
    return at !== undefined && now - at < ms;
  }

  /**
   * Did another podvpn replica, not an outsider, write this live policy since we last applied it?
   * True when we applied it before, its spec now differs from what we applied, and only our field
   * manager owns the spec (an edit by anyone else shows up as another manager). Two replicas whose
   * ranges differ for a moment (one rediscovered first) would otherwise rewrite each other's policy
   * on every watch event; the reconciler backs off in this case instead.
   */
  writtenByPeer(live: LivePolicy | undefined): boolean {
    const ns = live?.metadata?.namespace;
    const name = live?.metadata?.name;
    if (live === undefined || ns === undefined || name === undefined) return false;
    const mine = this.lastApplied.get(`${ns}/${name}`);
    if (mine === undefined || mine === canonicalSpec(live.spec)) return false;
    const owners = (live.metadata?.managedFields ?? [])
      .filter((m) => m.fieldsV1 !== undefined && typeof m.fieldsV1 === 'object' && 'f:spec' in (m.fieldsV1 as object))
      .map((m) => m.manager);
    return owners.length > 0 && owners.every((m) => m === FIELD_MANAGER);
  }

  private timed<T>(p: Promise<T>): Promise<T> {
    return withDeadline(p, this.timeoutMs, `timed out after ${this.timeoutMs} ms`);
  }

  private failure(namespace: string, name: string, err: unknown): string {
    return `the kill-switch NetworkPolicy ${namespace}/${name} could not be applied (${describeError(err)}); a routed pod is never admitted without it`;
  }
}

export interface KillSwitch {
  guard: ClusterKillSwitchGuard;
  reconciler: KillSwitchReconciler;
  stop(): Promise<void>;
}

/**
 * Connected start-up: discover the ranges (config first), start the reconciler (watches, periodic
 * resync and rediscovery), and return the guard for the webhook's hot path. Never throws for an
 * unreachable API or missing ranges: the guard then denies routed pods with the reason, and
 * discovery is retried until it succeeds.
 */
export async function startKillSwitch(
  kc: KubeConfig,
  config: Config,
  log: Logger,
  opts: Partial<Omit<ReconcilerOptions, 'kc' | 'guard' | 'client' | 'config' | 'log'>> & {
    client?: PolicyClient;
    /** Per apply in ensure() (default 3 s). */
    timeoutMs?: number;
    /** Per discovery call (default 5 s). */
    discoveryTimeoutMs?: number;
  } = {},
): Promise<KillSwitch> {
  const client = opts.client ?? kubePolicyClient(kc);
  const guard = new ClusterKillSwitchGuard({ client, log, timeoutMs: opts.timeoutMs });
  const discovery = { timeoutMs: opts.discoveryTimeoutMs };
  guard.setRanges(await resolveClusterRanges(kc, config, log, discovery));
  const reconciler = new KillSwitchReconciler({
    ...opts,
    kc,
    guard,
    client,
    config,
    log,
    // Rediscovery logs only problems; the reconciler logs a change of ranges.
    rediscover: opts.rediscover ?? (() => resolveClusterRanges(kc, config, log.child({ phase: 'rediscovery' }, { level: 'warn' }), discovery)),
  });
  await reconciler.start();
  return { guard, reconciler, stop: () => reconciler.stop() };
}

/** NamespaceLifecycle's 403 for a create in a namespace being deleted (cause NamespaceTerminating). */
export function isNamespaceTerminating(err: unknown): boolean {
  const e = err as { code?: unknown; body?: unknown };
  if (e === null || typeof e !== 'object' || e.code !== 403) return false;
  let body = e.body;
  if (typeof body === 'string') {
    const text = body;
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      return text.includes('because it is being terminated');
    }
  }
  const status = body as { message?: unknown; details?: { causes?: Array<{ reason?: unknown }> } } | undefined;
  return (
    (status?.details?.causes ?? []).some((c) => c?.reason === 'NamespaceTerminating') ||
    (typeof status?.message === 'string' && status.message.includes('because it is being terminated'))
  );
}

function rangesKey(r: ClusterRanges | undefined): string {
  return r === undefined ? '' : JSON.stringify([r.podCIDRs, r.serviceCIDRs, r.extraCIDRs, r.dnsIPs]);
}
