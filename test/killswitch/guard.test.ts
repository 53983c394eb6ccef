// Ensure-before-admit and the reconciler, against the API double through @kubernetes/client-node.

import { NetworkingV1Api } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { buildResponse } from '../../src/admission/review.js';
import { resolveRanges } from '../../src/cluster/ranges.js';
import { parseConfig } from '../../src/config/schema.js';
import { kubePolicyClient } from '../../src/killswitch/client.js';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { ClusterKillSwitchGuard } from '../../src/killswitch/guard.js';
import { type KillSwitch, type StartOptions, startKillSwitch as startWithWatch } from '../../src/killswitch/start.js';
import { KillSwitchState } from '../../src/killswitch/state.js';
import { startNamespaceCache } from '../../src/kube/namespace-cache.js';
import { resolveClusterRanges } from '../../src/cluster/discovery.js';
import { KillSwitchReconciler } from '../../src/killswitch/reconciler.js';
import { standaloneKillSwitch } from '../../src/killswitch/standalone.js';
import { buildKillSwitchPolicy, isPolicyCurrent } from '../../src/killswitch/policy.js';
import { KubeApiDouble } from '../kube-api-double/index.js';
import { captureLogger } from './log.js';

const NP = 'networking.k8s.io/v1';
let api: KubeApiDouble | undefined;
const started: KillSwitch[] = [];
afterEach(async () => {
  for (const ks of started.splice(0)) await ks.stop();
  await api?.close();
  api = undefined;
});

const config = parseConfig({ gateways: { default: {}, 'vpn-eu': { vxlanId: 43 } } });
const ranges = resolveRanges(
  { podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraAllowedCIDRs: [], dnsIPs: ['10.96.0.10'] },
  {},
);

async function cluster(): Promise<KubeApiDouble> {
  api = await KubeApiDouble.start();
  for (const name of ['kube-system', 'default', 'podvpn-system', 'downloads', 'media']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-0' }, spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'] } });
  api.put({ apiVersion: NP, kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/12'] } });
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 53, protocol: 'UDP' }] } });
  return api;
}

/** The guard over its own state, with the ranges set (as the reconciler would from discovery). */
function guardWithState(a: KubeApiDouble, timeoutMs = 4000): { guard: ClusterKillSwitchGuard; state: KillSwitchState } {
  const state = new KillSwitchState();
  state.setRanges({ ranges });
  const guard = new ClusterKillSwitchGuard({ state, client: kubePolicyClient(a.kubeConfig()), log: captureLogger().logger, timeoutMs });
  return { guard, state };
}

function guardFor(a: KubeApiDouble, timeoutMs = 4000): ClusterKillSwitchGuard {
  return guardWithState(a, timeoutMs).guard;
}

/** As serve starts it: the replica's one namespace watch, then the kill switch on it. */
async function startKillSwitch(kc: KubeConfig, cfg: typeof config, log: Logger, opts: StartOptions = {}): Promise<KillSwitch> {
  const namespaces = await startNamespaceCache(kc, log, { startTimeoutMs: opts.startTimeoutMs });
  const ks = await startWithWatch(kc, cfg, log, namespaces, opts);
  return {
    ...ks,
    stop: async () => {
      await ks.stop();
      await namespaces.stop();
    },
  };
}

/**
 * A replica composed as start.ts composes it (state, guard, reconciler on the replica's namespace
 * watch), with its state in reach and the clock injected. No timer passes: the resync and the
 * debounce are an hour, so only the passes a test runs (reconcileNow) happen.
 */
