import { describe, expect, it } from 'vitest';
import { allowedCIDRs } from '../cluster/ranges.js';
import { type PodObserved, planPod, planStandby } from './reconcile.js';
import { RANGES } from '../../test/agent/fixtures.js';

const POD = { uid: 'u1', namespace: 'apps', name: 'web', gateway: 'default' };
const GW = { name: 'default', podIP: '10.42.2.9', ready: true };
const HOUR = 3_600_000;
const healthy: PodObserved = {
  netns: 'net:[4026532999]',
  firewallCIDRs: allowedCIDRs(RANGES),
  tunnelRemote: ['10.42.2.9'],
  tunnelAddress: '172.16.0.23',
  defaultViaTunnel: true,
  readyMarker: true,
};
const fresh: PodObserved = { netns: 'net:[4026532999]', firewallCIDRs: undefined, tunnelRemote: undefined, tunnelAddress: undefined, defaultViaTunnel: false, readyMarker: false };
const lease = { takenAt: 0, seconds: 43_200 };

describe('reconcile plan', () => {
  it('a healthy pod with a fresh lease: nothing to do, counted as routed', () => {
    expect(planPod(POD, healthy, GW, RANGES, lease, 1 * HOUR)).toEqual({ uid: 'u1', actions: [], routed: true });
  });

  it('a new pod: setup, lease, then the marker', () => {
    expect(planPod(POD, fresh, GW, RANGES, undefined, 0).actions).toEqual([{ kind: 'setup' }, { kind: 'lease' }, { kind: 'mark-ready' }]);
  });

  it('no namespace yet: waits and says why', () => {
    expect(planPod(POD, { ...fresh, netns: undefined, netnsProblem: 'no process in the cgroup' }, GW, RANGES, undefined, 0).actions).toEqual([
      { kind: 'wait', reason: 'no process in the cgroup' },
    ]);
  });

  it('a gateway with no pod: the firewall still goes in, then wait (the gate keeps the app from starting)', () => {
    expect(planPod(POD, fresh, { ...GW, podIP: undefined }, RANGES, undefined, 0).actions).toEqual([
      { kind: 'firewall' },
      { kind: 'wait', reason: 'gateway "default" has no pod' },
    ]);
  });

  it('a replaced gateway: repoint the tunnel and ask the new dnsmasq for the same address', () => {
    expect(planPod(POD, healthy, { ...GW, podIP: '10.42.3.4' }, RANGES, lease, HOUR).actions).toEqual([
      { kind: 'repoint', from: ['10.42.2.9'], to: '10.42.3.4' },
      { kind: 'lease', requestIP: '172.16.0.23' },
    ]);
  });

  it('a repoint left half done (two FDB destinations): repointed again', () => {
    expect(planPod(POD, { ...healthy, tunnelRemote: ['10.42.2.9', '10.42.3.4'] }, { ...GW, podIP: '10.42.3.4' }, RANGES, lease, HOUR).actions[0]).toEqual({
      kind: 'repoint',
      from: ['10.42.2.9', '10.42.3.4'],
      to: '10.42.3.4',
    });
  });

  it('new cluster ranges: the firewall sets and routes are updated, nothing else', () => {
    const grown = { ...RANGES, podCIDRs: [...RANGES.podCIDRs, '10.52.0.0/16'] };
    expect(planPod(POD, healthy, GW, grown, lease, HOUR).actions).toEqual([{ kind: 'update-ranges' }]);
  });

  it('lease renewal at half its time (clock injected), and once after an agent restart (lease unknown)', () => {
    expect(planPod(POD, healthy, GW, RANGES, lease, 6 * HOUR - 1).actions).toEqual([]);
    expect(planPod(POD, healthy, GW, RANGES, lease, 6 * HOUR).actions).toEqual([{ kind: 'renew', requestIP: '172.16.0.23' }]);
    expect(planPod(POD, healthy, GW, RANGES, undefined, 0).actions).toEqual([{ kind: 'renew', requestIP: '172.16.0.23' }]);
  });

  it('a gateway whose VPN is down (not Ready): no renewal, no teardown; the kill switch holds', () => {
    expect(planPod(POD, healthy, { ...GW, ready: false }, RANGES, lease, 7 * HOUR)).toEqual({ uid: 'u1', actions: [], routed: true });
  });

  it('a lost default route (someone with NET_ADMIN, or a restart of the CNI): lease again, keep the address', () => {
    expect(planPod(POD, { ...healthy, defaultViaTunnel: false }, GW, RANGES, lease, HOUR)).toEqual({
      uid: 'u1',
      actions: [{ kind: 'lease', requestIP: '172.16.0.23' }],
      routed: false,
    });
  });

  it('exit group: a tunnel to another VXLAN id (a failover, a drain) is rebuilt to the exit, then leased asking for the same address', () => {
    const exitB = { name: 'vpn-b', podIP: '10.42.3.7', ready: true, vxlanId: 102 };
    const onA = { ...healthy, tunnelVxlanId: 101 };
    expect(planPod({ ...POD, gateway: 'vpn', exit: 'vpn-b' }, onA, exitB, RANGES, lease, HOUR)).toEqual({
      uid: 'u1',
      actions: [
        { kind: 'retunnel', fromVxlanId: 101, toVxlanId: 102, to: '10.42.3.7' },
        { kind: 'lease', requestIP: '172.16.0.23' },
      ],
      routed: true,
    });
    // the same id: nothing to do
    expect(planPod({ ...POD, gateway: 'vpn', exit: 'vpn-b' }, { ...onA, tunnelVxlanId: 102, tunnelRemote: ['10.42.3.7'] }, exitB, RANGES, lease, HOUR).actions).toEqual([]);
    // the id unread (an older observation): no rebuild on a guess
    expect(planPod({ ...POD, gateway: 'vpn', exit: 'vpn-b' }, { ...healthy, tunnelRemote: ['10.42.3.7'] }, exitB, RANGES, lease, HOUR).actions).toEqual([]);
  });

  it('exit group: a pod without a usable exit waits with the reason (the firewall still goes in); its tunnel is not touched', () => {
    const pod = { ...POD, gateway: 'vpn', waitReason: 'no podvpn.io/exit label' };
    expect(planPod(pod, fresh, GW, RANGES, undefined, 0).actions).toEqual([{ kind: 'firewall' }, { kind: 'wait', reason: 'no podvpn.io/exit label' }]);
    expect(planPod(pod, { ...healthy, tunnelVxlanId: 101 }, { ...GW, vxlanId: 102 }, RANGES, lease, HOUR).actions).toEqual([{ kind: 'wait', reason: 'no podvpn.io/exit label' }]);
  });

  it('tunnel up but the marker missing (the agent died after the route): only the marker', () => {
    expect(planPod(POD, { ...healthy, readyMarker: false }, GW, RANGES, lease, HOUR).actions).toEqual([{ kind: 'mark-ready' }]);
  });
});

