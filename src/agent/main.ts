#!/usr/bin/env node
// podvpn-agent: the node edge. Watches (list+watch informers) the routed pods on its node, the gateway
// pods and the nodes; every reconcile round reads each pod's namespace back and applies the plan with
// nsenter (agent.ts). Serves /healthz and /metrics on :9091. Tears nothing down on exit.
// With an exit group in the config, also: every pod labelled podvpn.io/exit in the cluster (the
// group's loads), each exit's probe polled every 500 ms (exit-health.ts), and each round this node's
// moves (exit-control.ts: failover, drain, assignment; label patch and Event).

import { createServer } from 'node:http';
import { ApiException, CoreV1Api, type Informer, KubeConfig, type KubernetesObject, ListWatch, NetworkingV1Api, type ObjectCache, type V1Node, type V1Pod, type V1ServiceCIDR, Watch, makeInformer } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { loadConfig } from '../config/load.js';
import type { Gateway } from '../config/schema.js';
import { exitView } from '../exits/admission.js';
import { LABEL_EXIT, LABEL_ROUTED, SYSTEM_NAMESPACE } from '../constants.js';
import { EXIT_PROBE_PORT } from '../config/schema.js';
import { readHealthAnswer, unreachable } from '../exits/health.js';
import { createExitEvent, patchExitLabel } from './exit-api.js';
import { ExitControl, rebalanceRequests } from './exit-control.js';
import { type ExitVerdict, exitVerdict, PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS, type ProbeMemory, probeURL, recordPoll } from './exit-health.js';
import { Agent, execRun } from './agent.js';
import { type ExitPodState, GATEWAY_POD_SELECTOR, agentPods, agentRanges, gatewayStates } from './cluster-view.js';
import { coalesced } from './coalesce.js';
import { findPodsNetns, type NetnsResult } from './discover.js';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const nodeName = process.env.NODE_NAME;
if (nodeName === undefined || nodeName === '') {
  process.stderr.write('podvpn-agent: NODE_NAME is not set (the DaemonSet sets it from spec.nodeName)\n');
  process.exit(2);
}
// --config may repeat: the files are layers (src/config/load.ts), as for `podvpn serve`
const config = loadConfig(process.argv.filter((a) => a.startsWith('--config=')).map((a) => a.slice('--config='.length)));
// A full round (one /proc scan, a few `ip -j` reads per pod) every period; pod and gateway events
// start one at once, so a new pod or a replaced gateway does not wait for the tick.
const periodMs = Number(arg('period-ms') ?? '5000');
const log = (msg: string, fields: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...fields })}\n`);

const registry = new Registry();
const routedGauge = new Gauge({ name: 'podvpn_agent_pods_routed', help: 'Agent-mode pods on this node with tunnel, default route and marker in place, per gateway', labelNames: ['gateway'], registers: [registry] });
const routeSeconds = new Histogram({ name: 'podvpn_agent_route_seconds', help: 'Time from the agent first seeing a pod to the pod being routed', buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60], registers: [registry] });
const rebuilds = new Counter({ name: 'podvpn_agent_tunnel_rebuilds_total', help: 'Tunnel repairs: repoint to a replaced gateway, new lease, range update', labelNames: ['gateway', 'reason'], registers: [registry] });
const gatewayReady = new Gauge({ name: 'podvpn_agent_gateway_ready', help: "1 when the gateway's pod is Ready (gluetun's healthcheck: the VPN is up)", labelNames: ['gateway'], registers: [registry] });
const failures = new Counter({ name: 'podvpn_agent_pod_failures_total', help: 'Reconcile failures per pod round', registers: [registry] });
const exitFailovers = new Counter({ name: 'podvpn_agent_exit_failovers_total', help: "This node's pods moved off an unhealthy exit of their group", labelNames: ['gateway', 'from', 'to'], registers: [registry] });
const exitDrains = new Counter({ name: 'podvpn_agent_exit_drains_total', help: "This node's pods moved off a stopping (terminating) exit before it stops", labelNames: ['gateway', 'from', 'to'], registers: [registry] });
const exitRebalances = new Counter({ name: 'podvpn_agent_exit_rebalances_total', help: "This node's pods moved by a requested rebalance (annotation podvpn.io/rebalance on the group's exit pods)", labelNames: ['gateway', 'from', 'to'], registers: [registry] });
const exitPodsGauge = new Gauge({ name: 'podvpn_agent_exit_pods', help: "This node's agent-mode pods per exit they leave through", labelNames: ['gateway', 'exit'], registers: [registry] });
const exitHealthy = new Gauge({ name: 'podvpn_agent_exit_healthy', help: '1 when the exit is healthy as the agent judges it (pod Ready, exit probe answering 200); 0 when unhealthy or draining', labelNames: ['gateway', 'exit'], registers: [registry] });

const kc = new KubeConfig();
kc.loadFromDefault();
const api = kc.makeApiClient(CoreV1Api);
// Only this node's routed pods, in the list and in the watch (makeInformer takes no field selector).
const podInformer = new ListWatch<V1Pod>(
  '/api/v1/pods',
  new Watch(kc),
  () => api.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${nodeName}`, labelSelector: LABEL_ROUTED }),
  false,
  LABEL_ROUTED,
  `spec.nodeName=${nodeName}`,
);
const gatewayInformer = makeInformer<V1Pod>(
  kc,
  `/api/v1/namespaces/${SYSTEM_NAMESPACE}/pods`,
  () => api.listNamespacedPod({ namespace: SYSTEM_NAMESPACE, labelSelector: GATEWAY_POD_SELECTOR }),
  GATEWAY_POD_SELECTOR,
);
const nodeInformer = makeInformer<V1Node>(kc, '/api/v1/nodes', () => api.listNode());
// Exit groups: every pod with an exit label, on any node (the group's loads: where a dead exit's pods
// go depends on all of them). Only with an exit group in the config; the pods list/watch grant is the
// same (RBAC cannot limit a watch by node anyway).
const groups = Object.values(config.gateways).filter((g) => g.exits !== undefined);
const exitInformer =
  groups.length === 0 ? undefined : makeInformer<V1Pod>(kc, '/api/v1/pods', () => api.listPodForAllNamespaces({ labelSelector: LABEL_EXIT }), LABEL_EXIT);
