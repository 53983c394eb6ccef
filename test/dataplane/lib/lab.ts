// The data-plane lab: network namespaces that stand for a cluster, a VPN provider and the internet.
// Every address lives inside namespaces the lab creates; nothing is attached to the root namespace.
//
//   client, nogw, app, dns, gw  (pods)  --veth-->  node  --wan0/up0-->  vpn  --inet0/eth0-->  inet
//
// node: the CNI (routed veths as Calico does: pod /32 addresses, gateway 169.254.1.1), kube-proxy's
// service DNAT, the NetworkPolicy translation (lib/netpol.ts) on the pods' veths, NAT out of wan0,
// counters of what leaves the uplink. vpn: the provider's WireGuard endpoint and exit (and the
// node's upstream router). inet: HTTP/HTTPS/iperf3 servers, a resolver for internet names, counters.

import { appendFileSync, chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Background,
  CommandError,
  isAlive,
  MUST_SUCCEED_TIMEOUT_MS,
  q,
  run,
  startBackground,
  sleep,
  stopBackground,
  tryRun,
  waitFor,
} from './exec.js';
import {
  type GatewayContainer,
  type GatewayManifestSettings,
  type GatewayRuntime,
  type GluetunSettings,
  gluetunFirewallCommands,
  gluetunSettings,
} from './gateway.js';
import { type Inventory, type NetworkPolicy, translatePolicies } from './netpol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SCRIPTS = join(HERE, '..', 'scripts');
/** The lab's stand-in of the pod-gateway v1.13.0 image (bin, default_config, the etc files it relies on). */
const IMAGE = join(HERE, '..', 'image');
/**
 * Busybox applets that come first in PATH, as on Alpine, where the pod-gateway image installs
 * coreutils, iproute2, bind-tools, iptables and dnsmasq over busybox but not these.
 */
const BUSYBOX_APPLETS = ['ping', 'killall', 'awk', 'grep', 'hostname', 'route', 'udhcpc', 'sysctl'];
/** LAB_POD_GATEWAY_DIR=<pod-gateway checkout>: run its real bin/*.sh and config/ instead of the stand-ins. */
export const POD_GATEWAY_DIR = process.env.LAB_POD_GATEWAY_DIR || undefined;
const UNSHARE = 'unshare --mount --pid --uts --fork --kill-child --propagation private';

/**
 * `ip netns add` waits on the kernel's teardown of namespaces deleted just before (another lab file's,
 * or a scenario's): an exits-lab run right after a full lab run timed out at 10 s creating a pod.
 */
const NETNS_ADD_TIMEOUT_MS = 90_000;
export const POD_MTU = 1450; // a VXLAN pod network (Flannel, Cilium): the harder case for MTU
export const ADDR = {
  podCIDR: '10.244.0.0/16',
  serviceCIDR: '10.96.0.0/12',
  dnsService: '10.96.0.10',
  appService: '10.96.0.80',
  podGateway: '169.254.1.1',
  client: '10.244.1.10',
  client6: 'fd00:10:244::10',
  nogw: '10.244.1.11',
  nogw6: 'fd00:10:244::11',
  gw: '10.244.1.20',
  gwReplaced: '10.244.1.21',
  gwGone30: '10.244.1.23',
  gwGone180: '10.244.1.24',
  /** A routed pod on a 1400-byte pod network, and a gateway pod's init on one. */
  c1400: '10.244.1.12',
  g1400: '10.244.1.22',
  /** NodeLocal DNSCache's link-local address (kubespray's default), on the node. */
  nodeLocalDns: '169.254.25.10',
  gw6: 'fd00:10:244::20',
  dns: '10.244.2.53',
  app: '10.244.3.30',
  nodeWan: '203.0.113.2',
  nodeWan6: '2001:db8:2::2',
  vpnWan: '203.0.113.1',
  vpnWan6: '2001:db8:2::1',
  vpnExit: '198.51.100.1',
  vpnExit6: '2001:db8:100::1',
  inet: '198.51.100.80',
  inet6: '2001:db8:100::80',
  inetResolver: '198.51.100.53',
  tunnelServer: '10.64.0.1',
  tunnelClient: '10.64.0.2',
  wgPort: 51820,
} as const;

export const INTERNET_NAME = 'inet.example';
export const APP_NAME = 'app.downloads.svc.cluster.local';

export interface LabInputs {
  prefix: string;
  /** The client's settings.sh exactly as the webhook wrote it into the pod annotation. */
  clientSettingsScript: string;
  /** The client's resolv.conf from the webhook's dnsConfig. */
  clientResolvConf: string;
  /** Labels of the injected pod (the kill-switch policy selects them). */
  clientLabels: Record<string, string>;
  clientNamespace: string;
  /** The gateway's DNS name (GATEWAY_NAME): cluster DNS answers it with the gateway pod's IP. */
  gatewayName: string;
  clusterDomain: string;
  policies: NetworkPolicy[];
  gateway: GatewayManifestSettings;
  /** The injected client containers' commands (from the webhook's patch). */
  clientInitCommand: string[];
  clientSidecarCommand: string[];
  log: (line: string) => void;
  /**
   * Build only the shared lab (node, vpn, inet, cluster DNS, the app pod, the VPN server): no gateway
   * pod `gw` and no client init. The exits lab (lib/exits.ts) boots its own gateway pods.
   */
  sharedOnly?: boolean;
}

/**
 * One gateway pod as the lab runs it: the lab's own `gw`, or one exit of an exit group (lib/exits.ts).
 * Each has its own namespace, address, manifest settings, WireGuard process and key, tunnel address.
 */
export interface GatewayPodSpec {
  ns: PodName;
  ip: string;
  ip6?: string;
  /** Appended to the keys of its containers, logs and files ('' for the lab's own gateway). */
  suffix: string;
  settings: GatewayManifestSettings;
  gluetun: GluetunSettings;
  /** wireguard-go's process name (host-global UAPI socket): carries the lab prefix. */
  wgProc: string;
  /** Its WireGuard private key (a file, mode 0600, generated at run time). */
  keyFile: string;
  /** Its address inside the tunnel (the provider's allowed-ips for its peer). */
  tunnelClient: string;
}

export interface Snapshot {
  inetViaVpn: number;
  inetLeak: number;
  inetLeak6: number;
  uplinkTunnel: number;
  /** ICMP errors to the VPN endpoint about the tunnel's own flow (not client data). */
  uplinkTunnelIcmp: number;
  uplinkClear: number;
  /** Sent by the gateway pod to neither the cluster nor its VPN endpoint (counted as it enters the node). */
  gatewayClear: number;
  netpolDropped: number;
  gwForwardDropped: number;
  /** Forwarded packets the gateway found no route for (its routing kill switch: iif vxlan0 unreachable). */
  gwNoRoute: number;
  /** Packets from the tunnel the provider dropped because conntrack could not place them (not NATable). */
  providerInvalid: number;
}

/** Pods added by a scenario (agent mode's pods, lib/agent.ts): `x<name>`. */
export type ExtraPodName = `x${string}`;
export type PodName = 'client' | 'nogw' | 'app' | 'dns' | 'gw' | 'c1400' | 'g1400' | ExtraPodName;
export type NsName = PodName | 'node' | 'vpn' | 'inet';
const ALL_NS: NsName[] = ['client', 'nogw', 'app', 'dns', 'gw', 'c1400', 'g1400', 'node', 'vpn', 'inet'];

/** A routed pod's hostname (client_init.sh reads it for nat.conf). */
const CLIENT_HOSTNAME = 'qbittorrent-7c9d8f6b5-x2x5q';
const GATEWAY_HOSTNAME = 'podvpn-gateway-default-6f7d9c8b4-k4z2m';

export class Lab {
  readonly work: string;
  readonly bg = new Map<string, Background>();
  readonly gluetun: GluetunSettings;
  gwIP: string = ADDR.gw;
  buildMs = 0;
  private keys = { gwPriv: '', gwPub: '', srvPriv: '', srvPub: '' };
  policyApplied = false;

  private constructor(readonly inputs: LabInputs) {
    this.work = `/run/podvpn-lab/${inputs.prefix}`;
    this.gluetun = gluetunSettings(inputs.gateway);
    this.policies = inputs.policies;
  }

