import { describe, expect, it } from 'vitest';
import { gateMissing, hexToIPv4, linkNames, routes } from './gate-check.js';

// Captured shapes of /proc/net/dev and /proc/net/route (Linux 6.x), trimmed to the lines that matter.
const DEV_HEADER =
  'Inter-|   Receive                                                |  Transmit\n' +
  ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n';
const dev = (...names: string[]) => DEV_HEADER + names.map((n) => `${n.padStart(6)}: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0`).join('\n') + '\n';
const ROUTE_HEADER = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n';
const route = (...lines: string[]) => ROUTE_HEADER + lines.join('\n') + '\n';
// default via 172.16.0.1 dev vxlan0; 172.16.0.0/24 dev vxlan0; default via 10.42.0.1 dev eth0
const DEFAULT_VXLAN = 'vxlan0\t00000000\t010010AC\t0003\t0\t0\t0\t00000000\t0\t0\t0';
const OVERLAY = 'vxlan0\t000010AC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0';
const DEFAULT_ETH0 = 'eth0\t00000000\t01002A0A\t0003\t0\t0\t0\t00000000\t0\t0\t0';
const WANT = { gatewayIP: '172.16.0.1', readyLink: 'podvpn-ready' };

describe('gate check (reads the pod netns /proc/net files)', () => {
  it('decodes /proc/net/route addresses (host byte order)', () => {
    expect(hexToIPv4('010010AC')).toBe('172.16.0.1');
    expect(hexToIPv4('00FFFFFF')).toBe('255.255.255.0');
    expect(hexToIPv4('zz')).toBe('?');
    expect(routes(route(OVERLAY))).toEqual([{ iface: 'vxlan0', destination: '172.16.0.0', gateway: '0.0.0.0', mask: '255.255.255.0' }]);
    expect(linkNames(dev('lo', 'eth0', 'vxlan0'))).toEqual(['lo', 'eth0', 'vxlan0']);
  });

  it('passes only with vxlan0, the default route via the gateway on vxlan0 and the ready marker', () => {
    expect(gateMissing({ netDev: dev('lo', 'eth0', 'vxlan0', 'podvpn-ready'), netRoute: route(DEFAULT_VXLAN, OVERLAY) }, WANT)).toEqual([]);
  });

  it('a fresh pod (no agent): says all three are missing and shows the default route it has', () => {
    const missing = gateMissing({ netDev: dev('lo', 'eth0'), netRoute: route(DEFAULT_ETH0) }, WANT);
    expect(missing).toHaveLength(3);
    expect(missing[0]).toMatch(/no vxlan0 link/);
    expect(missing[1]).toMatch(/no default route via 172\.16\.0\.1 dev vxlan0 \(default routes now: via 10\.42\.0\.1 dev eth0/);
    expect(missing[2]).toMatch(/no podvpn-ready marker .*firewall/);
  });

  it('tunnel built but no marker yet (the firewall is not in place): not ready', () => {
    expect(gateMissing({ netDev: dev('lo', 'eth0', 'vxlan0'), netRoute: route(DEFAULT_VXLAN) }, WANT)).toEqual([
      expect.stringMatching(/podvpn-ready/),
    ]);
  });

  it('a default route via another next hop on vxlan0 does not count', () => {
    const other = 'vxlan0\t00000000\t020010AC\t0003\t0\t0\t0\t00000000\t0\t0\t0'; // via 172.16.0.2
    expect(gateMissing({ netDev: dev('vxlan0', 'podvpn-ready'), netRoute: route(other) }, WANT)).toEqual([
      expect.stringMatching(/no default route via 172\.16\.0\.1/),
    ]);
  });

  it('a link whose name only contains the marker does not count', () => {
    expect(gateMissing({ netDev: dev('vxlan0', 'podvpn-ready2'), netRoute: route(DEFAULT_VXLAN) }, WANT)).toHaveLength(1);
  });
});
