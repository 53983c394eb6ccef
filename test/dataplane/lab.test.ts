// The data-plane lab: the kill switch proven in a real kernel, scenario by scenario, with packet counts
// at the internet host and on the node's uplink. Needs root, /dev/net/tun and .ci/dataplane-deps.sh.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { q, sleep, tryRun, waitFor } from './lib/exec.js';
import { gatewayInputs, productInputs } from './lib/inputs.js';
import { ADDR, APP_NAME, INTERNET_NAME, Lab, type Snapshot, TLS_BODY_BYTES } from './lib/lab.js';
import { RootCapture, emergencyDownOnExit, expectNoLeak, measuredOn } from './lib/measure.js';

const prefix = process.env.LAB_PREFIX ?? `pv${process.pid % 100000}`;
const figures: string[] = [];
const figure = (line: string) => {
  figures.push(line);
  process.stdout.write(`[figure] ${line}\n`);
};
const log = (line: string) => process.stdout.write(`[lab] ${line}\n`);

let lab: Lab;
const upstreamClient = process.env.LAB_UPSTREAM_CLIENT === '1';
const measured = (name: string, action: () => Promise<void>) => measuredOn(lab, log, name, action);
const noLeak = expectNoLeak;
emergencyDownOnExit(prefix);
const rootCapture = new RootCapture(prefix);

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the data-plane lab needs root: it creates network namespaces');
  const tools = ['ip', 'bridge', 'nft', 'iptables', 'wireguard-go', 'wg', 'dnsmasq', 'busybox', 'socat', 'iperf3', 'curl', 'dig', 'openssl', 'tcpdump', 'unshare', 'chroot'];
  const missing = (await Promise.all(tools.map(async (t) => ((await tryRun(`command -v ${t}`)).code === 0 ? '' : t)))).filter(Boolean);
  if (missing.length > 0) throw new Error(`missing ${missing.join(', ')}: run .ci/dataplane-deps.sh (as root) first`);
  if ((await tryRun('test -c /dev/net/tun')).code !== 0) throw new Error('no /dev/net/tun: wireguard-go needs it');
  const product = productInputs();
  // LAB_UPSTREAM_CLIENT=1: the client sidecar as pod-gateway runs it (its own command, the image's
  // CONNECTION_RETRY_COUNT=1), to measure what podvpn's loop and retry count change.
  if (upstreamClient) log('LAB_UPSTREAM_CLIENT=1: client sidecar command /bin/client_sidecar.sh, CONNECTION_RETRY_COUNT from the image (1)');
  const gateway = await gatewayInputs();
  await rootCapture.start();
  log(`gateway settings from: ${gateway.source}`);
  lab = await Lab.up({
    prefix,
    clientSettingsScript: upstreamClient ? product.clientSettingsScript.replace(/^CONNECTION_RETRY_COUNT=.*\n/m, '') : product.clientSettingsScript,
    clientResolvConf: product.clientResolvConf,
    clientLabels: product.clientLabels,
    clientNamespace: 'downloads',
    gatewayName: product.gatewayName,
    clusterDomain: product.clusterDomain,
    policies: product.policies,
    clientInitCommand: product.clientInitCommand,
    clientSidecarCommand: upstreamClient ? ['/bin/client_sidecar.sh'] : product.clientSidecarCommand,
    gateway,
    log,
  });
  figure(`lab build time: ${(lab.buildMs / 1000).toFixed(2)} s (8 namespaces, WireGuard handshake, client init with DHCP)`);
  // A bound on the build, not a figure: right after another lab file, the kernel is still tearing
  // down that lab's namespaces, and every `ip` waits on it (a loaded run: 40 s for the first step).
}, 300_000);

afterAll(async () => {
  await rootCapture.stop();
  rmSync(rootCapture.log, { force: true });
  rmSync(`${rootCapture.log}.pid`, { force: true });
  if (process.env.LAB_KEEP !== '1') await lab?.down();
  if (figures.length > 0) process.stdout.write(`\nFigures (not assertions):\n${figures.map((f) => `  ${f}`).join('\n')}\n`);
}, 60_000);

describe.sequential('1 normal operation', () => {
  it('the internet sees the VPN exit address, and nothing else arrives', async () => {
    let reply = '';
    const d = await measured('normal', async () => {
      reply = (await lab.curlInet('client', 5)).body;
    });
    expect(reply).toBe(ADDR.vpnExit);
    expect(d.inetViaVpn).toBeGreaterThan(0);
    expect(d.uplinkTunnel).toBeGreaterThan(0);
    noLeak(d);
  });

  it('the client got its overlay address by DHCP from the gateway and routes by default through vxlan0', async () => {
    const addr = await lab.in('client', 'ip -4 -o addr show dev vxlan0');
    const net = lab.pg.VXLAN_IP_NETWORK;
    expect(addr).toMatch(new RegExp(`inet ${net?.replaceAll('.', '\\.')}\\.(\\d+)/24`));
    const leases = (await tryRun(`cat ${lab.gatewayLeases}`)).stdout;
    expect(leases.length).toBeGreaterThan(0);
    expect(await lab.in('client', 'ip -4 route show default')).toMatch(new RegExp(`default via ${net}\\.1 dev vxlan0`));
  });

  it('in-cluster traffic works: a pod directly, a Service, cluster DNS for a cluster name', async () => {
    const direct = await lab.tryIn('client', `curl -s --max-time 5 http://${ADDR.app}:8080/`);
    expect(direct.stdout.trim()).toBe(ADDR.client);
    const svc = await lab.tryIn('client', `curl -s --max-time 5 http://${ADDR.appService}/`);
    expect(svc.stdout.trim()).toBe(ADDR.client);
    const name = await lab.tryIn('client', `dig +short +time=2 +tries=3 ${APP_NAME}`);
    expect(name.stdout.trim()).toBe(ADDR.appService);
  });
});

