// The rendered gateway carries what the data-plane lab (test/dataplane) and the routed pods need:
// names, ports, ranges, interfaces, MTU, DNS, and gluetun's post-rules; and it agrees with podvpn's
// config (manifests/base/podvpn.yaml). The lab proves the wiring in a real kernel; this test pins
// the settings it reads.

import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { SYSTEM_NAMESPACE } from '../../src/constants.js';
import { type Config, type Gateway, gatewayServiceName, parseConfig } from '../../src/config/schema.js';
import { type K8sObject, find, parseShellSettings, render, volumeConfigMap } from './render.js';

const NON_PUBLIC = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];
/** Link-local: NodeLocal DNSCache's address (the gateway's cluster DNS on such clusters) lives there. */
const LINK_LOCAL = '169.254.0.0/16';
/** WireGuard's worst-case overhead (outer IPv6): 40 + 8 (UDP) + 32 (WireGuard). */
const WIREGUARD_OVERHEAD = 80;
/**
 * The smallest pod network MTU the defaults must fit: Flannel or Calico VXLAN on a 1450-byte
 * underlay (OpenStack, some clouds) is 1400; on a 1500 underlay 1450.
 */
const SMALLEST_POD_MTU = 1400;

interface Rendered {
  objects: K8sObject[];
  config: Config;
}

function load(dir: string): Rendered {
  const objects = render(dir);
  const webhook = find(objects, 'Deployment', 'podvpn-webhook', SYSTEM_NAMESPACE);
  const cm = volumeConfigMap(objects, webhook, 'config');
  return { objects, config: parseConfig(parseYaml(cm.data['config.yaml'] as string), `${dir} config`) };
}

interface GatewayView {
  deployment: K8sObject;
  service: K8sObject;
  gluetun: K8sObject;
  env: Record<string, string>;
  settings: Record<string, string>;
  /** Every key of the settings ConfigMap (the volume at /config hides the image's /config). */
  settingsFiles: string[];
  postRules: string[];
  dnsmasq: string[];
}

function gatewayView(objects: K8sObject[], name: string): GatewayView {
  const deployment = find(objects, 'Deployment', gatewayServiceName(name), SYSTEM_NAMESPACE);
  const service = find(objects, 'Service', gatewayServiceName(name), SYSTEM_NAMESPACE);
  const spec = deployment.spec.template.spec;
  const gluetun = (spec.initContainers as K8sObject[]).find((c) => c.name === 'gluetun')!;
  const env = Object.fromEntries((gluetun.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]));
  const settingsCm = volumeConfigMap(objects, deployment, 'settings');
  const firewallCm = volumeConfigMap(objects, deployment, 'firewall');
  const lines = (s: string): string[] => s.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  return {
    deployment,
    service,
    gluetun,
    env,
    settings: parseShellSettings(settingsCm.data['settings.sh'] as string),
    settingsFiles: Object.keys(settingsCm.data ?? {}).sort(),
    postRules: lines(firewallCm.data['post-rules.txt'] as string),
    dnsmasq: lines(firewallCm.data['dnsmasq.conf'] as string),
  };
}