  ns(name: NsName): string {
    return `${this.inputs.prefix}-${name}`;
  }
  /** wireguard-go's UAPI socket is host-global: its name carries the prefix; the link is renamed. */
  wgProcessName(side: 'gw' | 'srv'): string {
    return `${this.inputs.prefix.slice(0, 10)}${side === 'gw' ? 'g' : 's'}`;
  }
  get vpnIf(): string {
    return this.gluetun.vpnInterface;
  }
  /** The lab's own gateway pod `gw` as a GatewayPodSpec (the default of every gateway method). */
  gwSpec(): GatewayPodSpec {
    return {
      ns: 'gw',
      ip: this.gwIP,
      ip6: ADDR.gw6,
      suffix: '',
      settings: this.inputs.gateway,
      gluetun: this.gluetun,
      wgProc: this.wgProcessName('gw'),
      keyFile: join(this.work, 'gw.key'),
      tunnelClient: ADDR.tunnelClient,
    };
  }
  /** The VPN server's public key (each gateway pod's peer). */
  get vpnServerPub(): string {
    return this.keys.srvPub;
  }
  get pg(): Record<string, string> {
    return this.inputs.gateway.podGateway;
  }

  /** Runs a command inside a lab namespace. */
  in(ns: NsName, cmd: string, timeoutMs = MUST_SUCCEED_TIMEOUT_MS): Promise<string> {
    return run(`ip netns exec ${this.ns(ns)} ${cmd}`, timeoutMs);
  }
  tryIn(ns: NsName, cmd: string, timeoutMs = 10_000) {
    return tryRun(`ip netns exec ${this.ns(ns)} ${cmd}`, timeoutMs);
  }
  /**
   * A command in a namespace's network only (`nsenter --net`): no mount namespace, no /sys remount, no
   * /etc/netns files; for reads that need none of them (links, fdb, nft, /proc/net). Cheaper than
   * `ip netns exec`, but not what made the 30-pod reads slow (2 s each, 60 s for one nft read): that
   * was tryRun's bash running ~/.bashrc (lib/exec.ts), fixed with --norc.
   */
  tryNet(ns: NsName, cmd: string, timeoutMs = 10_000) {
    return tryRun(`nsenter --net=/run/netns/${this.ns(ns)} ${cmd}`, timeoutMs);
  }
  bgStart(key: string, ns: NsName, cmd: string, opts: { groupNice?: number } = {}): Background {
    const b = startBackground(key, `ip netns exec ${this.ns(ns)} ${cmd}`, join(this.work, `${key}.log`), opts);
    this.bg.set(key, b);
    appendFileSync(join(this.work, 'pids'), `${b.pid}\n`);
    return b;
  }
  /** A background process in the machine's own namespaces (agent mode's kubelet stand-in: the cgroup tree is there). */
  bgStartHost(key: string, cmd: string): Background {
    const b = startBackground(key, cmd, join(this.work, `${key}.log`));
    this.bg.set(key, b);
    appendFileSync(join(this.work, 'pids'), `${b.pid}\n`);
    return b;
  }
  async bgStop(key: string): Promise<void> {
    const b = this.bg.get(key);
    if (b) await stopBackground(b);
    this.bg.delete(key);
  }

  static async up(inputs: LabInputs): Promise<Lab> {
    const lab = new Lab(inputs);
    const start = Date.now();
    try {
      await lab.build();
    } catch (err) {
      // LAB_KEEP=1 leaves a failed lab standing for debugging (remove it with down.sh PREFIX).
      if (process.env.LAB_KEEP !== '1') await lab.down();
      throw err;
    }
    lab.buildMs = Date.now() - start;
    return lab;
  }

  private async build(): Promise<void> {
    const { log } = this.inputs;
    const steps: string[] = [];
    let last = Date.now();
    const mark = (step: string) => {
      steps.push(`${step} ${((Date.now() - last) / 1000).toFixed(2)}`);
      last = Date.now();
    };
    if (this.gluetun.vpnType !== 'wireguard') {
      throw new Error(`the lab runs WireGuard; the manifest's gluetun has VPN_TYPE=${this.gluetun.vpnType}`);
    }
    await Lab.downPrefix(this.inputs.prefix); // a previous run's leftovers with this prefix
    mkdirSync(this.work, { recursive: true });
    this.prepareImage();
    for (const n of ALL_NS.filter((x) => x !== 'gw' && x !== 'c1400' && x !== 'g1400')) {
      await run(`ip netns add ${this.ns(n)}`, NETNS_ADD_TIMEOUT_MS);
      await this.in(n, 'sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0');
      await run(`ip -n ${this.ns(n)} link set lo up`);
    }
    await this.in('node', 'sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1');
    await this.in('vpn', 'sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1');

    // Uplinks: node <-> vpn (the node's upstream), vpn <-> inet.
    await run(`ip -n ${this.ns('node')} link add wan0 type veth peer name up0 netns ${this.ns('vpn')}`);
    await run(`ip -n ${this.ns('vpn')} link add inet0 type veth peer name eth0 netns ${this.ns('inet')}`);
    await this.script('node', [
      `ip addr add ${ADDR.nodeWan}/24 dev wan0`,
      `ip -6 addr add ${ADDR.nodeWan6}/64 dev wan0 nodad`,
      'ip link set wan0 up',
      `ip route add default via ${ADDR.vpnWan}`,
      `ip -6 route add default via ${ADDR.vpnWan6}`,
      // The cluster's ranges never leave through the uplink (Calico installs blackhole routes for
      // its IPAM blocks; kube-proxy owns the service range): a packet to a pod that is gone, say
      // VXLAN to a replaced gateway, dies here instead of following the default route out.
      `ip route add blackhole ${ADDR.podCIDR}`,
      `ip route add blackhole ${ADDR.serviceCIDR}`,
    ]);
    await this.script('vpn', [
      `ip addr add ${ADDR.vpnWan}/24 dev up0`,
      `ip -6 addr add ${ADDR.vpnWan6}/64 dev up0 nodad`,
      `ip addr add ${ADDR.vpnExit}/24 dev inet0`,
      `ip -6 addr add ${ADDR.vpnExit6}/64 dev inet0 nodad`,
      'ip link set up0 up',
      'ip link set inet0 up',
    ]);
    await this.script('inet', [
      `ip addr add ${ADDR.inet}/24 dev eth0`,
      `ip addr add ${ADDR.inetResolver}/24 dev eth0`,
      `ip -6 addr add ${ADDR.inet6}/64 dev eth0 nodad`,
      'ip link set eth0 up',
      `ip route add default via ${ADDR.vpnExit}`,
      `ip -6 route add default via ${ADDR.vpnExit6}`,
    ]);
    await this.nft('node', NODE_NFT);
    await this.nft('vpn', VPN_NFT);
    await this.nft('inet', INET_NFT);
    // The kill-switch policy is in force before any routed pod exists (podvpn creates it first).
    await this.applyPolicy();
    mark('namespaces+uplinks+nft');

    // Pods on the routed pod network.
    await this.addPod('dns', ADDR.dns);
    await this.addPod('app', ADDR.app);
    await this.addPod('client', ADDR.client, ADDR.client6);
    await this.addPod('nogw', ADDR.nogw, ADDR.nogw6);
    await this.startInternet();
    await this.startClusterDns();
    this.bgStart('app-http', 'app', `socat TCP4-LISTEN:8080,fork,reuseaddr ${q(`SYSTEM:bash ${this.work}/http-echo.sh`)}`);
    await waitFor('the app pod', async () => (await this.tryIn('app', 'ss -ltnH')).stdout.includes(':8080'), 15_000);
    mark('pods+servers');

    await this.genKeys();
    await this.startVpnServer();
    if (this.inputs.sharedOnly === true) {
      mark('vpn');
      log(`lab up (shared part only): prefix ${this.inputs.prefix}, gateway settings from ${this.inputs.gateway.source}; build steps (s): ${steps.join(', ')}`);
      return;
    }
    await this.bootGateway(ADDR.gw);
    this.setGatewayReady(true);
    mark('vpn+gateway');

    // The routed pod: its resolv.conf from the webhook's dnsConfig, then pod-gateway's client init.
    for (const p of ['client', 'nogw'] as const) {
      mkdirSync(`/etc/netns/${this.ns(p)}`, { recursive: true });
      writeFileSync(`/etc/netns/${this.ns(p)}/resolv.conf`, this.inputs.clientResolvConf);
    }
    mkdirSync(join(this.work, 'vol', 'client-config'), { recursive: true });
    writeFileSync(join(this.work, 'vol', 'client-config', 'settings.sh'), this.inputs.clientSettingsScript);
    await this.clientInit();
    await waitFor('a first reply through the tunnel', async () => (await this.curlInet('client', 2)).body === ADDR.vpnExit, 20_000, 100);
    mark('client-init');
    log(`lab up: prefix ${this.inputs.prefix}, gateway settings from ${this.inputs.gateway.source}; build steps (s): ${steps.join(', ')}`);
  }

