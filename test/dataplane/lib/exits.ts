// The exits lab: an exit group of three exits (manifests/examples/exit-group), each its own gateway
// pod with its own WireGuard identity at the lab's VPN provider and its own public address at the
// internet host; routed pods whose exit the webhook's admission chose; long-lived TCP flows from
// them to the internet host, recorded per flow at both ends (scripts/flows.py). See README.md,
// "Exit groups".

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastJsonPatch from 'fast-json-patch';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { admit } from '../../../src/admission/review.js';
import { type AgentInjection, readAgentInjection } from './agent.js';
import { type Config, parseConfig } from '../../../src/config/schema.js';
import { LABEL_EXIT, LABEL_INJECT, NAMESPACE_INJECT_VALUE } from '../../../src/constants.js';
import type { Pod } from '../../../src/inject/types.js';
import { buildKillSwitchPolicy } from '../../../src/killswitch/policy.js';
import { q, run, sleep, tryRun, waitFor } from './exec.js';
import { type GatewayManifestSettings, gluetunSettings, readGatewayManifest } from './gateway.js';
import { CLIENT_NAMESPACE, type InjectedPod, LAB_RANGES, readInjectedPod } from './inputs.js';
import { ADDR, type ExtraPodName, type GatewayPodSpec, type Lab, type NsName, POD_MTU } from './lab.js';
import type { NetworkPolicy } from './netpol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..', '..');
const FLOWS = join(HERE, '..', 'scripts', 'flows.py');
export const EXIT_GROUP_DIR = join(REPO, 'manifests', 'examples', 'exit-group');
export const EXIT_GROUP_FIXTURE = join(HERE, '..', 'fixtures', 'exit-group-manifest.fixture.yaml');

/** Runs of one pod's client init container, the kubelet's restarts included (back-off 10, 20 s). */
const INIT_ATTEMPTS = 3;
/**
 * The scheduling-group nice of the lab's observers: the flow instruments (flows.py) and the test
 * worker with the reads it starts (exits.test.ts). nice(1) would not do: every detached lab program
 * and pod is a session of its own, and sessions share the CPU first (lib/exec.ts setGroupNice).
 */
export const INSTRUMENT_NICE = -15;
export const OBSERVER_NICE = -10;

/** The exits' addresses: gateway pods, tunnel addresses at the provider, public addresses at the internet. */
export const EXIT_ADDR = {
  gatewayPod: (i: number) => `10.244.1.${51 + i}`,
  tunnel: (i: number) => `10.64.0.${11 + i}`,
  public: (i: number) => `198.51.100.${11 + i}`,
  /** The routed pods: 10.244.1.100 and up. */
  pod: (k: number) => `10.244.1.${100 + k}`,
  /**
   * The node's own address (its InternalIP), the source of what the node itself sends to a pod (the
   * agent's probe polls): a private address, as a node's is, which the exits' post-rules accept.
   * LAB: on the node namespace's lo (no dummy-interface module here).
   */
  node: '192.168.255.2',
  flowPort: 9100,
} as const;

export interface ExitGroupInputs {
  source: string;
  /** podvpn's config as the example writes it (config.yaml of ConfigMap podvpn-config). */
  raw: Record<string, unknown>;
  config: Config;
  group: string;
  /** Per exit: its name, VXLAN id, Service name, its Deployment's settings and pod labels. */
  exits: { name: string; vxlanId: number; address: string; settings: GatewayManifestSettings; podLabels: Record<string, string>; probeArgs?: string[] }[];
  policies: NetworkPolicy[];
}

