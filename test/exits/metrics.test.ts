// Per-exit metrics on the webhook: pods given each exit at admission (not for dry runs).
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/schema.js';
import { createMetrics } from '../../src/server/metrics.js';
import { buildWebhookApp } from '../../src/server/webhook.js';

const config = parseConfig({
  gateways: { vpn: { exits: [{ name: 'vpn-a', vxlanId: 101 }, { name: 'vpn-b', vxlanId: 102 }] } },
  defaultGateway: 'vpn',
});

describe('exit metrics', () => {
  it('counts admissions per gateway and exit, dry runs aside; exposes the health gauge', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const app = buildWebhookApp({
      ports: {
        config,
        namespaceFacts: () => ({ labels: { 'podvpn.io/inject': 'enabled' }, annotations: {} }),
        ranges: () => ({ podCIDRs: ['10.42.0.0/16'], serviceCIDRs: ['10.43.0.0/16'], extraCIDRs: [], dnsIPs: ['10.43.0.10'], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } }),
        ensureKillSwitch: async () => ({ ok: true }),
      },
      logger: pino({ level: 'silent' }),
      metrics,
    });
    const review = (uid: string, dryRun: boolean, exit: string) => ({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        operation: 'CREATE',
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: 'downloads',
        dryRun,
        object: { metadata: { name: `p-${uid}`, annotations: { 'podvpn.io/exit': exit } }, spec: { containers: [{ name: 'app', image: 'x' }] } },
      },
    });
    try {
      for (const [uid, dry, exit] of [['1', false, 'vpn-a'], ['2', false, 'vpn-a'], ['3', false, 'vpn-b'], ['4', true, 'vpn-b']] as const) {
        const res = await app.inject({ method: 'POST', url: '/mutate', payload: review(uid, dry, exit) });
        expect(res.json().response.allowed).toBe(true);
      }
      metrics.exitHealthy.set({ exit: 'vpn-a' }, 1);
      const text = await metrics.registry.metrics();
      expect(text).toContain('podvpn_exit_assignments_total{gateway="vpn",exit="vpn-a"} 2');
      expect(text).toContain('podvpn_exit_assignments_total{gateway="vpn",exit="vpn-b"} 1');
      expect(text).toContain('podvpn_exit_healthy{exit="vpn-a"} 1');
    } finally {
      await app.close();
    }
  });
});