  /** Runs lines in one bash inside a namespace, stopping at the first failure. */
  async script(ns: NsName, lines: string[], timeoutMs = MUST_SUCCEED_TIMEOUT_MS): Promise<string> {
    return this.in(ns, `bash -ec ${q(lines.join('\n'))}`, timeoutMs);
  }

  async nft(ns: NsName, text: string): Promise<void> {
    const file = join(this.work, `nft-${ns}-${Date.now()}-${Math.random().toString(36).slice(2)}.nft`);
    writeFileSync(file, text);
    await this.in(ns, `nft -f ${q(file)}`);
  }

  async addPod(pod: PodName, ip: string, ip6?: string, mtu = POD_MTU): Promise<void> {
    const hostIf = `v-${pod}`;
    await run(`ip -n ${this.ns('node')} link add ${hostIf} mtu ${mtu} type veth peer name eth0 netns ${this.ns(pod)}`);
    const node = [
      // The pods' gateway: the same link-scoped address on every veth, as Calico's 169.254.1.1.
      `ip addr add ${ADDR.podGateway}/32 dev ${hostIf}`,
      `ip -6 addr add fe80::1/64 dev ${hostIf} nodad`,
      `ip link set ${hostIf} up`,
      `ip route add ${ip}/32 dev ${hostIf}`,
    ];
    if (ip6) node.push(`ip -6 route add ${ip6}/128 dev ${hostIf}`);
    await this.script('node', node);
    const inPod = [
      `ip link set eth0 mtu ${mtu}`,
      `ip addr add ${ip}/32 dev eth0`,
      'ip link set eth0 up',
      `ip route add ${ADDR.podGateway} dev eth0 scope link`,
      `ip route add default via ${ADDR.podGateway} dev eth0`,
    ];
    if (ip6) inPod.push(`ip -6 addr add ${ip6}/128 dev eth0 nodad`, 'ip -6 route add default via fe80::1 dev eth0');
    await this.script(pod, inPod);
  }

  async removePod(pod: PodName, ip: string): Promise<void> {
    this.extraPods = this.extraPods.filter((p) => p.hostIf !== `v-${pod}`);
    await tryRun(`ip netns del ${this.ns(pod)}`);
    await tryRun(`ip -n ${this.ns('node')} link del v-${pod}`);
    await tryRun(`ip -n ${this.ns('node')} route del ${ip}/32`);
  }

  private async startInternet(): Promise<void> {
    // socat's address syntax mangles backslashes: the replies are small scripts.
    writeFileSync(join(this.work, 'http-echo.sh'), HTTP_ECHO);
    writeFileSync(
      join(this.work, 'https-body.sh'),
      `${READ_REQUEST}printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n'; head -c ${TLS_BODY_BYTES} /dev/zero | tr '\\0' x\n`,
    );
    this.bgStart('inet-http4', 'inet', `socat TCP4-LISTEN:8080,fork,reuseaddr ${q(`SYSTEM:bash ${this.work}/http-echo.sh`)}`);
    this.bgStart('inet-http6', 'inet', `socat TCP6-LISTEN:8080,ipv6only=1,fork,reuseaddr ${q(`SYSTEM:bash ${this.work}/http-echo.sh`)}`);
    // A certificate padded with names: a TLS server flight of several full-size segments.
    const names = Array.from({ length: 120 }, (_, i) => `DNS:host${i}.${INTERNET_NAME}`).join(',');
    const pem = join(this.work, 'inet.pem');
    await run(
      `openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=${INTERNET_NAME} -addext ${q(`subjectAltName=${names}`)} -keyout ${pem}.key -out ${pem}.crt 2>/dev/null && cat ${pem}.key ${pem}.crt > ${pem}`,
      20_000,
    );
    this.bgStart(
      'inet-https',
      'inet',
      `socat OPENSSL-LISTEN:8443,cert=${pem},verify=0,fork,reuseaddr ${q(`SYSTEM:bash ${this.work}/https-body.sh`)}`,
    );
    this.bgStart('inet-iperf', 'inet', 'iperf3 -s -p 5201');
    // The internet's resolver: the only place that knows internet names.
    this.bgStart(
      'inet-dns',
      'inet',
      `dnsmasq -k -C /dev/null --user=root --pid-file=${this.work}/inet-dns.pid --no-resolv --no-hosts --listen-address=${ADDR.inetResolver} --bind-interfaces --address=/${INTERNET_NAME}/${ADDR.inet} --log-queries --log-facility=${this.work}/inet-dns.queries`,
    );
    await waitFor(
      'the internet servers',
      async () => {
        const tcp = (await this.tryIn('inet', 'ss -ltnH')).stdout;
        const udp = (await this.tryIn('inet', 'ss -lunH')).stdout;
        return ['0.0.0.0:8080', '[::]:8080', ':8443', ':5201'].every((p) => tcp.includes(p)) && udp.includes(`${ADDR.inetResolver}:53`);
      },
      15_000,
    );
  }

  /** Cluster DNS (a dnsmasq "CoreDNS" pod behind the DNS Service IP); logs every query it gets. */
  private async startClusterDns(): Promise<void> {
    this.writeClusterHosts();
    this.bgStart(
      'kube-dns',
      'dns',
      `dnsmasq -k -C /dev/null --user=root --pid-file=${this.work}/kube-dns.pid --no-resolv --no-hosts --addn-hosts=${this.work}/cluster-hosts --local=/${this.inputs.clusterDomain}/ --listen-address=${ADDR.dns} --bind-interfaces --log-queries --log-facility=${this.work}/kube-dns.queries`,
    );
    await waitFor('cluster DNS', async () => (await this.tryIn('dns', 'ss -lunH')).stdout.includes(`${ADDR.dns}:53`), 15_000);
  }

  /** The gateway's headless Service answers with its pod's IP only while the pod is Ready. */
  gatewayReady = false;

  private writeClusterHosts(): void {
    writeFileSync(
      join(this.work, 'cluster-hosts'),
      `${this.gatewayReady ? `${this.gwIP} ${this.inputs.gatewayName}\n` : ''}${ADDR.appService} ${APP_NAME}\n${[...this.extraHosts].map(([name, ip]) => `${ip} ${name}\n`).join('')}`,
    );
  }

  /** More names cluster DNS answers (an exit's headless Service while its pod is Ready): name -> IP. */
  readonly extraHosts = new Map<string, string>();

  /** Publishes (undefined: withdraws) a name in cluster DNS, as the endpoints controller does for a headless Service. */
  setHost(name: string, ip: string | undefined): void {
    if (ip === undefined) this.extraHosts.delete(name);
    else this.extraHosts.set(name, ip);
    this.setGatewayReady(this.gatewayReady);
  }

  /** Publishes (or withdraws) the gateway's address in cluster DNS, as the endpoints controller does. */
  setGatewayReady(ready: boolean): void {
    this.gatewayReady = ready;
    this.writeClusterHosts();
    const dnsPid = this.bg.get('kube-dns')?.pid;
    if (dnsPid !== undefined) process.kill(dnsPid, 'SIGHUP');
  }

  /** The lab's pod-gateway image: the stand-ins, or pod-gateway's real files (LAB_POD_GATEWAY_DIR). */
  get image(): string {
    return join(this.work, 'image');
  }

  private prepareImage(): void {
    const img = this.image;
    const src = POD_GATEWAY_DIR;
    const bin = src ? join(src, 'bin') : join(IMAGE, 'bin');
    const config = src ? join(src, 'config') : join(IMAGE, 'default_config');
    for (const need of [join(bin, 'client_init.sh'), join(config, 'settings.sh')]) {
      if (!existsSync(need)) throw new Error(`${need} not found (LAB_POD_GATEWAY_DIR=${src ?? ''})`);
    }
    cpSync(bin, join(img, 'bin'), { recursive: true });
    for (const f of readdirSync(join(img, 'bin'))) chmodSync(join(img, 'bin', f), 0o755);
    // COPY config /default_config and COPY config /config, as the image's Dockerfile does.
    cpSync(config, join(img, 'default_config'), { recursive: true });
    cpSync(config, join(img, 'config'), { recursive: true });
    cpSync(join(IMAGE, 'etc'), join(img, 'etc'), { recursive: true });
    mkdirSync(join(img, 'lab', 'busybox'), { recursive: true });
    const busybox = ['/usr/bin/busybox', '/bin/busybox', '/usr/sbin/busybox'].find((b) => existsSync(b));
    if (busybox === undefined) throw new Error('busybox not found');
    for (const applet of BUSYBOX_APPLETS) symlinkSync(busybox, join(img, 'lab', 'busybox', applet));
    // LAB: Debian's busybox has no inotifyd; gateway_sidecar.sh only uses it to copy resolv.conf on
    // change, which podvpn's no-resolv makes moot. A stand-in that waits forever.
    writeFileSync(join(img, 'lab', 'busybox', 'inotifyd'), '#!/bin/sh\nexec sleep infinity\n', { mode: 0o755 });
    this.inputs.log(`pod-gateway scripts: ${src ? `REAL, from ${src}` : 'the lab stand-ins (test/dataplane/image)'}`);
  }