function checkAgreesWithConfig(gw: Gateway, v: GatewayView, config: Config): void {
  // The address the routed pods resolve is this headless Service.
  expect(gw.address).toBe(`${v.service.metadata.name}.${SYSTEM_NAMESPACE}.svc.${config.cluster.domain}`);
  expect(v.service.spec.clusterIP).toBe('None');
  expect(v.service.spec.ports).toEqual([{ name: 'vxlan', port: gw.vxlanPort, targetPort: gw.vxlanPort, protocol: 'UDP' }]);
  const podLabels = v.deployment.spec.template.metadata.labels as Record<string, string>;
  for (const [k, val] of Object.entries(v.service.spec.selector as Record<string, string>)) expect(podLabels[k], k).toBe(val);
  // The service selects this gateway's pods only (two gateways must not share a Service).
  expect(v.service.spec.selector['app.kubernetes.io/instance']).toBe(gatewayServiceName(gw.name));
  // VXLAN and the overlay.
  expect(v.settings.VXLAN_ID).toBe(String(gw.vxlanId));
  expect(v.settings.VXLAN_PORT).toBe(String(gw.vxlanPort));
  expect(v.settings.VXLAN_IP_NETWORK).toBe(gw.overlayNetwork.replace(/\.0\/24$/, ''));
  expect(`${v.settings.VXLAN_IP_NETWORK}.1`).toBe(gw.overlayGatewayIP);
  expect(gw.dns).toBe(gw.overlayGatewayIP);
  // The overlay's broadcast address is reserved (dnsmasq.conf's header): gateway_sidecar.sh's range
  // ends at .255, which dnsmasq would lease in the class B 172.16/12.
  expect(v.dnsmasq.filter((l) => l.startsWith('dhcp-host='))).toEqual([`dhcp-host=id:podvpn-broadcast,${v.settings.VXLAN_IP_NETWORK}.255`]);
  // MTU: the routed pods' vxlan0 and the gateway's vxlan0 equal the tunnel's MTU, which fits inside
  // the smallest pod network with WireGuard's overhead.
  // pod-gateway sets vxlan0 to VPN_INTERFACE_MTU as it is (its min() test never works), so it
  // must fit the pod network with VXLAN's 50 bytes, and WireGuard's 80 around the tunnel.
  expect(v.settings.VPN_INTERFACE_MTU).toBe(String(gw.mtu));
  expect(Number(v.env.WIREGUARD_MTU)).toBe(gw.mtu);
  expect(Number(v.env.WIREGUARD_MTU) + WIREGUARD_OVERHEAD).toBeLessThanOrEqual(SMALLEST_POD_MTU);
  expect(Number(v.settings.VPN_INTERFACE_MTU) + 50).toBeLessThanOrEqual(SMALLEST_POD_MTU);
  // gateway_init.sh reads /config/nat.conf under set -e; the volume hides the image's /config.
  expect(v.settingsFiles).toContain('nat.conf');
  expect(v.settingsFiles).toContain('settings.sh');
  // The cluster domain goes to cluster DNS; everything else over the tunnel.
  expect((v.settings.DNS_LOCAL_CIDRS ?? '').split(' ')).toContain(config.cluster.domain);
  // The client image is the one the webhook injects (same scripts, same settings format).
  for (const c of [...v.deployment.spec.template.spec.initContainers, ...v.deployment.spec.template.spec.containers] as K8sObject[]) {
    if (c.name !== 'gluetun') expect(c.image, c.name).toBe(config.images.client);
  }
  // Its VPN Secret is its own.
  expect(v.gluetun.envFrom[0].secretRef.name).toBe(`${gatewayServiceName(gw.name)}-vpn`);
}

