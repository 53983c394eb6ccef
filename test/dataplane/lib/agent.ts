// Agent mode in the lab: the podvpn-agent's real entry (dist/agent/main.js, what the DaemonSet runs) as
// a process in the lab's node namespace, fed over the Kubernetes API wire format by the repository's API
// double; agent-mode pods built as a kubelet builds them (a network namespace per pod from the lab's
// CNI, a pause-like process and the containers in pod cgroups laid out by the kubelet's rules, the gate
// init container before the app). See README.md, "Agent mode".

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastJsonPatch from 'fast-json-patch';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/config/schema.js';
import { GATE_INIT_NAME } from '../../../src/constants.js';
import { injectionPatch } from '../../../src/inject/patch.js';
import { clientSettings } from '../../../src/inject/settings.js';
import type { Pod } from '../../../src/inject/types.js';
import { DEFAULT_RESOURCES, EVENTS_RESOURCE, KubeApiDouble } from '../../kube-api-double/index.js';
import { isAlive, q, sleep, stopBackground, tryRun, waitFor } from './exec.js';
import { CLIENT_NAMESPACE, LAB_RANGES } from './inputs.js';
import { type ExtraPodName, type Lab, POD_MTU } from './lab.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..', '..');
const SCRIPTS = join(HERE, '..', 'scripts');
export const AGENT_MAIN = join(REPO, 'dist', 'agent', 'main.js');
const GATE_JS = join(REPO, 'dist', 'agent', 'gate.js');
const UDHCPC_SCRIPT = join(REPO, 'src', 'agent', 'udhcpc-lease.sh');
export const NODE_NAME = 'lab-node';

/** The agent's API server address inside the node namespace (a bridge to the double, below). */
const API_PORT = 6443;
export const ADMIN_PORT = 9091;
const GATEWAY_POD_LABELS = { 'app.kubernetes.io/name': 'podvpn-gateway', 'app.kubernetes.io/instance': 'podvpn-gateway-default' };

/** The kubelet's two cgroup drivers, each with its own pod cgroup layout. */
export type CgroupDriver = 'systemd' | 'cgroupfs';

/** The cgroup hierarchies of this machine: the v2 one (pure or hybrid's unified) and a v1 one if any. */
export function cgroupHierarchies(): { v2: string | undefined; v1: string | undefined } {
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : undefined;
  const v1 = ['pids', 'systemd'].map((h) => `/sys/fs/cgroup/${h}`).find((d) => existsSync(join(d, 'tasks')));
  return { v2, v1 };
}

const hex64 = () => randomBytes(32).toString('hex');

/**
 * The kubelet's pod cgroup and a container's, for its --cgroup-root set to /<prefix> (kind does the
 * same with /kubelet), BestEffort QoS (no requests), containerd's leaf names
 * (pkg/kubelet/cm/cgroup_manager_linux.go, containerd's CRI plugin):
 *   systemd:  <prefix>.slice/<prefix>-kubepods.slice/<prefix>-kubepods-besteffort.slice/
 *             <prefix>-kubepods-besteffort-pod<uid with _>.slice/cri-containerd-<id>.scope
 *   cgroupfs: <prefix>/kubepods/besteffort/pod<uid>/<id>
 */
export function podCgroup(prefix: string, driver: CgroupDriver, uid: string): { pod: string; container: (id: string) => string } {
  if (driver === 'systemd') {
    const p = prefix;
    const pod = `${p}.slice/${p}-kubepods.slice/${p}-kubepods-besteffort.slice/${p}-kubepods-besteffort-pod${uid.replaceAll('-', '_')}.slice`;
    return { pod, container: (id) => `${pod}/cri-containerd-${id}.scope` };
  }
  const pod = `${prefix}/kubepods/besteffort/pod${uid}`;
  return { pod, container: (id) => `${pod}/${id}` };
}

export interface AgentPod {
  name: ExtraPodName;
  uid: string;
  ip: string;
  driver: CgroupDriver;
  /** The hierarchies its processes were placed in. */
  hierarchies: string[];
  state: string;
  /** The pod object was created in the API at (ms). */
  createdAt: number;
}

/** What the webhook's agent-mode injection put on a pod. */
export interface AgentInjection {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  gateCommand: string[];
  resolvConf: string;
  pod: Pod;
}

