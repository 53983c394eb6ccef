// The tunnel plan run for real (root): three network namespaces, the pod, the node (routing between
// pod IPs, as a CNI does) and a gateway built with pod-gateway's own gateway commands (gateway_init.sh:
// vxlan0 id 42 dstport 4789 dev eth0, 172.16.0.1/24) and dnsmasq with gateway_sidecar.sh's DHCP
// settings (dhcp-range .20-.255, 12 h, bind to vxlan0). The plan's steps run in the pod namespace with
// `ip netns exec` (the agent uses `nsenter --net=`, the same setns). Then the gate, unprivileged, passes.
// Not the lab: no gluetun, no VPN, no NetworkPolicy, no kubelet; just the wire protocol and the plan.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunNetnsLab, type NetnsLab, startNetnsLab } from './netns-lab.mjs';
import { GW, RANGES } from './fixtures.js';
import { batchIp, dhcpStep, parseLease, setupAfterLease, setupBeforeLease, type Step, stepFailure } from '../../src/agent/tunnel.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SCRIPT = join(import.meta.dirname, '..', '..', 'src', 'agent', 'udhcpc-lease.sh');
const GATE = join(ROOT, 'dist', 'agent', 'gate.js');

describe.skipIf(!canRunNetnsLab())('tunnel plan against pod-gateway-shaped gateway and dnsmasq (root, netns)', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await startNetnsLab(`t${process.pid}`);
  });
  afterAll(async () => lab?.close());
  // As the agent runs them: consecutive ip steps in one `ip -force -batch -` (tunnel.ts batchIp)
  const runOne = (s: Step) => {
    const r = lab.exec(lab.pod, s.argv, s.stdin);
    return stepFailure(s, { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr });
  };
  const runSteps = (steps: Step[]) => {
    for (const s of batchIp(steps)) {
      const failure = runOne(s);
      if (failure !== undefined) throw new Error(failure);
    }
  };

  it('builds the tunnel, takes a lease from dnsmasq, routes the default into it; the gate then passes', async () => {
    expect(existsSync(GATE), 'npm run build first').toBe(true);
    const P = lab.pod;
    const exec: NetnsLab['exec'] = (...a) => lab.exec(...a);
    const must: NetnsLab['must'] = (...a) => lab.must(...a);
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
    expect(exec(P, ['ping', '-c3', '-i0.3', '-W2', '172.16.0.1']).status, 'one of three echoes answered').toBe(0);

    const gate = exec(P, ['setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
      process.execPath, GATE, '--gateway=172.16.0.1', '--timeout=5']);
    expect(gate.stderr).toBe('');
    expect(gate.status).toBe(0);
  });
  it("an ip batch run by the real ip: lines that may fail do not fail it; one that may not is named; ip stopping early is caught by the end marker", () => {
    const ip = (...argv: string[]): Step => ({ argv: ['ip', ...argv] });
    const mayFail = (...argv: string[]): Step => ({ argv: ['ip', ...argv], mayFail: true });
    // absent links deleted (may fail), a dummy link made and removed: the batch succeeds
    const [ok] = batchIp([mayFail('link', 'del', 'podvpn-nope'), ip('link', 'add', 'podvpn-bt', 'type', 'bridge'), ip('link', 'del', 'podvpn-bt'), mayFail('route', 'del', '::/0')]);
    expect(ok!.batch).toHaveLength(4);
    expect(runOne(ok!)).toBeUndefined();
    // a line that may not fail, after one that may: named with ip's own words
    const [bad] = batchIp([mayFail('link', 'del', 'podvpn-nope'), ip('link', 'del', 'podvpn-nope2'), ip('link', 'add', 'podvpn-bt2', 'type', 'bridge')]);
    expect(runOne(bad!)).toBe('ip link del podvpn-nope2: Cannot find device "podvpn-nope2"');
    // and the lines after it still ran (-force): the plans are written for that
    expect(lab.exec(lab.pod, ['ip', 'link', 'show', 'podvpn-bt2']).status).toBe(0);
    lab.exec(lab.pod, ['ip', 'link', 'del', 'podvpn-bt2']);
    // ip exits at once on a `dev` that names no link in `link add`, without a "Command failed" line:
    // without the end marker this batch would look like a success after a harmless failure
    const [early] = batchIp([mayFail('link', 'del', 'podvpn-nope'), ip('link', 'add', 'podvpn-vx', 'type', 'vxlan', 'id', '7', 'dev', 'podvpn-nodev', 'dstport', '4789'), ip('link', 'add', 'podvpn-bt3', 'type', 'bridge')]);
    expect(runOne(early!)).toMatch(/^ip batch \(link del, link add, link add\) stopped before its end: Cannot find device "podvpn-nodev"; exit code 255$/);
    expect(lab.exec(lab.pod, ['ip', 'link', 'show', 'podvpn-bt3']).status, 'the batch stopped: its last line never ran').not.toBe(0);
  });
});