/** The exit group example rendered (kubectl kustomize), or its fixture where kubectl is missing. */
export async function exitGroupInputs(): Promise<ExitGroupInputs> {
  let rendered: string;
  let source: string;
  if (process.env.LAB_GATEWAY_FIXTURE !== '1' && (await tryRun('command -v kubectl')).code === 0) {
    const r = await tryRun(`kubectl kustomize ${q(EXIT_GROUP_DIR)}`, 60_000);
    if (r.code !== 0) throw new Error(`kubectl kustomize manifests/examples/exit-group failed:\n${r.stderr}`);
    rendered = r.stdout;
    source = 'kubectl kustomize manifests/examples/exit-group';
  } else {
    rendered = readFileSync(EXIT_GROUP_FIXTURE, 'utf8');
    source = 'FIXTURE test/dataplane/fixtures/exit-group-manifest.fixture.yaml (kubectl not found)';
  }
  return readExitGroup(rendered, source);
}

type Obj = Record<string, unknown>;
const docsOf = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as Obj).filter((d) => d !== null && typeof d === 'object');
const metaOf = (d: Obj) => (d.metadata ?? {}) as { name?: string; namespace?: string; labels?: Record<string, string> };

/** podvpn's config from the render (ConfigMap podvpn-config), with the lab's ranges; each exit's Deployment. */
export function readExitGroup(rendered: string, source: string): ExitGroupInputs {
  const docs = docsOf(rendered);
  const cm = docs.find((d) => d.kind === 'ConfigMap' && (metaOf(d).name ?? '').startsWith('podvpn-config'));
  const text = (cm?.data as Record<string, string> | undefined)?.['config.yaml'];
  if (text === undefined) throw new Error(`${source}: no ConfigMap podvpn-config with config.yaml`);
  const raw = parseYaml(text) as Obj;
  const config = parseConfig({
    ...raw,
    cluster: { ...((raw.cluster as Obj | undefined) ?? {}), podCIDRs: LAB_RANGES.podCIDRs, serviceCIDRs: LAB_RANGES.serviceCIDRs, dnsIPs: LAB_RANGES.dnsIPs },
  });
  const group = Object.values(config.gateways).find((g) => g.exits !== undefined);
  if (group?.exits === undefined) throw new Error(`${source}: podvpn's config has no exit group`);
  const exits = group.exits.map((e) => {
    const deployment = `podvpn-gateway-${e.name}`;
    const dep = docs.find((d) => d.kind === 'Deployment' && metaOf(d).name === deployment);
    const tmpl = ((dep?.spec as Obj | undefined)?.template ?? {}) as Obj;
    const containers = (((tmpl.spec as Obj | undefined)?.containers ?? []) as Obj[]);
    const probe = containers.find((c) => c.name === 'exit-probe');
    return {
      name: e.name,
      vxlanId: e.vxlanId,
      address: e.address,
      settings: readGatewayManifest(rendered, `${source} (${deployment})`, deployment),
      podLabels: { ...(metaOf(tmpl).labels ?? {}) },
      ...(probe === undefined ? {} : { probeArgs: ((probe.args ?? []) as unknown[]).map(String) }),
    };
  });
  const policy = buildKillSwitchPolicy({ namespace: CLIENT_NAMESPACE, gateway: group.name, ranges: LAB_RANGES });
  return { source, raw, config, group: group.name, exits, policies: [policy] };
}

/** The fixture: podvpn's config and each exit's Deployment with its ConfigMaps, cut from a render. */
export function exitGroupFixtureFrom(rendered: string): string {
  const docs = docsOf(rendered);
  const deployments = docs.filter((d) => d.kind === 'Deployment' && /^podvpn-gateway-/.test(metaOf(d).name ?? '') && metaOf(d).name !== 'podvpn-gateway-default');
  const text = JSON.stringify(deployments);
  const configMaps = docs.filter((d) => d.kind === 'ConfigMap' && (text.includes(`"${metaOf(d).name}"`) || (metaOf(d).name ?? '').startsWith('podvpn-config')));
  return [
    '# FIXTURE: podvpn\'s config and the exits\' Deployments with their ConfigMaps, as `kubectl kustomize',
    '# manifests/examples/exit-group` renders them. The exits lab uses it only where kubectl is missing.',
    '# Refresh: REFRESH_GATEWAY_FIXTURE=1 npx vitest run --config test/dataplane/vitest.config.ts test/dataplane/gateway.test.ts',
    ...[...configMaps, ...deployments].map((d) => `---\n${stringify(d)}`),
  ].join('\n');
}