async function replica(a: KubeApiDouble, cfg: typeof config, clock: { now: number }, peerBackoffMs: number, log: Logger = captureLogger().logger) {
  const kc = a.kubeConfig();
  const now = () => clock.now;
  const namespaces = await startNamespaceCache(kc, log);
  const state = new KillSwitchState();
  state.setRanges(await resolveClusterRanges(kc, cfg, log));
  const guard = new ClusterKillSwitchGuard({ state, client: kubePolicyClient(kc), log, now });
  const reconciler = new KillSwitchReconciler({
    kc,
    state,
    ensurer: guard,
    client: kubePolicyClient(kc),
    config: cfg,
    log,
    namespaces,
    resyncMs: 3_600_000,
    debounceMs: 3_600_000,
    peerBackoffMs,
    now,
    rediscover: () => resolveClusterRanges(kc, cfg, log),
  });
  await reconciler.start();
  const ks: KillSwitch = {
    guard,
    reconciler,
    stop: async () => {
      await reconciler.stop();
      await namespaces.stop();
    },
  };
  started.push(ks);
  /** Resolves once this replica's policy watch has delivered the API server's current version (or its deletion). */
  const sees = (ns: string, gw = 'default') =>
    eventually(() => {
      const live = policyIn(a, ns, gw);
      return state.livePolicy(ns, `podvpn-killswitch-${gw}`)?.metadata?.resourceVersion === live?.metadata?.resourceVersion;
    });
  return { ks, state, sees };
}

function routedPod(namespace: string, name: string, gateway = 'default'): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { 'podvpn.io/routed': gateway } },
    spec: { containers: [{ name: 'app', image: 'qbittorrent' }] },
  };
}

async function eventually(cond: () => boolean, ms = 5000): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

const policyIn = (a: KubeApiDouble, ns: string, gw = 'default') => a.get(NP, 'NetworkPolicy', ns, `podvpn-killswitch-${gw}`);

