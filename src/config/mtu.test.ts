// The tunnel MTU and the client's retry count: defaults that fit the common pod networks, and a
// config that names the pod network's MTU is refused when a gateway's MTU cannot fit it.
import { describe, expect, it } from 'vitest';
import { clientSettings } from '../inject/settings.js';
import { ConfigError, MTU_OVERHEAD, parseConfig } from './schema.js';

const ranges = {
  podCIDRs: ['10.244.0.0/16'],
  serviceCIDRs: ['10.96.0.0/12'],
  extraCIDRs: [],
  dnsIPs: ['10.96.0.10'],
  sources: { podCIDRs: 'test', serviceCIDRs: 'test', dnsIPs: 'test' },
};

describe('gateway mtu and connectionRetryCount', () => {
  it('default to 1320 (fits a 1400-byte pod network with WireGuard over IPv6) and 3 echoes', () => {
    const gw = parseConfig({}).gateways.default!;
    expect(gw.mtu).toBe(1320);
    expect(gw.mtu + MTU_OVERHEAD).toBeLessThanOrEqual(1400);
    expect(gw.connectionRetryCount).toBe(3);
  });

  it('reach the routed pods as VPN_INTERFACE_MTU and CONNECTION_RETRY_COUNT', () => {
    const gw = parseConfig({ gateways: { default: { mtu: 1400, connectionRetryCount: 5 } } }).gateways.default!;
    const s = clientSettings(gw, ranges);
    expect(s.VPN_INTERFACE_MTU).toBe('1400');
    expect(s.CONNECTION_RETRY_COUNT).toBe('5');
  });

  it('refuses an mtu that does not fit cluster.podMTU, naming the largest that does', () => {
    let err: unknown;
    try {
      parseConfig({ cluster: { podMTU: 1400 }, gateways: { default: { mtu: 1370 } } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues.join('\n')).toMatch(/^gateways\.default\.mtu: 1370 does not fit cluster\.podMTU 1400: at most 1320/);
  });

  it('accepts an mtu that fits, and any mtu when podMTU is not set', () => {
    expect(parseConfig({ cluster: { podMTU: 1450 }, gateways: { default: { mtu: 1370 } } }).gateways.default!.mtu).toBe(1370);
    expect(parseConfig({ cluster: { podMTU: 1400 } }).gateways.default!.mtu).toBe(1320);
    expect(parseConfig({ gateways: { default: { mtu: 1420 } } }).gateways.default!.mtu).toBe(1420);
  });

  it('refuses a retry count outside 1..10', () => {
    expect(() => parseConfig({ gateways: { default: { connectionRetryCount: 0 } } })).toThrow(ConfigError);
  });
});
