// The kill switch on the admission path: "is this namespace's policy in place? make it so, or say why
// not". It implements admission's KillSwitchGuard port (src/admission/ports.ts) over the shared
// KillSwitchState (ranges, live policies, bypasses), which the reconciler feeds; start.ts composes the
// two. Without a cluster, standalone.ts implements the same port.
//
// ensure() reads the live policies (fed by a NetworkPolicy watch) and writes only when the policy is
// missing or stale: one server-side apply (field manager `podvpn`, force), concurrent calls for the same
// policy sharing it. Any failure is `{ ok: false, message }`: the caller denies the pod (fail closed).
// With `dryRun`, the API server validates a dryRun=All apply and nothing is written. What the guard
// alone knows (what it applied, when, and which namespaces refused a create) the reconciler reads
// through three questions (the reconciler's Ensurer interface): recentlyEnsured, writtenByPeer and
// terminatingWithin.

import type { Logger } from 'pino';
import type { EnsureResult, KillSwitchGuard } from '../admission/ports.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import { FIELD_MANAGER } from '../constants.js';
import { describeError } from '../kube/errors.js';
import { withDeadline } from '../util/deadline.js';
import type { LivePolicy, PolicyClient } from './client.js';
import { canonicalSpec, isPolicyCurrent } from './policy.js';
import type { KillSwitchState } from './state.js';

export interface ClusterGuardOptions {
  state: KillSwitchState;
  client: PolicyClient;
  log: Logger;
  /**
   * An apply slower than this fails the ensure with a clear denial. Default 2 s: it must end before
   * the review's own deadline (2.5 s, REVIEW_DEADLINE_MS), which must end before the API server's
   * 5 s timeout, so the user sees "kill-switch policy could not be written" and not a timeout.
   */
  timeoutMs?: number | undefined;
  /** The clock (tests inject one). */
  now?: (() => number) | undefined;
}

export class ClusterKillSwitchGuard implements KillSwitchGuard {
  private readonly state: KillSwitchState;
  private readonly inFlight = new Map<string, Promise<EnsureResult>>();
  private readonly ensuredAt = new Map<string, number>();
  /** The spec this process last applied to each policy (namespace/name → canonical JSON). */
  private readonly lastApplied = new Map<string, string>();
  /** Namespaces whose create was refused because they are being deleted → when that was seen. */
  private readonly terminating = new Map<string, number>();
  private readonly client: PolicyClient;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(opts: ClusterGuardOptions) {
    this.state = opts.state;
    this.client = opts.client;
    this.log = opts.log;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.now = opts.now ?? Date.now;
  }

  ranges(): ClusterRanges | undefined {
    return this.state.ranges();
  }

  problem(): string | undefined {
    return this.state.problem();
  }

  /** Was this policy ensured by this process within `ms`? (The reconciler never removes those.) */
  recentlyEnsured(namespace: string, gateway: string, ms: number, now = this.now()): boolean {
    const at = this.ensuredAt.get(`${namespace}/${gateway}`);
    return at !== undefined && now - at < ms;
  }

  async ensure(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult> {
    const result = await this.ensurePolicy(namespace, gateway, opts);
    const bypass = this.state.bypassIn(namespace);
    if (!result.ok || bypass === undefined || result.warning !== undefined) return result;
    return { ok: true, warning: `podvpn: NetworkPolicy ${bypass.name} allows internet egress here and may void the kill switch` };
  }

  private async ensurePolicy(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult> {
    const desired = this.state.desired(namespace, gateway);
    if (desired === undefined) return { ok: false, message: this.state.problem() ?? 'cluster ranges unknown' };
    const name = desired.metadata.name;
    const live = this.state.livePolicy(namespace, name);
    if (!opts.dryRun) this.ensuredAt.set(`${namespace}/${gateway}`, this.now());
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
        this.state.observe(applied);
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
          this.terminating.set(namespace, this.now());
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
  terminatingWithin(namespace: string, ms: number, now = this.now()): boolean {
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
