// The reply's warnings, fitted as the API server fits them (k8s.io/apiserver/pkg/endpoints/filters/
// warning.go): whole while their total stays under 4,096 runes, else each cut to 256 and the rest dropped.

import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/schema.js';
import { type AdmissionPorts, type AdmissionRequest, admit, buildResponse, fitWarnings, WARNING_ITEM_RUNES, WARNINGS_TOTAL_RUNES } from './review.js';

const runes = (s: string) => [...s].length;

describe('fitWarnings', () => {
  it('passes warnings whole while their total is under 4,096 runes (no cut at 120)', () => {
    const long = `dry run: podvpn would create NetworkPolicy ${'n'.repeat(63)}/podvpn-killswitch-default (the kill switch for gateway "default") before admitting this pod; nothing was written`;
    expect(long.length).toBeGreaterThan(200);
    expect(fitWarnings([long, 'short'])).toEqual([long, 'short']);
    const justUnder = ['a'.repeat(2000), 'b'.repeat(2095)];
    expect(fitWarnings(justUnder)).toEqual(justUnder);
  });

  it('beyond 4,096 runes in total: each cut to 256 runes, and what does not fit is dropped', () => {
    const many = Array.from({ length: 40 }, (_, i) => `${i}:${'x'.repeat(300)}`);
    const fitted = fitWarnings(many);
    expect(fitted.length).toBeGreaterThan(0);
    expect(fitted.length).toBeLessThan(many.length);
    for (const w of fitted) expect(runes(w)).toBeLessThanOrEqual(WARNING_ITEM_RUNES);
    expect(fitted.reduce((n, w) => n + runes(w), 0)).toBeLessThan(WARNINGS_TOTAL_RUNES);
    expect(fitted[0]).toMatch(/^0:x+\.\.\.$/);
  });

  it('counts runes, not UTF-16 units: an emoji is one rune', () => {
    const w = '🙂'.repeat(WARNING_ITEM_RUNES + 10);
    const [cut] = fitWarnings([w, 'y'.repeat(WARNINGS_TOTAL_RUNES)]);
    expect(runes(cut!)).toBe(WARNING_ITEM_RUNES);
    expect(cut!.endsWith('🙂...')).toBe(true);
  });

  it('buildResponse uses it', () => {
    const w = `podvpn: ${'z'.repeat(500)}`;
    const body = buildResponse({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'u', { outcome: 'skipped', reason: 'already-injected', warnings: [w] }) as {
      response: { warnings: string[] };
    };
    expect(body.response.warnings).toEqual([w]);
  });
});

describe('forged reviews (the webhook has no caller authentication)', () => {
  it('300 forged "already injected" pods in kube-system or naming an Object.prototype member ensure (write) no policy', async () => {
    const { admit } = await import('./review.js');
    const { parseConfig } = await import('../config/schema.js');
    const ensured: string[] = [];
    const ports = {
      config: parseConfig({}),
      namespaceFacts: () => ({ labels: { 'podvpn.io/inject': 'enabled' }, annotations: {} }),
      ranges: () => ({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], extraCIDRs: [], dnsIPs: ['10.96.0.10'], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } }),
      ensureKillSwitch: async (ns: string, gw: string) => {
        ensured.push(`${ns}/${gw}`);
        return { ok: true as const };
      },
    };
    const forged = (i: number, namespace: string, gateway: string) => ({
      uid: `f${i}`,
      operation: 'CREATE',
      resource: { resource: 'pods' },
      namespace,
      name: `x${i}`,
      dryRun: false,
      object: {
        metadata: { name: `x${i}`, labels: { 'podvpn.io/routed': gateway }, annotations: { 'podvpn.io/status': '{}' } },
        spec: { containers: [{ name: 'a', image: 'b' }] },
      },
    });
    const outcomes = new Map<string, number>();
    const names = ['default', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];
    for (let i = 0; i < 300; i++) {
      const req = i % 2 === 0 ? forged(i, 'kube-system', 'default') : forged(i, 'downloads', names[1 + (i % 5)]!);
      const o = await admit(req, ports);
      const key = 'reason' in o ? `${o.outcome}/${o.reason}` : o.outcome;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    expect(ensured).toEqual([]); // was 300: 150 in kube-system, 150 for "gateways" like constructor
    expect(Object.fromEntries(outcomes)).toEqual({ 'skipped/excluded-namespace': 150, 'denied/unknown-gateway': 150 });
    // negative control: a real injected pod of a configured gateway does ensure its policy
    await admit(forged(999, 'downloads', 'default'), ports);
    expect(ensured).toEqual(['downloads/default']);
  });
});

describe('admit: the review object is checked to be a pod once, at the edge', () => {
  const ranges = { podCIDRs: ['10.42.0.0/16'], serviceCIDRs: ['10.43.0.0/16'], extraCIDRs: [], dnsIPs: ['10.43.0.10'], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } };
  const calls: string[] = [];
  const ports: AdmissionPorts = {
    config: parseConfig({}),
    namespaceFacts: () => undefined,
    fetchNamespaceFacts: async (ns) => {
      calls.push(`fetch ${ns}`);
      return { labels: { 'podvpn.io/inject': 'enabled' }, annotations: {} };
    },
    ranges: () => ranges,
    ensureKillSwitch: async (ns, gateway) => {
      calls.push(`ensure ${ns}/${gateway}`);
      return { ok: true };
    },
  };
  const request = (object: unknown, operation = 'CREATE'): AdmissionRequest => ({
    uid: 'u',
    operation,
    resource: { resource: 'pods' },
    namespace: 'downloads',
    name: 'p',
    dryRun: false,
    object,
  });

  it.each([
    ['a string', 'pod', /the pod in the AdmissionReview is not an object/],
    ['an array', [{ spec: {} }], /the pod in the AdmissionReview is not an object/],
    ['null', null, /the pod in the AdmissionReview is not an object/],
    ['a pod whose spec is a string', { spec: 'x' }, /the pod's spec is not an object/],
    ['a pod whose metadata is a list', { metadata: [], spec: { containers: [{ name: 'a' }] } }, /the pod's metadata is not an object/],
  ])('a CREATE carrying %s is denied as invalid-pod, with no API read and no policy written', async (_, object, message) => {
    calls.length = 0;
    const outcome = await admit(request(object), ports);
    expect(outcome).toMatchObject({ outcome: 'denied', reason: 'invalid-pod' });
    expect(outcome.outcome === 'denied' && outcome.message).toMatch(message);
    expect(calls).toEqual([]);
  });

  it('a review that is not a pod CREATE is skipped whatever its object', async () => {
    expect(await admit(request('junk', 'UPDATE'), ports)).toEqual({ outcome: 'skipped', reason: 'not-pod-create', warnings: [] });
  });

  it('an injected pod is re-admitted through the gateway its routed label names: that policy is ensured', async () => {
    calls.length = 0;
    const pod = {
      metadata: { labels: { 'podvpn.io/routed': 'default' }, annotations: { 'podvpn.io/status': '{}' } },
      spec: { containers: [{ name: 'a' }] },
    };
    expect(await admit(request(pod), ports)).toEqual({ outcome: 'skipped', reason: 'already-injected', warnings: [] });
    expect(calls).toEqual(['fetch downloads', 'ensure downloads/default']);
  });
});