describe('ensure before admit', () => {
  it('applies the policy (server-side apply, manager podvpn) before answering ok, then serves from cache', async () => {
    const a = await cluster();
    const guard = guardFor(a);
    expect(policyIn(a, 'downloads')).toBeUndefined();
    expect(await guard.ensure('downloads', 'default', { dryRun: false })).toEqual({ ok: true });
    const live = policyIn(a, 'downloads');
    expect(isPolicyCurrent(live as never, buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges }))).toBe(true);
    expect((live!.metadata as { managedFields: Array<{ manager: string; operation: string }> }).managedFields).toEqual([
      expect.objectContaining({ manager: 'podvpn', operation: 'Apply' }),
    ]);
    const patch = a.writes().at(-1)!;
    expect(patch).toMatchObject({ verb: 'patch', contentType: 'application/apply-patch+yaml', query: { fieldManager: 'podvpn', force: 'true' } });
    const requests = a.requests.length;
    expect(await guard.ensure('downloads', 'default', { dryRun: false })).toEqual({ ok: true });
    expect(a.requests.length).toBe(requests); // the hot path: no request at all
  });

  it('concurrent admissions for one namespace share one apply', async () => {
    const a = await cluster();
    const guard = guardFor(a);
    const results = await Promise.all(Array.from({ length: 20 }, () => guard.ensure('downloads', 'default', { dryRun: false })));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(a.writes().filter((w) => w.resource === 'networkpolicies')).toHaveLength(1);
  });

  it('a stale policy (edited by someone else) is re-applied before admitting', async () => {
    const a = await cluster();
    const { guard, state } = guardWithState(a);
    a.put({ ...buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges }), spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] } }, 'kubectl-edit');
    state.observe(policyIn(a, 'downloads') as never);
    expect(await guard.ensure('downloads', 'default', { dryRun: false })).toEqual({ ok: true });
    expect(JSON.stringify(policyIn(a, 'downloads'))).not.toContain('0.0.0.0/0');
  });

  it('denies with the reason when the API refuses the apply', async () => {
    const a = await cluster();
    const guard = guardFor(a);
    a.fault({ verb: 'patch', resource: 'networkpolicies', status: 403, message: 'networkpolicies is forbidden: User cannot patch' });
    const r = await guard.ensure('downloads', 'default', { dryRun: false });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(/downloads\/podvpn-killswitch-default could not be applied \(HTTP 403 Forbidden: networkpolicies is forbidden/);
    expect(policyIn(a, 'downloads')).toBeUndefined();
  });

  it('denies when the API server is down', async () => {
    const a = await cluster();
    const guard = guardFor(a);
    await a.down();
    const r = await guard.ensure('downloads', 'default', { dryRun: false });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(/ECONNREFUSED/);
  });

  it('denies when the API is too slow for the admission deadline', async () => {
    const a = await cluster();
    const guard = guardFor(a, 200);
    a.fault({ verb: 'patch', resource: 'networkpolicies', delayMs: 1000 });
    const r = await guard.ensure('downloads', 'default', { dryRun: false });
    expect(!r.ok && r.message).toMatch(/timed out after 200 ms/);
  });

  it('dry run: validated by a dryRun=All apply, nothing written, a warning says what would be', async () => {
    const a = await cluster();
    const guard = guardFor(a);
    const rv = a.resourceVersion;
    const r = await guard.ensure('downloads', 'default', { dryRun: true });
    expect(r).toEqual({ ok: true, warning: expect.stringMatching(/would create NetworkPolicy downloads\/podvpn-killswitch-default.*nothing was written/) });
    // ...and reaches the user whole through the AdmissionReview reply (it was cut at 120 characters).
    const reply = buildResponse({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'u', {
      outcome: 'injected', gateway: 'default', patch: [], warnings: [r.ok ? r.warning! : ''],
    }) as { response: { warnings: string[] } };
    expect(reply.response.warnings[0]).toBe(r.ok ? r.warning : '');
    expect(reply.response.warnings[0]).toMatch(/; nothing was written$/);
    expect(policyIn(a, 'downloads')).toBeUndefined();
    expect(a.resourceVersion).toBe(rv);
    expect(a.writes().every((w) => w.dryRun)).toBe(true);
    // negative control: the same call without dryRun does write
    await guard.ensure('downloads', 'default', { dryRun: false });
    expect(policyIn(a, 'downloads')).toBeDefined();
    expect(await guard.ensure('downloads', 'default', { dryRun: true })).toEqual({ ok: true });
  });

  it('dry run still fails closed when the API refuses', async () => {
    const a = await cluster();
    const guard = guardFor(a);
    a.fault({ verb: 'patch', status: 500 });
    expect((await guard.ensure('downloads', 'default', { dryRun: true })).ok).toBe(false);
  });

  it('without ranges: denied with the discovery problem, nothing written', async () => {
    const a = await cluster();
    const { guard, state } = guardWithState(a);
    state.setRanges({ ranges: undefined, problem: 'podvpn does not know the cluster\'s cluster.podCIDRs' });
    expect(guard.ranges()).toBeUndefined();
    expect(await guard.ensure('downloads', 'default', { dryRun: false })).toEqual({ ok: false, message: expect.stringMatching(/cluster\.podCIDRs/) });
    expect(a.writes()).toEqual([]);
  });

  it('standalone: config ranges else kubeadm defaults; ensure is a no-op success', async () => {
    const g = standaloneKillSwitch(parseConfig({}));
    expect(g.ranges()).toMatchObject({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], dnsIPs: ['10.96.0.10'] });
    expect(await g.ensure()).toEqual({ ok: true });
    const configured = standaloneKillSwitch(parseConfig({ cluster: { podCIDRs: ['10.42.0.0/16'] } }));
    expect(configured.ranges().podCIDRs).toEqual(['10.42.0.0/16']);
    expect(configured.ranges().sources.podCIDRs).toBe('config cluster.podCIDRs');
    expect(configured.problem()).toBeUndefined();
    // The range-safety rule lives with the standalone kill switch (serve refuses to start on it).
    expect(() => standaloneKillSwitch(parseConfig({ cluster: { podCIDRs: ['8.8.0.0/16'] } }))).toThrow(/8\.8\.0\.0\/16/);
    expect(standaloneKillSwitch(parseConfig({ cluster: { podCIDRs: ['8.8.0.0/16'], allowPublicRanges: true } })).ranges().podCIDRs).toEqual(['8.8.0.0/16']);
  });
});