  /**
   * The shell command that runs one container of a pod: its own PID, mount and UTS namespaces in the
   * pod's network namespace, the image's layout, the pod's volumes (scripts/container.sh).
   */
  containerCmd(ns: NsName, key: string, hostname: string, mounts: [string, string][], command: string[]): string {
    const mountsFile = join(this.work, `${key}.mounts`);
    writeFileSync(mountsFile, `${mounts.map(([a, b]) => `${a} ${b}`).join('\n')}\n`);
    return `ip netns exec ${this.ns(ns)} ${UNSHARE} bash ${SCRIPTS}/container.sh ${join(this.work, 'ct', key)} ${this.image} ${hostname} ${mountsFile} -- ${command.map(q).join(' ')}`;
  }

  /** A container restarted like the kubelet does (scripts/kubelet.sh); its exits go to <key>.restarts. */
  startContainer(key: string, containerCmd: string): Background {
    const b = startBackground(key, `bash ${SCRIPTS}/kubelet.sh ${join(this.work, `${key}.restarts`)} -- ${containerCmd}`, join(this.work, `${key}.log`));
    this.bg.set(key, b);
    appendFileSync(join(this.work, 'pids'), `${b.pid}\n`);
    return b;
  }

  /** The container's exits so far (kubelet.sh's log). */
  restarts(key: string): string[] {
    const f = join(this.work, `${key}.restarts`);
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l !== '') : [];
  }

  /** A file inside a container's root (what it wrote: dnsmasq's leases, pod-gateway.conf, ...). */
  containerFile(key: string, path: string): string {
    const rel = path.replace(/^\/+/, '');
    // /etc and /bin are overlays: what the container wrote there is in their upper layers.
    const layer = /^(etc|bin)\//.exec(rel);
    if (layer) return join(this.work, 'ct', key, `${layer[1]}.up`, rel.slice(layer[0].length));
    return join(this.work, 'ct', key, 'root', rel);
  }

  /** The lab's cluster inventory, as the CNI sees it (namespaces, pods, labels, addresses). */
  inventory(): Inventory {
    const inv = labInventory(this.inputs.clientNamespace, this.inputs.clientLabels, this.gwIP);
    return { namespaces: [...inv.namespaces, ...this.extraNamespaces.filter((n) => !inv.namespaces.some((m) => m.name === n.name))], pods: [...inv.pods, ...this.extraPods] };
  }
  /** Pods and namespaces added by scenarios (agent mode), as the CNI sees them. */
  extraPods: Inventory['pods'] = [];
  extraNamespaces: Inventory['namespaces'] = [];

  /** How the lab's CNI reads ipBlock: Calico (matches pod IPs) or Cilium (does not). */
  cni: 'calico' | 'cilium' = 'calico';
  /** The policies in force (the product's, unless a scenario swaps them). */
  policies: NetworkPolicy[] = [];

  policyNft(): string {
    return translatePolicies(this.policies, this.inventory(), 'podvpn_netpol', { ipBlockMatchesPods: this.cni === 'calico' });
  }

  /** Drops counted by policy tables since replaced (the CNI re-renders when pods come and go). */
  private netpolDroppedBefore = 0;

  async applyPolicy(): Promise<void> {
    this.netpolDroppedBefore += await this.counter('node', 'podvpn_netpol', 'dropped');
    await this.nft('node', `table inet podvpn_netpol\ndelete table inet podvpn_netpol\n${this.policyNft()}`);
    this.policyApplied = true;
  }

  async removePolicy(): Promise<void> {
    this.netpolDroppedBefore += await this.counter('node', 'podvpn_netpol', 'dropped');
    await this.tryIn('node', 'nft delete table inet podvpn_netpol');
    this.policyApplied = false;
  }

  private async genKeys(): Promise<void> {
    const key = async () => {
      const priv = (await run('wg genkey')).trim();
      const pub = (await run(`echo ${q(priv)} | wg pubkey`)).trim();
      return [priv, pub] as const;
    };
    [this.keys.gwPriv, this.keys.gwPub] = await key();
    [this.keys.srvPriv, this.keys.srvPub] = await key();
    writeFileSync(join(this.work, 'gw.key'), `${this.keys.gwPriv}\n`, { mode: 0o600 });
    writeFileSync(join(this.work, 'srv.key'), `${this.keys.srvPriv}\n`, { mode: 0o600 });
  }

  /** Starts wireguard-go in a namespace, sizes and renames its link, waits for its UAPI socket. */
  private async startWireguard(key: string, proc: string, ns: NsName, linkName: string, mtu: number): Promise<void> {
    rmSync(`/var/run/wireguard/${proc}.sock`, { force: true });
    this.bgStart(key, ns, `env LOG_LEVEL=error wireguard-go -f ${proc}`);
    await waitFor(`wireguard-go ${proc}`, () => existsSync(`/var/run/wireguard/${proc}.sock`), 15_000);
    await waitFor(`link ${proc}`, async () => (await this.tryIn(ns, `ip link show ${proc}`)).code === 0, 10_000);
    await this.script(ns, [`ip link set ${proc} mtu ${mtu}`, `ip link set ${proc} name ${linkName}`]);
  }

  private async startVpnServer(): Promise<void> {
    await this.startWireguard('wg-srv', this.wgProcessName('srv'), 'vpn', 'wgsrv0', 1420);
    await this.script('vpn', [
      `wg set ${this.wgProcessName('srv')} private-key ${this.work}/srv.key listen-port ${ADDR.wgPort} peer ${this.keys.gwPub} allowed-ips ${ADDR.tunnelClient}/32`,
      `ip addr add ${ADDR.tunnelServer}/24 dev wgsrv0`,
      'ip link set wgsrv0 up',
    ]);
  }

  /**
   * Another peer at the provider (an exit's own WireGuard identity): its key, its tunnel address, and
   * the public address its traffic leaves from (source NAT at the provider, counted as via_vpn).
   */
  async addVpnPeer(pub: string, tunnelClient: string, publicIP: string): Promise<void> {
    await this.in('vpn', `wg set ${this.wgProcessName('srv')} peer ${pub} allowed-ips ${tunnelClient}/32`);
    await this.in('vpn', `ip addr add ${publicIP}/24 dev inet0`);
    await this.nft('vpn', `table ip lab_vpn_${publicIP.replaceAll('.', '_')} {\n  chain post {\n    type nat hook postrouting priority srcnat - 10; policy accept;\n    oifname "inet0" ip saddr ${tunnelClient} snat to ${publicIP}\n  }\n}\n`);
    await this.in('inet', `nft add element inet lab_inet exits { ${publicIP} }`);
  }

  /** The provider drops a peer (blocks that account), or takes it back. */
  async setVpnPeer(pub: string, tunnelClient: string, present: boolean): Promise<void> {
    await this.in('vpn', present ? `wg set ${this.wgProcessName('srv')} peer ${pub} allowed-ips ${tunnelClient}/32` : `wg set ${this.wgProcessName('srv')} peer ${pub} remove`);
  }

  /** A gateway pod's veth counts as a gateway's edge (gw_clear) on the node. */
  async addGatewayEdge(hostIf: string): Promise<void> {
    await this.in('node', `nft add element inet lab_uplink gw_ifs { ${hostIf} }`);
  }

  /** The gateway pod's resolv.conf (ClusterFirst: the kubelet's clusterDNS; NodeLocal's address on such clusters). */
  gatewayNameserver: string = ADDR.dnsService;

  /** The volumes a gateway container mounts, written out for container.sh (ConfigMaps; the pod's resolv.conf). */
  private gatewayMounts(c: GatewayContainer, g: GatewayPodSpec = this.gwSpec()): [string, string][] {
    const mounts: [string, string][] = [];
    const base = join(this.work, 'vol', `${c.name}${g.suffix}`);
    for (const m of c.mounts) {
      const at = join(base, m.path.replaceAll('/', '_'));
      if (m.dir) {
        mkdirSync(at, { recursive: true });
        for (const [name, text] of Object.entries(m.files)) writeFileSync(join(at, name), text);
      } else {
        mkdirSync(base, { recursive: true });
        const text = m.files[''] ?? '';
        // LAB: the public dnsmasq upstreams become the lab's internet resolver (see rewriteUpstream).
        writeFileSync(at, m.path.startsWith('/etc/dnsmasq.d/') ? text.split('\n').map(rewriteUpstream).join('\n') : text);
      }
      mounts.push([at, m.path]);
    }
    const resolv = join(base, 'resolv.conf');
    mkdirSync(base, { recursive: true });
    writeFileSync(resolv, `search podvpn-system.svc.${this.inputs.clusterDomain} svc.${this.inputs.clusterDomain} ${this.inputs.clusterDomain}\nnameserver ${this.gatewayNameserver}\noptions ndots:5\n`);
    mounts.push([resolv, '/etc/resolv.conf']);
    return mounts;
  }

  private gatewayContainer(name: 'gateway-init' | 'gateway-sidecar', settings: GatewayManifestSettings = this.inputs.gateway): GatewayContainer {
    const c = (settings.podGatewayContainers ?? []).find((x) => x.name === name);
    if (!c) throw new Error(`the gateway manifest has no container ${name}`);
    return c;
  }

  /** Runs the manifest's gateway-init container in a pod's namespace; returns its exit code (log: <key>.log). */
  async runGatewayInit(ns: NsName, key = 'gateway-init', settingsOverride?: Record<string, string>, g: GatewayPodSpec = this.gwSpec()): Promise<number> {
    const c = this.gatewayContainer('gateway-init', g.settings);
    let mounts = this.gatewayMounts(c, g);
    if (settingsOverride) {
      // A variant of the manifest's settings.sh (negative controls): appended assignments win.
      const dir = join(this.work, 'vol', key);
      const config = mounts.find(([, p]) => p === '/config')?.[0];
      if (config === undefined) throw new Error('the manifest mounts nothing at the gateway-init container\'s /config');
      cpSync(config, dir, { recursive: true });
      appendFileSync(join(dir, 'settings.sh'), `\n${Object.entries(settingsOverride).map(([k, v]) => `${k}=${q(v)}`).join('\n')}\n`);
      mounts = mounts.map(([a, b]) => (b === '/config' ? [dir, b] : [a, b]));
    }
    const r = await tryRun(`${this.containerCmd(ns, key, GATEWAY_HOSTNAME, mounts, c.command)} >> ${join(this.work, `${key}.log`)} 2>&1`, 60_000);
    return r.code;
  }

  /** The gateway pod: pod-gateway's gateway_init, gluetun (tunnel, routing, firewall), pod-gateway's sidecar. */
  async bootGateway(ip: string): Promise<void> {
    this.gwIP = ip;
    await this.bootGatewayPod(this.gwSpec());
  }

  /** A gateway pod (the lab's own or an exit's): its namespace on the pod network, then its containers. */
  async bootGatewayPod(g: GatewayPodSpec): Promise<void> {
    await run(`ip netns add ${this.ns(g.ns)}`, NETNS_ADD_TIMEOUT_MS);
    await this.in(g.ns, 'sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0');
    await run(`ip -n ${this.ns(g.ns)} link set lo up`);
    await this.addPod(g.ns, g.ip, g.ip6);

    // 1. pod-gateway's gateway_init.sh, as the manifest runs it (its command, its volumes).
    const rc = await this.runGatewayInit(g.ns, `gateway-init${g.suffix}`, undefined, g);
    if (rc !== 0) {
      const tail = (await tryRun(`tail -n 8 ${join(this.work, `gateway-init${g.suffix}.log`)}`)).stdout;
      throw new Error(`the gateway's init container exited ${rc} (a real gateway pod would crash-loop here):\n${tail}`);
    }
    // 2. gluetun: its start wrapper (if the manifest has one), the tunnel and its routing, the firewall.
    await this.startGatewayTunnel(false, {}, g);
    await this.applyGatewayFirewall(g);
    await this.connectGatewayTunnel(g);
    // 3. pod-gateway's gateway_sidecar.sh: dnsmasq for DHCP and DNS on vxlan0.
    await this.startGatewaySidecar(g);
    if (this.policyApplied) await this.applyPolicy(); // the CNI learns the new pod's address
  }

  /** A gateway pod deleted: its containers stopped, its tunnel gone, its namespace and veth removed. */
  async stopGatewayPod(g: GatewayPodSpec): Promise<void> {
    await this.bgStop(`gateway-sidecar${g.suffix}`);
    await this.bgStop(`wg-gw${g.suffix}`);
    rmSync(`/var/run/wireguard/${g.wgProc}.sock`, { force: true });
    await this.removePod(g.ns, g.ip);
  }

  /** The gateway-sidecar container restarted with the pod's resolv.conf naming `nameserver`. */
  async restartGatewaySidecar(nameserver: string): Promise<void> {
    await this.bgStop('gateway-sidecar');
    this.gatewayNameserver = nameserver;
    await this.startGatewaySidecar();
  }

  /**
   * NodeLocal DNSCache on the node: its link-local address (on the node's lo; the real one uses a
   * dummy interface) and a cache that forwards to cluster DNS and logs every query. A counter in
   * the VPN server counts what arrives through the tunnel for link-local addresses.
   */
  async startNodeLocalDns(): Promise<void> {
    if (this.bg.has('nodelocal-dns')) return;
    await this.in('node', `ip addr add ${ADDR.nodeLocalDns}/32 dev lo`);
    this.bgStart(
      'nodelocal-dns',
      'node',
      `dnsmasq -k -C /dev/null --user=root --pid-file=${this.work}/nodelocal.pid --no-resolv --no-hosts --server=${ADDR.dns} --listen-address=${ADDR.nodeLocalDns} --bind-interfaces --log-queries --log-facility=${this.work}/nodelocal.queries`,
    );
    await this.nft('vpn', `table inet lab_linklocal {\n  counter into_tunnel {\n  }\n  chain pre {\n    type filter hook prerouting priority -300; policy accept;\n    iifname "wgsrv0" ip daddr 169.254.0.0/16 counter name into_tunnel\n  }\n}\n`);
    await waitFor('NodeLocal DNS', async () => (await this.tryIn('node', 'ss -lunH')).stdout.includes(`${ADDR.nodeLocalDns}:53`), 15_000);
  }

  /** A pod of its own (a network namespace on the pod network) with the given eth0 MTU. */
  async addExtraPod(pod: 'c1400' | 'g1400' | ExtraPodName, ip: string, mtu: number, ip6?: string): Promise<void> {
    await run(`ip netns add ${this.ns(pod)}`, NETNS_ADD_TIMEOUT_MS);
    await this.in(pod, 'sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0');
    await run(`ip -n ${this.ns(pod)} link set lo up`);
    await this.addPod(pod, ip, ip6, mtu);
  }

  /** gluetun dies (its process and tunnel gone), as after an OOM kill or a crash. */
  async killGluetun(g: GatewayPodSpec = this.gwSpec()): Promise<void> {
    const wg = this.bg.get(`wg-gw${g.suffix}`);
    if (wg) process.kill(wg.pid, 'SIGKILL');
    await waitFor('wg0 to vanish', async () => (await this.tryIn(g.ns, `ip link show ${g.gluetun.vpnInterface}`)).code !== 0, 5_000);
    await this.bgStop(`wg-gw${g.suffix}`);
  }

  /**
   * gluetun's fallbackToDisabled after a failed firewall setup: the whole filter table flushed
   * (pod-gateway's rules with it), chains deleted, every policy ACCEPT, IPv4 and IPv6; the nat table
   * (pod-gateway's MASQUERADE) stays.
   */
  async flushGatewayFirewall(): Promise<void> {
    await this.script('gw', [
      'for t in iptables ip6tables; do',
      '  $t -F; $t -X',
      '  $t -P INPUT ACCEPT; $t -P OUTPUT ACCEPT; $t -P FORWARD ACCEPT',
      'done',
    ]);
  }

  /** gluetun started again in the pod: its wrapper, its firewall (with the post-rules), its tunnel. */
  async restartGluetun(): Promise<void> {
    await this.startGatewayTunnel(false);
    await this.applyGatewayFirewall();
    await this.connectGatewayTunnel();
  }

  async startGatewaySidecar(g: GatewayPodSpec = this.gwSpec()): Promise<void> {
    const c = this.gatewayContainer('gateway-sidecar', g.settings);
    const key = `gateway-sidecar${g.suffix}`;
    this.startContainer(key, this.containerCmd(g.ns, key, GATEWAY_HOSTNAME, this.gatewayMounts(c, g), c.command));
    const vx = `${g.settings.podGateway.VXLAN_IP_NETWORK ?? '172.16.0'}.1`;
    await waitFor('the gateway dnsmasq', async () => (await this.tryIn(g.ns, 'ss -lunH')).stdout.includes(`${vx}:53`), 15_000);
  }

  /** dnsmasq's lease file in the gateway-sidecar container. */
  get gatewayLeases(): string {
    return this.containerFile('gateway-sidecar', '/var/lib/misc/dnsmasq.leases');
  }

  /**
   * gluetun's start wrapper from the manifest (its `sh -c` script up to `exec /gluetun-entrypoint`),
   * run in the gateway's namespace with the host's tools; undefined when the manifest has none.
   */
  async runGluetunWrapper(g: GatewayPodSpec = this.gwSpec()): Promise<boolean> {
    const cmd = g.settings.gluetunCommand;
    if (!cmd || cmd.length < 3 || !/sh$/.test(cmd[0] ?? '') || cmd[1] !== '-c') return false;
    const script = (cmd[2] ?? '').replace(/exec \/gluetun-entrypoint.*$/m, 'exit 0');
    const file = join(this.work, `gluetun-wrapper${g.suffix}.sh`);
    writeFileSync(file, script);
    await this.in(g.ns, `sh ${file}`);
    return true;
  }

  /**
   * gluetun's start: the wrapper, then wireguard-go up with gluetun's interface name, MTU, address
   * and routing (no peer yet). Like gluetun v3.41.1 it adds its policy rule (priority 101) with a
   * plain add, which fails ("File exists") when a dead gluetun left it: then gluetun's VPN loop
   * fails forever. `clean` is gluetun's own orderly tunnel restart, which removes its rule first.
   */
  async startGatewayTunnel(connect = true, opts: { clean?: boolean; noWrapper?: boolean } = {}, g: GatewayPodSpec = this.gwSpec()): Promise<void> {
    const vpnIf = g.gluetun.vpnInterface;
    if (opts.clean) await this.tryIn(g.ns, 'ip rule del pref 101');
    else if (!opts.noWrapper) await this.runGluetunWrapper(g);
    await this.startWireguard(`wg-gw${g.suffix}`, g.wgProc, g.ns, vpnIf, g.gluetun.wireguardMtu);
    const lines = [`ip addr add ${g.tunnelClient}/32 dev ${vpnIf}`, `ip link set ${vpnIf} up`, `ip route replace default dev ${vpnIf} table 51820`];
    await this.script(g.ns, lines);
    const added = await this.tryIn(g.ns, 'ip rule add not fwmark 51820 table 51820 pref 101');
    if (added.code !== 0) throw new Error(`gluetun: adding its routing rule failed: ${added.stderr.trim()} (gluetun v3.41.1 retries this forever)`);
    const rules = (await this.in(g.ns, 'ip rule show')).toString();
    const add: string[] = [];
    // gluetun routes FIREWALL_OUTBOUND_SUBNETS through the main table (around the tunnel).
    for (const s of g.gluetun.outboundSubnets) {
      if (!s.includes(':') && !rules.includes(`to ${s} lookup main`)) add.push(`ip rule add to ${s} lookup main pref 99`);
    }
    if (add.length > 0) await this.script(g.ns, add);
    if (connect) await this.connectGatewayTunnel(g);
  }

  /** Gives wireguard-go its key and peer (the handshake starts), waits for the handshake. */
  async connectGatewayTunnel(g: GatewayPodSpec = this.gwSpec()): Promise<void> {
    const proc = g.wgProc;
    await this.in(
      g.ns,
      `wg set ${proc} private-key ${g.keyFile} fwmark ${ADDR.wgPort} peer ${this.keys.srvPub} endpoint ${ADDR.vpnWan}:${ADDR.wgPort} allowed-ips 0.0.0.0/0,::/0 persistent-keepalive 5`,
    );
    await waitFor(
      'the WireGuard handshake',
      async () => {
        const r = await this.tryIn(g.ns, `wg show ${proc} latest-handshakes`);
        return /\s[1-9]\d*\s*$/.test(r.stdout);
      },
      15_000,
      50,
    );
  }

  /** What gluetun finds at start: the default route's interface and address, the local networks. */
  async gatewayRuntime(g: GatewayPodSpec = this.gwSpec()): Promise<GatewayRuntime> {
    const links = JSON.parse(await this.in(g.ns, 'ip -j link show')) as { ifname: string; link_type: string }[];
    const ether = new Set(links.filter((l) => l.link_type === 'ether').map((l) => l.ifname));
    const addrs = JSON.parse(await this.in(g.ns, 'ip -j addr show')) as {
      ifname: string;
      addr_info: { family: string; local: string; scope: string }[];
    }[];
    const ipOf = (iface: string, family: 'inet' | 'inet6') =>
      addrs.find((a) => a.ifname === iface)?.addr_info.find((i) => i.family === family && i.scope === 'global')?.local ??
      addrs.find((a) => a.ifname === iface)?.addr_info.find((i) => i.family === family)?.local;
    const localNetworks: GatewayRuntime['localNetworks'] = [];
    for (const family of ['inet', 'inet6'] as const) {
      const routes = JSON.parse(await this.in(g.ns, `ip -j ${family === 'inet' ? '-4' : '-6'} route show table main`)) as {
        dst: string;
        dev: string;
        gateway?: string;
      }[];
      for (const r of routes) {
        if (r.gateway !== undefined || r.dst === 'default' || !ether.has(r.dev)) continue;
        const ip = ipOf(r.dev, family);
        if (ip === undefined) continue;
        const cidr = r.dst.includes('/') ? r.dst : `${r.dst}/${family === 'inet' ? 32 : 128}`;
        localNetworks.push({ iface: r.dev, ip, cidr });
      }
    }
    return {
      defaultIf: 'eth0',
      defaultIP: g.ip,
      localNetworks,
      endpoint: { ip: ADDR.vpnWan, port: ADDR.wgPort, protocol: 'udp' },
    };
  }

  /** gluetun's firewall, from the manifest's settings, applied with iptables (nft backend). */
  async applyGatewayFirewall(g: GatewayPodSpec = this.gwSpec()): Promise<string[]> {
    const cmds = gluetunFirewallCommands(g.gluetun, await this.gatewayRuntime(g));
    const file = join(this.work, `gluetun-firewall${g.suffix}.sh`);
    writeFileSync(file, `${cmds.join('\n')}\n`);
    await this.in(g.ns, `bash -e ${file}`, 30_000);
    return cmds;
  }

  /** The negative control: gluetun's firewall switched off (what users do when it blocks VXLAN). */
  async removeGatewayFirewall(): Promise<void> {
    await this.in('gw', `bash -c ${q(`iptables-save > ${this.work}/gw-iptables.save && ip6tables-save > ${this.work}/gw-ip6tables.save`)}`);
    await this.script('gw', [
      'for t in iptables ip6tables; do',
      '  $t -F INPUT; $t -F OUTPUT; $t -F FORWARD',
      '  $t -P INPUT ACCEPT; $t -P OUTPUT ACCEPT; $t -P FORWARD ACCEPT',
      'done',
    ]);
  }

  /** Puts back the gateway's rules exactly as they were before removeGatewayFirewall. */
  async restoreGatewayFirewall(): Promise<void> {
    await this.in('gw', `bash -c ${q(`iptables-restore < ${this.work}/gw-iptables.save && ip6tables-restore < ${this.work}/gw-ip6tables.save`)}`);
  }

  async stopGateway(): Promise<void> {
    this.setGatewayReady(false);
    // Its namespace goes, and its counters with it: kept, so a snapshot across a replacement counts
    // the old namespace's and the new one's (a plain difference once read gwNoRoute: -26)
    this.gwCountsBefore.noRoute += await this.gwNoRoute();
    this.gwCountsBefore.forwardDropped += await this.gwForwardDropped();
    await this.stopGatewayPod(this.gwSpec());
  }
  private readonly gwCountsBefore = { noRoute: 0, forwardDropped: 0 };

  /**
   * The gateway pod replaced: the old one deleted (its address withdrawn from cluster DNS), `gapMs`
   * later a new one at a new address; once it is up (Ready) cluster DNS answers with it. Returns
   * the time it became Ready.
   */
  async replaceGateway(newIP: string, gapMs = 0): Promise<number> {
    await this.stopGateway();
    if (gapMs > 0) await sleep(gapMs);
    await this.bootGateway(newIP);
    this.setGatewayReady(true);
    return Date.now();
  }

  /** The routed pod's volumes: the downward-API /config (settings.sh only) and its resolv.conf. */
  private clientMounts(): [string, string][] {
    const resolv = join(this.work, 'vol', 'client-resolv.conf');
    writeFileSync(resolv, this.inputs.clientResolvConf);
    return [
      [join(this.work, 'vol', 'client-config'), '/config'],
      [resolv, '/etc/resolv.conf'],
    ];
  }

  /** The injected client init container (pod-gateway's client_init.sh) in a routed pod; its exit code. */
  async clientInitIn(pod: 'client' | 'c1400' | ExtraPodName, key = `${pod}-init`): Promise<number> {
    const cmd = this.containerCmd(pod, key, CLIENT_HOSTNAME, this.clientMounts(), this.inputs.clientInitCommand);
    return (await tryRun(`${cmd} >> ${join(this.work, `${key}.log`)} 2>&1`, 90_000)).code;
  }

  /** The client init in the client pod (first run, or run again); throws when it fails. */
  async clientInit(): Promise<void> {
    const rc = await this.clientInitIn('client', 'client-init');
    if (rc !== 0) {
      const tail = (await tryRun(`tail -n 8 ${join(this.work, 'client-init.log')}`)).stdout;
      throw new Error(`the client init container exited ${rc}:\n${tail}`);
    }
  }

  /** The injected client sidecar (its command from the webhook), restarted like the kubelet does. */
  startClientSidecar(): void {
    this.startContainer('client-sidecar', this.containerCmd('client', 'client-sidecar', CLIENT_HOSTNAME, this.clientMounts(), this.inputs.clientSidecarCommand));
  }

  /** curl to the internet host from a pod: the body is the source address the internet saw. */
  async curlInet(from: NsName, timeoutS = 2, opts: { v6?: boolean; host?: string } = {}): Promise<{ ok: boolean; body: string }> {
    const host = opts.host ?? (opts.v6 ? `[${ADDR.inet6}]` : ADDR.inet);
    const r = await this.tryIn(from, `curl -s ${opts.v6 ? '-6 -g' : ''} --max-time ${timeoutS} http://${host}:8080/`, (timeoutS + 3) * 1000);
    return { ok: r.code === 0, body: r.stdout.trim() };
  }

  /**
   * A reading for the leak report: the command's output, or undefined when what it reads is not there
   * (`absent`: a table not made yet, a namespace this lab has no use for). Any other failure, a timeout
   * on a busy machine included, throws: a failed read taken as 0 once made a counter's delta negative
   * (inetViaVpn −172471 in a 30-pod run), and on a leak counter it would read as "no leak".
   */
  async reading(ns: NsName, cmd: string, absent: RegExp): Promise<string | undefined> {
    // tryNet: the network namespace is all a reading needs.
    const r = await this.tryNet(ns, cmd, MUST_SUCCEED_TIMEOUT_MS);
    if (r.code === 0) return r.stdout;
    if (r.code !== 124 && absent.test(r.stderr)) return undefined;
    throw new CommandError(`nsenter --net=/run/netns/${this.ns(ns)} ${cmd}`, r);
  }

  /** An nft counter's packets; 0 when its table (or its namespace) does not exist. */
  async counter(ns: NsName, table: string, name: string, family = 'inet'): Promise<number> {
    const out = await this.reading(ns, `nft -j list counter ${family} ${table} ${name}`, /No such file or directory/);
    if (out === undefined) return 0;
    const j = JSON.parse(out) as { nftables: { counter?: { packets: number } }[] };
    const c = j.nftables.find((x) => x.counter)?.counter;
    if (c === undefined) throw new Error(`nft listed no counter ${family} ${table} ${name} in ${ns}: ${out.slice(0, 200)}`);
    return c.packets;
  }

  /** The clear-text flows counted on the uplink or at the gateway's edge (source . destination . proto . port). */
  async clearSeen(): Promise<string> {
    return this.setElements('node', 'inet lab_uplink clear_seen');
  }

  /** What the internet host counted as a leak (source . destination . protocol . ports), for the report. */
  async leakSeen(): Promise<string> {
    return this.setElements('inet', 'inet lab_inet leak_seen');
  }

  /** An nft set's elements on one line ('none' when empty or unreadable). */
  private async setElements(ns: NsName, set: string): Promise<string> {
    const out = await this.reading(ns, `nft list set ${set}`, /No such file or directory/);
    const m = out === undefined ? null : /elements = \{([^}]*)\}/s.exec(out);
    return m ? (m[1] ?? '').replace(/\s+/g, ' ').trim() : 'none';
  }

  /** Packets the kernel could not route in a gateway (IpExt InNoRoutes); 0 when this lab has no such namespace. */
  async gwNoRoute(ns: NsName = 'gw'): Promise<number> {
    const out = await this.reading(ns, 'cat /proc/net/netstat', NO_NAMESPACE);
    if (out === undefined) return 0;
    const lines = out.split('\n').filter((l) => l.startsWith('IpExt:'));
    const names = (lines[0] ?? '').split(/\s+/);
    const values = (lines[1] ?? '').split(/\s+/);
    const i = names.indexOf('InNoRoutes');
    if (i <= 0) throw new Error(`no IpExt InNoRoutes in ${ns}'s /proc/net/netstat`);
    return Number(values[i] ?? 0);
  }

  async removeGatewayRoutingKillSwitch(): Promise<string[]> {
    const rules = (await this.in('gw', 'ip rule show')).split('\n').filter((l) => /iif vxlan0/.test(l));
    const back: string[] = [];
    for (const line of rules) {
      const m = /^(\d+):\s+from all (.*)$/.exec(line.trim());
      if (!m) continue;
      await this.in('gw', `ip rule del pref ${m[1]}`);
      back.push(`ip rule add ${(m[2] ?? '').replace(/\s+$/, '')} pref ${m[1]}`);
    }
    return back;
  }

  /** Packets the gateway's FORWARD policy dropped (iptables reports it on the chain header); 0 when this lab has no such namespace. */
  async gwForwardDropped(ns: NsName = 'gw'): Promise<number> {
    const out = await this.reading(ns, 'iptables -L FORWARD -v -x -n', NO_NAMESPACE);
    if (out === undefined) return 0;
    const m = /policy (?:DROP|ACCEPT) (\d+) packets/.exec(out);
    if (!m) throw new Error(`no FORWARD policy line in ${ns}'s iptables listing: ${out.slice(0, 200)}`);
    return /policy DROP/.test(out) ? Number(m[1]) : 0;
  }

  /**
   * The counters, one read after another. (Side by side, tried on 2026-12-02 while every lab command
   * still ran ~/.bashrc, did not help: at 30 pods the eleven reads each ran past 60 s as often.)
   */
  async snapshot(): Promise<Snapshot> {
    return {
      inetViaVpn: await this.counter('inet', 'lab_inet', 'via_vpn'),
      inetLeak: await this.counter('inet', 'lab_inet', 'leak'),
      inetLeak6: await this.counter('inet', 'lab_inet', 'leak6'),
      uplinkTunnel: await this.counter('node', 'lab_uplink', 'tunnel'),
      uplinkTunnelIcmp: await this.counter('node', 'lab_uplink', 'tunnel_icmp'),
      uplinkClear: await this.counter('node', 'lab_uplink', 'clear'),
      gatewayClear: await this.counter('node', 'lab_uplink', 'gw_clear'),
      netpolDropped: this.netpolDroppedBefore + (await this.counter('node', 'podvpn_netpol', 'dropped')),
      gwForwardDropped: this.gwCountsBefore.forwardDropped + (await this.gwForwardDropped()),
      gwNoRoute: this.gwCountsBefore.noRoute + (await this.gwNoRoute()),
      providerInvalid: await this.counter('vpn', 'lab_vpn', 'provider_invalid', 'ip'),
    };
  }

  static delta(a: Snapshot, b: Snapshot): Snapshot {
    const out = {} as Snapshot;
    for (const k of Object.keys(a) as (keyof Snapshot)[]) out[k] = b[k] - a[k];
    return out;
  }

  /** Tears down everything this lab started; tolerates partial state. */
  async down(): Promise<void> {
    for (const key of [...this.bg.keys()]) await this.bgStop(key).catch(() => undefined);
    await Lab.downPrefix(this.inputs.prefix);
  }

  /** Removes every trace of a lab prefix: its recorded processes, namespaces, sockets, files. */
  static async downPrefix(prefix: string): Promise<void> {
    const work = `/run/podvpn-lab/${prefix}`;
    if (existsSync(join(work, 'pids'))) {
      for (const line of readFileSync(join(work, 'pids'), 'utf8').split('\n')) {
        const pid = Number(line);
        if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) continue;
        await stopBackground({ name: `pid ${pid}`, pid, log: '' }, 500).catch(() => undefined);
      }
    }
    // Every namespace of the prefix: the fixed ones and the ones scenarios added (agent-mode pods).
    const listed = (await tryRun('ip netns list')).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`${prefix}-`));
    for (const n of new Set([...ALL_NS.map((x) => `${prefix}-${x}`), ...listed])) {
      await tryRun(`ip netns del ${n}`);
      rmSync(`/etc/netns/${n}`, { recursive: true, force: true });
    }
    // The pod cgroups agent mode's pods were placed in (lib/agent.ts), once their processes are gone.
    await tryRun(`bash ${join(SCRIPTS, 'cgroups-down.sh')} ${q(prefix)}`, 15_000);
    // The lab's own gateway and server ('g', 's'), the exits lab's gateways ('e0'...: lib/exits.ts).
    for (const side of ['g', 's', ...Array.from({ length: 8 }, (_, i) => `e${i}`)]) rmSync(`/var/run/wireguard/${prefix.slice(0, 10)}${side}.sock`, { force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

/** The lab's pods as the CNI (and the policy translation) sees them. */
export function labInventory(clientNamespace: string, clientLabels: Record<string, string>, gwIP: string = ADDR.gw): Inventory {
  const ns = clientNamespace;
  return {
    namespaces: [{ name: ns }, { name: 'kube-system' }, { name: 'podvpn-system' }],
    pods: [
      { name: 'client', namespace: ns, labels: clientLabels, ips: [ADDR.client, ADDR.client6], hostIf: 'v-client' },
      { name: 'nogw', namespace: ns, labels: clientLabels, ips: [ADDR.nogw, ADDR.nogw6], hostIf: 'v-nogw' },
      { name: 'c1400', namespace: ns, labels: clientLabels, ips: [ADDR.c1400], hostIf: 'v-c1400' },
      { name: 'app', namespace: ns, labels: { app: 'web' }, ips: [ADDR.app], hostIf: 'v-app' },
      { name: 'coredns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ips: [ADDR.dns], hostIf: 'v-dns' },
      { name: 'gateway', namespace: 'podvpn-system', labels: { 'app.kubernetes.io/name': 'podvpn-gateway' }, ips: [gwIP, ADDR.gw6], hostIf: 'v-gw' },
    ],
  };
}

export const TLS_BODY_BYTES = 16 * 1024;

/**
 * Reads the request head first (a server that closes with unread request bytes sends a reset, and
 * the client may lose the reply), then replies with the source address the server saw.
 */
const READ_REQUEST = `while IFS= read -r -t 2 line; do line=\${line%$'\\r'}; [[ -z $line ]] && break; done\n`;
const HTTP_ECHO = `${READ_REQUEST}printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n%s\\n' "$SOCAT_PEERADDR"\n`;

/**
 * The manifest's dnsmasq upstreams are public resolvers (reachable only through the tunnel). The lab
 * never sends to an address outside its namespaces, so each public `server=` becomes the lab's
 * internet resolver, which keeps the property that matters: the upstream is outside every allowed
 * range, so only the tunnel reaches it. A non-public upstream is kept as it is (the lab will show
 * where it leads).
 */
export function rewriteUpstream(line: string): string {
  const m = /^\s*server=([0-9.]+)(#\d+)?\s*$/.exec(line);
  if (!m) return line;
  const ip = m[1] as string;
  if (isNonPublicV4(ip)) return line;
  return `server=${ADDR.inetResolver}  # LAB: stands in for ${ip}`;
}

function isNonPublicV4(ip: string): boolean {
  const [a = 0, b = 0] = ip.split('.').map(Number);
  return a === 10 || a === 127 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b < 128) || (a === 169 && b === 254);
}

const NODE_NFT = `
table ip lab_nat {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${ADDR.dnsService} udp dport 53 dnat to ${ADDR.dns}
    ip daddr ${ADDR.dnsService} tcp dport 53 dnat to ${ADDR.dns}
    ip daddr ${ADDR.appService} tcp dport 80 dnat to ${ADDR.app}:8080
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
}
table ip6 lab_nat6 {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
}
table inet lab_uplink {
  counter tunnel {
  }
  counter clear {
  }
  counter gw_clear {
  }
  # ICMP errors to the VPN endpoint about the tunnel's own UDP flow (wireguard-go gone while the
  # server still sends): tunnel control, no client data; counted apart so they are visible.
  counter tunnel_icmp {
  }
  # What was counted as clear, for the report when a check fails.
  set clear_seen {
    type ipv4_addr . ipv4_addr . inet_proto . inet_service
    flags dynamic
    size 256
  }
  chain count_forward {
    type filter hook forward priority 100; policy accept;
    oifname "wan0" ip daddr ${ADDR.vpnWan} udp dport ${ADDR.wgPort} counter name tunnel accept
    oifname "wan0" ip daddr ${ADDR.vpnWan} icmp type destination-unreachable @th,224,16 ${ADDR.wgPort} counter name tunnel_icmp accept
    oifname "wan0" meta nfproto ipv4 add @clear_seen { ip saddr . ip daddr . meta l4proto . th dport } counter name clear accept
    oifname "wan0" counter name clear accept
  }
  # What the gateway pod sends towards anything but the cluster and its VPN endpoint (the clear
  # text that layer 2 must stop), counted where it enters the node, before any node policy.
  # The gateway pods' veths (the lab's gw; the exits lab adds its exits').
  set gw_ifs {
    type ifname
    elements = { "v-gw" }
  }
  chain count_gateway {
    type filter hook forward priority -10; policy accept;
    iifname != @gw_ifs accept
    ip daddr { ${ADDR.podCIDR}, ${ADDR.serviceCIDR} } accept
    ip daddr ${ADDR.vpnWan} udp dport ${ADDR.wgPort} accept
    ip daddr ${ADDR.vpnWan} icmp type destination-unreachable @th,224,16 ${ADDR.wgPort} accept
    ip6 daddr fd00:10:244::/48 accept
    meta nfproto ipv4 add @clear_seen { ip saddr . ip daddr . meta l4proto . th dport } counter name gw_clear accept
    counter name gw_clear accept
  }
}
`;

// The provider's exit NAT drops what it cannot translate, as a NAT gateway must (kube-proxy does the
// same in KUBE-FORWARD): a packet from the tunnel that conntrack cannot place (ct state invalid) is
// never source-NATed, so forwarding it would send the peer's tunnel address to the internet. Seen in
// the exits lab (2026-12-02): after an exit pod was deleted, a moved pod's old TCP connection, sent
// on through its new exit, reached the internet host from 10.64.0.12 (that exit's tunnel address),
// counted as a leak, while the node's uplink saw nothing in the clear. Counted (provider_invalid) so
// a run shows how often it happens.
const VPN_NFT = `
table ip lab_vpn {
  counter provider_invalid {
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wgsrv0" oifname "inet0" ct state invalid counter name provider_invalid drop
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "inet0" ip saddr 10.64.0.0/24 masquerade
  }
}
`;

/** nsenter's word for a namespace this lab has not made (Lab.reading). */
const NO_NAMESPACE = /nsenter: cannot open \/run\/netns\//;

const INET_NFT = `
table inet lab_inet {
  counter via_vpn {
  }
  counter leak {
  }
  counter leak6 {
  }
  # What was counted as a leak (source, destination, protocol, source and destination port; for
  # ICMP the "source port" is its type and code), for the report when a check fails.
  set leak_seen {
    type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service
    flags dynamic
    size 256
  }
  # The provider's exit addresses (the exits lab adds one per exit).
  set exits {
    type ipv4_addr
    elements = { ${ADDR.vpnExit} }
  }
  chain input {
    type filter hook input priority -150; policy accept;
    iifname "lo" accept
    ip saddr @exits counter name via_vpn accept
    meta nfproto ipv4 add @leak_seen { ip saddr . ip daddr . meta l4proto . th sport . th dport } counter name leak accept
    meta nfproto ipv4 counter name leak accept
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept
    meta nfproto ipv6 counter name leak6 accept
  }
}
`;
