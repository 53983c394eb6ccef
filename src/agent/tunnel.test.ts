import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GW, RANGES } from '../../test/agent/fixtures.js';
import { BATCH_END, batchIp, dhcpStep, inNetns, parseLease, repointTunnel, retunnel, setupAfterLease, setupBeforeLease, standbyLease, type Step, stepOutcome, tunnelMac, updateRanges } from './tunnel.js';
import { expectGoldenFile } from '../../test/golden.js';

const DIR = join(import.meta.dirname, 'testdata');
const POD = { eth0Gateway: '10.42.1.1', eth0Mtu: 1450 };

const show = (steps: Step[]) =>
  steps.map((s) => `${s.argv.join(' ')}${s.mayFail ? '   # may fail' : ''}${s.stdin ? `   # stdin: ${s.stdin.split('\n').length} lines of nft` : ''}`).join('\n') + '\n';

function golden(name: string, text: string) {
  expectGoldenFile(join(DIR, `tunnel-${name}.txt`), text);
}

describe('tunnel plan', () => {
  it('golden: a new pod, Flannel-like eth0 (MTU 1450)', () => {
    const lease = { ip: '172.16.0.23', prefix: 24, router: '172.16.0.1', seconds: 43200 };
    golden('new-pod', show([...setupBeforeLease(POD, GW, RANGES), dhcpStep(), ...setupAfterLease(lease)]));
  });

  it('the firewall comes first, the marker last, the default route is replaced (never deleted first)', () => {
    const steps = [...setupBeforeLease(POD, GW, RANGES), dhcpStep(), ...setupAfterLease({ ip: '172.16.0.23', prefix: 24, router: '172.16.0.1', seconds: 1 })];
    expect(steps[0]!.argv).toEqual(['nft', '-f', '-']);
    expect(steps.at(-1)!.argv).toEqual(['ip', 'link', 'add', 'podvpn-ready', 'type', 'bridge']);
    expect(steps.some((s) => s.argv.join(' ') === 'ip route del default')).toBe(false);
    expect(steps.map((s) => s.argv.join(' '))).toContain('ip route replace default via 172.16.0.1 dev vxlan0');
  });

  it('golden: a gateway replaced and a range added', () => {
    golden(
      'changes',
      show([
        ...repointTunnel({ ...GW, podIP: '10.42.3.4' }, ['10.42.2.9']),
        dhcpStep('172.16.0.23'),
        // a node range added, the extra LAN range dropped
        ...updateRanges(POD, GW, { ...RANGES, podCIDRs: ['10.42.0.0/16', '10.52.0.0/16'], extraCIDRs: [] }, RANGES),
      ]),
    );
  });

  it('a lease for another address than the pod had: the old address is deleted before the new one goes in (else it stays the source); the same address: nothing deleted', () => {
    const lease = { ip: '172.16.0.45', prefix: 24, router: '172.16.0.1', seconds: 43200 };
    const steps = setupAfterLease(lease, '172.16.0.44');
    const del = steps.findIndex((s) => s.argv.join(' ') === 'ip addr del 172.16.0.44/24 dev vxlan0');
    const add = steps.findIndex((s) => s.argv.join(' ') === 'ip addr replace 172.16.0.45/24 dev vxlan0');
    expect(del).toBeGreaterThanOrEqual(0);
    expect(add).toBeGreaterThan(del);
    expect(steps.findIndex((s) => s.argv.slice(0, 3).join(' ') === 'ip route replace')).toBeGreaterThan(add);
    expect(setupAfterLease({ ...lease, ip: '172.16.0.44' }, '172.16.0.44').some((s) => s.argv.slice(0, 3).join(' ') === 'ip addr del')).toBe(false);
    expect(setupAfterLease(lease).some((s) => s.argv.slice(0, 3).join(' ') === 'ip addr del')).toBe(false);
  });

  it('golden: a move to another exit (VXLAN id 101 -> 102): vxlan0 deleted and made again, a lease asking for the same address, the route back', () => {
    const exitB = { ...GW, podIP: '10.42.3.7', vxlanId: 102 };
    const lease = { ip: '172.16.0.23', prefix: 24, router: '172.16.0.1', seconds: 43200 };
    const steps = [...retunnel(POD, exitB), dhcpStep('172.16.0.23'), ...setupAfterLease(lease)];
    golden('move-exit', show(steps));
    // the firewall is not reloaded: it holds the pod closed while vxlan0 is away
    expect(steps.some((s) => s.argv[0] === 'nft')).toBe(false);
    expect(steps.slice(0, 2)).toEqual([{ argv: ['ip', 'link', 'del', 'podvpn-standby'], mayFail: true }, { argv: ['ip', 'link', 'del', 'vxlan0'], mayFail: true }]);
  });

  it('golden: a standby lease on the next exit, then the move there: both devices with the pod\'s own MAC', () => {
    const pod = { ...POD, tunnelMac: tunnelMac('7a1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b') };
    const exitB = { ...GW, podIP: '10.42.3.7', vxlanId: 102 };
    const standby = standbyLease(pod, exitB, '172.16.0.23');
    const lease = { ip: '172.16.0.23', prefix: 24, router: '172.16.0.1', seconds: 43200 };
    golden('standby-then-move', show([...standby.link, standby.dhcp, ...standby.cleanup, ...retunnel(pod, exitB), dhcpStep('172.16.0.23'), ...setupAfterLease(lease)]));
    const adds = [...standby.link, ...retunnel(pod, exitB)].filter((s) => s.argv.slice(0, 3).join(' ') === 'ip link add');
    expect(adds.map((s) => [s.argv[3], s.argv[5]])).toEqual([['podvpn-standby', pod.tunnelMac], ['vxlan0', pod.tunnelMac]]);
    // the standby device gets no address, no route, and no firewall change
    expect([...standby.link, standby.dhcp].some((s) => s.argv[0] === 'nft' || s.argv.includes('route') || s.argv.includes('addr'))).toBe(false);
    expect(standby.cleanup).toEqual([{ argv: ['ip', 'link', 'del', 'podvpn-standby'], mayFail: true }]);
  });

  it("tunnelMac: the same for a pod every time, different between pods, locally administered unicast", () => {
    const a = tunnelMac('7a1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b');
    expect(tunnelMac('7a1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b')).toBe(a);
    expect(tunnelMac('7a1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4c')).not.toBe(a);
    expect(a).toMatch(/^02(:[0-9a-f]{2}){5}$/);
  });

  it('MTU: the gateway MTU unless eth0 minus VXLAN overhead is smaller', () => {
    const mtuOf = (eth0Mtu: number) => {
      const argv = setupBeforeLease({ ...POD, eth0Mtu }, GW, RANGES).find((s) => s.argv.includes('mtu'))!.argv;
      return argv[argv.indexOf('mtu') + 1];
    };
    expect(mtuOf(1500)).toBe('1370');
    expect(mtuOf(1400)).toBe('1350');
  });

  it('parses the lease and refuses one from a stranger', () => {
    const out = 'udhcpc: started\nip=172.16.0.23\nsubnet=255.255.255.0\nrouter=172.16.0.1\nlease=43200\n';
    expect(parseLease(out, GW)).toEqual({ ok: true, lease: { ip: '172.16.0.23', prefix: 24, router: '172.16.0.1', seconds: 43200 } });
    expect(parseLease('', GW)).toMatchObject({ ok: false, reason: expect.stringMatching(/no lease/) });
    expect(parseLease(out.replace('ip=172.16.0.23', 'ip=10.9.9.9'), GW)).toMatchObject({ ok: false, reason: expect.stringMatching(/outside/) });
    expect(parseLease(out.replace('router=172.16.0.1', 'router=172.16.0.9'), GW)).toMatchObject({ ok: false, reason: expect.stringMatching(/not the gateway/) });
    expect(parseLease(out.replace('255.255.255.0', '255.0.255.0'), GW)).toMatchObject({ ok: false, reason: expect.stringMatching(/contiguous/) });
    expect(parseLease(out.replace('lease=43200', 'lease=x'), GW)).toMatchObject({ ok: false });
  });

  it('runs every step inside the pod namespace, as an argv', () => {
    expect(inNetns('/proc/42/ns/net', { argv: ['ip', 'link'] }).argv).toEqual(['nsenter', '--net=/proc/42/ns/net', '--', 'ip', 'link']);
  });
  it('golden: a move to another exit as the agent runs it: its 7 steps in 4 processes (ip batches)', () => {
    const pod = { ...POD, tunnelMac: tunnelMac('7a1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b') };
    const exitB = { ...GW, podIP: '10.42.3.7', vxlanId: 102 };
    const lease = { ip: '172.16.0.23', prefix: 24, router: '172.16.0.1', seconds: 43200 };
    // as the agent: no standby device in the namespace, the marker already there (a routed pod)
    const after = setupAfterLease(lease).filter((s) => !s.argv.includes('podvpn-ready'));
    const plan = [...retunnel(pod, exitB, false), dhcpStep('172.16.0.23'), ...after];
    const run = [...batchIp(retunnel(pod, exitB, false)), dhcpStep('172.16.0.23'), ...batchIp(after)];
    const text = run.map((s) => (s.batch ? `${s.argv.join(' ')} <<\n${s.stdin!.replace(/^/gm, '  ').trimEnd()}` : s.argv.join(' '))).join('\n');
    golden('move-exit-batched', `${text}\n`);
    expect(plan).toHaveLength(7);
    expect(run).toHaveLength(4);
    // the same commands, in the same order
    expect(run.flatMap((s) => s.batch ?? [s])).toEqual(plan);
    // with a standby device left in the namespace, it is removed first
    expect(retunnel(pod, exitB, true)[0]).toEqual({ argv: ['ip', 'link', 'del', 'podvpn-standby'], mayFail: true });
  });

  it('batchIp: runs of two or more ip steps become one batch ending with the marker; anything else runs alone and breaks the run', () => {
    const ip = (...a: string[]): Step => ({ argv: ['ip', ...a] });
    const other: Step = { argv: ['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vxlan0', 'dst', '10.0.0.1'] };
    const withStdin: Step = { argv: ['ip', 'link', 'show'], stdin: 'x' };
    const opt = ip('-6', 'route', 'del', 'default');
    const spaced = ip('link', 'set', 'a b', 'up');
    const out = batchIp([ip('link', 'del', 'a'), ip('link', 'del', 'b'), other, ip('link', 'del', 'c'), withStdin, opt, spaced, ip('route', 'del', '::/0'), ip('addr', 'flush', 'dev', 'x')]);
    expect(out.map((s) => s.batch?.length ?? s.argv.join(' '))).toEqual([2, other.argv.join(' '), 'ip link del c', 'ip link show', 'ip -6 route del default', 'ip link set a b up', 2]);
    expect(out[0]).toEqual({ argv: ['ip', '-batch', '-'], stdin: `link del a\nlink del b\n${BATCH_END}\n`, batch: [ip('link', 'del', 'a'), ip('link', 'del', 'b')] });
    expect(batchIp([])).toEqual([]);
  });

  it("stepOutcome: a batch stopped by a line that may fail goes on after it; by one that may not, fails with ip's words; stopped any other way, fails (ip's real output)", () => {
    const standby = { argv: ['ip', 'link', 'del', 'podvpn-standby'], mayFail: true };
    const add = { argv: ['ip', 'link', 'add', 'vxlan0', 'type', 'vxlan', 'id', '7', 'dev', 'eth0'] };
    const v6 = { argv: ['ip', 'route', 'del', '::/0'], mayFail: true };
    const batch = batchIp([standby, add, v6])[0]!;
    expect(batch.argv).toEqual(['ip', '-batch', '-']);
    const lo = '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n';
    expect(stepOutcome(batch, { code: 0, stdout: lo, stderr: '' })).toEqual({ ok: true, rest: [] });
    // line 1 may fail: the rest still to run
    expect(stepOutcome(batch, { code: 1, stdout: '', stderr: 'Cannot find device "podvpn-standby"\nCommand failed -:1\n' })).toEqual({ ok: true, rest: [add, v6] });
    // the last line may fail: done
    expect(stepOutcome(batch, { code: 1, stdout: '', stderr: 'RTNETLINK answers: No such file or directory\nCommand failed -:3\n' })).toEqual({ ok: true, rest: [] });
    // line 2 may not
    expect(stepOutcome(batch, { code: 1, stdout: '', stderr: 'RTNETLINK answers: File exists\nCommand failed -:2\n' })).toEqual({ ok: false, failure: 'ip link add vxlan0 type vxlan id 7 dev eth0: RTNETLINK answers: File exists' });
    // ip exited at once (no "Command failed", no marker)
    expect(stepOutcome(batch, { code: 255, stdout: '', stderr: 'Cannot find device "eth0"\n' })).toEqual({ ok: false, failure: 'ip batch (link del, link add, route del) stopped before its end: Cannot find device "eth0"; exit code 255' });
    // killed (the agent's timeout): no output at all
    expect(stepOutcome(batch, { code: 1, stdout: '', stderr: '' })).toMatchObject({ ok: false, failure: expect.stringMatching(/stopped before its end: exit code 1$/) });
    // a shape ip does not print (the marker and a failure): fail closed
    expect(stepOutcome(batch, { code: 1, stdout: lo, stderr: 'x\nCommand failed -:1\n' })).toMatchObject({ ok: false });
    // one step: its code, unless it may fail
    expect(stepOutcome({ argv: ['nft', '-f', '-'] }, { code: 1, stdout: '', stderr: 'Error: syntax error\n' })).toEqual({ ok: false, failure: 'nft -f -: Error: syntax error' });
    expect(stepOutcome(standby, { code: 1, stdout: '', stderr: 'Cannot find device' })).toEqual({ ok: true, rest: [] });
  });
});