/** The pod's own default route back (the worst case: traffic falls back to the node). */
const ownDefaultRoute = (ns: 'client' | 'nogw') => lab.tryIn(ns, `ip route replace default via ${ADDR.podGateway} dev eth0`);
/**
 * For the checks that traffic DOES get through (controls): up to n tries, each failure logged with
 * the neighbour tables, so a control that needs a retry on a loaded machine says why.
 */
async function leaksWithin(n: number, attempt: () => Promise<string>): Promise<string> {
  let body = '';
  for (let i = 1; i <= n; i += 1) {
    body = await attempt();
    if (body !== '') return body;
    const neigh = await Promise.all(
      (['client', 'node', 'vpn', 'inet'] as const).map(async (ns) => `${ns}: ${(await lab.tryIn(ns, 'ip -6 neigh')).stdout.replaceAll('\n', ' | ')}`),
    );
    log(`attempt ${i} of ${n} got no reply; IPv6 neighbours: ${neigh.join(' ; ')}`);
  }
  return body;
}

/** socat reports IPv6 peers in full, bracketed: compress them for comparison. */
const v6 = (text: string) => {
  const t = text.trim();
  if (!t.startsWith('[')) return t;
  try {
    return new URL(`http://${t}/`).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return t;
  }
};
const tunnelWorks = async () => (await lab.curlInet('client', 2)).body === ADDR.vpnExit;

describe.sequential('2 the client init never ran (the pod keeps its own default route)', () => {
  let reply = { ok: true, body: '' };
  it('nothing reaches the internet: the policy drops it at the node', async () => {
    expect(await lab.in('nogw', 'ip -4 route show default')).toMatch(/default via 169\.254\.1\.1 dev eth0/);
    const d = await measured('init-never-ran', async () => {
      reply = await lab.curlInet('nogw', 2);
      await lab.tryIn('nogw', `ping -c 2 -i 0.2 -W 1 ${ADDR.inet}`);
    });
    expect(reply.ok).toBe(false);
    expect(d.netpolDropped).toBeGreaterThan(0);
    noLeak(d);
  });
  it('cluster traffic still works from that pod', async () => {
    expect((await lab.tryIn('nogw', `curl -s --max-time 5 http://${ADDR.appService}/`)).stdout.trim()).toBe(ADDR.nogw);
    expect((await lab.tryIn('nogw', `dig +short +time=2 +tries=3 @${ADDR.dnsService} ${lab.inputs.gatewayName}`)).stdout.trim()).toBe(lab.gwIP);
  });
});

describe.sequential('3 vxlan0 deleted, or its routes removed, mid-flow', () => {
  it('vxlan0 deleted during a flow, the pod default route back: nothing reaches the internet', async () => {
    lab.bgStart('flow3', 'client', `ping -i 0.2 -W 1 ${ADDR.inet}`);
    let reply = { ok: true, body: '' };
    let d: Snapshot;
    try {
      await sleep(500);
      d = await measured('vxlan0-deleted', async () => {
        await lab.in('client', 'ip link del vxlan0');
        await ownDefaultRoute('client');
        await sleep(600);
        reply = await lab.curlInet('client', 2);
      });
    } finally {
      await lab.bgStop('flow3');
    }
    expect(reply.ok).toBe(false);
    expect(d.netpolDropped).toBeGreaterThan(0);
    noLeak(d);
  });
  it('cluster traffic works meanwhile (a Service, cluster DNS)', async () => {
    expect((await lab.tryIn('client', `curl -s --max-time 5 http://${ADDR.appService}/`)).stdout.trim()).toBe(ADDR.client);
    expect((await lab.tryIn('client', `dig +short +time=2 +tries=3 @${ADDR.dnsService} ${APP_NAME}`)).stdout.trim()).toBe(ADDR.appService);
  });
  it('client_init.sh run again (as the sidecar does, retried as the kubelet does) restores the tunnel', async () => {
    // With the pod's default route back, the first run takes the "first entry" path and stops at
    // `ip route add <gateway> via ...` (the route from the first init is still there: File exists);
    // that run has deleted the default route, so the next one goes through, as it does in a pod.
    const first = await lab.clientInitIn('client', 'client-init');
    log(`client_init.sh again: first run exit ${first}`);
    if (first !== 0) await lab.clientInit();
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
  });
  it('the default route through vxlan0 removed (vxlan0 still up), the pod route back: nothing reaches the internet', async () => {
    let reply = { ok: true, body: '' };
    let d: Snapshot;
    try {
      d = await measured('routes-removed', async () => {
        await lab.in('client', 'ip route del default');
        await ownDefaultRoute('client');
        reply = await lab.curlInet('client', 2);
      });
    } finally {
      await lab.in('client', `ip route replace default via ${lab.pg.VXLAN_IP_NETWORK}.1 dev vxlan0`);
    }
    expect(reply.ok).toBe(false);
    expect(d.netpolDropped).toBeGreaterThan(0);
    noLeak(d);
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
  });
});

