// Agent mode at 50 routed pods, on real network namespaces (root; not part of `npm run bench`):
//   - the agent's own process, dist/agent/main.js as the DaemonSet runs it, against a stub API server
//     (list + watch over HTTP, the pods served as a kubelet's node would show them): its memory (RSS and
//     PSS) and CPU time idle with no routed pod (the baseline, same run) and keeping 50 routed pods;
//     the time from 50 new pods appearing (watch events) to all 50 routed;
//   - one reconcile round over the 50 routed pods, timed with the Agent class (the same code main.js
//     runs each period, minus the /proc scan, which is timed alone);
//   - per-pod memory: pod-gateway mode keeps its client sidecar running in every pod (bash running
//     client_sidecar.sh's loop: ping the gateway, sleep 10), agent mode keeps none (the gate has exited).
// The 50 pods are network namespaces on one node namespace's bridge, each with one process (a sandbox
// stand-in) in a pod cgroup laid out as the kubelet's cgroupfs driver lays it out, so the agent finds
// them by its real /proc scan. The gateway is one namespace with pod-gateway's VXLAN endpoint and
// dnsmasq (as test/agent/netns-lab.mjs), no VPN. Run: npm run build && node bench/agent-scale.mjs

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, execRun } from '../dist/agent/agent.js';
import { findPodsNetns } from '../dist/agent/discover.js';

const ROOT = join(import.meta.dirname, '..');
const PODS = Number(process.env.PODS ?? 50);
const WINDOW_S = Number(process.env.WINDOW_S ?? 30);
const PERIOD_MS = 5000;
const PREFIX = 'pvb';
const SCRIPT = join(ROOT, 'src', 'agent', 'udhcpc-lease.sh');
const SIDECAR = join(ROOT, 'test', 'dataplane', 'image', 'bin', 'client_sidecar.sh');
const SETTINGS = join(ROOT, 'test', 'dataplane', 'image', 'default_config', 'settings.sh');

if (process.getuid?.() !== 0 || spawnSync('which', ['dnsmasq']).status !== 0) {
  console.error('agent-scale: needs root, ip, nft, busybox and dnsmasq (see bench/README.md)');
  process.exit(2);
}
if (!existsSync(join(ROOT, 'dist', 'agent', 'main.js'))) {
  console.error('agent-scale: npm run build first');
  process.exit(2);
}

