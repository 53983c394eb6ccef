// The tunnel plan run for real (root): three network namespaces, the pod, the node (routing between
// pod IPs, as a CNI does) and a gateway built with pod-gateway's own gateway commands (gateway_init.sh:
// vxlan0 id 42 dstport 4789 dev eth0, 172.16.0.1/24) and dnsmasq with gateway_sidecar.sh's DHCP
// settings (dhcp-range .20-.255, 12 h, bind to vxlan0). The plan's steps run in the pod namespace with
// `ip netns exec` (the agent uses `nsenter --net=`, the same setns). Then the gate, unprivileged, passes.
// Not the lab: no gluetun, no VPN, no NetworkPolicy, no kubelet; just the wire protocol and the plan.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dhcpStep, parseLease, setupAfterLease, setupBeforeLease, type Step } from './tunnel.js';
import { GW, RANGES } from './test-fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SCRIPT = join(import.meta.dirname, 'udhcpc-lease.sh');
const GATE = join(ROOT, 'dist', 'agent', 'gate.js');
const id = process.pid;
const P = `pv-pod-${id}`;
const N = `pv-node-${id}`;
const G = `pv-gw-${id}`;
const root =
  process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0 && spawnSync('which', ['dnsmasq']).status === 0;

const exec = (ns: string, argv: string[], stdin?: string) => spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', input: stdin });
const must = (ns: string, ...argv: string[]) => {
  const r = exec(ns, argv);
  if (r.status !== 0) throw new Error(`${ns}: ${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
function runSteps(steps: Step[]): void {
  for (const s of steps) {
    const r = exec(P, s.argv, s.stdin);
    if (r.status !== 0 && s.mayFail !== true) throw new Error(`${s.argv.join(' ')}: ${r.stderr}`);
  }
}

describe.skipIf(!root)('tunnel plan against pod-gateway-shaped gateway and dnsmasq (root, netns)', () => {
  let dnsmasq: ChildProcess | undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'podvpn-gw-'));
  beforeAll(async () => {
    for (const ns of [P, N, G]) {
      spawnSync('ip', ['netns', 'del', ns]);
      expect(spawnSync('ip', ['netns', 'add', ns]).status).toBe(0);
      must(ns, 'ip', 'link', 'set', 'lo', 'up');
    }
    must(N, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const [ns, peer, addr, nodeAddr] of [[P, 'p0', '10.42.1.5/24', '10.42.1.1/24'], [G, 'g0', '10.42.2.9/24', '10.42.2.1/24']] as const) {
      must(ns, 'ip', 'link', 'add', 'eth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', peer, 'netns', N);
      must(ns, 'ip', 'addr', 'add', addr, 'dev', 'eth0');
      must(ns, 'ip', 'link', 'set', 'eth0', 'up');
      must(ns, 'ip', 'route', 'add', 'default', 'via', nodeAddr.split('/')[0]!);
      must(N, 'ip', 'addr', 'add', nodeAddr, 'dev', peer);
      must(N, 'ip', 'link', 'set', peer, 'mtu', '1450', 'up');
    }
    // gateway_init.sh
    must(G, 'ip', 'link', 'add', 'vxlan0', 'type', 'vxlan', 'id', '42', 'dev', 'eth0', 'dstport', '4789');
    must(G, 'ip', 'addr', 'add', '172.16.0.1/24', 'dev', 'vxlan0');
    must(G, 'ip', 'link', 'set', 'up', 'dev', 'vxlan0');
    // gateway_sidecar.sh's dnsmasq (DHCP part; DNS off here)
    dnsmasq = spawn('ip', ['netns', 'exec', G, 'dnsmasq', '--keep-in-foreground', '--port=0', '--interface=vxlan0', '--bind-interfaces',
      '--dhcp-range=172.16.0.20,172.16.0.255,12h', `--dhcp-leasefile=${join(tmp, 'leases')}`, `--pid-file=${join(tmp, 'pid')}`, '--log-facility=-'],
    { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
  });
  afterAll(async () => {
    if (dnsmasq && dnsmasq.exitCode === null) {
      await new Promise((r) => {
        dnsmasq!.once('exit', r);
        dnsmasq!.kill('SIGTERM');
      });
    }
    for (const ns of [P, N, G]) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('builds the tunnel, takes a lease from dnsmasq, routes the default into it; the gate then passes', async () => {
    expect(existsSync(GATE), 'npm run build first').toBe(true);
    const gw = { ...GW, podIP: '10.42.2.9' };
    const pod = { eth0Gateway: '10.42.1.1', eth0Mtu: 1450 };
    runSteps(setupBeforeLease(pod, gw, RANGES));
    const dhcp = exec(P, dhcpStep(undefined, SCRIPT).argv);
    expect(dhcp.status, dhcp.stderr).toBe(0);
    const lease = parseLease(dhcp.stdout, gw);
    expect(lease).toMatchObject({ ok: true, lease: { prefix: 24, router: '172.16.0.1', seconds: 43200 } });
    if (!lease.ok) return;
    runSteps(setupAfterLease(lease.lease));

    const routes = must(P, 'ip', 'route');
    expect(routes).toMatch(/^default via 172\.16\.0\.1 dev vxlan0/m);
    expect(routes).toMatch(/^10\.42\.0\.0\/15 via 10\.42\.1\.1 dev eth0 onlink/m);
    expect(routes).not.toMatch(/default via 10\.42\.1\.1/);
    expect(must(P, 'ip', '-d', 'link', 'show', 'vxlan0')).toMatch(/vxlan id 42 .*dstport 4789/s);
    expect(must(P, 'ip', 'link', 'show', 'vxlan0')).toMatch(/mtu 1370/);
    // The gateway answers through the tunnel (the firewall lets vxlan0 IPv4 and the VXLAN packets pass)
    expect(exec(P, ['ping', '-c1', '-W2', '172.16.0.1']).status).toBe(0);

    const gate = exec(P, ['setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
      process.execPath, GATE, '--gateway=172.16.0.1', '--timeout=5']);
    expect(gate.stderr).toBe('');
    expect(gate.status).toBe(0);
  });
});