/** The example's config in agent mode: the webhook's (with the lab's ranges) and the agent's (no pod ranges: it reads the Nodes). */
export function agentModeConfigs(inputs: ExitGroupInputs): { webhook: Config; agent: Record<string, unknown> } {
  const cluster = (inputs.raw.cluster as Obj | undefined) ?? {};
  return {
    webhook: parseConfig({ ...inputs.raw, dataPlane: 'agent', cluster: { ...cluster, podCIDRs: LAB_RANGES.podCIDRs, serviceCIDRs: LAB_RANGES.serviceCIDRs, dnsIPs: LAB_RANGES.dnsIPs } }),
    agent: { ...inputs.raw, dataPlane: 'agent', cluster: { ...cluster, serviceCIDRs: LAB_RANGES.serviceCIDRs, dnsIPs: LAB_RANGES.dnsIPs } },
  };
}

/** The webhook's admission of `n` agent-mode pods (the exit group as default gateway): what each carries, its exit. */
export async function admitAgentPods(inputs: ExitGroupInputs, n: number, namePrefix: string): Promise<{ name: string; exit: string; injection: AgentInjection }[]> {
  const config = agentModeConfigs(inputs).webhook;
  const out: { name: string; exit: string; injection: AgentInjection }[] = [];
  for (const { name, pod, patch, exit } of await admitMany(inputs, config, n, namePrefix)) {
    const injection = readAgentInjection(fastJsonPatch.applyPatch(structuredClone(pod), patch as fastJsonPatch.Operation[], true, false).newDocument);
    if (injection.labels[LABEL_EXIT] !== exit) throw new Error(`${name}: label ${LABEL_EXIT}=${injection.labels[LABEL_EXIT]} but admission chose ${exit}`);
    out.push({ name, exit, injection });
  }
  return out;
}

/**
 * admit() for `n` pods of a namespace that opted in, the exit group as the default gateway. The loads
 * the webhook counts as it assigns (exitAssigned) feed its next decision (exitFacts), as in the
 * running webhook; every exit healthy.
 */
async function admitMany(inputs: ExitGroupInputs, config: Config, n: number, namePrefix: string): Promise<{ name: string; pod: Pod; patch: unknown[]; exit: string }[]> {
  const loads = new Map<string, number>();
  const healthy = new Set(inputs.exits.map((e) => e.name));
  const out: { name: string; pod: Pod; patch: unknown[]; exit: string }[] = [];
  for (let k = 0; k < n; k++) {
    const name = `${namePrefix}${String(k).padStart(2, '0')}`;
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: CLIENT_NAMESPACE, labels: { app: 'flows' } },
      spec: { containers: [{ name: 'app', image: 'flows' }] },
    };
    const outcome = await admit(
      { uid: `lab-${namePrefix}${k}`, operation: 'CREATE', resource: { resource: 'pods' }, namespace: CLIENT_NAMESPACE, name, dryRun: false, object: pod },
      {
        config,
        namespaceFacts: () => ({ labels: { [LABEL_INJECT]: NAMESPACE_INJECT_VALUE, 'kubernetes.io/metadata.name': CLIENT_NAMESPACE }, annotations: {} }),
        ranges: () => LAB_RANGES,
        exitFacts: () => ({ healthy, loads }),
        exitAssigned: (a) => loads.set(a.exit, (loads.get(a.exit) ?? 0) + 1),
        ensureKillSwitch: async () => ({ ok: true }),
      },
    );
    if (outcome.outcome !== 'injected' || outcome.exit === undefined) throw new Error(`admission of ${name}: ${JSON.stringify(outcome)}`);
    out.push({ name, pod, patch: outcome.patch, exit: outcome.exit });
  }
  return out;
}