// The service ranges: the config's; when it sets none, the ServiceCIDR API's (Kubernetes 1.33+), watched
// so a range added later reaches every pod. Where that API is not served, the config must set them.
const serviceCIDRInformer = config.cluster.serviceCIDRs.length > 0 ? undefined : await watchServiceCIDRs();
async function watchServiceCIDRs(): Promise<(Informer<V1ServiceCIDR> & ObjectCache<V1ServiceCIDR>) | undefined> {
  const net = kc.makeApiClient(NetworkingV1Api);
  try {
    await net.listServiceCIDR();
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) {
      log('the ServiceCIDR API (networking.k8s.io/v1) is not served: set cluster.serviceCIDRs in the config');
      return undefined;
    }
    // Anything else (a refusal, a timeout): the informer retries and its errors are logged
  }
  return makeInformer<V1ServiceCIDR>(kc, '/apis/networking.k8s.io/v1/servicecidrs', () => net.listServiceCIDR());
}

// ---- exit health: each exit's probe, every PROBE_INTERVAL_MS (500 ms) ----
// --exit-probe-port: the exits' probe port (default EXIT_PROBE_PORT; tests run the probe elsewhere).
const probePort = Number(arg('exit-probe-port') ?? String(EXIT_PROBE_PORT));
const exitGroupOf = new Map(groups.flatMap((g) => g.exits!.map((e) => [e.name, g.name] as const)));
const probes = new Map<string, ProbeMemory>();
const verdicts = new Map<string, ExitVerdict>();
const noProbeLogged = new Set<string>(); // exit@podIP
/** Exits with a poll in flight: each exit is polled on its own, so a slow one holds up no other. */
const polling = new Set<string>();
async function pollExits(): Promise<void> {
  if (!synced) return;
  const states = gatewayStates([...gatewayInformer.list()], config);
  await Promise.all(
    [...exitGroupOf.keys()].map(async (exit) => {
      const ip = states.get(exit)?.podIP;
      if (ip === undefined || polling.has(exit)) return;
      polling.add(exit);
      try {
        let reading;
        let answered = false;
        try {
          const res = await fetch(probeURL(ip, probePort), { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS), redirect: 'error' });
          reading = readHealthAnswer(exit, res.status, (await res.text()).slice(0, 1024), Date.now());
          answered = true;
        } catch (err) {
          reading = unreachable(exit, err, Date.now());
        }
        const mem = recordPoll(probes.get(exit), ip, reading, answered);
        probes.set(exit, mem);
        if (!mem.answered && mem.failures === 3 && !noProbeLogged.has(`${exit}@${ip}`)) {
          noProbeLogged.add(`${exit}@${ip}`);
          log(`exit ${exit}: its probe at ${probeURL(ip, probePort)} does not answer (${reading.reason}); judging it by its pod's Ready condition only (gluetun's healthcheck: slower to notice a dead tunnel). Exit manifests without podvpn's exit probe do this.`);
        }
        // Judged as each answer comes (the pod states of now: a pod deleted meanwhile counts).
        // A changed verdict cuts the round under way short: the moves it makes come first.
        if (judgeExits(gatewayStates([...gatewayInformer.list()], config))) {
          agent.interrupt();
          void round();
        }
      } finally {
        polling.delete(exit);
      }
    }),
  );
}
/** The exits' verdicts now; true when one changed (a round then acts on it at once). */
function judgeExits(states: Map<string, ExitPodState>): boolean {
  let changed = false;
  for (const [exit, group] of exitGroupOf) {
    const v = exitVerdict(states.get(exit), probes.get(exit), Date.now());
    const before = verdicts.get(exit);
    if (before === undefined || before.state !== v.state) {
      changed = true;
      log('exit health', { gateway: group, exit, state: v.state, reason: v.reason, by: v.by });
    }
    verdicts.set(exit, v);
    exitHealthy.set({ gateway: group, exit }, v.state === 'healthy' ? 1 : 0);
  }
  return changed;
}

