// The tunnel plan (pure): the commands the agent runs inside a pod's network namespace, in order. The
// wire protocol is pod-gateway's client's (bin/client_init.sh, v1.13.0), so the gateway of
// manifests/gateway serves agent-mode pods unchanged:
//   - routes to the cluster's ranges via the pod's own next hop on eth0 (before the default moves);
//   - vxlan0: VXLAN id and UDP port of the gateway, over eth0, with the all-zeros FDB entry pointing at
//     the gateway pod's IP (client_init.sh: `bridge fdb append to 00:00:00:00:00:00 dst $GATEWAY_IP`);
//   - MTU: the gateway's, capped at eth0's minus VXLAN's 50 bytes;
//   - an address by DHCP from the gateway's dnsmasq (12 h leases, router = the gateway's .1), with
//     busybox udhcpc as client_init.sh uses it, but run once (-q) with a script that only prints the
//     lease: the agent sets the address itself, permanently (a pod keeps its tunnel when the agent is
//     gone) and renews the lease at half its time;
//   - the default route via the gateway's .1 on vxlan0: `ip route replace`, so there is no moment
//     without a default route and none via eth0 after; the IPv6 default route removed;
//   - the readiness marker link, last.
// The firewall (firewall.ts) is loaded FIRST, so nothing leaves outside the cluster and the tunnel
// even while the plan runs. Every command is an argv (never a shell line); the edge prefixes
// `nsenter --net=<ns path> --`.

import { createHash } from 'node:crypto';
import { AGENT_READY_LINK } from '../constants.js';
import { type ClusterRanges, notRoutedCIDRs } from '../cluster/ranges.js';
import { parseAddress, parseCidr, containsCidr } from '../cidr/cidr.js';
import { firewallRuleset } from './firewall.js';

export interface PodNetFacts {
  /** The pod's IPv4 next hop on eth0, read from its default route before podvpn changed it. */
  eth0Gateway: string;
  eth0Mtu: number;
  /**
   * The MAC vxlan0 (and a standby device) is made with: tunnelMac(pod uid), the same every time, so a
   * recreated vxlan0 is the same DHCP client (udhcpc's client id is its MAC) and an exit's dnsmasq that
   * already leased to the pod answers at once. Undefined: the kernel picks one.
   */
  tunnelMac?: string;
}

export interface GatewayFacts {
  /** The gateway pod's IP (VXLAN remote), from the API. */
  podIP: string;
  vxlanId: number;
  vxlanPort: number;
  overlayNetwork: string;
  overlayGatewayIP: string;
  mtu: number;
}

export interface Step {
  argv: string[];
  stdin?: string;
  /** The step may fail harmlessly (removing what is already absent). */
  mayFail?: boolean;
  /** A batch (batchIp): the `ip` steps it runs, one per line of stdin, in order. */
  batch?: Step[];
}

export const TUNNEL = 'vxlan0';
/** A short-lived second VXLAN device for a standby lease on the pod's next exit (removed after). */
export const STANDBY_LINK = 'podvpn-standby';
export const POD_LINK = 'eth0';
/** Prints the lease as key=value lines; shipped in the agent image. */
export const UDHCPC_SCRIPT = '/usr/share/podvpn/udhcpc-lease.sh';

/**
 * vxlan0's MAC for a pod: locally administered, unicast (02:...), the next 40 bits of SHA-256(pod uid).
 * Two pods on one VXLAN segment share a MAC with odds of about n^2 / 2^41 (1 in 10^8 for 150 pods).
 */