export interface AdmittedPod extends InjectedPod {
  name: string;
  exit: string;
}

/**
 * The webhook's admission (admit(), the function the HTTP handler calls) for `n` pod-gateway-mode
 * pods: the exit in each pod's label is the product's assignment.
 */
export async function admitPods(inputs: ExitGroupInputs, n: number, namePrefix = 'flows-'): Promise<AdmittedPod[]> {
  const out: AdmittedPod[] = [];
  for (const { name, pod, patch, exit } of await admitMany(inputs, inputs.config, n, namePrefix)) {
    const mutated = fastJsonPatch.applyPatch(structuredClone(pod), patch as fastJsonPatch.Operation[], true, false).newDocument;
    const injected = readInjectedPod(mutated, inputs.config.images.client);
    if (injected.clientLabels[LABEL_EXIT] !== exit) throw new Error(`${name}: label ${LABEL_EXIT}=${injected.clientLabels[LABEL_EXIT]} but admission chose ${exit}`);
    out.push({ ...injected, name, exit });
  }
  return out;
}

export interface LabExit {
  name: string;
  /** Its gateway pod's name in the API (agent mode); a new one each time the pod is re-created. */
  podName: string;
  probeArgs?: string[];
  index: number;
  vxlanId: number;
  /** The exit's headless Service name (cluster DNS answers it with the gateway pod's IP while Ready). */
  address: string;
  publicIP: string;
  pub: string;
  spec: GatewayPodSpec;
  podLabels: Record<string, string>;
}

export interface RoutedPod extends AdmittedPod {
  ns: ExtraPodName;
  ip: string;
}

/** What flows.py's client and server wrote (see its header). */
export interface FlowState {
  pod: string;
  flow: number;
  epoch: number;
  connects: number[];
  breaks: [number, string][];
  attempts: number;
  up: boolean;
}
export interface ServerConn {
  src: string;
  opened: number;
  last: number | null;
  gaps: [number, number][];
  closed: number | null;
  pod: string | null;
  flow: number | null;
  epoch: number | null;
  beats: number;
}

export class ExitsLab {
  readonly exits: LabExit[] = [];
  readonly pods: RoutedPod[] = [];

  constructor(readonly lab: Lab, readonly inputs: ExitGroupInputs) {}

  exit(name: string): LabExit {
    const e = this.exits.find((x) => x.name === name);
    if (!e) throw new Error(`no exit ${name}`);
    return e;
  }

  /** Each exit: its own key pair (generated now, never stored in the repo), its peer at the provider, its gateway pod. */
  async bootExits(): Promise<void> {
    const { lab } = this;
    await lab.in('node', `ip addr add ${EXIT_ADDR.node}/32 dev lo`);
    for (const [i, x] of this.inputs.exits.entries()) {
      const keyFile = join(lab.work, `exit-${x.name}.key`);
      const priv = (await run('wg genkey')).trim();
      writeFileSync(keyFile, `${priv}\n`, { mode: 0o600 });
      const pub = (await run(`wg pubkey < ${q(keyFile)}`)).trim();
      const ns: ExtraPodName = `x${x.name}`;
      const spec: GatewayPodSpec = {
        ns,
        ip: EXIT_ADDR.gatewayPod(i),
        suffix: `-${x.name}`,
        settings: x.settings,
        gluetun: gluetunSettings(x.settings),
        wgProc: `${lab.inputs.prefix.slice(0, 10)}e${i}`,
        keyFile,
        tunnelClient: EXIT_ADDR.tunnel(i),
      };
      const e: LabExit = {
        name: x.name,
        podName: `podvpn-gateway-${x.name}-7d9f8c6b5-g1`,
        index: i,
        vxlanId: x.vxlanId,
        address: x.address,
        publicIP: EXIT_ADDR.public(i),
        pub,
        spec,
        podLabels: x.podLabels,
        ...(x.probeArgs === undefined ? {} : { probeArgs: x.probeArgs }),
      };
      this.exits.push(e);
      await lab.addVpnPeer(pub, spec.tunnelClient, e.publicIP);
      await lab.addGatewayEdge(`v-${ns}`);
      lab.extraPods.push({ name: `podvpn-gateway-${x.name}`, namespace: 'podvpn-system', labels: x.podLabels, ips: [spec.ip], hostIf: `v-${ns}` });
      await lab.bootGatewayPod(spec);
      await this.nodeSource(e);
      this.startExitProbe(e);
      lab.setHost(x.address, spec.ip);
    }
  }