let netnsThisRound = new Map<string, NetnsResult>();
const lastProblem = new Map<string, string>(); // log a pod's problem when it changes, not every round
const agent = new Agent(
  {
    netnsOf: (uid) => {
      const r = netnsThisRound.get(uid) ?? { ok: false, reason: 'not scanned' };
      return r.ok ? { ok: true, nsPath: r.nsPath } : { ok: false, reason: r.reason };
    },
    run: (step) => execRun(step),
    now: () => Date.now(),
  },
  {
    routed: (pod, gateway, ms) => {
      routeSeconds.observe(ms / 1000);
      log('pod routed', { pod: `${pod.namespace}/${pod.name}`, gateway, ms });
    },
    rebuilt: (pod, gateway, reason) => {
      rebuilds.inc({ gateway, reason });
      log('tunnel repaired', { pod: `${pod.namespace}/${pod.name}`, gateway, reason });
    },
    standby: (pod, exit, result) => {
      if (result.ok) log('standby lease taken', { pod: `${pod.namespace}/${pod.name}`, exit, ms: result.ms });
      else log('standby lease not taken', { pod: `${pod.namespace}/${pod.name}`, exit, error: result.message });
    },
    failed: (pod, message) => {
      failures.inc();
      if (lastProblem.get(pod.uid) === message) return;
      lastProblem.set(pod.uid, message);
      log('pod not routed yet', { pod: `${pod.namespace}/${pod.name}`, error: message });
    },
  },
);

// --udhcpc-script: where the lease-printing udhcpc script is (the image installs it at UDHCPC_SCRIPT;
// the data-plane lab runs the agent from the repository).
const exitControl = new ExitControl(
  config,
  nodeName,
  {
    patchLabel: (pod, exit) => patchExitLabel(api, pod, exit),
    createEvent: (event) => createExitEvent(api, event),
    now: () => Date.now(),
    log,
  },
  {
    moved: (gateway, move) => {
      if (move.why === 'rebalance') exitRebalances.inc({ gateway, from: move.from ?? '', to: move.to });
      if (move.why === 'failover') exitFailovers.inc({ gateway, from: move.from ?? '', to: move.to });
      if (move.why === 'drain') exitDrains.inc({ gateway, from: move.from ?? '', to: move.to });
    },
  },
);