/** The webhook's agent-mode injection on a plain pod: labels, annotations, the gate's command, dnsConfig. */
export function agentInjection(): AgentInjection {
  const config = parseConfig({
    dataPlane: 'agent',
    cluster: { podCIDRs: LAB_RANGES.podCIDRs, serviceCIDRs: LAB_RANGES.serviceCIDRs, dnsIPs: LAB_RANGES.dnsIPs },
    gateways: { default: {} },
  });
  const gateway = config.gateways.default!;
  const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: CLIENT_NAMESPACE, labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'web' }] } };
  const { patch } = injectionPatch({ pod, namespace: CLIENT_NAMESPACE, gateway, settings: clientSettings(gateway, LAB_RANGES), config, dataPlane: 'agent' });
  return readAgentInjection(fastJsonPatch.applyPatch(structuredClone(pod), patch as fastJsonPatch.Operation[], true, false).newDocument);
}

/** Reads back an agent-mode injected pod: its labels, annotations, the gate's command, dnsConfig as resolv.conf. */
export function readAgentInjection(mutated: Pod): AgentInjection {
  const gate = mutated.spec?.initContainers?.[0];
  if (!gate?.command || !gate.name?.includes('gate')) throw new Error('the agent-mode injection has no gate init container first');
  const dns = mutated.spec?.dnsConfig ?? {};
  const resolvConf = [
    ...(dns.nameservers ?? []).map((n) => `nameserver ${n}`),
    ...(dns.searches?.length ? [`search ${dns.searches.join(' ')}`] : []),
    ...(dns.options?.length ? [`options ${dns.options.map((o) => (o.value !== undefined ? `${o.name}:${o.value}` : o.name)).join(' ')}`] : []),
  ].join('\n');
  return { labels: { ...(mutated.metadata?.labels ?? {}) }, annotations: { ...(mutated.metadata?.annotations ?? {}) }, gateCommand: [...gate.command], resolvConf: `${resolvConf}\n`, pod: mutated };
}

/**
 * The gate's command as the lab runs it: the product's argv, with the image's paths (/nodejs/bin/node,
 * /app/dist) mapped to this machine's node and the repository's dist/; `timeoutS` replaces the
 * product's timeout where a scenario waits for it to expire.
 */
export function labGateCommand(product: string[], timeoutS?: number): string[] {
  return product.map((a, i) => {
    if (i === 0 && a.endsWith('/node')) return process.execPath;
    if (a.endsWith('/dist/agent/gate.js')) return GATE_JS;
    if (timeoutS !== undefined && a.startsWith('--timeout=')) return `--timeout=${timeoutS}`;
    return a;
  });
}

export class AgentLab {
  readonly api: KubeApiDouble;
  private bridge: Server | undefined;
  readonly injection = agentInjection();
  readonly pods = new Map<string, AgentPod>();
  readonly cg = cgroupHierarchies();
  private gatewayPodName = '';
  private gatewayGeneration = 0;

  private constructor(
    readonly lab: Lab,
    api: KubeApiDouble,
  ) {
    this.api = api;
  }

  get prefix(): string {
    return this.lab.inputs.prefix;
  }
  get dir(): string {
    return join(this.lab.work, 'agent');
  }