  /**
   * The exit's probe container (podvpn exit-probe, its args from the exit's Deployment) in the exit's
   * network namespace, as uid 65532 without capabilities. LAB: its targets (the manifest's default,
   * public 1.1.1.1:443 and 9.9.9.9:443) become the internet host's HTTPS port, reached only through
   * the exit's tunnel as the public ones are.
   */
  startExitProbe(e: LabExit): void {
    if (e.probeArgs === undefined) return;
    const nopriv = 'setpriv --reuid=65532 --regid=65532 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs';
    const args = [...e.probeArgs.filter((a) => !a.startsWith('--target')), `--target=${ADDR.inet}:8443`];
    this.lab.bgStart(`exit-probe-${e.name}`, e.spec.ns, `${nopriv} ${process.execPath} ${join(REPO, 'dist', 'cli.js')} ${args.map(q).join(' ')}`);
  }

  /** The node reaches the exit's pod from its own address (as a node with Calico does: its veths carry none). */
  private async nodeSource(e: LabExit): Promise<void> {
    await this.lab.in('node', `ip route replace ${e.spec.ip}/32 dev v-${e.spec.ns} src ${EXIT_ADDR.node}`);
  }

  /** What the exit's probe answers (from the node, as the agent polls it): HTTP status, or 0. */
  async probeStatus(e: LabExit): Promise<number> {
    const r = await this.lab.tryIn('node', `curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://${e.spec.ip}:9998/`);
    return Number(r.stdout.trim() || 0);
  }

  /** An exit's gateway pod deleted at once (no grace: a crash, a lost node, a forced delete). */
  async deleteExitPod(e: LabExit): Promise<void> {
    this.lab.setHost(e.address, undefined);
    await this.lab.bgStop(`exit-probe-${e.name}`);
    await this.lab.stopGatewayPod(e.spec);
    this.lab.extraPods = this.lab.extraPods.filter((p) => p.hostIf !== `v-${e.spec.ns}`);
  }

  /** A new gateway pod for an exit (a new pod name and address), its probe, Ready in cluster DNS. */
  async recreateExitPod(e: LabExit, ip: string, generation: number): Promise<void> {
    e.spec = { ...e.spec, ip };
    e.podName = `podvpn-gateway-${e.name}-7d9f8c6b5-g${generation}`;
    this.lab.extraPods.push({ name: `podvpn-gateway-${e.name}`, namespace: 'podvpn-system', labels: e.podLabels, ips: [ip], hostIf: `v-${e.spec.ns}` });
    await this.lab.bootGatewayPod(e.spec);
    await this.nodeSource(e);
    this.startExitProbe(e);
    this.lab.setHost(e.address, ip);
  }

  /** Client init containers that failed and were run again (the kubelet's restart), with why. */
  readonly initRestarts: string[] = [];

