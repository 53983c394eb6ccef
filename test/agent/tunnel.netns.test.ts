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
import { batchIp, dhcpStep, parseLease, setupAfterLease, setupBeforeLease, type Step, stepOutcome } from '../../src/agent/tunnel.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SCRIPT = join(import.meta.dirname, '..', '..', 'src', 'agent', 'udhcpc-lease.sh');
const GATE = join(ROOT, 'dist', 'agent', 'gate.js');

describe.skipIf(!canRunNetnsLab())('tunnel plan against pod-gateway-shaped gateway and dnsmasq (root, netns)', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await startNetnsLab(`t${process.pid}`);
  });
  afterAll(async () => lab?.close());
  // As the agent runs them (Agent.runSteps): consecutive ip steps in one `ip -batch -` (tunnel.ts
  // batchIp); a batch stopped by a line that may fail goes on with the lines after it.
  const runOne = (s: Step) => {
    const r = lab.exec(lab.pod, s.argv, s.stdin);
    return stepOutcome(s, { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr });
  };
  /** The processes it took, or the first failure (thrown). */
  const runSteps = (steps: Step[]): number => {
    const queue = batchIp(steps);
    let processes = 0;
    while (queue.length > 0) {
      const outcome = runOne(queue.shift()!);
      processes += 1;
      if (!outcome.ok) throw new Error(outcome.failure);
      queue.unshift(...batchIp(outcome.rest));
    }
    return processes;
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
  it("an ip batch run by the real ip: a line that may fail stops it and the rest runs after; one that may not is named and nothing after it runs; ip stopping at once is caught by the end marker", () => {
    const ip = (...argv: string[]): Step => ({ argv: ['ip', ...argv] });
    const mayFail = (...argv: string[]): Step => ({ argv: ['ip', ...argv], mayFail: true });
    const exists = (link: string) => lab.exec(lab.pod, ['ip', 'link', 'show', link]).status === 0;
    // an absent link deleted (may fail), a link made and removed: done, in 2 processes (the batch
    // stopped by its line 1, the rest then by its last line, which may fail too); without line 1, in 1
    expect(runSteps([mayFail('link', 'del', 'podvpn-nope'), ip('link', 'add', 'podvpn-bt', 'type', 'bridge'), ip('link', 'del', 'podvpn-bt'), mayFail('route', 'del', '::/0')])).toBe(2);
    expect(runSteps([ip('link', 'add', 'podvpn-bt', 'type', 'bridge'), ip('link', 'del', 'podvpn-bt'), mayFail('route', 'del', '::/0')])).toBe(1);
    // a line that may not fail, after one that may: named with ip's own words, and the line after it never ran
    expect(() => runSteps([mayFail('link', 'del', 'podvpn-nope'), ip('link', 'del', 'podvpn-nope2'), ip('link', 'add', 'podvpn-bt2', 'type', 'bridge')])).toThrow(
      'ip link del podvpn-nope2: Cannot find device "podvpn-nope2"',
    );
    expect(exists('podvpn-bt2'), 'nothing after a failed line runs').toBe(false);
    // ip exits at once on a `dev` that names no link in `link add`, without a "Command failed" line:
    // without the end marker this batch would look done
    const [early] = batchIp([ip('link', 'add', 'podvpn-vx', 'type', 'vxlan', 'id', '7', 'dev', 'podvpn-nodev', 'dstport', '4789'), ip('link', 'add', 'podvpn-bt3', 'type', 'bridge')]);
    expect(runOne(early!)).toEqual({ ok: false, failure: 'ip batch (link add, link add) stopped before its end: Cannot find device "podvpn-nodev"; exit code 255' });
    expect(exists('podvpn-bt3'), 'the batch stopped: its last line never ran').toBe(false);
  });
});