const tmp = mkdtempSync(join(tmpdir(), 'podvpn-agent-scale-'));
const sh = (argv) => {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const inNs = (ns, ...argv) => sh(['ip', 'netns', 'exec', ns, ...argv]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const uidOf = (i) => `6f1d2c3b-4a5e-4f60-8a7b-${String(i).padStart(12, '0')}`;
const podNs = (i) => `${PREFIX}-p${i}`;
const NODE = `${PREFIX}-node`;
const GW = `${PREFIX}-gw`;
const children = [];

// ---- /proc readings: memory and CPU of a process (and of its reaped children) ----
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  const pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  return { rss, pss };
}
/** utime+stime of the process and of its waited-for children (the commands it ran), in ms. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
  return { self: ((utime + stime) * 1000) / CLK_TCK, children: ((cutime + cstime) * 1000) / CLK_TCK };
}
const childrenOf = (pid) => {
  const out = [];
  for (const tid of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) out.push(Number(tid), ...childrenOf(Number(tid)));
  return out;
};

// ---- the node: a bridge for the pods, a gateway namespace with VXLAN and dnsmasq ----
function cgroupRoot() {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return '/sys/fs/cgroup';
  if (existsSync('/sys/fs/cgroup/unified/cgroup.controllers')) return '/sys/fs/cgroup/unified';
  return '/sys/fs/cgroup/pids';
}
// The kubelet's cgroupfs layout under a --cgroup-root of the bench's own: <root>/pvbench/kubepods/besteffort/pod<uid>/<ctr>
const CG = join(cgroupRoot(), 'pvbench');
const podCgroup = (i) => join(CG, 'kubepods', 'besteffort', `pod${uidOf(i)}`, 'sandbox');

function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (children.length > 0) spawnSync('sleep', ['0.5']); // the killed processes leave their cgroups
  for (const ns of [NODE, GW, ...Array.from({ length: PODS }, (_, i) => podNs(i))]) spawnSync('ip', ['netns', 'del', ns]);
  if (existsSync(CG)) spawnSync('find', [CG, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']);
  rmSync(tmp, { recursive: true, force: true });
}

async function buildNode() {
  cleanup();
  mkdirSync(tmp, { recursive: true });
  for (const ns of [NODE, GW]) {
    sh(['ip', 'netns', 'add', ns]);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  inNs(NODE, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  inNs(NODE, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
  inNs(NODE, 'ip', 'addr', 'add', '10.42.1.1/24', 'dev', 'br0');
  inNs(NODE, 'ip', 'link', 'set', 'br0', 'up');
  sh(['ip', '-n', GW, 'link', 'add', 'eth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'g0', 'netns', NODE]);
  sh(['ip', '-n', GW, 'addr', 'add', '10.42.2.9/24', 'dev', 'eth0']);
  sh(['ip', '-n', GW, 'link', 'set', 'eth0', 'up']);
  sh(['ip', '-n', GW, 'route', 'add', 'default', 'via', '10.42.2.1']);
  sh(['ip', '-n', NODE, 'addr', 'add', '10.42.2.1/24', 'dev', 'g0']);
  sh(['ip', '-n', NODE, 'link', 'set', 'g0', 'mtu', '1450', 'up']);
  // pod-gateway's gateway_init.sh VXLAN endpoint and gateway_sidecar.sh's dnsmasq DHCP settings
  sh(['ip', '-n', GW, 'link', 'add', 'vxlan0', 'type', 'vxlan', 'id', '42', 'dev', 'eth0', 'dstport', '4789']);
  sh(['ip', '-n', GW, 'addr', 'add', '172.16.0.1/24', 'dev', 'vxlan0']);
  sh(['ip', '-n', GW, 'link', 'set', 'up', 'dev', 'vxlan0']);
  const dnsmasq = spawn('ip', ['netns', 'exec', GW, 'dnsmasq', '--keep-in-foreground', '--port=0', '--interface=vxlan0', '--bind-interfaces',
    '--dhcp-range=172.16.0.20,172.16.0.255,12h', `--dhcp-leasefile=${join(tmp, 'leases')}`, `--pid-file=${join(tmp, 'dnsmasq.pid')}`, '--log-facility=-'], { stdio: 'ignore' });
  children.push(dnsmasq);
  // The pods: a namespace each (the CNI's part), and a sandbox process in the pod's cgroup (the runtime's)
  for (let i = 0; i < PODS; i++) {
    const ns = podNs(i);
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', ns, 'link', 'add', 'eth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', `v${i}`, 'netns', NODE]);
    sh(['ip', '-n', ns, 'addr', 'add', `10.42.1.${10 + i}/24`, 'dev', 'eth0']);
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', '10.42.1.1']);
    sh(['ip', '-n', NODE, 'link', 'set', `v${i}`, 'master', 'br0', 'mtu', '1450', 'up']);
    const sandbox = spawn('ip', ['netns', 'exec', ns, 'sleep', 'infinity'], { stdio: 'ignore' });
    children.push(sandbox);
    mkdirSync(podCgroup(i), { recursive: true });
    writeFileSync(join(podCgroup(i), 'cgroup.procs'), String(sandbox.pid));
  }
  await sleep(300);
}

// ---- a stub API server: lists and watches as the agent's informers ask, nothing else ----
function routedPod(i) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `web-${i}`, namespace: 'apps', uid: uidOf(i), resourceVersion: String(100 + i), labels: { 'podvpn.io/routed': 'default' },
      annotations: { 'podvpn.io/status': JSON.stringify({ version: '0.1.0', gateway: 'default', dataPlane: 'agent', initContainers: ['podvpn-gate'], containers: [], volumes: [] }) } },
    spec: { nodeName: 'n1', containers: [{ name: 'app', image: 'x' }] },
    status: { phase: 'Pending', podIP: `10.42.1.${10 + i}` },
  };
}
const gatewayPod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'podvpn-gateway-default-0', namespace: 'podvpn-system', uid: '00000000-0000-4000-8000-000000000001', resourceVersion: '2',
    labels: { 'app.kubernetes.io/name': 'podvpn-gateway', 'app.kubernetes.io/instance': 'podvpn-gateway-default' } },
  spec: { nodeName: 'n2', containers: [{ name: 'gw', image: 'x' }] },
  status: { phase: 'Running', podIP: '10.42.2.9', conditions: [{ type: 'Ready', status: 'True' }] },
};
const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', resourceVersion: '3' }, spec: { podCIDRs: ['10.42.1.0/24'] } };

function stubApi() {
  const pods = [];
  const podWatches = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const list = (kind, items) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ apiVersion: 'v1', kind, metadata: { resourceVersion: '1000' }, items }));
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.write('');
      if (url.pathname === '/api/v1/pods') podWatches.push(res);
      return;
    }
    if (url.pathname === '/api/v1/pods') return list('PodList', pods);
    if (url.pathname === '/api/v1/namespaces/podvpn-system/pods') return list('PodList', [gatewayPod]);
    if (url.pathname === '/api/v1/nodes') return list('NodeList', [node]);
    res.writeHead(404).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404, reason: 'NotFound' }));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        /** New pods, as the watch delivers them: one ADDED event each. */
        add(items) {
          pods.push(...items);
          for (const w of podWatches) w.write(items.map((o) => `${JSON.stringify({ type: 'ADDED', object: o })}\n`).join(''));
        },
        close: () => {
          for (const w of podWatches) w.destroy();
          server.closeAllConnections();
          server.close();
        },
      }),
    );
  });
}