const udhcpcScript = arg('udhcpc-script');
if (udhcpcScript !== undefined) agent.udhcpcScript = udhcpcScript;

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let lastRound = 0;
let synced = false; // no round before every list has arrived: a half-seen cluster is not acted on
let rangesKnown: boolean | undefined;
// One round at a time; an event during a round (a pod's sandbox up, a gateway replaced) makes one more
// round right after it, rather than waiting for the next tick.
const round = coalesced(
  async () => {
    if (synced) await roundOnce();
  },
  (err) => log('round failed', { error: (err as Error)?.message ?? String(err) }),
);
async function roundOnce(): Promise<void> {
  const ranges = agentRanges(config, [...nodeInformer.list()], serviceCIDRInformer === undefined ? [] : [...serviceCIDRInformer.list()]);
  const states = gatewayStates([...gatewayInformer.list()], config);
  for (const [name, s] of states) gatewayReady.set({ gateway: name }, s.ready ? 1 : 0);
  if ((ranges !== undefined) !== rangesKnown) {
    rangesKnown = ranges !== undefined;
    if (!rangesKnown) log('cluster ranges unknown (no service range from the config or the ServiceCIDR API, or no pod range from the config or the nodes): set cluster.serviceCIDRs and cluster.podCIDRs in the config; routing nothing');
    else if (ranges !== undefined) log('cluster ranges', { podCIDRs: ranges.podCIDRs, serviceCIDRs: ranges.serviceCIDRs, sources: ranges.sources });
  }
  if (ranges !== undefined) {
    const gateways = new Map([...states].map(([name, state]) => [name, { config: targetConfig(name), state }]));
    const nodePods = [...podInformer.list()];
    let pods = agentPods(nodePods, nodeName!, config);
    if (exitInformer !== undefined) {
      judgeExits(states);
      const labels = new Map(nodePods.map((p) => [p.metadata?.uid ?? '', p.metadata?.labels?.[LABEL_EXIT]]));
      // The moves, and where each pod keeps a standby lease (so a move there skips dnsmasq's ping wait)
      pods = exitControl.round(pods, labels, exitInformer.list(), verdicts, rebalanceRequests(gatewayInformer.list(), config));
      exitPodsGauge.reset();
      for (const p of pods) if (p.exit !== undefined) exitPodsGauge.inc({ gateway: p.gateway, exit: p.exit });
    }
    netnsThisRound = findPodsNetns('/proc', pods.map((p) => p.uid).filter((uid) => UID.test(uid)));
    for (const uid of [...lastProblem.keys()]) if (!pods.some((p) => p.uid === uid)) lastProblem.delete(uid);
    await agent.reconcile(pods, gateways, ranges);
  }
  routedGauge.reset();
  for (const gateway of agent.routedNow.values()) routedGauge.inc({ gateway });
  lastRound = Date.now();
}

/** A tunnel target's config: the gateway's, or an exit's view of its group (its own VXLAN id). */
function targetConfig(name: string): Gateway {
  const single = config.gateways[name];
  if (single !== undefined && single.exits === undefined) return single;
  for (const g of Object.values(config.gateways)) {
    const exit = g.exits?.find((e) => e.name === name);
    if (exit !== undefined) return exitView(g, exit);
  }
  throw new Error(`no gateway or exit named ${name}`);
}

function hook<T extends KubernetesObject>(inf: Informer<T>): void {
  inf.on('error', (err: unknown) => {
    log('watch failed; retrying in 5 s', { error: (err as Error)?.message ?? String(err) });
    setTimeout(() => void inf.start().catch(() => undefined), 5000).unref();
  });
  // A new pod or a gateway change is acted on now, not at the next tick
  inf.on('add', () => void round());
  inf.on('update', () => void round());
}
hook(podInformer);
// A gateway pod changed (deletionTimestamp, a new IP, Ready) or gone: the round under way is cut short
// (Agent.interrupt), so the repairs and exit moves this asks for do not wait for all of it. Registered
// before hook's listener: the interrupt must come before the round it asks for.
for (const event of ['add', 'update', 'delete'] as const) gatewayInformer.on(event, () => agent.interrupt());
gatewayInformer.on('delete', () => void round());
hook(gatewayInformer);
hook(nodeInformer);
if (exitInformer !== undefined) {
  // Other nodes' pods only weigh on the loads: no round of their own
  exitInformer.on('error', (err: unknown) => {
    log('watch failed; retrying in 5 s', { error: (err as Error)?.message ?? String(err) });
    setTimeout(() => void exitInformer.start().catch(() => undefined), 5000).unref();
  });
}
if (serviceCIDRInformer !== undefined) hook(serviceCIDRInformer);

createServer((req, res) => {
  if (req.url === '/healthz') {
    const fresh = Date.now() - lastRound < Math.max(30_000, periodMs * 10);
    res.writeHead(fresh ? 200 : 503, { 'content-type': 'text/plain' }).end(fresh ? 'ok\n' : 'reconcile loop stalled\n');
    return;
  }
  if (req.url === '/metrics') {
    void registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
    return;
  }
  res.writeHead(404).end();
}).listen(Number(arg('admin-port') ?? '9091'));

await Promise.all([podInformer.start(), gatewayInformer.start(), nodeInformer.start(), serviceCIDRInformer?.start(), exitInformer?.start()]);
synced = true;
if (exitGroupOf.size > 0) {
  // A first poll before the first round, so the round judges the exits by their probes
  await pollExits();
  setInterval(() => void pollExits(), PROBE_INTERVAL_MS);
}
log('podvpn-agent started', { node: nodeName, gateways: Object.keys(config.gateways) });
void round();
setInterval(() => void round(), periodMs);
// SIGTERM: exit without touching any pod (tunnels and firewalls stay in the pods' namespaces).
process.on('SIGTERM', () => process.exit(0));