describe('gateway "default" in the default install', () => {
  const { objects, config } = load('.');
  const gw = config.gateways[config.defaultGateway]!;
  const v = gatewayView(objects, gw.name);

  it('agrees with podvpn config: Service name, VXLAN id/port, overlay, MTU, DNS domain, image, Secret', () => {
    expect(gw.name).toBe('default');
    checkAgreesWithConfig(gw, v, config);
  });

  it('uses VXLAN port 4789, never 8472 (Flannel and Cilium)', () => {
    expect(v.settings.VXLAN_PORT).toBe('4789');
  });

  it('keeps gluetun firewall on, with the non-public ranges as outbound subnets', () => {
    expect(v.env.FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT).toBe('on');
    expect(Object.keys(v.env)).not.toContain('FIREWALL');
    const subnets = v.env.FIREWALL_OUTBOUND_SUBNETS!.split(',');
    expect(subnets).toEqual([...NON_PUBLIC, LINK_LOCAL]);
    for (const s of subnets) {
      const [addr] = ipaddr.parseCIDR(s);
      expect(['private', 'carrierGradeNat', 'linkLocal'], s).toContain(addr.range());
    }
    // pod-gateway's local ranges are the same set: route back to the cluster via eth0.
    expect(v.settings.VPN_LOCAL_CIDRS!.split(' ')).toEqual(subnets);
    // Nothing is opened to every source.
    expect(v.env.FIREWALL_INPUT_PORTS).toBe('');
    expect(v.env.FIREWALL_VPN_INPUT_PORTS).toBe('');
  });

  it('names the same VPN interface in gluetun and pod-gateway, and blocks non-VPN forwarding', () => {
    expect(v.env.VPN_TYPE).toBe('wireguard');
    expect(v.env.VPN_INTERFACE).toBe('wg0');
    expect(v.settings.VPN_INTERFACE).toBe(v.env.VPN_INTERFACE);
    expect(v.settings.VPN_BLOCK_OTHER_TRAFFIC).toBe('true');
    // pod-gateway opens OUTPUT to VPN_TRAFFIC_PORT for any destination; 443 would let the gateway's
    // own HTTPS (health checks, public-IP lookups) leave via eth0 while the tunnel is down.
    expect(v.settings.VPN_TRAFFIC_PORT).not.toBe('443');
  });

  it('post-rules: VXLAN and ICMP in from the cluster, DHCP/DNS/ICMP on vxlan0, forward only into the tunnel', () => {
    const rules = v.postRules;
    for (const r of rules) {
      // gluetun runs lines that start with "iptables "; a failing line makes it tear its firewall
      // down, so only appends that cannot fail (and inserted drops) are allowed: never a delete.
      expect(r, r).toMatch(/^iptables -(A (INPUT|OUTPUT|FORWARD) .* -j ACCEPT|I OUTPUT .* -j DROP)$/);
    }
    for (const s of NON_PUBLIC) {
      expect(rules).toContain(`iptables -A INPUT -i eth0 -s ${s} -p udp --dport ${v.settings.VXLAN_PORT} -j ACCEPT`);
      expect(rules).toContain(`iptables -A INPUT -i eth0 -s ${s} -p icmp -j ACCEPT`);
    }
    expect(rules).toContain('iptables -A INPUT -i vxlan0 -p udp --dport 67 -j ACCEPT');
    expect(rules).toContain('iptables -A INPUT -i vxlan0 -p udp --dport 53 -j ACCEPT');
    expect(rules).toContain('iptables -A INPUT -i vxlan0 -p tcp --dport 53 -j ACCEPT');
    expect(rules).toContain('iptables -A INPUT -i vxlan0 -p icmp -j ACCEPT');
    expect(rules).toContain('iptables -A OUTPUT -o vxlan0 -j ACCEPT');
    expect(rules).toContain(`iptables -A FORWARD -i vxlan0 -o ${v.env.VPN_INTERFACE} -j ACCEPT`);
    // The return path: gluetun re-applies its post-rules on every start, so replies reach the routed
    // pods even after its firewall was flushed (which erases pod-gateway's own FORWARD rules).
    const ret = `iptables -A FORWARD -i ${v.env.VPN_INTERFACE} -o vxlan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`;
    expect(rules).toContain(ret);
    const forwards = rules.filter((r) => r.includes(' FORWARD ') && r !== ret);
    for (const r of forwards) expect(r, 'forwarding only into the VPN interface').toContain(`-o ${v.env.VPN_INTERFACE} `);
    // pod-gateway's OUTPUT accept for VPN_TRAFFIC_PORT (any destination, UDP and TCP) is narrowed to
    // the WireGuard socket's own packets (fwmark 51820 = 0xca6c): inserted drops, the only -o eth0.
    expect(rules).toContain(`iptables -I OUTPUT -o eth0 -p udp --dport ${v.settings.VPN_TRAFFIC_PORT} -m mark ! --mark 0xca6c -j DROP`);
    expect(rules).toContain(`iptables -I OUTPUT -o eth0 -p tcp --dport ${v.settings.VPN_TRAFFIC_PORT} -j DROP`);
    expect(rules.filter((r) => r.includes('-o eth0') && !r.endsWith(' -j DROP'))).toEqual([]);
  });

  it('DNS: dnsmasq never uses resolv.conf and its upstreams are reachable only through the tunnel', () => {
    expect(v.env.DNS_SERVER).toBe('off'); // gluetun's :53 would collide with dnsmasq
    // DOT is a deprecated alias gluetun reads first and warns about.
    expect(Object.keys(v.env)).not.toContain('DOT');
    // dnsmasq does not validate DNSSEC (the public upstreams do; a resolver that strips it would
    // make every internet name fail).
    expect(v.settings.GATEWAY_ENABLE_DNSSEC).toBe('false');
    expect(v.dnsmasq).toContain('no-resolv');
    const upstreams = v.dnsmasq.filter((l) => l.startsWith('server=')).map((l) => l.slice('server='.length));
    expect(upstreams.length).toBeGreaterThan(0);
    for (const u of upstreams) {
      expect(u, 'no per-domain upstream here: cluster names are pod-gateway DNS_LOCAL_CIDRS').not.toContain('/');
      const addr = ipaddr.parse(u);
      expect(addr.range(), u).toBe('unicast');
      for (const s of [...NON_PUBLIC, LINK_LOCAL]) expect(addr.match(ipaddr.parseCIDR(s)), `${u} in ${s}`).toBe(false);
    }
  });

  it('starts gateway-init, then gluetun as a native sidecar gated on a healthy tunnel, then dnsmasq', () => {
    const spec = v.deployment.spec.template.spec;
    expect((spec.initContainers as K8sObject[]).map((c) => c.name)).toEqual(['gateway-init', 'gluetun']);
    expect((spec.containers as K8sObject[]).map((c) => c.name)).toEqual(['gateway-sidecar']);
    // gateway_init.sh, then the routing kill switch (iif vxlan0: the tunnel's table or unreachable).
    const init = spec.initContainers[0].command as string[];
    expect(init.slice(0, 2)).toEqual(['/bin/bash', '-c']);
    expect(init[2]).toMatch(/^set -e\n\/bin\/gateway_init.sh\n/);
    expect(init[2]).toContain('ip rule add iif vxlan0 lookup 51820 pref 51');
    expect(init[2]).toContain('ip rule add iif vxlan0 unreachable pref 52');
    // gluetun's start wrapper: its stale routing rules removed, then its own entrypoint.
    const g = v.gluetun.command as string[];
    expect(g.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(g[2]).toMatch(/ip -4 rule del pref "\$pref"/);
    expect(g[2]).toMatch(/exec \/gluetun-entrypoint\n?$/);
    expect(spec.containers[0].command).toEqual(['/bin/gateway_sidecar.sh']);
    expect(v.gluetun.restartPolicy).toBe('Always');
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(v.gluetun[probe].exec.command, probe).toEqual(['/gluetun-entrypoint', 'healthcheck']);
    }
    // The post-rules file is where gluetun reads it.
    const mount = (v.gluetun.volumeMounts as Array<{ name: string; mountPath: string; subPath?: string }>).find((m) => m.name === 'firewall')!;
    expect(mount).toMatchObject({ mountPath: '/iptables/post-rules.txt', subPath: 'post-rules.txt' });
    expect(v.deployment.spec.replicas).toBe(1);
    expect(v.deployment.spec.strategy.type).toBe('Recreate');
  });

  it('keeps the env order manifests/README.md patches by index', () => {
    const names = (v.gluetun.env as Array<{ name: string }>).map((e) => e.name);
    expect(names[4]).toBe('FIREWALL_OUTBOUND_SUBNETS');
    expect(v.deployment.spec.template.spec.initContainers[1].name).toBe('gluetun');
  });

  it('keeps gluetun control and health servers on loopback', () => {
    expect(v.env.HTTP_CONTROL_SERVER_ADDRESS).toBe('127.0.0.1:8000');
    expect(v.env.HEALTH_SERVER_ADDRESS).toBe('127.0.0.1:9999');
  });

  it('pins every image by version', () => {
    const spec = v.deployment.spec.template.spec;
    for (const c of [...spec.initContainers, ...spec.containers] as K8sObject[]) {
      expect(c.image, c.name).toMatch(/:v\d+\.\d+\.\d+$/);
    }
  });
});

describe('example: a second named gateway', () => {
  const { objects, config } = load('examples/second-gateway');

  it('adds gateway "nl" next to "default", each agreeing with the config, with distinct VXLAN ids', () => {
    expect(Object.keys(config.gateways).sort()).toEqual(['default', 'nl']);
    const ids = new Set<string>();
    for (const gw of Object.values(config.gateways)) {
      const v = gatewayView(objects, gw.name);
      checkAgreesWithConfig(gw, v, config);
      ids.add(v.settings.VXLAN_ID!);
    }
    expect(ids.size).toBe(2);
  });
});