async function metric(port, re) {
  try {
    const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return re.exec(body)?.[1];
  } catch {
    return undefined;
  }
}

/** CPU and memory of a process over a window: CPU ms (own and its commands'), memory at the end. */
async function window(pid, seconds) {
  const a = cpuMs(pid);
  await sleep(seconds * 1000);
  const b = cpuMs(pid);
  return { cpuSelf: b.self - a.self, cpuChildren: b.children - a.children, ...memory(pid) };
}

// ---- the run ----
const out = [];
const say = (line) => {
  out.push(line);
  console.log(line);
};
try {
  await buildNode();
  const api = await stubApi();
  writeFileSync(join(tmp, 'kubeconfig'), [
    'apiVersion: v1', 'kind: Config', 'current-context: bench',
    'clusters: [{name: bench, cluster: {server: "http://127.0.0.1:' + api.port + '", insecure-skip-tls-verify: true}}]',
    'users: [{name: bench, user: {token: bench}}]',
    'contexts: [{name: bench, context: {cluster: bench, user: bench}}]', '',
  ].join('\n'));
  writeFileSync(join(tmp, 'config.yaml'), 'gateways:\n  default:\n    mtu: 1320\ncluster:\n  podCIDRs: [10.42.0.0/16]\n  serviceCIDRs: [10.43.0.0/16]\n');
  const adminPort = 21_000 + (process.pid % 10_000);
  const agent = spawn(process.execPath, [join(ROOT, 'dist', 'agent', 'main.js'), `--config=${join(tmp, 'config.yaml')}`, `--admin-port=${adminPort}`,
    `--period-ms=${PERIOD_MS}`, `--udhcpc-script=${SCRIPT}`], { env: { ...process.env, KUBECONFIG: join(tmp, 'kubeconfig'), NODE_NAME: 'n1' }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(agent);
  let log = '';
  agent.stdout.on('data', (d) => (log += d.toString()));
  for (let t = 0; t < 100 && !log.includes('podvpn-agent started'); t++) await sleep(100);
  if (!log.includes('podvpn-agent started') || log.includes('watch failed')) throw new Error(`the agent did not start against the stub API:\n${log}`);

  say(`agent-scale: ${PODS} pods, period ${PERIOD_MS} ms, windows of ${WINDOW_S} s; node ${process.version}, ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} CPUs (shared)`);
  await sleep(PERIOD_MS);
  const idle = await window(agent.pid, WINDOW_S);
  say(`baseline, agent with 0 routed pods : RSS ${(idle.rss / 1024).toFixed(1)} MiB, PSS ${(idle.pss / 1024).toFixed(1)} MiB, CPU ${(idle.cpuSelf + idle.cpuChildren).toFixed(0)} ms in ${WINDOW_S} s`);

  // 50 pods appear at once (the watch delivers 50 ADDED events): time until all are routed
  const t0 = performance.now();
  api.add(Array.from({ length: PODS }, (_, i) => routedPod(i)));
  let routed = 0;
  while (performance.now() - t0 < 180_000) {
    routed = Number((await metric(adminPort, /^podvpn_agent_pods_routed\{gateway="default"\} (\d+)$/m)) ?? 0);
    if (routed >= PODS) break;
    await sleep(50);
  }
  const routeAll = performance.now() - t0;
  if (routed < PODS) throw new Error(`only ${routed} of ${PODS} pods routed after 180 s:\n${log.slice(-2000)}`);
  const perPod = [...log.matchAll(/"msg":"pod routed".*?"ms":(\d+)/g)].map((m) => Number(m[1]));
  say(`agent: ${PODS} new pods -> all routed : ${(routeAll / 1000).toFixed(1)} s (per pod, seen -> routed: median ${median(perPod)} ms, max ${Math.max(...perPod)} ms)`);

  await sleep(PERIOD_MS);
  const busy = await window(agent.pid, WINDOW_S);
  say(`agent keeping ${PODS} routed pods     : RSS ${(busy.rss / 1024).toFixed(1)} MiB, PSS ${(busy.pss / 1024).toFixed(1)} MiB, CPU ${(busy.cpuSelf + busy.cpuChildren).toFixed(0)} ms in ${WINDOW_S} s ` +
    `(${(((busy.cpuSelf + busy.cpuChildren) / (WINDOW_S * 1000)) * 100).toFixed(1)}% of a core; node ${busy.cpuSelf.toFixed(0)} ms + commands ${busy.cpuChildren.toFixed(0)} ms; rounds run back to back when one outlasts the ${PERIOD_MS} ms period)`);
  say(`agent memory per routed pod          : RSS ${((busy.rss - idle.rss) / PODS).toFixed(0)} KiB, PSS ${((busy.pss - idle.pss) / PODS).toFixed(0)} KiB (the ${PODS}-pod figure minus the baseline, / ${PODS})`);
  const failures = await metric(adminPort, /^podvpn_agent_pod_failures_total (\d+)$/m);
  const rebuilds = log.match(/"msg":"tunnel repaired"/g)?.length ?? 0;
  say(`agent: failures ${failures ?? '?'}, repairs ${rebuilds} over the run`);
  const problems = [...new Set([...log.matchAll(/"msg":"pod not routed yet".*?"error":"([^"]*)"/g)].map((m) => m[1].replace(/172\.16\.0\.\d+/g, 'x').replace(/pod [0-9a-f-]{36}/g, 'pod')))];
  for (const p of problems) say(`  problem seen before routing: ${p.slice(0, 200)}`);
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  api.close();

  // One reconcile round over the 50 routed pods (nothing to change): the Agent class, as main.js runs it
  const pods = Array.from({ length: PODS }, (_, i) => ({ uid: uidOf(i), namespace: 'apps', name: `web-${i}`, gateway: 'default' }));
  const gw = { name: 'default', address: 'x', vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', dns: '172.16.0.1', mtu: 1320 };
  const ranges = { podCIDRs: ['10.42.0.0/16', '10.42.1.0/24'], serviceCIDRs: ['10.43.0.0/16'], extraCIDRs: [], dnsIPs: [], sources: {} };
  let steps = 0;
  const classAgent = new Agent({ netnsOf: (uid) => ({ ok: true, nsPath: `/run/netns/${podNs(Number(uid.slice(-12)))}` }), run: (s) => (steps++, execRun(s)), now: () => Date.now() });
  classAgent.udhcpcScript = SCRIPT;
  const roundMs = [];
  const gateways = new Map([['default', { config: gw, state: { name: 'default', podIP: '10.42.2.9', ready: true } }]]);
  const roundCpu = [];
  for (let r = 0; r < 5; r++) {
    steps = 0;
    const t = performance.now();
    const c0 = cpuMs(process.pid);
    await classAgent.reconcile(pods, gateways, ranges);
    const c1 = cpuMs(process.pid);
    roundMs.push(performance.now() - t);
    roundCpu.push(c1.self - c0.self + c1.children - c0.children);
  }
  const scan = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    const found = findPodsNetns('/proc', pods.map((p) => p.uid));
    scan.push(performance.now() - t);
    if ([...found.values()].some((f) => !f.ok)) throw new Error('the /proc scan lost a pod');
  }
  say(`one reconcile round, ${PODS} routed pods  : median ${median(roundMs).toFixed(0)} ms wall (runs: ${roundMs.map((x) => x.toFixed(0)).join(', ')}; ${steps} commands, all reads), CPU median ${median(roundCpu).toFixed(0)} ms (${(median(roundCpu) / PODS).toFixed(1)} ms per pod; node and the commands) + /proc scan median ${median(scan).toFixed(1)} ms`);

  // pod-gateway mode: the client sidecar in every pod, client_sidecar.sh's loop (lab stand-in of
  // pod-gateway v1.13.0's script, same commands), its settings files at temporary paths
  const cfg = join(tmp, 'config');
  mkdirSync(cfg);
  writeFileSync(join(cfg, 'settings.sh'), 'gateway=default\nK8S_DNS_ips=10.43.0.10\n');
  const script = readFileSync(SIDECAR, 'utf8').replaceAll('/default_config/settings.sh', SETTINGS).replaceAll('/config/settings.sh', join(cfg, 'settings.sh'));
  writeFileSync(join(tmp, 'client_sidecar.sh'), script, { mode: 0o755 });
  const sidecars = pods.map((_, i) => {
    const c = spawn('ip', ['netns', 'exec', podNs(i), 'bash', join(tmp, 'client_sidecar.sh')], { stdio: 'ignore' });
    children.push(c);
    return c;
  });
  await sleep(3000);
  // Sampled between pings (bash + its `sleep 10`): the sidecar's standing cost; a ping adds briefly
  const trees = sidecars.map((c) => [c.pid, ...childrenOf(c.pid)]);
  const per = trees.map((pids) => pids.map((p) => memory(p)).reduce((a, m) => ({ rss: a.rss + m.rss, pss: a.pss + m.pss }), { rss: 0, pss: 0 }));
  const procs = trees.map((t) => t.length);
  say(`pod-gateway mode, per pod (sidecar)  : RSS ${median(per.map((m) => m.rss))} KiB, PSS ${median(per.map((m) => m.pss))} KiB (median of ${PODS}; ${median(procs)} processes: bash + sleep; the init container has exited) -> ${PODS} pods: RSS ${(per.reduce((a, m) => a + m.rss, 0) / 1024).toFixed(1)} MiB, PSS ${(per.reduce((a, m) => a + m.pss, 0) / 1024).toFixed(1)} MiB`);
  say(`agent mode, per pod (in the pod)     : 0 containers running, 0 KiB (the gate exited); node-side: the agent's per-pod figure above`);
  for (const c of sidecars) c.kill('SIGTERM');
} finally {
  cleanup();
}
if (process.env.RESULTS_OUT) writeFileSync(process.env.RESULTS_OUT, `${out.join('\n')}\n`);