describe('reconciler', () => {
  async function start(a: KubeApiDouble, opts: StartOptions = {}): Promise<KillSwitch> {
    const ks = await startKillSwitch(a.kubeConfig(), config, captureLogger().logger, { resyncMs: 200, debounceMs: 20, ...opts });
    started.push(ks);
    return ks;
  }

  it('discovers at start and creates policies for namespaces that already have routed pods', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    a.put(routedPod('media', 'sabnzbd-0', 'vpn-eu'));
    const ks = await start(a);
    expect(ks.guard.ranges()).toMatchObject({ podCIDRs: ['10.244.0.0/24'], serviceCIDRs: ['10.96.0.0/12'], dnsIPs: ['10.96.0.10'] });
    await eventually(() => policyIn(a, 'downloads') !== undefined && policyIn(a, 'media', 'vpn-eu') !== undefined);
    expect(policyIn(a, 'media')).toBeUndefined();
  });

  it('says loudly when a namespace label value opts nothing in (e.g. "true", the pod label value)', async () => {
    const a = await cluster();
    a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'meant-to', labels: { 'podvpn.io/inject': 'true' } } });
    a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'switched-off', labels: { 'podvpn.io/inject': 'disabled' } } });
    a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'opted', labels: { 'podvpn.io/inject': 'enabled' } } });
    const log = captureLogger();
    const ks = await startKillSwitch(a.kubeConfig(), config, log.logger, { resyncMs: 200, debounceMs: 20 });
    started.push(ks);
    await eventually(() => policyIn(a, 'opted') !== undefined);
    const warnings = log.lines.filter((l) => l.level === 40 && /opts nothing in/.test(l.msg)).map((l) => l.namespace);
    expect(warnings).toEqual(['meant-to']);
    expect(policyIn(a, 'meant-to')).toBeUndefined();
  });

  it('a deleted policy is back within seconds', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    await start(a);
    await eventually(() => policyIn(a, 'downloads') !== undefined);
    await a.kubeConfig().makeApiClient(NetworkingV1Api).deleteNamespacedNetworkPolicy({ namespace: 'downloads', name: 'podvpn-killswitch-default' });
    expect(policyIn(a, 'downloads')).toBeUndefined();
    const took = await eventually(() => policyIn(a, 'downloads') !== undefined, 3000);
    expect(took).toBeLessThan(3000);
  });

  it('an edited policy is restored (force takes the fields back from kubectl-edit)', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    await start(a);
    await eventually(() => policyIn(a, 'downloads') !== undefined);
    const net = a.kubeConfig().makeApiClient(NetworkingV1Api);
    const live = await net.readNamespacedNetworkPolicy({ namespace: 'downloads', name: 'podvpn-killswitch-default' });
    live.spec!.egress = [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }];
    await net.replaceNamespacedNetworkPolicy({ namespace: 'downloads', name: 'podvpn-killswitch-default', body: live, fieldManager: 'kubectl-edit' });
    expect(JSON.stringify(policyIn(a, 'downloads'))).toContain('0.0.0.0/0');
    await eventually(() => !JSON.stringify(policyIn(a, 'downloads')?.spec).includes('0.0.0.0/0'), 3000);
  });

  it('a removed managed-by label is restored too', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    await start(a);
    await eventually(() => policyIn(a, 'downloads') !== undefined);
    const live = policyIn(a, 'downloads')!;
    a.put({ ...live, metadata: { ...live.metadata, labels: {}, managedFields: undefined } }, 'kubectl-edit');
    await eventually(() => policyIn(a, 'downloads')?.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'podvpn', 3000);
  });

  it('a CIDR change rewrites every policy', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    a.put(routedPod('media', 'sabnzbd-0'));
    const ks = await start(a);
    await eventually(() => policyIn(a, 'downloads') !== undefined && policyIn(a, 'media') !== undefined);
    expect(JSON.stringify(policyIn(a, 'media'))).not.toContain('10.244.1.0');
    a.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] } });
    expect(await ks.reconciler.rediscover()).toBe(true);
    expect(ks.guard.ranges()?.podCIDRs).toEqual(['10.244.0.0/23']);
    await eventually(() => ['downloads', 'media'].every((ns) => JSON.stringify(policyIn(a, ns)).includes('10.244.0.0/23')), 3000);
    // unchanged ranges: nothing to rewrite
    expect(await ks.reconciler.rediscover()).toBe(false);
  });

  it('rediscovery on its own schedule picks up a change', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    await start(a, { rediscoverMs: 100 });
    await eventually(() => policyIn(a, 'downloads') !== undefined);
    a.put({ apiVersion: NP, kind: 'ServiceCIDR', metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/11'] } });
    // the tick is min(rediscoverMs, 10 s)
    await eventually(() => JSON.stringify(policyIn(a, 'downloads')).includes('10.96.0.0/11'), 5000);
  });

  it('a config change (restart with new config) rewrites every policy', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    a.put(routedPod('media', 'sabnzbd-0'));
    const first = await start(a);
    await eventually(() => policyIn(a, 'downloads') !== undefined && policyIn(a, 'media') !== undefined);
    await first.stop();
    const withLan = parseConfig({ gateways: { default: {}, 'vpn-eu': { vxlanId: 43 } }, cluster: { extraAllowedCIDRs: ['192.168.1.0/24'] } });
    const second = await startKillSwitch(a.kubeConfig(), withLan, captureLogger().logger, { resyncMs: 200, debounceMs: 20 });
    started.push(second);
    await eventually(() => ['downloads', 'media'].every((ns) => JSON.stringify(policyIn(a, ns)).includes('192.168.1.0/24')), 3000);
  });

  it('a failed rediscovery keeps the ranges in force', async () => {
    const a = await cluster();
    const ks = await start(a);
    a.fault({ resource: 'nodes', status: 500 });
    a.fault({ resource: 'configmaps', status: 500 });
    expect(await ks.reconciler.rediscover()).toBe(false);
    expect(ks.guard.ranges()).toBeDefined();
  });

  it('removes a policy only when its namespace has no routed pod of that gateway left', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    a.put(routedPod('media', 'sabnzbd-0'));
    const ks = await start(a, { removalGraceMs: 0 });
    await eventually(() => policyIn(a, 'downloads') !== undefined && policyIn(a, 'media') !== undefined);
    a.remove('v1', 'Pod', 'media', 'sabnzbd-0');
    await ks.reconciler.reconcileNow(); // (a background pass may be the one that removes it)
    expect(policyIn(a, 'media')).toBeUndefined();
    expect(a.writes().filter((w) => w.verb === 'delete').map((w) => `${w.namespace}/${w.name}`)).toEqual(['media/podvpn-killswitch-default']);
    expect(policyIn(a, 'downloads')).toBeDefined();
  });

  it('removes only after the policy has been unneeded for the whole grace period (injected clock, no sleeps)', async () => {
    const a = await cluster();
    a.put(routedPod('media', 'sabnzbd-0'));
    let now = Date.now();
    const advance = (ms: number) => {
      now += ms;
    };
    const ks = await start(a, { removalGraceMs: 400_000, resyncMs: 60_000, now: () => now });
    await eventually(() => policyIn(a, 'media') !== undefined);
    const pass = async () => {
      await ks.reconciler.reconcileNow();
      return policyIn(a, 'media') !== undefined;
    };
    advance(450_000); // older than the grace period
    a.remove('v1', 'Pod', 'media', 'sabnzbd-0');
    expect(await pass()).toBe(true); // unneeded from now on
    advance(200_000);
    a.put(routedPod('media', 'sabnzbd-1')); // a pod came back: the clock restarts
    expect(await pass()).toBe(true);
    a.remove('v1', 'Pod', 'media', 'sabnzbd-1');
    expect(await pass()).toBe(true);
    advance(250_000);
    expect(await pass()).toBe(true); // 250 s < 400 s since the last pod left (450 s since the first)
    advance(150_000);
    expect(await pass()).toBe(false);
  });

  it('keeps a young policy (a pod admitted a moment ago may not be listed yet)', async () => {
    const a = await cluster();
    const ks = await start(a); // default grace: 10 min
    expect(await ks.guard.ensure('media', 'default', { dryRun: false })).toEqual({ ok: true });
    const report = await ks.reconciler.reconcileNow();
    expect(report.removed).toEqual([]);
    expect(policyIn(a, 'media')).toBeDefined();
  });

  it('an opted-in namespace gets its policy before any pod, for its annotated gateway', async () => {
    const a = await cluster();
    await start(a);
    a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'arr', labels: { 'podvpn.io/inject': 'enabled' }, annotations: { 'podvpn.io/gateway': 'vpn-eu' } } });
    await eventually(() => policyIn(a, 'arr', 'vpn-eu') !== undefined, 3000);
    expect(policyIn(a, 'arr')).toBeUndefined();
  });

  it('two replicas converge without fighting: no further writes once in place', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    a.put(routedPod('media', 'sabnzbd-0', 'vpn-eu'));
    const clock = { now: 1_000_000 };
    const one = await replica(a, config, clock, 60_000);
    const two = await replica(a, config, clock, 60_000);
    await Promise.all([one.ks.reconciler.reconcileNow(), two.ks.reconciler.reconcileNow()]);
    for (const r of [one, two]) await Promise.all([r.sees('downloads'), r.sees('media', 'vpn-eu')]);
    const rv = a.resourceVersion;
    const writes = a.writes().length;
    // Three resync periods of both, each pass run after the other replica's result is seen.
    for (let round = 0; round < 3; round++) {
      clock.now += 30_000;
      await Promise.all([
        one.ks.guard.ensure('downloads', 'default', { dryRun: false }),
        two.ks.guard.ensure('downloads', 'default', { dryRun: false }),
        one.ks.reconciler.reconcileNow(),
        two.ks.reconciler.reconcileNow(),
      ]);
    }
    expect(a.resourceVersion).toBe(rv);
    expect(a.writes().length).toBe(writes);
    expect(policyIn(a, 'downloads')!.metadata!.managedFields).toHaveLength(1);
  });

  /**
   * Two replicas that disagree (one was configured with a LAN range, one without), each running a pass
   * every 200 ms of the injected clock, the other's write seen before each pass. After two rounds in
   * which each has written its version, how often do they rewrite the policy in the next 1.6 s?
   */
  async function fightingReplicas(peerBackoffMs: number): Promise<number> {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    const lan = parseConfig({ gateways: { default: {}, 'vpn-eu': { vxlanId: 43 } }, cluster: { extraAllowedCIDRs: ['192.168.1.0/24'] } });
    const clock = { now: 1_000_000 };
    const one = await replica(a, config, clock, peerBackoffMs);
    await one.ks.reconciler.reconcileNow();
    const two = await replica(a, lan, clock, peerBackoffMs);
    await two.sees('downloads');
    const round = async () => {
      clock.now += 200;
      await two.ks.reconciler.reconcileNow();
      await one.sees('downloads');
      await one.ks.reconciler.reconcileNow();
      await two.sees('downloads');
    };
    const writes = () => a.writes().filter((w) => w.resource === 'networkpolicies').length;
    await round();
    await round();
    const before = writes();
    for (let i = 0; i < 8; i++) await round();
    return writes() - before;
  }

  it('replicas that disagree back off instead of rewriting each other in a loop', async () => {
    // 1.6 s of the clock with a 1 s backoff: each replica re-applies once.
    expect(await fightingReplicas(1000)).toBe(2);
  });

  it('negative control: without the backoff the same replicas do fight', async () => {
    // Every pass of each replica rewrites the other's policy: 16 writes in 8 rounds.
    expect(await fightingReplicas(0)).toBe(16);
  });

  it('the watch survives the API server going down and coming back', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    await start(a);
    await eventually(() => policyIn(a, 'downloads') !== undefined);
    await a.down();
    await new Promise((r) => setTimeout(r, 300));
    await a.up();
    a.remove(NP, 'NetworkPolicy', 'downloads', 'podvpn-killswitch-default');
    await eventually(() => policyIn(a, 'downloads') !== undefined, 8000);
  });

  it('one namespace watch per replica: the reconciler reads opt-ins from the watch admission uses', async () => {
    const a = await cluster();
    a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'opted', labels: { 'podvpn.io/inject': 'enabled' } } });
    const ks = await start(a);
    await eventually(() => policyIn(a, 'opted') !== undefined);
    const namespaceWatches = a.requests.filter((r) => r.resource === 'namespaces' && r.verb === 'watch');
    expect(namespaceWatches).toHaveLength(1);
    expect(a.requests.filter((r) => r.resource === 'namespaces' && r.verb === 'list')).toHaveLength(1);
    expect(ks.guard.problem()).toBeUndefined();
  });

  it('a pass follows a namespace opting in, not every namespace change the shared watch sees', async () => {
    const a = await cluster();
    const ks = await start(a, { resyncMs: 60_000, debounceMs: 20 });
    await ks.reconciler.reconcileNow();
    await new Promise((r) => setTimeout(r, 300)); // the start-up pass (debounced) has run too
    const podLists = () => a.requests.filter((r) => r.resource === 'pods' && r.verb === 'list').length;
    const before = podLists();
    a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media', labels: { team: 'media' }, annotations: { note: 'x' } } });
    await new Promise((r) => setTimeout(r, 300)); // 15 debounce windows: no pass may start
    expect(podLists()).toBe(before);
    // control: the same watch, a change that matters, does start one
    a.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media', labels: { 'podvpn.io/inject': 'enabled' } } });
    await eventually(() => policyIn(a, 'media') !== undefined);
    expect(podLists()).toBeGreaterThan(before);
  });

  it('a hung API server does not hang start-up: routed pods are denied with the reason', async () => {
    const a = await cluster();
    a.fault({ delayMs: 5000 });
    const t0 = Date.now();
    const ks = await start(a, { discoveryTimeoutMs: 100, startTimeoutMs: 200, timeoutMs: 100 });
    expect(Date.now() - t0).toBeLessThan(2500);
    const r = await ks.guard.ensure('downloads', 'default', { dryRun: false });
    expect(!r.ok && r.message).toMatch(/no answer within 100 ms/);
    a.clearFaults();
  });

  it('starts with the API down: routed pods denied with the reason, then recovers', async () => {
    const a = await cluster();
    await a.down();
    const ks = await start(a, { rediscoverMs: 100 });
    expect(ks.guard.ranges()).toBeUndefined();
    const r = await ks.guard.ensure('downloads', 'default', { dryRun: false });
    expect(!r.ok && r.message).toMatch(/does not know the cluster/);
    await a.up();
    await eventually(() => ks.guard.ranges() !== undefined, 15_000);
    expect((await ks.guard.ensure('downloads', 'default', { dryRun: false })).ok).toBe(true);
  });
});