export function tunnelMac(podUid: string): string {
  const h = createHash('sha256').update(podUid).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

export function tunnelMtu(pod: PodNetFacts, gw: GatewayFacts): number {
  return Math.min(gw.mtu, pod.eth0Mtu - 50);
}

/**
 * Firewall, cluster routes, and the tunnel link: everything before DHCP. `standbyLink`: the pod's
 * namespace has a standby device (left by an agent that stopped mid-exchange): it goes before vxlan0
 * is made, or a device with the same VXLAN id would make the kernel refuse it.
 */
export function setupBeforeLease(pod: PodNetFacts, gw: GatewayFacts, ranges: ClusterRanges, standbyLink = true): Step[] {
  return [
    { argv: ['nft', '-f', '-'], stdin: firewallRuleset({ ranges, gatewayOverlayIP: gw.overlayGatewayIP }) },
    ...(standbyLink ? standbyCleanup() : []),
    ...clusterRoutes(pod, ranges),
    ...tunnelLink(pod, gw),
  ];
}

export function clusterRoutes(pod: PodNetFacts, ranges: ClusterRanges): Step[] {
  // onlink: CNIs whose next hop is not in a connected subnet (Calico's 169.254.1.1) still work
  return notRoutedCIDRs(ranges).map((cidr) => ({
    argv: ['ip', 'route', 'replace', cidr, 'via', pod.eth0Gateway, 'dev', POD_LINK, 'onlink'],
  }));
}

/** One DHCP exchange on vxlan0: 5 tries, 1 s apart, then quit with the lease printed (or fail). */
export function dhcpStep(requestIP?: string, script = UDHCPC_SCRIPT, link = TUNNEL): Step {
  return {
    argv: ['busybox', 'udhcpc', '-f', '-q', '-n', '-i', link, '-t', '5', '-T', '1', '-s', script, ...(requestIP ? ['-r', requestIP] : [])],
  };
}

export interface Lease {
  ip: string;
  prefix: number;
  router: string;
  seconds: number;
}

/** The lease udhcpc's script printed, checked against the gateway: an answer from anyone else is refused. */
export function parseLease(output: string, gw: GatewayFacts): { ok: true; lease: Lease } | { ok: false; reason: string } {
  const kv = new Map<string, string>();
  for (const line of output.split('\n')) {
    const m = /^(ip|subnet|router|lease)=(.*)$/.exec(line.trim());
    if (m) kv.set(m[1]!, m[2]!.trim().split(/\s+/)[0] ?? '');
  }
  const ip = kv.get('ip');
  const subnet = kv.get('subnet');
  const router = kv.get('router');
  const seconds = Number(kv.get('lease'));
  if (!ip || !subnet) return { ok: false, reason: 'udhcpc printed no lease (no DHCP answer from the gateway)' };
  let prefix: number;
  try {
    prefix = maskToPrefix(subnet);
    const overlay = parseCidr(gw.overlayNetwork);
    if (!containsCidr(overlay, parseAddress(ip))) return { ok: false, reason: `lease ${ip} is outside the gateway's overlay ${gw.overlayNetwork}` };
  } catch (err) {
    return { ok: false, reason: `unreadable lease: ${(err as Error).message}` };
  }
  if (router !== undefined && router !== '' && router !== gw.overlayGatewayIP) {
    return { ok: false, reason: `lease router ${router} is not the gateway's ${gw.overlayGatewayIP}` };
  }
  if (!Number.isInteger(seconds) || seconds <= 0) return { ok: false, reason: `lease time "${kv.get('lease') ?? ''}" is not a number of seconds` };
  return { ok: true, lease: { ip, prefix, router: gw.overlayGatewayIP, seconds } };
}

function maskToPrefix(mask: string): number {
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`subnet mask ${mask}`);
  const bits = parts.map((p) => p.toString(2).padStart(8, '0')).join('');
  if (!/^1*0*$/.test(bits)) throw new Error(`subnet mask ${mask} is not contiguous`);
  return bits.indexOf('0') === -1 ? 32 : bits.indexOf('0');
}

/** After the lease: the address (permanent), the default route into the tunnel, no IPv6 default, the marker. */
export function setupAfterLease(lease: Lease, previousIP?: string): Step[] {
  return [
    // Another address than the pod had (the gateway's dnsmasq gave that one to someone else): the old
    // one goes first. Left beside the new one it would stay the primary, the source of every packet,
    // while dnsmasq thinks it free and may lease it to another pod. Deleting it takes the default
    // route with it for a moment (fail closed); the next steps put both back.
    ...(previousIP !== undefined && previousIP !== lease.ip ? [{ argv: ['ip', 'addr', 'del', `${previousIP}/${lease.prefix}`, 'dev', TUNNEL], mayFail: true }] : []),
    { argv: ['ip', 'addr', 'replace', `${lease.ip}/${lease.prefix}`, 'dev', TUNNEL] },
    { argv: ['ip', 'route', 'replace', 'default', 'via', lease.router, 'dev', TUNNEL] },
    // `::/0`, not `-6 ... default`: the same route, and a form that fits in an ip batch (batchIp)
    { argv: ['ip', 'route', 'del', '::/0'], mayFail: true },
    ...readyMarker(),
  ];
}

export function readyMarker(): Step[] {
  return [
    { argv: ['ip', 'link', 'add', AGENT_READY_LINK, 'type', 'bridge'], mayFail: true },
  ];
}

