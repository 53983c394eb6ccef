// Exit groups in the config: one schema (src/config/schema.ts) for server, CLI and manifests.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../config/schema.js';

const group = (exits: unknown[], extra: Record<string, unknown> = {}) => ({ gateways: { vpn: { exits, ...extra } }, defaultGateway: 'vpn' });

function issuesOf(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

describe('exit groups in the config', () => {
  it('resolves each exit to its own Service, VXLAN id and health URL, sharing the overlay and .1', () => {
    const gw = parseConfig(group([{ name: 'vpn-a', vxlanId: 101 }, { name: 'vpn-b', vxlanId: 102, address: 'b.example.internal' }], { overlayNetwork: '172.16.5.0/24' })).gateways.vpn!;
    expect(gw.exits).toEqual([
      { name: 'vpn-a', address: 'podvpn-gateway-vpn-a.podvpn-system.svc.cluster.local', vxlanId: 101, healthURL: 'http://podvpn-gateway-vpn-a.podvpn-system.svc.cluster.local:9998/' },
      { name: 'vpn-b', address: 'b.example.internal', vxlanId: 102, healthURL: 'http://b.example.internal:9998/' },
    ]);
    expect(gw.overlayGatewayIP).toBe('172.16.5.1');
    expect(gw.dns).toBe('172.16.5.1');
    // Callers that choose no exit see the first one (injection always chooses).
    expect(gw.address).toBe(gw.exits![0]!.address);
    expect(gw.vxlanId).toBe(101);
  });

  it('leaves a single-exit gateway exactly as before (no exits key, VXLAN id 42 by default)', () => {
    const gw = parseConfig({}).gateways.default!;
    expect(gw).not.toHaveProperty('exits');
    expect(gw.vxlanId).toBe(42);
    expect(gw.address).toBe('podvpn-gateway-default.podvpn-system.svc.cluster.local');
  });

  it('refuses two exits with one name, and an exit named like a gateway', () => {
    const issues = issuesOf({ gateways: { default: {}, vpn: { exits: [{ name: 'vpn-a', vxlanId: 101 }, { name: 'vpn-a', vxlanId: 102 }, { name: 'default', vxlanId: 103 }] } } });
    expect(issues).toEqual([
      'gateways.vpn.exits[1].name: "vpn-a" is also the name of exit "vpn-a" of gateway "vpn"; exit and gateway names must all differ (each names a Service podvpn-gateway-<name>)',
      'gateways.vpn.exits[2].name: "default" is also the name of gateway "default"; exit and gateway names must all differ (each names a Service podvpn-gateway-<name>)',
    ]);
  });

  it('refuses a VXLAN id shared by two exits, or by an exit and a gateway (either order)', () => {
    expect(issuesOf({ gateways: { default: {}, vpn: { exits: [{ name: 'a', vxlanId: 42 }, { name: 'b', vxlanId: 43 }, { name: 'c', vxlanId: 43 }] } } })).toEqual([
      'gateways.vpn.exits[0].vxlanId: 42 is also used by gateway "default"; each exit needs its own VXLAN id',
      'gateways.vpn.exits[2].vxlanId: 43 is also used by exit "b" of gateway "vpn"; each exit needs its own VXLAN id',
    ]);
    expect(issuesOf({ gateways: { vpn: { exits: [{ name: 'a', vxlanId: 7 }] }, other: { vxlanId: 7 } }, defaultGateway: 'vpn' })).toEqual([
      'gateways.other.vxlanId: is also used by exit "a" of gateway "vpn"; each gateway needs its own VXLAN id',
    ]);
  });

  it('refuses an exit that sets what the group shares (overlay, DNS, MTU, port, retries), with the reason', () => {
    const issues = issuesOf(group([{ name: 'a', vxlanId: 101, overlayNetwork: '172.16.1.0/24', mtu: 1400 }]));
    expect(issues).toHaveLength(2);
    expect(issues[0]).toMatch(/^gateways\.vpn\.exits\[0\]\.overlayNetwork: is shared by the exits of a group .* set it on the gateway/);
    expect(issues[1]).toMatch(/^gateways\.vpn\.exits\[0\]\.mtu: is shared/);
  });

  it('refuses a group-level vxlanId or address (they are per exit), an empty group, unknown keys and a non-http health URL', () => {
    expect(issuesOf(group([{ name: 'a', vxlanId: 101 }], { vxlanId: 5, address: 'x.example' }))).toEqual([
      'gateways.vpn.vxlanId: is set per exit in an exit group (each exit has its own VXLAN id); remove it here',
      'gateways.vpn.address: is set per exit in an exit group (each exit is its own gateway pod and Service); remove it here',
    ]);
    expect(issuesOf(group([]))[0]).toMatch(/^gateways\.vpn\.exits: /);
    expect(issuesOf(group([{ name: 'a', vxlanId: 101, secret: 'x' }]))[0]).toMatch(/^gateways\.vpn\.exits\[0\]: Unrecognized key/);
    expect(issuesOf(group([{ name: 'a', vxlanId: 101, healthURL: 'ftp://a/' }]))).toEqual(['gateways.vpn.exits[0].healthURL: must be an http(s) URL']);
    expect(issuesOf(group([{ name: 'A_b', vxlanId: 101 }]))).toEqual(['gateways.vpn.exits[0].name: exit names must be DNS labels (a-z, 0-9, -)']);
  });
});