describe('a namespace being deleted', () => {
  it('refused creates (403 NamespaceTerminating): one log line and no retry on every pass', async () => {
    const a = await cluster();
    a.put(routedPod('downloads', 'qbittorrent-0'));
    const log = captureLogger();
    const clock = { now: 1_000_000 };
    const { ks, sees } = await replica(a, config, clock, 60_000, log.logger);
    await ks.reconciler.reconcileNow();
    await sees('downloads');
    // The namespace controller deleted the policy; the pod is still terminating.
    a.terminateNamespace('downloads', { deleteContent: false });
    const applies = () => a.requests.filter((r) => r.resource === 'networkpolicies' && r.verb === 'patch' && r.namespace === 'downloads').length;
    const before = applies();
    a.remove(NP, 'NetworkPolicy', 'downloads', 'podvpn-killswitch-default');
    await sees('downloads');
    for (let pass = 0; pass < 30; pass++) {
      clock.now += 50;
      await ks.reconciler.reconcileNow();
    }
    const tried = applies() - before;
    expect(tried, 'refused applies in 30 passes over 1.5 s of the clock').toBe(1);
    const lines = log.lines.filter((l) => l.namespace === 'downloads' && l.level >= 30 && /being deleted|could not be applied/.test(l.msg));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([[30, expect.stringMatching(/^namespace downloads is being deleted/)]]);
    // The ensure path (a review) says why, without a warn line per call.
    expect(await ks.guard.ensure('downloads', 'default', { dryRun: false })).toEqual({
      ok: false,
      message: 'namespace downloads is being deleted, so its kill-switch NetworkPolicy podvpn-killswitch-default cannot be created',
    });
  });

  it('isNamespaceTerminating: only the NamespaceLifecycle 403, not an RBAC 403', async () => {
    const { isNamespaceTerminating } = await import('../../src/killswitch/guard.js');
    const a = await cluster();
    a.terminateNamespace('media');
    const err = await kubePolicyClient(a.kubeConfig())
      .apply(buildKillSwitchPolicy({ namespace: 'media', gateway: 'default', ranges }), { dryRun: false })
      .catch((e: unknown) => e);
    expect(isNamespaceTerminating(err)).toBe(true);
    a.fault({ verb: 'patch', resource: 'networkpolicies', status: 403, message: 'networkpolicies.networking.k8s.io is forbidden: User "x" cannot patch resource' });
    const rbac = await kubePolicyClient(a.kubeConfig())
      .apply(buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges }), { dryRun: false })
      .catch((e: unknown) => e);
    expect(isNamespaceTerminating(rbac)).toBe(false);
  });
});

