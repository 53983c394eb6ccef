// The gateway side on its own (pure, no root): reading the rendered manifest, the gluetun-like
// firewall built from it, and the static agreements the kernel lab depends on.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type GatewayManifestSettings,
  gluetunFirewallCommands,
  gluetunSettings,
  parseSettingsScript,
  readGatewayManifest,
} from './lib/gateway.js';
import { EXIT_GROUP_DIR, EXIT_GROUP_FIXTURE, exitGroupFixtureFrom, exitGroupInputs, readExitGroup } from './lib/exits.js';
import { tryRun } from './lib/exec.js';
import { GATEWAY_FIXTURE, gatewayFixtureFrom, gatewayInputs, productInputs, renderManifests } from './lib/inputs.js';
import { ADDR, rewriteUpstream } from './lib/lab.js';

const runtime = {
  defaultIf: 'eth0',
  defaultIP: '10.244.1.20',
  localNetworks: [
    { iface: 'eth0', ip: '10.244.1.20', cidr: '169.254.1.1/32' },
    { iface: 'vxlan0', ip: '172.16.0.1', cidr: '172.16.0.0/24' },
  ],
  endpoint: { ip: '203.0.113.1', port: 51820, protocol: 'udp' as const },
};

describe('settings.sh', () => {
  it('reads the shapes pod-gateway settings files use', () => {
    expect(
      parseSettingsScript(`# c\nA="1 2"\nB='x'\\''y'\nexport C=3 # note\nD=\nnot a line\n`),
    ).toEqual({ A: '1 2', B: "x'y", C: '3', D: '' });
  });
});

describe('the gateway manifest', () => {
  it('the fixture (used only where kubectl is missing) parses', () => {
    const m = readGatewayManifest(readFileSync(GATEWAY_FIXTURE, 'utf8'), 'fixture');
    expect(m.podGateway.VXLAN_PORT).toBe('4789');
    expect(m.postRules.length).toBeGreaterThan(0);
    expect(gluetunSettings(m).vpnInterface).toBe('wg0');
  });

  it('the fixture still says what manifests/ says (refreshed on request; a drift is reported, not failed)', async () => {
    const rendered = await renderManifests();
    if (rendered === undefined) return;
    const fresh = gatewayFixtureFrom(rendered);
    if (process.env.REFRESH_GATEWAY_FIXTURE === '1') writeFileSync(GATEWAY_FIXTURE, fresh);
    const a = readGatewayManifest(fresh, 'render');
    const b = readGatewayManifest(readFileSync(GATEWAY_FIXTURE, 'utf8'), 'fixture');
    const same = JSON.stringify({ ...a, source: '' }) === JSON.stringify({ ...b, source: '' });
    if (!same) {
      process.stdout.write('[lab] NOTE: fixtures/gateway-manifest.fixture.yaml differs from manifests/; refresh it with REFRESH_GATEWAY_FIXTURE=1\n');
    }
  });

  it('the exit group (examples/exit-group): each exit\'s VXLAN_ID (its exit.sh, sourced by settings.sh) is the config\'s, the overlay is shared, each runs the exit probe', async () => {
    const g = await exitGroupInputs();
    expect(g.exits.map((e) => e.name)).toEqual(['vpn-a', 'vpn-b', 'vpn-c']);
    for (const e of g.exits) {
      expect(e.settings.podGateway.VXLAN_ID, e.name).toBe(String(e.vxlanId));
      expect(e.settings.podGateway.VXLAN_IP_NETWORK, e.name).toBe('172.16.0');
      expect(e.podLabels['app.kubernetes.io/instance'], e.name).toBe(`podvpn-gateway-${e.name}`);
      expect(e.probeArgs?.[0], e.name).toBe('exit-probe');
    }
    expect(new Set(g.exits.map((e) => e.vxlanId)).size).toBe(3);
  });

  it('the exit-group fixture (used only where kubectl is missing) parses and still says what the example says (drift reported, not failed)', async () => {
    const fixture = readExitGroup(readFileSync(EXIT_GROUP_FIXTURE, 'utf8'), 'fixture');
    expect(fixture.exits.map((e) => e.settings.podGateway.VXLAN_ID)).toEqual(['101', '102', '103']);
    if ((await tryRun('command -v kubectl')).code !== 0) return;
    const r = await tryRun(`kubectl kustomize ${JSON.stringify(EXIT_GROUP_DIR)}`, 60_000);
    expect(r.code, r.stderr).toBe(0);
    const fresh = exitGroupFixtureFrom(r.stdout);
    if (process.env.REFRESH_GATEWAY_FIXTURE === '1') writeFileSync(EXIT_GROUP_FIXTURE, fresh);
    const a = readExitGroup(fresh, 'render');
    const b = readExitGroup(readFileSync(EXIT_GROUP_FIXTURE, 'utf8'), 'fixture');
    const strip = (x: typeof a) => JSON.stringify({ ...x, source: '', exits: x.exits.map((e) => ({ ...e, settings: { ...e.settings, source: '' } })) });
    if (strip(a) !== strip(b)) {
      process.stdout.write('[lab] NOTE: fixtures/exit-group-manifest.fixture.yaml differs from manifests/examples/exit-group; refresh it with REFRESH_GATEWAY_FIXTURE=1\n');
    }
  });

  it('refuses manifests without the gateway pieces', () => {
    expect(() => readGatewayManifest('kind: ConfigMap\nmetadata: {name: x}\n', 't')).toThrow(/no Deployment/);
  });

  describe('as rendered now', async () => {
    const m: GatewayManifestSettings = await gatewayInputs();
    const client = productInputs().clientSettings;
    const g = gluetunSettings(m);
    it(`agrees with the webhook's client settings (source: ${m.source})`, () => {
      for (const key of ['VXLAN_ID', 'VXLAN_PORT', 'VXLAN_IP_NETWORK'] as const) {
        expect({ key, gateway: m.podGateway[key] }).toEqual({ key, gateway: client[key] });
      }
      expect(m.podGateway.VPN_INTERFACE).toBe(g.vpnInterface);
    });
    it('keeps gluetun on, on WireGuard, with a tunnel MTU that holds the client vxlan0 MTU', () => {
      expect(g.firewall).toBe(true);
      expect(g.vpnType).toBe('wireguard');
      expect(g.wireguardMtu).toBeGreaterThanOrEqual(Number(client.VPN_INTERFACE_MTU));
    });
  });
});

