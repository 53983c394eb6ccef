// The namespace cache against the Kubernetes API test double, through @kubernetes/client-node.

import { describe, expect, it } from 'vitest';
import { KubeApiDouble } from '../kube-api-double/index.js';
import { startNamespaceCache } from '../../src/kube/namespace-cache.js';
import { doublePerTest, eventually, silent } from './watch-fixture.js';

describe('namespace watch cache', () => {
  const each = doublePerTest();

  it('lists, then follows label and annotation changes without a request per lookup', async () => {
    const api = await each.start();
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads', labels: { 'podvpn.io/inject': 'enabled' }, annotations: { 'podvpn.io/gateway': 'nl' } } });
    const cache = each.stopAfter(await startNamespaceCache(api.kubeConfig(), silent));
    expect(cache.synced()).toBe(true);
    expect(cache.get('downloads')).toEqual({
      labels: { 'podvpn.io/inject': 'enabled', 'kubernetes.io/metadata.name': 'downloads' },
      annotations: { 'podvpn.io/gateway': 'nl' },
    });

    const before = api.requests.length;
    for (let i = 0; i < 100; i++) cache.get('downloads');
    expect(api.requests.length).toBe(before);

    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media', labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } } });
    await eventually(() => expect(cache.get('media')!.labels['pod-security.kubernetes.io/enforce']).toBe('baseline'));
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads', labels: {} } });
    await eventually(() => expect(cache.get('downloads')!.labels['podvpn.io/inject']).toBeUndefined());
  });

  it('recovers from a dropped watch and sees what changed meanwhile', async () => {
    const api = await each.start();
    const cache = each.stopAfter(await startNamespaceCache(api.kubeConfig(), silent));
    api.closeWatches();
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late', labels: { 'podvpn.io/inject': 'enabled' } } });
    await eventually(() => expect(cache.get('late')!.labels['podvpn.io/inject']).toBe('enabled'), 10_000);
  });

  it('a hung API server does not hang start-up: unsynced (unready) until it answers, then synced', async () => {
    const api = await each.start();
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads', labels: { 'podvpn.io/inject': 'enabled' } } });
    api.fault({ delayMs: 3000 }); // the first list answers only after start() has given up waiting
    const t0 = Date.now();
    const cache = each.stopAfter(await startNamespaceCache(api.kubeConfig(), silent, { startTimeoutMs: 200 }));
    expect(Date.now() - t0).toBeLessThan(1500); // without the start timeout: 3 s
    expect(cache.synced()).toBe(false);
    expect(cache.get('downloads')).toBeUndefined();
    api.clearFaults();
    await eventually(() => expect(cache.synced()).toBe(true), 15_000);
    await eventually(() => expect(cache.get('downloads')?.labels['podvpn.io/inject']).toBe('enabled'), 15_000);
  });

  it('tells subscribers (the reconciler) of each change and deletion, from the same watch', async () => {
    const api = await each.start();
    const cache = each.stopAfter(await startNamespaceCache(api.kubeConfig(), silent));
    const seen: Array<[string, string | undefined]> = [];
    cache.onChange((name, facts) => seen.push([name, facts?.labels['podvpn.io/inject']]));
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'opted', labels: { 'podvpn.io/inject': 'enabled' } } });
    await eventually(() => expect(seen).toContainEqual(['opted', 'enabled']));
    expect([...cache.all()].map(([name]) => name)).toContain('opted');
    api.remove('v1', 'Namespace', undefined, 'opted');
    await eventually(() => expect(seen).toContainEqual(['opted', undefined]));
  });
});

