import { describe, expect, it } from 'vitest';
import type { V1NetworkPolicy, V1NetworkPolicySpec } from '@kubernetes/client-node';
import { findEgressBypasses } from './bypass.js';
import { buildKillSwitchPolicy } from './policy.js';

const ns = new Set(['downloads']);
const policy = (name: string, spec: V1NetworkPolicySpec, namespace = 'downloads', labels: Record<string, string> = {}): V1NetworkPolicy => ({
  metadata: { name, namespace, labels },
  spec,
});

describe('finding egress policies that void the kill switch', () => {
  it('flags allow-all egress, an open ipBlock, and a Helm-style egress: [{}]', () => {
    const found = findEgressBypasses(
      [
        policy('allow-all-egress', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] }),
        policy('internet', { podSelector: { matchLabels: { app: 'qbittorrent' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }] }] }),
        policy('chart', { podSelector: { matchLabels: { app: 'sonarr' } }, egress: [{ to: [] }] }),
      ],
      ns,
    );
    expect(found.map((f) => f.name)).toEqual(['allow-all-egress', 'chart', 'internet']);
    expect(found.find((f) => f.name === 'internet')!.allows).toMatch(/0\.0\.0\.0\/0 except 10\.0\.0\.0\/8, which covers public/);
  });

  it('leaves alone what cannot open the internet to routed pods', () => {
    const ranges = { podCIDRs: ['10.42.0.0/16'], serviceCIDRs: ['10.43.0.0/16'], extraCIDRs: [], dnsIPs: ['10.43.0.10'], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } };
    const found = findEgressBypasses(
      [
        buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges }),
        policy('ingress-only', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{}] }),
        policy('lan', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '192.168.0.0/16' } }] }] }),
        policy('peers', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: {} }] }] }),
        policy('unrouted-only', { podSelector: { matchExpressions: [{ key: 'podvpn.io/routed', operator: 'DoesNotExist' }] }, policyTypes: ['Egress'], egress: [{}] }),
        policy('elsewhere', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] }, 'photos'),
        policy('everything-but-public', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['0.0.0.0/1', '128.0.0.0/1'] } }] }] }),
      ],
      ns,
    );
    expect(found).toEqual([]);
  });
});