describe('the gluetun-like firewall', () => {
  const base = {
    firewall: true,
    vpnType: 'wireguard',
    vpnInterface: 'wg0',
    outboundSubnets: ['10.0.0.0/8'],
    inputPorts: [4789],
    vpnInputPorts: [],
    wireguardMtu: 1370,
    postRules: ['iptables -A FORWARD -i vxlan0 -o wg0 -j ACCEPT', 'iptables-nft -A INPUT -i vxlan0 -p udp --dport 67 -j ACCEPT'],
  };
  const cmds = gluetunFirewallCommands(base, runtime);

  it('drops by default on every chain, IPv4 and IPv6', () => {
    for (const chain of ['INPUT', 'OUTPUT', 'FORWARD']) {
      expect(cmds).toContain(`iptables --policy ${chain} DROP`);
      expect(cmds).toContain(`ip6tables --policy ${chain} DROP`);
    }
  });
  it('opens what gluetun opens, from the settings and the pod it runs in', () => {
    expect(cmds).toContain('iptables --append OUTPUT -o eth0 -s 10.244.1.20 -d 10.0.0.0/8 -j ACCEPT');
    expect(cmds).toContain('iptables --append INPUT -i vxlan0 -d 172.16.0.0/24 -j ACCEPT');
    expect(cmds).toContain('iptables --append INPUT -i eth0 -p udp --dport 4789 -j ACCEPT');
    expect(cmds).toContain('iptables --append OUTPUT -d 203.0.113.1 -o eth0 -p udp -m udp --dport 51820 -j ACCEPT');
    expect(cmds).toContain('iptables --append OUTPUT -o wg0 -j ACCEPT');
  });
  it('runs the post-rules verbatim after its own input rules, before the VPN connection rules', () => {
    const post = cmds.indexOf('iptables -A FORWARD -i vxlan0 -o wg0 -j ACCEPT');
    expect(post).toBeGreaterThan(cmds.indexOf('iptables --append INPUT -i eth0 -p udp --dport 4789 -j ACCEPT'));
    expect(post).toBeLessThan(cmds.indexOf('iptables --append OUTPUT -o wg0 -j ACCEPT'));
    expect(cmds).toContain('iptables -A INPUT -i vxlan0 -p udp --dport 67 -j ACCEPT');
  });
  it('adds nothing when the firewall is off', () => {
    expect(gluetunFirewallCommands({ ...base, firewall: false }, runtime)).toEqual([]);
  });
  it('reads both names of the firewall switch', () => {
    const m = (env: Record<string, string>): GatewayManifestSettings => ({ source: 't', podGateway: {}, gluetunEnv: env, postRules: [], dnsmasqConf: [] });
    expect(gluetunSettings(m({ FIREWALL: 'off' })).firewall).toBe(false);
    expect(gluetunSettings(m({ FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT: 'off' })).firewall).toBe(false);
    expect(gluetunSettings(m({})).firewall).toBe(true);
  });
});

describe("dnsmasq's upstreams", () => {
  it('public resolvers become the lab internet resolver; private ones are kept', () => {
    expect(rewriteUpstream('server=1.1.1.1')).toMatch(new RegExp(`^server=${ADDR.inetResolver.replaceAll('.', '\\.')}\\b`));
    expect(rewriteUpstream('server=10.96.0.10')).toBe('server=10.96.0.10');
    expect(rewriteUpstream('no-resolv')).toBe('no-resolv');
  });
});