/**
 * A replaced gateway (new pod IP): point the tunnel at it, then (the caller) a new lease from the new
 * dnsmasq. The kernel refuses `bridge fdb replace` on the all-zeros entry ("Cannot replace non-unicast
 * fdb entries"): append the new destination, then delete the old ones.
 */
export function repointTunnel(gw: GatewayFacts, previous: string[]): Step[] {
  return [
    ...(previous.includes(gw.podIP) ? [] : [{ argv: ['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', TUNNEL, 'dst', gw.podIP] }]),
    ...previous
      .filter((ip) => ip !== gw.podIP)
      .map((ip) => ({ argv: ['bridge', 'fdb', 'del', '00:00:00:00:00:00', 'dev', TUNNEL, 'dst', ip], mayFail: true })),
    // The pod's ARP entry for the gateway's overlay address still names the old gateway's MAC, and
    // vxlan0 learned that MAC at the old pod IP: until the entry went stale (many seconds) the pod's
    // traffic kept going to the dead gateway (the data-plane lab saw it). Forget it: the next packet
    // asks again, the new gateway answers through the all-zeros entry, and traffic flows with the
    // pod's address before the new lease is even taken.
    { argv: ['ip', 'neigh', 'flush', 'dev', TUNNEL], mayFail: true },
  ];
}

/**
 * Another exit: vxlan0 to another VXLAN id and gateway pod. The kernel cannot change a vxlan link's id
 * in place, so the link is deleted (its address, its default route and its learned neighbours go
 * with it: nothing leaves but the cluster, the firewall is not touched) and made again as in
 * setupBeforeLease; the caller then leases from the new exit and puts the address and route back.
 */
export function retunnel(pod: PodNetFacts, gw: GatewayFacts, standbyLink = true): Step[] {
  // A standby device with the new exit's id (left by an agent that stopped mid-way; the agent waits
  // for its own exchange with the pod to end first) would make the kernel refuse vxlan0 with that id:
  // it goes first. `standbyLink`: the namespace has one (a removal that fails costs a process)
  return [...(standbyLink ? standbyCleanup() : []), { argv: ['ip', 'link', 'del', TUNNEL], mayFail: true }, ...tunnelLink(pod, gw)];
}

function tunnelLink(pod: PodNetFacts, gw: GatewayFacts, link = TUNNEL): Step[] {
  const mac = pod.tunnelMac === undefined ? [] : ['address', pod.tunnelMac];
  // Made with its MTU and up, in one command: until the FDB entry below it has no destination, so
  // nothing is sent (and it carries no address or route yet: vxlan0's come after the lease, the
  // standby device never has any; the firewall lets only IPv4 out of vxlan0, nothing out of it).
  return [
    { argv: ['ip', 'link', 'add', link, ...mac, 'mtu', String(tunnelMtu(pod, gw)), 'up', 'type', 'vxlan', 'id', String(gw.vxlanId), 'dev', POD_LINK, 'dstport', String(gw.vxlanPort)] },
    { argv: ['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', link, 'dst', gw.podIP] },
  ];
}

/**
 * A standby lease on the pod's next exit, taken ahead of a move. dnsmasq pings an address for about 3 s
 * before it offers it to a client that holds no lease (and serves no other DHCP meanwhile), but offers
 * a client its own lease at once (rfc2131.c, DHCPDISCOVER). So the agent takes a lease from the next
 * exit now, off the critical path, as the same client (the same MAC as vxlan0), on a second device
 * with that exit's VXLAN id; a later move to that exit gets its answer in milliseconds. The device
 * carries no address and no route (nothing of the pod's traffic can use it) and is removed after
 * (standbyCleanup, always). udhcpc sends through a packet socket, and its VXLAN packets go to the
 * exit's pod IP on eth0, a cluster range: the in-pod firewall is not changed. Asks for the pod's
 * current address, so a move keeps it when the next exit has it free.
 */
export function standbyLease(pod: PodNetFacts, gw: GatewayFacts, requestIP: string | undefined, script = UDHCPC_SCRIPT, standbyLink = true): { link: Step[]; dhcp: Step; cleanup: Step[] } {
  return { link: [...(standbyLink ? standbyCleanup() : []), ...tunnelLink(pod, gw, STANDBY_LINK)], dhcp: dhcpStep(requestIP, script, STANDBY_LINK), cleanup: standbyCleanup() };
}

export function standbyCleanup(): Step[] {
  return [{ argv: ['ip', 'link', 'del', STANDBY_LINK], mayFail: true }];
}