  /** The API double (in this process), reachable from the node namespace at 127.0.0.1:6443. */
  /**
   * `config`: the agent's config (default: agent mode, the lab's default gateway); `defaultGateway`:
   * publish the lab's own gateway pod `gw` (false for the exits lab, which publishes its exits).
   */
  static async start(lab: Lab, opts: { config?: Record<string, unknown>; defaultGateway?: boolean } = {}): Promise<AgentLab> {
    // core/v1 Events too (the agent reports exit moves with them), validated as kube-apiserver does.
    const api = await KubeApiDouble.start({ resources: [...DEFAULT_RESOURCES, EVENTS_RESOURCE] });
    const a = new AgentLab(lab, api);
    mkdirSync(a.dir, { recursive: true });
    // LAB: the agent runs in the node namespace, the double in this process (the root namespace). A
    // Unix socket crosses namespaces without attaching anything to the root namespace's network:
    // socat in the node namespace (127.0.0.1:6443) -> the socket -> this process -> the double.
    const sock = join(a.dir, 'api.sock');
    const port = Number(new URL(api.url).port);
    a.bridge = createServer((c) => {
      const up = createConnection({ host: '127.0.0.1', port });
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => a.bridge!.listen(sock, () => r()));
    lab.bgStart('api-bridge', 'node', `socat TCP4-LISTEN:${API_PORT},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:${sock}`);
    await waitFor('the API bridge in the node namespace', async () => (await lab.tryIn('node', 'ss -ltnH')).stdout.includes(`127.0.0.1:${API_PORT}`), 10_000);
    writeFileSync(
      join(a.dir, 'kubeconfig'),
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'lab', cluster: { server: `http://127.0.0.1:${API_PORT}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'agent', user: { token: 'lab' } }],
        contexts: [{ name: 'lab', context: { cluster: 'lab', user: 'agent' } }],
        'current-context': 'lab',
      }),
    );
    // The agent's config: agent mode, the service range and DNS from the config (a node cannot
    // discover the service range), no pod range: the agent takes the pod ranges from the Nodes'
    // spec.podCIDRs (one node per /24 the lab's pods use), so a node added later is picked up.
    writeFileSync(
      join(a.dir, 'config.yaml'),
      stringify(opts.config ?? { dataPlane: 'agent', cluster: { serviceCIDRs: LAB_RANGES.serviceCIDRs, dnsIPs: LAB_RANGES.dnsIPs }, gateways: { default: {} } }),
    );
    for (const name of [CLIENT_NAMESPACE, 'podvpn-system', 'kube-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    a.putNode(NODE_NAME, '10.244.1.0/24'); // the routed pods and the gateway
    a.putNode('lab-node-dns', '10.244.2.0/24'); // cluster DNS's pod
    a.putNode('lab-node-app', '10.244.3.0/24'); // the app pod
    if (opts.defaultGateway !== false) a.publishGateway(lab.gwIP, true);
    return a;
  }

  /**
   * A gateway pod object of its own (an exit's): its Deployment's pod labels, its IP, Ready as given,
   * and a deletionTimestamp when it is being deleted (graceful termination: the pod still runs).
   */
  publishGatewayPod(name: string, labels: Record<string, string>, ip: string, ready: boolean, deleting = false): void {
    const current = this.api.get('v1', 'Pod', 'podvpn-system', name);
    this.api.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        ...(current?.metadata ?? {}),
        name,
        namespace: 'podvpn-system',
        labels,
        ...(deleting ? { deletionTimestamp: new Date().toISOString(), deletionGracePeriodSeconds: 30 } : {}),
      },
      spec: { nodeName: NODE_NAME, containers: [{ name: 'gluetun', image: 'gluetun' }] },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
  }

  /** A gateway pod object removed (the pod is gone). */
  removeGatewayPod(name: string): void {
    this.api.remove('v1', 'Pod', 'podvpn-system', name);
  }

  putNode(name: string, podCIDR: string): void {
    this.api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name }, spec: { podCIDR, podCIDRs: [podCIDR] } });
  }

  /** The gateway's pod in the API: a new pod (new name, uid) when its IP changes, Ready as given. */
  publishGateway(ip: string, ready: boolean): void {
    const current = this.gatewayPodName === '' ? undefined : this.api.get('v1', 'Pod', 'podvpn-system', this.gatewayPodName);
    const currentIP = (current?.status as { podIP?: string } | undefined)?.podIP;
    if (current !== undefined && currentIP !== ip) {
      this.api.remove('v1', 'Pod', 'podvpn-system', this.gatewayPodName);
      this.gatewayPodName = '';
    }
    if (this.gatewayPodName === '') this.gatewayPodName = `podvpn-gateway-default-6f7d9c8b4-g${(this.gatewayGeneration += 1)}`;
    this.api.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: this.gatewayPodName, namespace: 'podvpn-system', labels: GATEWAY_POD_LABELS },
      spec: { nodeName: NODE_NAME, containers: [{ name: 'gluetun', image: 'gluetun' }] },
      status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
  }

  /** The gateway pod deleted (no pod at all until publishGateway). */
  withdrawGateway(): void {
    if (this.gatewayPodName !== '') this.api.remove('v1', 'Pod', 'podvpn-system', this.gatewayPodName);
    this.gatewayPodName = '';
  }

  /** The agent process: the DaemonSet's entry, NODE_NAME and a kubeconfig, in the node namespace. */
  startAgent(): void {
    this.lab.bgStart(
      'agent',
      'node',
      `env NODE_NAME=${NODE_NAME} KUBECONFIG=${join(this.dir, 'kubeconfig')} ${process.execPath} ${AGENT_MAIN} --config=${join(this.dir, 'config.yaml')} --udhcpc-script=${UDHCPC_SCRIPT} --admin-port=${ADMIN_PORT}`,
    );
  }

  get agentPid(): number | undefined {
    return this.lab.bg.get('agent')?.pid;
  }

  async waitAgentUp(): Promise<void> {
    await waitFor('the agent /healthz', async () => (await this.lab.tryIn('node', `curl -sf --max-time 1 http://127.0.0.1:${ADMIN_PORT}/healthz`)).code === 0, 30_000, 100);
  }

  /** SIGKILL the agent's process group (a container killed, an OOM kill): nothing runs its exit path. */
  async killAgent(): Promise<void> {
    const b = this.lab.bg.get('agent');
    if (!b) return;
    try {
      process.kill(-b.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await waitFor('the agent to die', () => !isAlive(b.pid), 5_000);
    await stopBackground(b);
    this.lab.bg.delete('agent');
  }

  /** SIGSTOP / SIGCONT the agent (a scenario that must see the layers below it hold, unrepaired). */
  pauseAgent(paused: boolean): void {
    const b = this.lab.bg.get('agent');
    if (b) process.kill(-b.pid, paused ? 'SIGSTOP' : 'SIGCONT');
  }

  /** SIGTERM, as the kubelet stops a container. */
  async stopAgent(): Promise<void> {
    await this.lab.bgStop('agent');
  }

  async metrics(): Promise<string> {
    return (await this.lab.tryIn('node', `curl -s --max-time 2 http://127.0.0.1:${ADMIN_PORT}/metrics`)).stdout;
  }

  /** A metric's value (summed over its label sets); 0 when absent. */
  static metric(text: string, name: string): number {
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  /**
   * A pod as the kubelet makes it: the Pod object (the webhook's agent-mode injection) bound to the
   * node; the CNI's network namespace and veth; then scripts/pod.sh: the sandbox's process, the gate
   * init container with the product's command, and the app only after the gate exited 0.
   */
  async createPod(name: ExtraPodName, ip: string, opts: { driver?: CgroupDriver; ip6?: string; gateTimeoutS?: number; light?: boolean; injection?: AgentInjection; deferPolicy?: boolean } = {}): Promise<AgentPod> {
    const driver = opts.driver ?? 'systemd';
    const createdAt = Date.now();
    const inj = opts.injection ?? this.injection;
    this.api.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: CLIENT_NAMESPACE, labels: { ...inj.labels, 'lab-pod': name }, annotations: inj.annotations },
      spec: { ...(inj.pod.spec as Record<string, unknown>), nodeName: NODE_NAME },
      status: { phase: 'Pending' },
    });
    // The API server's uid: the kubelet names the pod's cgroup from it.
    const uid = this.api.get('v1', 'Pod', CLIENT_NAMESPACE, name)?.metadata?.uid;
    if (typeof uid !== 'string' || !/^[0-9a-f-]{36}$/.test(uid)) throw new Error(`the API gave pod ${name} no uid`);
    // The CNI: the namespace, the veth, the routes; the pod's resolv.conf from the injected dnsConfig.
    await this.lab.addExtraPod(name, ip, POD_MTU, opts.ip6);
    mkdirSync(`/etc/netns/${this.lab.ns(name)}`, { recursive: true });
    writeFileSync(`/etc/netns/${this.lab.ns(name)}/resolv.conf`, inj.resolvConf);
    // The CNI learns the new pod's address (the policy selects it). Not for light pods: they send no
    // traffic of their own, and re-rendering the policy 50 times cost minutes.
    if (opts.light !== true) {
      this.lab.extraPods.push({ name, namespace: CLIENT_NAMESPACE, labels: { ...inj.labels, 'lab-pod': name }, ips: [ip, ...(opts.ip6 ? [opts.ip6] : [])], hostIf: `v-${name}` });
      // deferPolicy: the caller re-renders once for a batch of pods before any of them sends traffic.
      if (this.lab.policyApplied && opts.deferPolicy !== true) await this.lab.applyPolicy();
    }
    // The pod's cgroup: the systemd driver's in the v2 hierarchy; cgroupfs's in a v1 one when this
    // machine has one (cgroup v1: one line per hierarchy in /proc/<pid>/cgroup), else in v2.
    const hierarchy = driver === 'systemd' ? this.cg.v2 ?? this.cg.v1 : this.cg.v1 ?? this.cg.v2;
    if (hierarchy === undefined) throw new Error('no cgroup hierarchy found under /sys/fs/cgroup');
    const layout = podCgroup(this.prefix, driver, uid);
    const at = (rel: string) => join(hierarchy, rel);
    mkdirSync(at(layout.pod), { recursive: true });
    const state = join(this.dir, 'pods', name);
    mkdirSync(state, { recursive: true });
    // A light pod (the figures' 50): no gate process (an init container that exits 0 at once).
    const gate = opts.light === true ? ['true'] : labGateCommand(inj.gateCommand, opts.gateTimeoutS);
    const env = `CG_SANDBOX=${q(at(layout.container(hex64())))} CG_GATE=${q(at(layout.container(hex64())))} CG_APP=${q(at(layout.container(hex64())))}`;
    // In the machine's own namespaces, as the kubelet runs: `ip netns exec` would mount a /sys of its own.
    this.lab.bgStartHost(`pod-${name}`, `env ${env} bash ${SCRIPTS}/pod.sh ${this.lab.ns(name)} ${state} -- ${gate.map(q).join(' ')}`);
    const pod: AgentPod = { name, uid, ip, driver, hierarchies: [hierarchy], state, createdAt };
    this.pods.set(name, pod);
    // The kubelet reports the sandbox: the pod's IP (from the CNI) and its init container running.
    // 120 s: at 30 pods (5 made at a time, a load of 15 on two cores) one pod.sh took over 30 s to get here.
    await waitFor(`${name}'s sandbox`, () => existsSync(join(state, 'sandbox.started')), 120_000, 20);
    this.setPodStatus(pod, { phase: 'Pending', podIP: ip, podIPs: [{ ip }], initContainerStatuses: [{ name: GATE_INIT_NAME, image: 'podvpn', imageID: '', ready: false, restartCount: 0, state: { running: { startedAt: new Date().toISOString() } } }] });
    return pod;
  }

  /** A status update as the kubelet writes it (the agent's informer sees a MODIFIED event). */
  setPodStatus(pod: AgentPod, status: Record<string, unknown>): void {
    const current = this.api.get('v1', 'Pod', CLIENT_NAMESPACE, pod.name);
    if (current !== undefined) this.api.put({ ...current, status });
  }

  gateRc(pod: AgentPod): number | undefined {
    const f = join(pod.state, 'gate.rc');
    return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : undefined;
  }
  gateLog(pod: AgentPod): string {
    const f = join(pod.state, 'gate.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }
  /** When the app container started (ms), undefined if it never did. */
  appStarted(pod: AgentPod): number | undefined {
    const f = join(pod.state, 'app.started');
    return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : undefined;
  }
  sandboxStarted(pod: AgentPod): number {
    return Number(readFileSync(join(pod.state, 'sandbox.started'), 'utf8').trim());
  }

  async waitApp(pod: AgentPod, timeoutMs = 60_000): Promise<number> {
    await waitFor(`${pod.name}'s app to start (gate: ${this.gateLog(pod).trim().slice(0, 200)})`, () => this.appStarted(pod) !== undefined || this.gateRc(pod) !== undefined && this.gateRc(pod) !== 0, timeoutMs, 100);
    const t = this.appStarted(pod);
    if (t === undefined) throw new Error(`${pod.name}'s gate exited ${this.gateRc(pod)}: ${this.gateLog(pod)}`);
    return t;
  }

  /** The pod deleted: its processes stopped, its namespace and veth gone, its cgroups removed, its object deleted. */
  async deletePod(pod: AgentPod): Promise<void> {
    await this.lab.bgStop(`pod-${pod.name}`);
    const layout = podCgroup(this.prefix, pod.driver, pod.uid);
    for (const h of pod.hierarchies) await tryRun(`find ${q(join(h, layout.pod))} -depth -type d -exec rmdir {} \\; 2>/dev/null; true`);
    await this.lab.removePod(pod.name, pod.ip);
    this.api.remove('v1', 'Pod', CLIENT_NAMESPACE, pod.name);
    this.pods.delete(pod.name);
    await sleep(0);
  }

  /** The processes in a pod's cgroups (what discovery sees). */
  async podProcs(pod: AgentPod): Promise<number[]> {
    const layout = podCgroup(this.prefix, pod.driver, pod.uid);
    const out: number[] = [];
    for (const h of pod.hierarchies) {
      const r = await tryRun(`find ${q(join(h, layout.pod))} -name cgroup.procs -exec cat {} +`);
      out.push(...r.stdout.split('\n').filter((l) => l !== '').map(Number));
    }
    return out;
  }

  /** RSS (kB) and CPU time (s) of a process, from /proc. */
  static usage(pid: number): { rssKb: number; cpuS: number } {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    return { rssKb, cpuS: ticks / 100 };
  }

  async close(): Promise<void> {
    await this.lab.bgStop('agent').catch(() => undefined);
    for (const p of [...this.pods.values()]) await this.deletePod(p).catch(() => undefined);
    await this.lab.bgStop('api-bridge').catch(() => undefined);
    await new Promise<void>((r) => (this.bridge ? this.bridge.close(() => r()) : r()));
    await this.api.close();
  }
}