describe('standby lease plan', () => {
  const pod = { ...POD, gateway: 'vpn', exit: 'vpn-a', standby: 'vpn-b' };
  const B = '10.42.3.7';
  it('a routed exit-group pod with a next exit and nothing known: take one there', () => {
    expect(planStandby(pod, true, undefined, B, 0)).toEqual({ exit: 'vpn-b' });
  });
  it('never before the pod is routed (a first route is never delayed)', () => {
    expect(planStandby(pod, false, undefined, B, 0)).toBeUndefined();
  });
  it('not for a pod outside exit groups, without a next exit, or whose next exit is its own', () => {
    expect(planStandby(POD, true, undefined, B, 0)).toBeUndefined();
    expect(planStandby({ ...pod, standby: undefined }, true, undefined, B, 0)).toBeUndefined();
    expect(planStandby({ ...pod, standby: 'vpn-a' }, true, undefined, B, 0)).toBeUndefined();
  });
  it('taken this agent lifetime: not again until half its time, then renewed; a new next exit: taken there', () => {
    const memory = { exit: 'vpn-b', exitPodIP: B, takenAt: 0, seconds: 43_200 };
    expect(planStandby(pod, true, memory, B, 6 * HOUR - 1)).toBeUndefined();
    expect(planStandby(pod, true, memory, B, 6 * HOUR)).toEqual({ exit: 'vpn-b' });
    expect(planStandby({ ...pod, standby: 'vpn-c' }, true, memory, '10.42.3.8', 1)).toEqual({ exit: 'vpn-c' });
  });
  it("the next exit's gateway pod replaced (a rollout, a crash: its dnsmasq has no leases): taken again at once", () => {
    const memory = { exit: 'vpn-b', exitPodIP: B, takenAt: 0, seconds: 43_200 };
    expect(planStandby(pod, true, memory, '10.42.3.99', 1)).toEqual({ exit: 'vpn-b' });
    // No gateway pod for it right now: what was known is not known to hold; the agent has nowhere to
    // send the exchange yet (maybeStandby waits for a pod IP).
    expect(planStandby(pod, true, memory, undefined, 1)).toEqual({ exit: 'vpn-b' });
  });
});