/** Ranges changed: the firewall's sets (one transaction), the new routes, then the routes no longer wanted. */
export function updateRanges(pod: PodNetFacts, gw: GatewayFacts, ranges: ClusterRanges, previous: ClusterRanges): Step[] {
  const wanted = new Set(notRoutedCIDRs(ranges));
  const staleRoutes = notRoutedCIDRs(previous).filter((c) => !wanted.has(c));
  return [
    { argv: ['nft', '-f', '-'], stdin: firewallRuleset({ ranges, gatewayOverlayIP: gw.overlayGatewayIP }) },
    ...clusterRoutes(pod, ranges),
    ...staleRoutes.map((cidr) => ({ argv: ['ip', 'route', 'del', cidr, 'via', pod.eth0Gateway, 'dev', POD_LINK], mayFail: true })),
  ];
}

/**
 * The steps as the agent runs them: each run of two or more consecutive `ip` steps becomes one
 * `ip -batch -` process, one command per line. Every step is a process (and an nsenter) in the pod's
 * namespace; on a busy node each costs a share of a second, and a move to another exit was a dozen
 * of them. Without `-force`, ip stops at the first line that fails and prints "Command failed -:<line>"
 * (and on some errors, a `dev` naming no link in `link add`, it exits at once without that line), so
 * the lines after a failure never run, as one step after another. A batch ends with BATCH_END, whose
 * output shows it ran to its end; one stopped by a line that may fail goes on with the lines after it
 * (stepOutcome). Steps with stdin, or an argument a batch line would split or quote (whitespace,
 * quotes, `#`, `\`), run on their own.
 */
export function batchIp(steps: Step[]): Step[] {
  const out: Step[] = [];
  let run: Step[] = [];
  const flush = () => {
    if (run.length === 1) out.push(run[0]!);
    if (run.length > 1) out.push({ argv: ['ip', '-batch', '-'], stdin: `${[...run.map((s) => s.argv.slice(1).join(' ')), BATCH_END].join('\n')}\n`, batch: run });
    run = [];
  };
  for (const s of steps) {
    if (batchable(s)) run.push(s);
    else {
      flush();
      out.push(s);
    }
  }
  flush();
  return out;
}

/** The last line of every batch: prints lo's link ("1: lo: <LOOPBACK..."), present in every namespace. */
export const BATCH_END = 'link show dev lo';

function batchable(s: Step): boolean {
  return s.argv[0] === 'ip' && s.stdin === undefined && s.batch === undefined && s.argv.length > 1 && !s.argv[1]!.startsWith('-') && s.argv.slice(1).every((a) => /^[^\s"'#\\]+$/.test(a));
}

/**
 * What a step's result means: done (for a batch stopped by a line that may fail: done so far, and
 * `rest` still to run), or failed, and why. Anything a batch reports that is not one of those two
 * shapes is a failure (fail closed: the next round reads the pod back and plans again).
 */
export function stepOutcome(step: Step, r: { code: number; stdout: string; stderr: string }): { ok: true; rest: Step[] } | { ok: false; failure: string } {
  if (step.batch === undefined) {
    return r.code === 0 || step.mayFail === true ? { ok: true, rest: [] } : { ok: false, failure: `${step.argv.join(' ')}: ${r.stderr.trim().slice(0, 300)}` };
  }
  // Exit code 0: every line ran and none failed (any failure, or ip exiting at once, is non-zero)
  if (r.code === 0) return { ok: true, rest: [] };
  const ended = /^\d+: lo[:@]/m.test(r.stdout);
  const stopped = [...r.stderr.matchAll(/Command failed -:(\d+)/g)].map((m) => Number(m[1]));
  // ip's words before its "Command failed" line (or, when it exited at once, its last words)
  const words = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/Command failed -:\d+/.test(l))
    .join('; ')
    .slice(0, 300);
  const at = stopped.length === 1 && !ended ? step.batch[stopped[0]! - 1] : undefined;
  if (at !== undefined) {
    if (at.mayFail === true) return { ok: true, rest: step.batch.slice(stopped[0]) };
    return { ok: false, failure: `${at.argv.join(' ')}: ${words}` };
  }
  const lines = step.batch.map((s) => s.argv.slice(1, 3).join(' ')).join(', ');
  return { ok: false, failure: `ip batch (${lines}) stopped before its end: ${[words, `exit code ${r.code}`].filter((x) => x !== '').join('; ')}` };
}

/** The prefix every step gets at the edge. */
export function inNetns(nsPath: string, step: Step): Step {
  return { ...step, argv: ['nsenter', `--net=${nsPath}`, '--', ...step.argv] };
}
