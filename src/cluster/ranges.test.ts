import { describe, expect, it } from 'vitest';
import { PublicRangeError } from '../cidr/cidr.js';
import { allowedCIDRs, assertRangesSafe, missingRanges, notRoutedCIDRs, resolveRanges, standaloneRanges } from './ranges.js';

const none = { podCIDRs: [], serviceCIDRs: [], extraAllowedCIDRs: [], dnsIPs: [] };

describe('ranges', () => {
  it('config wins over discovery, kind by kind, and says so', () => {
    const r = resolveRanges(
      { ...none, podCIDRs: ['10.42.0.0/16'] },
      {
        podCIDRs: { values: ['10.244.0.0/16'], source: "nodes' spec.podCIDRs" },
        serviceCIDRs: { values: ['10.43.0.0/16'], source: 'ServiceCIDR API' },
      },
    );
    expect(r.podCIDRs).toEqual(['10.42.0.0/16']);
    expect(r.sources).toEqual({ podCIDRs: 'config cluster.podCIDRs', serviceCIDRs: 'ServiceCIDR API', dnsIPs: 'not found' });
    expect(missingRanges(r)).toEqual(['cluster.dnsIPs']);
    expect(missingRanges(undefined)).toHaveLength(3);
  });

  it('allowed ranges are merged in the given order; the client gets the IPv4 ones only', () => {
    const r = resolveRanges(
      { podCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'], serviceCIDRs: ['10.96.0.0/12', '10.96.0.0/16'], extraAllowedCIDRs: ['192.168.1.0/24'], dnsIPs: ['10.96.0.10'] },
      {},
    );
    expect(allowedCIDRs(r)).toEqual(['10.244.0.0/16', 'fd00:10:244::/56', '10.96.0.0/12', '192.168.1.0/24']);
    expect(notRoutedCIDRs(r)).toEqual(['10.244.0.0/16', '10.96.0.0/12', '192.168.1.0/24']);
  });

  it('standalone: config, else kubeadm defaults', () => {
    expect(standaloneRanges(none)).toMatchObject({ podCIDRs: ['10.244.0.0/16'], serviceCIDRs: ['10.96.0.0/12'], dnsIPs: ['10.96.0.10'] });
    expect(standaloneRanges({ ...none, serviceCIDRs: ['10.43.0.0/16'] }).serviceCIDRs).toEqual(['10.43.0.0/16']);
  });

  it('the guard names the source of a public range', () => {
    const r = resolveRanges(none, { podCIDRs: { values: ['100.0.0.0/8'], source: "nodes' spec.podCIDRs" } });
    expect(() => assertRangesSafe(r, { allowPublicRanges: false })).toThrow(PublicRangeError);
    expect(() => assertRangesSafe(r, { allowPublicRanges: false })).toThrow(/100\.0\.0\.0\/8 \(from nodes' spec\.podCIDRs\)/);
    expect(() => assertRangesSafe(r, { allowPublicRanges: true })).not.toThrow();
  });
});

describe('not-routed ranges and the policy agree on DNS', () => {
  it('keeps a cluster DNS IP outside the ranges (NodeLocal DNSCache) off the tunnel, as a /32', () => {
    const notRouted = notRoutedCIDRs;
    const base = { podCIDRs: ['10.42.0.0/16'], serviceCIDRs: ['10.43.0.0/16'], extraCIDRs: [], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } };
    expect(notRouted({ ...base, dnsIPs: ['169.254.20.10', '10.43.0.10'] })).toEqual(['10.42.0.0/15', '169.254.20.10/32']);
    expect(notRouted({ ...base, dnsIPs: ['10.43.0.10'] })).toEqual(['10.42.0.0/15']);
  });
});