describe('a cache that lags behind the API server', () => {
  it('re-reads the namespace before skipping a pod the API server sent as opted in', async () => {
    const { admit } = await import('../../src/admission/review.js');
    const { parseConfig } = await import('../../src/config/schema.js');
    const api = await KubeApiDouble.start();
    try {
      const cache = await startNamespaceCache(api.kubeConfig(), silent);
      api.closeWatches();
      await api.down(); // the watch cannot see the label that is about to be added
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'fresh', labels: { 'podvpn.io/inject': 'enabled' } } });
      await api.up();
      const ports = {
        config: parseConfig({}),
        // What the cache knew before the label: the namespace without it.
        namespaceFacts: () => ({ labels: {}, annotations: {} }),
        fetchNamespaceFacts: (ns: string) => cache.fetch(ns),
        ranges: () => ({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraCIDRs: [], dnsIPs: ['10.96.0.10'], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } }),
        ensureKillSwitch: async () => ({ ok: true as const }),
      };
      const request = {
        uid: 'u',
        operation: 'CREATE',
        resource: { resource: 'pods' },
        namespace: 'fresh',
        name: 'p',
        dryRun: false,
        object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'b' }] } },
      };
      expect((await admit(request, ports)).outcome).toBe('injected');
      // Negative control: without the re-read, the stale cache would have let the pod through unrouted.
      const { fetchNamespaceFacts: _, ...blind } = ports;
      expect((await admit(request, blind)).outcome).toBe('skipped');
      // A re-read that fails never turns into a skip: the API server's selectors are authoritative.
      await api.down();
      expect((await admit(request, ports)).outcome).toBe('injected');
      await cache.stop();
    } finally {
      await api.close();
    }
  });
});

describe('bounded live reads and a quiet stop', () => {
  it('300 reviews for a namespace that did not opt in: live reads stop at the budget, the rest are denied, none injected', async () => {
    const { admit } = await import('../../src/admission/review.js');
    const { parseConfig } = await import('../../src/config/schema.js');
    const api = await KubeApiDouble.start();
    try {
      api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'elsewhere' } });
      let now = 0;
      const cache = await startNamespaceCache(api.kubeConfig(), silent, { now: () => now });
      const ports = {
        config: parseConfig({}),
        namespaceFacts: (ns: string) => cache.get(ns),
        fetchNamespaceFacts: (ns: string) => cache.fetch(ns),
        ranges: () => ({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraCIDRs: [], dnsIPs: ['10.96.0.10'], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } }),
        ensureKillSwitch: async () => ({ ok: true as const }),
      };
      const request = (i: number) => ({
        uid: `u${i}`,
        operation: 'CREATE',
        resource: { resource: 'pods' },
        namespace: 'elsewhere',
        name: `p${i}`,
        dryRun: false,
        object: { metadata: { name: `p${i}` }, spec: { containers: [{ name: 'a', image: 'b' }] } },
      });
      const reads = () => api.requests.filter((r) => r.verb === 'get' && r.resource === 'namespaces').length;
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 300; i++) {
        const o = await admit(request(i), ports);
        const key = 'reason' in o ? `${o.outcome}/${o.reason}` : o.outcome;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
      expect(reads()).toBe(20); // was 300: one live read per review
      expect(Object.fromEntries(outcomes)).toEqual({ 'skipped/not-opted-in': 20, 'denied/namespace-unverified': 280 });
      now += 1000; // a second later, 10 more
      for (let i = 0; i < 15; i++) await admit(request(i), ports);
      expect(reads()).toBe(30);
      await cache.stop();
    } finally {
      await api.close();
    }
  });

  it('stopping the watch logs no warning (no AbortError stack) and restarts nothing', async () => {
    const { captureLogger } = await import('../../test/killswitch/log.js');
    const api = await KubeApiDouble.start();
    try {
      const log = captureLogger();
      const cache = await startNamespaceCache(api.kubeConfig(), log.logger);
      await cache.stop();
      await new Promise((r) => setTimeout(r, 200));
      expect(log.lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([]);
      const watches = api.requests.filter((r) => r.verb === 'watch').length;
      await new Promise((r) => setTimeout(r, 100));
      expect(api.requests.filter((r) => r.verb === 'watch').length).toBe(watches);
    } finally {
      await api.close();
    }
  });
});