describe.sequential('4 the gateway pod replaced (new address)', () => {
  let recoveryMs = -1;
  let flowLog = '';
  it('nothing leaks meanwhile, and the sidecar restores the tunnel', { timeout: 180_000 }, async () => {
    lab.startClientSidecar();
    const flow = `${lab.work}/flow4.out`;
    lab.bgStart('flow4', 'client', `bash -c ${q(`while :; do curl -s -m 1 http://${ADDR.inet}:8080/ >> ${flow}; echo >> ${flow}; sleep 0.2; done`)}`);
    let outageMs = -1;
    let d: Snapshot;
    try {
      await sleep(600);
      d = await measured('gateway-replaced', async () => {
        const tDelete = Date.now();
        const t0 = await lab.replaceGateway(ADDR.gwReplaced);
        await waitFor('the tunnel through the new gateway', tunnelWorks, 120_000, 100);
        recoveryMs = Date.now() - t0;
        outageMs = Date.now() - tDelete;
        await sleep(400);
      });
    } finally {
      await lab.bgStop('flow4');
      await lab.bgStop('client-sidecar');
    }
    figure(`scenario 4 outage: ${(outageMs / 1000).toFixed(2)} s from deleting the old gateway pod to traffic through the new one`);
    flowLog = (await tryRun(`cat ${flow}`)).stdout;
    figure(`scenario 4 recovery: ${(recoveryMs / 1000).toFixed(2)} s from the new gateway pod being Ready to traffic through it (client sidecar exits: ${lab.restarts('client-sidecar').length})`);
    noLeak(d);
    expect(recoveryMs).toBeGreaterThanOrEqual(0);
  });
  it('every reply the internet sent during the replacement came through the VPN exit', () => {
    const seen = new Set(flowLog.split('\n').map((l) => l.trim()).filter((l) => l !== ''));
    expect([...seen]).toEqual([ADDR.vpnExit]);
  });
  it('the client is on the new gateway', async () => {
    expect(await lab.in('client', 'bridge fdb show dev vxlan0')).toContain(`dst ${ADDR.gwReplaced}`);
  });
});

describe.sequential('5 the tunnel down while the gateway pod lives', () => {
  it('the VPN interface (wg0) down: nothing leaves the gateway in the clear', async () => {
    let reply = { ok: true, body: '' };
    let d: Snapshot;
    try {
      d = await measured('wg-link-down', async () => {
        await lab.in('gw', `ip link set ${lab.vpnIf} down`);
        reply = await lab.curlInet('client', 2);
        await lab.tryIn('client', `ping -c 2 -i 0.2 -W 1 ${ADDR.inet}`);
      });
    } finally {
      await lab.script('gw', [`ip link set ${lab.vpnIf} up`, `ip route replace default dev ${lab.vpnIf} table 51820`]);
    }
    expect(reply.ok).toBe(false);
    // Refused at the gateway: by its routing kill switch (no route but the empty tunnel table) or
    // by the firewall's FORWARD policy.
    expect(d.gwNoRoute + d.gwForwardDropped).toBeGreaterThan(0);
    noLeak(d);
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
  });
  it('the WireGuard process killed during a flow (gluetun dead, restarted in place): nothing leaves in the clear; the restart restores the tunnel', async () => {
    lab.bgStart('flow5', 'client', `ping -i 0.2 -W 1 ${ADDR.inet}`);
    let reply = { ok: true, body: '' };
    let d: Snapshot;
    try {
      await sleep(500);
      d = await measured('wg-process-killed', async () => {
        const wg = lab.bg.get('wg-gw');
        if (wg) process.kill(wg.pid, 'SIGKILL');
        await waitFor('wg0 to vanish', async () => (await lab.tryIn('gw', `ip link show ${lab.vpnIf}`)).code !== 0, 3_000);
        await sleep(600);
        reply = await lab.curlInet('client', 2);
      });
    } finally {
      await lab.bgStop('flow5');
      // gluetun restarted in place (same network namespace): its start wrapper from the manifest,
      // then its start, which adds its routing rule (priority 101) again; the dead process left it.
      await lab.bgStop('wg-gw');
      const t0 = Date.now();
      await lab.startGatewayTunnel(true);
      await waitFor('the tunnel', tunnelWorks, 15_000, 100);
      figure(`scenario 5 tunnel restart (wireguard-go restarted and configured, first reply): ${((Date.now() - t0) / 1000).toFixed(2)} s`);
    }
    expect(reply.ok).toBe(false);
    // Refused at the gateway: by its routing kill switch (no route but the empty tunnel table) or
    // by the firewall's FORWARD policy.
    expect(d.gwNoRoute + d.gwForwardDropped).toBeGreaterThan(0);
    noLeak(d);
  });
});

describe.sequential('5b the VPN provider blocks us (wg0 up, the endpoint drops everything)', () => {
  it('only encrypted packets to the endpoint leave; nothing reaches the internet; unblocked, the tunnel resumes', async () => {
    // The provider's side: drop every WireGuard packet arriving from us.
    await lab.in('vpn', `nft add table inet lab_block`);
    let reply = { ok: true, body: '' };
    let d: Snapshot;
    try {
      await lab.in('vpn', `nft add chain inet lab_block in '{ type filter hook input priority -200; policy accept; }'`);
      await lab.in('vpn', `nft add rule inet lab_block in udp dport ${ADDR.wgPort} drop`);
      d = await measured('provider-blocks', async () => {
        reply = await lab.curlInet('client', 2);
        await lab.tryIn('client', `ping -c 3 -i 0.2 -W 1 ${ADDR.inet}`);
      });
    } finally {
      await lab.tryIn('vpn', 'nft delete table inet lab_block');
    }
    expect(reply.ok).toBe(false);
    expect(d.uplinkTunnel).toBeGreaterThan(0);
    expect(d.inetViaVpn).toBe(0);
    noLeak(d);
    await waitFor('the tunnel', tunnelWorks, 20_000, 200);
  });
});

describe.sequential('6 DNS', () => {
  // The exact name: with ndots:5 the resolver first tries the pod's search domains
  // (inet.example.downloads.svc.cluster.local, ...), cluster names that rightly go to cluster DNS.
  const clusterDnsSaw = (name: string) =>
    tryRun(`grep -cE ${q(`query\\[[A-Z]+\\] ${name.replaceAll('.', '\\.')} from`)} ${lab.work}/kube-dns.queries`).then((r) =>
      Number(r.stdout.trim() || '0'),
    );
  it('internet names resolve through the gateway, over the tunnel; none reaches cluster DNS', async () => {
    const resolvConf = (await lab.in('client', 'cat /etc/resolv.conf')).trim();
    expect(resolvConf.split('\n')[0]).toBe(`nameserver ${lab.pg.VXLAN_IP_NETWORK}.1`);
    const d = await measured('dns', async () => {
      expect((await lab.tryIn('client', `dig +short +time=2 +tries=3 ${INTERNET_NAME}`)).stdout.trim()).toBe(ADDR.inet);
      expect((await lab.curlInet('client', 5, { host: INTERNET_NAME })).body).toBe(ADDR.vpnExit);
    });
    noLeak(d);
    // The internet's resolver got the query from the VPN exit: it went through the tunnel.
    expect((await tryRun(`cat ${lab.work}/inet-dns.queries`)).stdout).toMatch(new RegExp(`${INTERNET_NAME.replace('.', '\\.')} from ${ADDR.vpnExit.replaceAll('.', '\\.')}`));
    expect(await clusterDnsSaw(INTERNET_NAME)).toBe(0);
  });
  it('cluster names resolve through the gateway, which asks cluster DNS', async () => {
    expect((await lab.tryIn('client', `dig +short +time=2 +tries=3 ${APP_NAME}`)).stdout.trim()).toBe(ADDR.appService);
    const log = (await tryRun(`cat ${lab.work}/kube-dns.queries`)).stdout;
    expect(log).toContain(`${APP_NAME} from ${lab.gwIP}`);
  });
  it('tunnel down: internet names fail; they are not sent to cluster DNS instead', async () => {
    await lab.in('gw', `ip link set ${lab.vpnIf} down`);
    try {
      const r = await lab.tryIn('client', `dig +short +time=1 +tries=1 host7.${INTERNET_NAME}`);
      expect(r.stdout.trim()).toBe('');
    } finally {
      await lab.script('gw', [`ip link set ${lab.vpnIf} up`, `ip route replace default dev ${lab.vpnIf} table 51820`]);
    }
    expect(await clusterDnsSaw(INTERNET_NAME)).toBe(0);
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
  });
});

describe.sequential('7 IPv6 switched on everywhere', () => {
  it('IPv6 is on: the client has a global IPv6 address and an IPv6 default route; the node reaches the internet over IPv6', async () => {
    // client_init.sh deletes the pod's IPv6 default route; put it back: the worst case (a router
    // advertisement or the CNI restores it) is what the kill switch must hold against.
    await lab.in('client', 'ip -6 route replace default via fe80::1 dev eth0');
    for (const ns of ['client', 'gw', 'node', 'inet'] as const) {
      expect((await lab.in(ns, 'sysctl -n net.ipv6.conf.all.disable_ipv6')).trim()).toBe('0');
    }
    expect(await lab.in('client', 'ip -6 addr show dev eth0 scope global')).toContain(ADDR.client6);
    expect(await lab.in('client', 'ip -6 route show default')).toMatch(/default via fe80::1 dev eth0/);
    // The path exists: without the kill switch IPv6 would get out (see the negative controls).
    expect(await leaksWithin(3, async () => v6((await lab.tryIn('node', `curl -s -6 -g --max-time 4 http://[${ADDR.inet6}]:8080/`)).stdout))).toBe(ADDR.nodeWan6);
  });
  it('no IPv6 packet from the routed pods reaches the internet', async () => {
    const d = await measured('ipv6', async () => {
      expect((await lab.curlInet('client', 2, { v6: true })).ok).toBe(false);
      expect((await lab.curlInet('nogw', 2, { v6: true })).ok).toBe(false);
      await lab.tryIn('client', `ping -6 -c 2 -i 0.2 -W 1 ${ADDR.inet6}`);
    });
    expect(d.netpolDropped).toBeGreaterThan(0);
    noLeak(d);
  });
});

describe.sequential('8 MTU: full-size packets through VXLAN inside WireGuard', () => {
  it('a DF packet of the client vxlan0 MTU crosses the whole path', async () => {
    const mtu = Number((await lab.in('client', 'cat /sys/class/net/vxlan0/mtu')).trim());
    const gwVx = Number((await lab.in('gw', 'cat /sys/class/net/vxlan0/mtu')).trim());
    const wg = Number((await lab.in('gw', `cat /sys/class/net/${lab.vpnIf}/mtu`)).trim());
    figure(`MTUs: pod network 1450, client vxlan0 ${mtu}, gateway vxlan0 ${gwVx}, gateway ${lab.vpnIf} ${wg}`);
    const r = await lab.tryIn('client', `ping -M do -s ${mtu - 28} -c 2 -W 2 ${ADDR.inet}`);
    expect(r.stdout).toMatch(/ 0% packet loss/);
  });
  it(`a TLS handshake with a large certificate and a ${TLS_BODY_BYTES / 1024} KB response works through the tunnel`, async () => {
    let size = -1;
    const d = await measured('tls', async () => {
      const r = await lab.tryIn('client', `curl -sk --max-time 5 https://${ADDR.inet}:8443/ -o /dev/null -w '%{size_download}'`, 10_000);
      size = Number(r.stdout.trim());
    });
    const cert = (await tryRun(`openssl x509 -in ${lab.work}/inet.pem.crt -outform DER | wc -c`)).stdout.trim();
    figure(`TLS exchange: server certificate ${cert} bytes, response ${size} bytes`);
    expect(size).toBe(TLS_BODY_BYTES);
    expect(d.inetViaVpn).toBeGreaterThan(10);
    noLeak(d);
  });
});

describe.sequential('9 negative controls: with a layer removed, the lab sees the leak', () => {
  it('policy removed: the pod whose init never ran leaks, and the lab says so', async () => {
    let reply = { ok: false, body: '' };
    let reply6 = { ok: false, body: '' };
    await lab.removePolicy();
    let d: Snapshot;
    try {
      d = await measured('control-no-policy', async () => {
        reply = { ok: true, body: await leaksWithin(3, async () => (await lab.curlInet('nogw', 4)).body) };
        reply6 = { ok: true, body: await leaksWithin(3, async () => (await lab.curlInet('client', 4, { v6: true })).body) };
      });
    } finally {
      await lab.applyPolicy();
    }
    log(`negative control (no policy): the internet saw ${reply.body || 'nothing'} and ${v6(reply6.body) || 'nothing'} (a leak, as it must be)`);
    expect(reply.body).toBe(ADDR.nodeWan);
    expect(d.inetLeak).toBeGreaterThan(0);
    expect(d.uplinkClear).toBeGreaterThan(0);
    expect(v6(reply6.body)).toBe(ADDR.nodeWan6);
    expect(d.inetLeak6).toBeGreaterThan(0);
  });
  it('gateway firewall and routing kill switch removed, tunnel down: traffic leaves the gateway in the clear, and the lab says so', async () => {
    let reply = { ok: false, body: '' };
    await lab.removeGatewayFirewall();
    const routingBack = await lab.removeGatewayRoutingKillSwitch();
    expect(routingBack.length, 'the gateway has its routing kill switch').toBe(2);
    await lab.in('gw', `ip link set ${lab.vpnIf} down`);
    let d: Snapshot;
    try {
      d = await measured('control-no-gateway-firewall', async () => {
        reply = { ok: true, body: await leaksWithin(3, async () => (await lab.curlInet('client', 4)).body) };
      });
    } finally {
      await lab.restoreGatewayFirewall();
      await lab.script('gw', routingBack);
      await lab.script('gw', [`ip link set ${lab.vpnIf} up`, `ip route replace default dev ${lab.vpnIf} table 51820`]);
    }
    log(`negative control (no gateway firewall): the internet saw ${reply.body || 'nothing'} (a leak, as it must be)`);
    expect(reply.body).toBe(ADDR.nodeWan);
    expect(d.gatewayClear).toBeGreaterThan(0);
    expect(d.inetLeak).toBeGreaterThan(0);
    expect(d.uplinkClear).toBeGreaterThan(0);
  });
  it('with both layers back, the tunnel works and nothing leaks', async () => {
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
    const d = await measured('restored', async () => {
      expect((await lab.curlInet('client', 5)).body).toBe(ADDR.vpnExit);
      expect((await lab.curlInet('nogw', 1)).ok).toBe(false);
    });
    noLeak(d);
  });
});

describe.sequential("10 Cilium's reading of ipBlock (pod addresses match no ipBlock)", () => {
  it('the product policy still carries the tunnel, DNS and cluster traffic, and still blocks the internet', async () => {
    lab.cni = 'cilium';
    await lab.applyPolicy();
    try {
      let reply = '';
      let dns = '';
      let svc = '';
      let nogw = { ok: true, body: '' };
      const d = await measured('cilium', async () => {
        reply = (await lab.curlInet('client', 5)).body;
        dns = (await lab.tryIn('client', `dig +short +time=2 +tries=3 ${INTERNET_NAME}`)).stdout.trim();
        svc = (await lab.tryIn('client', `curl -s --max-time 5 http://${ADDR.appService}/`)).stdout.trim();
        nogw = await lab.curlInet('nogw', 2);
      });
      expect({ reply, dns, svc, nogwReached: nogw.ok }).toEqual({ reply: ADDR.vpnExit, dns: ADDR.inet, svc: ADDR.client, nogwReached: false });
      noLeak(d);
    } finally {
      lab.cni = 'calico';
      await lab.applyPolicy();
    }
  });
  it('without its peer-selector rule the policy would cut the tunnel on Cilium (fails closed: no leak)', async () => {
    const product = lab.policies;
    lab.policies = product.map((p) => ({
      ...p,
      spec: { ...p.spec, egress: (p.spec.egress ?? []).filter((r) => !(r.to ?? []).some((peer) => peer.namespaceSelector !== undefined && peer.podSelector === undefined)) },
    }));
    lab.cni = 'cilium';
    let reply = { ok: true, body: '' };
    let d: Snapshot;
    try {
      await lab.applyPolicy();
      d = await measured('cilium-no-selector-rule', async () => {
        reply = await lab.curlInet('client', 2);
      });
    } finally {
      lab.policies = product;
      lab.cni = 'calico';
      await lab.applyPolicy();
    }
    expect(reply.ok).toBe(false);
    expect(d.netpolDropped).toBeGreaterThan(0);
    noLeak(d);
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
  });
});

describe.sequential("11 NodeLocal DNSCache: the gateway pod's resolv.conf names a link-local address", () => {
  it('cluster names resolve through the gateway via NodeLocal on eth0; nothing for a link-local address enters the tunnel', async () => {
    await lab.startNodeLocalDns();
    const intoTunnel = () => lab.counter('vpn', 'lab_linklocal', 'into_tunnel');
    await lab.restartGatewaySidecar(ADDR.nodeLocalDns);
    try {
      // gateway_sidecar.sh took the cluster DNS from the pod's resolv.conf (DNS_LOCAL_SERVER empty).
      const conf = readFileSync(lab.containerFile('gateway-sidecar', '/etc/dnsmasq.d/pod-gateway.conf'), 'utf8');
      expect(conf).toContain(`server=/${lab.inputs.clusterDomain}/${ADDR.nodeLocalDns}`);
      const before = await intoTunnel();
      const name = (await lab.tryIn('client', `dig +short +time=2 +tries=2 ${APP_NAME}`)).stdout.trim();
      // gluetun's own lookups (its health check resolves through the pod's resolv.conf) take the
      // path of an unmarked packet from the gateway: the same as dnsmasq's.
      const route = await lab.in('gw', `ip route get ${ADDR.nodeLocalDns}`);
      const after = await intoTunnel();
      const seen = (await tryRun(`cat ${lab.work}/nodelocal.queries`)).stdout;
      log(`NodeLocal: route from the gateway: ${route.trim()}; into the tunnel for 169.254/16: ${after - before}`);
      expect({ name, viaEth0: /dev eth0/.test(route), intoTunnel: after - before }).toEqual({ name: ADDR.appService, viaEth0: true, intoTunnel: 0 });
      expect(seen).toContain(`${APP_NAME} from ${lab.gwIP}`);
    } finally {
      await lab.restartGatewaySidecar(ADDR.dnsService);
    }
  });
});

describe.sequential('12 a pod network MTU of 1400 (Flannel or Calico VXLAN on a 1450 underlay)', () => {
  afterAll(async () => {
    await lab.removePod('c1400', ADDR.c1400);
    await lab.removePod('g1400', ADDR.g1400);
  });
  it("the gateway's init container succeeds; vxlan0 fits eth0 - 50", async () => {
    await lab.addExtraPod('g1400', ADDR.g1400, 1400);
    const rc = await lab.runGatewayInit('g1400', 'g1400-init');
    const mtu = Number((await lab.tryIn('g1400', 'cat /sys/class/net/vxlan0/mtu')).stdout.trim() || '0');
    expect({ rc, fits: mtu > 0 && mtu <= 1350 }).toEqual({ rc: 0, fits: true });
  });
  it('negative control: with VPN_INTERFACE_MTU 1370 (the old default) the same init container fails', async () => {
    const rc = await lab.runGatewayInit('g1400', 'g1400-init-1370', { VPN_INTERFACE_MTU: '1370' });
    expect(rc).not.toBe(0);
    expect(readFileSync(`${lab.work}/g1400-init-1370.log`, 'utf8')).toMatch(/ip link set mtu 1370 dev vxlan0\n.*(Invalid argument|RTNETLINK)/);
  });
  it("a routed pod's init succeeds, and a DF packet of its vxlan0 MTU crosses VXLAN and the tunnel", async () => {
    await lab.addExtraPod('c1400', ADDR.c1400, 1400);
    await lab.applyPolicy();
    // The kubelet restarts a failed init container; so does the lab, up to 3 runs, as upstream's MTU
    // defect is not transient: it fails every run with the kernel's refusal, and any run that shows it
    // fails the check at once. A transient failure (one fresh-clone CI run saw one, cause not logged)
    // is reported with its output and counted in the figure.
    let rc = -1;
    let runs = 0;
    const failures: string[] = [];
    while (rc !== 0 && runs < 3) {
      runs++;
      rc = await lab.clientInitIn('c1400', `c1400-init-${runs}`);
      if (rc === 0) break;
      const tail = readFileSync(join(lab.work, `c1400-init-${runs}.log`), 'utf8').split('\n').slice(-25).join('\n');
      failures.push(`run ${runs} exited ${rc}:\n${tail}`);
      log(`c1400 client init run ${runs} exited ${rc}; its last lines:\n${tail}`);
      expect(tail, 'the MTU refusal upstream crash-loops on').not.toMatch(/mtu[^\n]*\n[^\n]*(Invalid argument|RTNETLINK)/i);
    }
    figure(`client init on a 1400-byte pod network: ${runs} run(s) to success${failures.length > 0 ? ' (earlier runs failed: see the lab log)' : ''}`);
    expect(rc, `the client init failed ${runs} times; its output:\n${failures.join('\n')}`).toBe(0);
    const mtu = Number((await lab.in('c1400', 'cat /sys/class/net/vxlan0/mtu')).trim());
    figure(`MTUs on a 1400-byte pod network: client vxlan0 ${mtu}, gateway ${lab.vpnIf} ${lab.gluetun.wireguardMtu}`);
    const r = await lab.tryIn('c1400', `ping -M do -s ${mtu - 28} -c 2 -W 2 ${ADDR.inet}`);
    expect(r.stdout).toMatch(/ 0% packet loss/);
  });
});

describe.sequential('13 gluetun restarted in place after an unclean exit (OOM kill, crash)', () => {
  it('negative control: without the start wrapper the restarted gluetun cannot add its routing rule (File exists)', async () => {
    await lab.killGluetun();
    await expect(lab.startGatewayTunnel(true, { noWrapper: true })).rejects.toThrow(/File exists/);
  });
  it("with the manifest's start wrapper it comes back, and the tunnel works", async () => {
    await lab.bgStop('wg-gw');
    const t0 = Date.now();
    await lab.startGatewayTunnel(true);
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
    figure(`gluetun restarted in place (stand-in): tunnel back ${((Date.now() - t0) / 1000).toFixed(2)} s after its start`);
  });
});

describe.sequential("13b the gateway's own packets to the VPN port while the tunnel is down", () => {
  it('pod-gateway opens OUTPUT to port 51820 for any destination; only the WireGuard socket may use it: nothing leaves in the clear', async () => {
    await lab.in('gw', `ip link set ${lab.vpnIf} down`);
    let d: Snapshot;
    try {
      d = await measured('gateway-port-51820', async () => {
        for (let i = 0; i < 3; i++) await lab.tryIn('gw', `bash -c ${q(`echo probe > /dev/udp/${ADDR.inet}/${ADDR.wgPort}`)}`);
        await lab.tryIn('gw', `curl -s --max-time 1 http://${ADDR.inet}:${ADDR.wgPort}/`);
      });
    } finally {
      await lab.script('gw', [`ip link set ${lab.vpnIf} up`, `ip route replace default dev ${lab.vpnIf} table 51820`]);
    }
    noLeak(d);
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
  });
});

describe.sequential("14 gluetun's firewall setup fails: the filter table flushed, ACCEPT policies, gluetun down", () => {
  const traffic = async () => {
    await lab.curlInet('client', 2);
    await lab.tryIn('client', `ping -c 3 -i 0.3 -W 1 ${ADDR.inet}`);
  };
  it("negative control: without the gateway's routing kill switch the routed pod's traffic leaves eth0 in the clear, and the lab says so", async () => {
    const back = await lab.removeGatewayRoutingKillSwitch();
    expect(back.length).toBe(2);
    let d: Snapshot;
    try {
      await lab.killGluetun();
      await lab.flushGatewayFirewall();
      d = await measured('flush-no-routing-killswitch', traffic);
    } finally {
      await lab.script('gw', back);
      await lab.restartGluetun();
    }
    expect(d.gatewayClear).toBeGreaterThan(0);
    expect(d.inetLeak).toBeGreaterThan(0);
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
  });
  it('with it: nothing leaves in the clear while gluetun is down (refused by routing)', async () => {
    await lab.killGluetun();
    await lab.flushGatewayFirewall();
    expect((await lab.in('gw', 'iptables -S')).trim().split('\n')).toEqual(['-P INPUT ACCEPT', '-P FORWARD ACCEPT', '-P OUTPUT ACCEPT']);
    const d = await measured('flush', traffic);
    expect(d.gwNoRoute).toBeGreaterThan(0);
    noLeak(d);
  });
  it('negative control: gluetun back with post-rules lacking the return rule: the replies are dropped (black hole)', async () => {
    const product = lab.gluetun.postRules;
    const ret = product.filter((r) => / FORWARD -i \S+ -o vxlan0 .*ESTABLISHED,RELATED/.test(r));
    expect(ret.length, 'the post-rules carry the return rule').toBe(1);
    lab.gluetun.postRules = product.filter((r) => !ret.includes(r));
    let reply: Awaited<ReturnType<typeof lab.curlInet>> | undefined;
    try {
      await lab.restartGluetun();
      reply = await lab.curlInet('client', 3);
      if (!reply.ok) reply = await lab.curlInet('client', 3);
    } finally {
      lab.gluetun.postRules = product;
      await lab.killGluetun();
      await lab.flushGatewayFirewall();
    }
    expect(reply?.ok).toBe(false);
  });
  it("gluetun back (its firewall with the post-rules, its tunnel): replies reach the routed pod again, pod-gateway's rules being gone", async () => {
    await lab.restartGluetun();
    expect(await lab.in('gw', 'iptables -S FORWARD')).not.toContain('-m state');
    await waitFor('the tunnel', tunnelWorks, 15_000, 100);
    const d = await measured('after-flush', async () => {
      expect((await lab.curlInet('client', 5)).body).toBe(ADDR.vpnExit);
    });
    noLeak(d);
  });
});

/** The gateway gone for a while (deleted; the new pod Ready `gapS` later): recovery measured from Ready. */
function gatewayGone(n: number, gapS: number, newIP: string) {
  describe.sequential(`${n} the gateway gone for ${gapS} s`, () => {
    it('nothing leaks meanwhile; the sidecar restores the tunnel soon after the new gateway is Ready', { timeout: (gapS + 420) * 1000 }, async () => {
      lab.startClientSidecar();
      const flow = `${lab.work}/flow${n}.out`;
      lab.bgStart(`flow${n}`, 'client', `bash -c ${q(`while :; do curl -s -m 1 http://${ADDR.inet}:8080/ >> ${flow}; echo >> ${flow}; sleep 0.5; done`)}`);
      let recoveryMs = -1;
      let d: Snapshot;
      try {
        await waitFor('the tunnel', tunnelWorks, 15_000, 100);
        await sleep(2_000);
        d = await measured(`gateway-gone-${gapS}s`, async () => {
          const ready = await lab.replaceGateway(newIP, gapS * 1000);
          await waitFor('the tunnel through the new gateway', tunnelWorks, 400_000, 200);
          recoveryMs = Date.now() - ready;
        });
      } finally {
        await lab.bgStop(`flow${n}`);
        await lab.bgStop('client-sidecar');
      }
      const exits = lab.restarts('client-sidecar').length;
      figure(`gateway gone ${gapS} s: back ${(recoveryMs / 1000).toFixed(2)} s after the new gateway was Ready (client sidecar container exits: ${exits})`);
      const seen = new Set((await tryRun(`cat ${flow}`)).stdout.split('\n').map((l) => l.trim()).filter((l) => l !== ''));
      expect([...seen]).toEqual([ADDR.vpnExit]);
      noLeak(d);
      // A bound on upstream's design, not a goal (the figure above is the measurement): the sidecar
      // only notices at its next 10 s ping round, then re-runs the init (gateway lookup, pings,
      // udhcpc), so where each loop stands when the new gateway turns Ready decides the time.
      // Measured in fresh-clone CI: 5.5 to 37.5 s (one run of 37.5 s failed the old 30 s bound);
      // without the sidecar (or with the kubelet's back-off after it exits) it would be minutes.
      expect(recoveryMs).toBeGreaterThanOrEqual(0);
      expect(recoveryMs).toBeLessThan(90_000);
    });
  });
}
gatewayGone(15, 30, ADDR.gwGone30);
gatewayGone(16, 180, ADDR.gwGone180);

describe.sequential('throughput (figures)', () => {
  // The figure is printed, not judged; the check is only that a sustained TCP stream gets through.
  // iperf3's server takes one test at a time and a loaded 2-core machine can stall a run, so each
  // side gets three tries, and the last error is shown if all fail.
  const iperf = async (from: 'client' | 'app'): Promise<{ mbits: number; error: string }> => {
    let error = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await lab.tryIn(from, `iperf3 -c ${ADDR.inet} -t 3 --connect-timeout 3000 -J`, 12_000);
      let j: { end?: { sum_received?: { bits_per_second?: number } }; error?: string } = {};
      try {
        j = JSON.parse(r.stdout || '{}');
      } catch {
        // a run killed mid-output
      }
      const mbits = (j.end?.sum_received?.bits_per_second ?? 0) / 1e6;
      if (mbits > 0) return { mbits, error: '' };
      error = j.error ?? (r.stderr.trim() || `exit ${r.code}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    return { mbits: 0, error };
  };
  it('iperf3 through the overlay and the tunnel, and direct from an unrouted pod', async () => {
    const tunnel = await iperf('client');
    const direct = await iperf('app');
    figure(`throughput (iperf3, 3 s, one TCP stream): routed pod via VXLAN + WireGuard ${tunnel.mbits.toFixed(0)} Mbit/s; unrouted pod direct ${direct.mbits.toFixed(0)} Mbit/s`);
    expect(tunnel.mbits, `iperf3 through the tunnel: ${tunnel.error}`).toBeGreaterThan(0);
    expect(direct.mbits, `iperf3 direct: ${direct.error}`).toBeGreaterThan(0);
  }, 90_000);
});

describe.sequential('hygiene', () => {
  it("the machine's own network namespace saw none of the lab's packets", async () => {
    await sleep(300);
    const seen = await rootCapture.stop();
    if (seen.length > 0) log(`root namespace saw: ${seen.slice(0, 5).join(' | ')}`);
    expect(seen).toEqual([]);
  });
});