describe('node pod ranges the routed pods were not given', () => {
  it('a node added later: one warning naming it and the pods, and the report the metrics read', async () => {
    const a = await cluster();
    const settings = "NOT_ROUTED_TO_GATEWAY_CIDRS='10.244.0.0/24 10.96.0.0/12'\n";
    const pod = routedPod('downloads', 'qbittorrent-0') as { metadata: Record<string, unknown> };
    pod.metadata.annotations = { 'podvpn.io/client-settings': settings };
    a.put(pod);
    const log = captureLogger();
    const reports: Array<{ podsMissing: number; notInForce: number }> = [];
    const ks = await startKillSwitch(a.kubeConfig(), config, log.logger, {
      resyncMs: 50,
      debounceMs: 10,
      onCoverage: (r) => reports.push({ podsMissing: r.podsMissing, notInForce: r.notInForce.length }),
    });
    started.push(ks);
    await eventually(() => reports.length > 0);
    expect(reports.at(-1)).toEqual({ podsMissing: 0, notInForce: 0 });
    a.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] } });
    expect(await ks.reconciler.rediscover()).toBe(true); // the nodes' union grew
    await eventually(() => reports.at(-1)!.podsMissing === 1);
    expect(reports.at(-1)).toEqual({ podsMissing: 1, notInForce: 0 });
    for (let pass = 0; pass < 5; pass++) await ks.reconciler.reconcileNow(); // several more passes
    const warned = log.lines.filter((l) => l.level === 40 && /pod range 10\.244\.1\.0\/24 is missing/.test(l.msg));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ node: 'node-1', pods: 1, example: 'downloads/qbittorrent-0' });
  });
});