  /**
   * The routed pods: the CNI's part for all (namespace, veth, /32 route; the policy re-rendered once
   * with them), then each pod's injected client init against its exit, `perExit` at a time per exit, and its
   * sidecar under the kubelet stand-in.
   */
  async addPods(admitted: AdmittedPod[], perExit = 2): Promise<number[]> {
    const { lab } = this;
    for (const [k, a] of admitted.entries()) {
      const p: RoutedPod = { ...a, ns: `xp${String(k).padStart(2, '0')}`, ip: EXIT_ADDR.pod(k) };
      await lab.addExtraPod(p.ns, p.ip, POD_MTU);
      lab.extraPods.push({ name: p.name, namespace: CLIENT_NAMESPACE, labels: p.clientLabels, ips: [p.ip], hostIf: `v-${p.ns}` });
      const vol = join(lab.work, 'vol', p.ns);
      mkdirSync(join(vol, 'config'), { recursive: true });
      writeFileSync(join(vol, 'config', 'settings.sh'), p.clientSettingsScript);
      writeFileSync(join(vol, 'resolv.conf'), p.clientResolvConf);
      mkdirSync(`/etc/netns/${lab.ns(p.ns)}`, { recursive: true });
      writeFileSync(`/etc/netns/${lab.ns(p.ns)}/resolv.conf`, p.clientResolvConf);
      this.pods.push(p);
    }
    await lab.applyPolicy();
    const times: number[] = [];
    // Each exit's dnsmasq answers one DHCP exchange at a time (its ping check holds the next): the
    // inits run `perExit` at a time per exit, the exits side by side.
    const worker = async (queue: RoutedPod[]) => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
        const t0 = Date.now();
        // A failed init container is run again by the kubelet after its back-off (10 s, doubling),
        // and client_init.sh is written for re-entry (it deletes its vxlan0 first). Seen here: the
        // real udhcpc's three REQUESTs went unanswered ("no lease, failing") while its exit's
        // dnsmasq was busy with other pods' ping checks.
        for (let attempt = 1; ; attempt++) {
          const rc = await this.clientInit(p);
          if (rc === 0) break;
          const tail = (await tryRun(`tail -n 25 ${join(lab.work, `${p.ns}-init.log`)}`)).stdout;
          if (attempt >= INIT_ATTEMPTS) throw new Error(`${p.name}: the client init container exited ${rc} ${attempt} times; the last:\n${tail}`);
          this.initRestarts.push(`${p.name} (${p.exit}): exit ${rc}: ${tail.trim().split('\n').at(-1) ?? ''}`);
          await sleep(10_000 * 2 ** (attempt - 1));
        }
        times.push(Date.now() - t0);
        lab.startContainer(`${p.ns}-sidecar`, lab.containerCmd(p.ns, `${p.ns}-sidecar`, p.name, this.mounts(p), p.clientSidecarCommand));
      }
    };
    await Promise.all(this.exits.flatMap((e) => {
      const queue = this.pods.filter((p) => p.exit === e.name);
      return Array.from({ length: perExit }, () => worker(queue));
    }));
    return times;
  }

  private mounts(p: RoutedPod): [string, string][] {
    const vol = join(this.lab.work, 'vol', p.ns);
    return [
      [join(vol, 'config'), '/config'],
      [join(vol, 'resolv.conf'), '/etc/resolv.conf'],
    ];
  }

  /** The injected client init container in a routed pod; its exit code (log: <ns>-init.log). */
  async clientInit(p: RoutedPod): Promise<number> {
    const key = `${p.ns}-init`;
    const cmd = this.lab.containerCmd(p.ns, key, p.name, this.mounts(p), p.clientInitCommand);
    return (await tryRun(`${cmd} >> ${join(this.lab.work, `${key}.log`)} 2>&1`, 90_000)).code;
  }

  /** vxlan0 in a pod: its VXLAN id and where it sends (client_init.sh's all-zero fdb entry: the gateway pod). */
  async vxlanOf(p: { ns: ExtraPodName }): Promise<{ id?: number; remote?: string }> {
    // A read that fails (a timeout on a busy machine) throws; only an absent vxlan0 reads as none.
    const absent = /Device "vxlan0" does not exist|Cannot find device "vxlan0"/;
    const link = await this.lab.reading(p.ns, 'ip -d -j link show dev vxlan0', absent);
    const j = JSON.parse(link ?? '[]') as { linkinfo?: { info_data?: { id?: number; remote?: string } } }[];
    const id = j[0]?.linkinfo?.info_data?.id;
    // The agent sets vxlan0's remote; pod-gateway's client_init.sh adds an all-zero fdb entry.
    const fdb = link === undefined ? '' : (await this.lab.reading(p.ns, 'bridge fdb show dev vxlan0', absent)) ?? '';
    const remote = j[0]?.linkinfo?.info_data?.remote ?? /^00:00:00:00:00:00 dst (\S+)/m.exec(fdb)?.[1];
    return { ...(id === undefined ? {} : { id }), ...(remote === undefined ? {} : { remote }) };
  }

  get flowsServerState(): string {
    return join(this.lab.work, 'flows-server.json');
  }
  /** The flow clients started (keys), each with its own state file. */
  private readonly clients: string[] = [];
  private clientState(key: string): string {
    return join(this.lab.work, `${key}.json`);
  }

  /** The flow server at the internet host. */
  async startFlowServer(host: string): Promise<void> {
    const { lab } = this;
    // Group nice -15, both ends: the instruments must not be what stalls (flows.py's header, "Stalls").
    lab.bgStart('flows-server', 'inet', `python3 ${FLOWS} server ${host} ${EXIT_ADDR.flowPort} ${this.flowsServerState}`, { groupNice: INSTRUMENT_NICE });
    await waitFor('the flow server', async () => (await lab.tryIn('inet', 'ss -ltnH')).stdout.includes(`:${EXIT_ADDR.flowPort}`), 15_000);
  }

  /** A flow client holding `perPod` flows from each of `pods` (their network namespaces). */
  startFlowClient(key: string, pods: { name: string; ns: ExtraPodName }[], perPod: number, host: string): void {
    const { lab } = this;
    const cfg = join(lab.work, `${key}.config.json`);
    writeFileSync(cfg, JSON.stringify({ host, port: EXIT_ADDR.flowPort, flows: perPod, pods: pods.map((p) => ({ name: p.name, netns: lab.ns(p.ns) })) }));
    lab.bgStart(key, 'node', `python3 ${FLOWS} client ${cfg} ${this.clientState(key)}`, { groupNice: INSTRUMENT_NICE });
    this.clients.push(key);
  }

  /**
   * The pod-gateway-mode pods' client sidecars stopped (their namespaces and vxlan0 stay): for the
   * agent part, where they only cost CPU. Each loops on ping and DNS checks, and when an exit is
   * deleted (X6) its pods' sidecars re-run the init again and again until it is back: on two cores,
   * with the agent-mode pods' 300 flows, that load broke heartbeats on exits nothing had touched.
   */
  async stopSidecars(): Promise<void> {
    for (const p of this.pods) await this.lab.bgStop(`${p.ns}-sidecar`);
  }

  async stopFlowClient(key: string): Promise<void> {
    await this.lab.bgStop(key);
    this.clients.splice(this.clients.indexOf(key), 1);
  }

  /** Which pods the clients probe (a connection each 250 ms, recording when egress works and from where). */
  probe(pods: { name: string }[]): void {
    for (const key of this.clients) writeFileSync(`${this.clientState(key)}.probe`, JSON.stringify(pods.map((p) => p.name)));
  }

  private clientStates(): { flows: FlowState[]; probes: Record<string, [number, number, string][]>; stalls?: [number, number][] }[] {
    return this.clients.map((k) => this.clientState(k)).filter((f) => existsSync(f)).map((f) => JSON.parse(readFileSync(f, 'utf8')) as { flows: FlowState[]; probes: Record<string, [number, number, string][]>; stalls?: [number, number][] });
  }
  /**
   * The flow instruments' own stalls since `from` (epoch s): how often and how long the client's and the
   * server's event loops were not run (flows.py "Stalls"), for the figures: a stall is not the network's.
   */
  instrumentStalls(from: number): string {
    const one = (w: [number, number][]) => {
      const mine = w.filter(([, to]) => to >= from);
      return mine.length === 0 ? 'none' : `${mine.length}, longest ${Math.max(...mine.map(([a, b]) => b - a)).toFixed(2)} s`;
    };
    return `client ${one(this.clientStates().flatMap((s) => s.stalls ?? []))}; server ${one(this.serverState().stalls ?? [])}`;
  }
  clientFlows(): FlowState[] {
    return this.clientStates().flatMap((s) => s.flows);
  }
  /** Per pod: its recent probes [started, answered, source address the server saw] (epoch s). */
  probes(): Record<string, [number, number, string][]> {
    return Object.assign({}, ...this.clientStates().map((s) => s.probes)) as Record<string, [number, number, string][]>;
  }
  serverConns(): ServerConn[] {
    return this.serverState().conns;
  }
  /** The server's state and when it wrote it (epoch s). */
  serverState(): { at: number; conns: ServerConn[]; stalls?: [number, number][] } {
    return existsSync(this.flowsServerState) ? (JSON.parse(readFileSync(this.flowsServerState, 'utf8')) as { at: number; conns: ServerConn[]; stalls?: [number, number][] }) : { at: 0, conns: [] };
  }

  /** The open server connection of each flow (its newest epoch), by "pod/flow". */
  currentConns(): Map<string, ServerConn> {
    const out = new Map<string, ServerConn>();
    for (const c of this.serverConns()) {
      if (c.pod === null || c.closed !== null) continue;
      const key = `${c.pod}/${c.flow}`;
      const had = out.get(key);
      if (!had || (had.epoch ?? 0) < (c.epoch ?? 0)) out.set(key, c);
    }
    return out;
  }

  /** Every flow up at the client, and heard at the server within the last second. */
  /** The pods whose flows are not all up (by name), for a failure's report. */
  podsNotUp(pods: { name: string }[]): string[] {
    const down = new Set(this.clientFlows().filter((f) => !f.up).map((f) => f.pod));
    return pods.map((p) => p.name).filter((n) => down.has(n));
  }

  /**
   * What a pod's network namespace and its exit hold, for a failure's report: links, addresses,
   * routes, neighbours, vxlan0's FDB, pings to the overlay's .1 and the internet host, and the
   * exit gateway's neighbours and FDB on its vxlan0. Each read shows its exit code.
   */
  async diagnose(p: { name: string; ns: ExtraPodName }, exitName: string | undefined): Promise<string> {
    const one = async (ns: NsName, cmd: string) => {
      const r = await this.lab.tryNet(ns, cmd, 20_000);
      return `$ ${cmd}  (rc ${r.code})\n${(r.stdout + r.stderr).trim()}`;
    };
    const parts = [];
    for (const cmd of ['ip -br link', 'ip -br addr', 'ip route', 'ip neigh', 'bridge fdb show dev vxlan0', 'ip -s link show dev vxlan0', 'ping -c1 -W1 172.16.0.1', `ping -c1 -W1 ${ADDR.inet}`]) parts.push(await one(p.ns, cmd));
    const e = exitName === undefined ? undefined : this.exits.find((x) => x.name === exitName);
    if (e !== undefined) for (const cmd of ['ip neigh show dev vxlan0', 'bridge fdb show dev vxlan0']) parts.push(await one(e.spec.ns, cmd));
    return `pod ${p.name} (exit ${exitName ?? '?'}):\n${parts.join('\n')}`;
  }

  allFlowsUp(pods: { name: string }[] = this.pods, perPod = 10): boolean {
    const names = new Set(pods.map((p) => p.name));
    const flows = this.clientFlows().filter((f) => names.has(f.pod));
    if (flows.length !== pods.length * perPod || !flows.every((f) => f.up)) return false;
    const at = this.serverState().at;
    const conns = this.currentConns();
    return flows.every((f) => {
      const c = conns.get(`${f.pod}/${f.flow}`);
      return c !== undefined && c.epoch === f.epoch && c.last !== null && at - c.last < 1;
    });
  }

  podsOf(exit: string): RoutedPod[] {
    return this.pods.filter((p) => p.exit === exit);
  }
}
