// The exits lab: an exit group of three exits (manifests/examples/exit-group), each with its own
// WireGuard identity at the lab's VPN provider and its own public address; 30 routed pods whose exit
// the webhook's admission chose, holding 300 long-lived TCP flows to the internet host, counted per
// flow at both ends. A lab of its own (prefix + "x"). See README.md, "Exit groups".

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_EXIT } from '../../src/constants.js';
import { groupPodsOf } from '../../src/agent/exit-control.js';
import { standbyExits } from '../../src/agent/exit-moves.js';
import { type AgentPod, AgentLab } from './lib/agent.js';
import { groupNice, mapLimit, setGroupNice, sleep, tryRun, waitFor } from './lib/exec.js';
import { type ExitGroupInputs, ExitsLab, type FlowState, INSTRUMENT_NICE, type LabExit, OBSERVER_NICE, admitAgentPods, admitPods, agentModeConfigs, exitGroupInputs } from './lib/exits.js';
import { CLIENT_NAMESPACE, gatewayInputs, productInputs } from './lib/inputs.js';
import { ADDR, type ExtraPodName, Lab, type Snapshot } from './lib/lab.js';
import { RootCapture, emergencyDownOnExit, expectNoLeak, measuredOn } from './lib/measure.js';

const base = process.env.LAB_PREFIX ?? `pv${process.pid % 100000}`;
const prefix = `${base.slice(0, 9)}x`;
/** LAB_EXIT_PODS=N changes the number of routed pods (10 flows each). */
const PODS = Number(process.env.LAB_EXIT_PODS ?? 30);
const FLOWS_PER_POD = 10;
/**
 * Each check's bound, where the config's 60 s was too tight: at 30 pods per mode a two-core machine
 * runs at a load of about 10. Set while every lab command still ran ~/.bashrc (lib/exec.ts tryRun),
 * when X1's first check and the snapshots ran past 60 s; kept, as bounds are not figures: the
 * figures print what each took.
 */
const SLOW = 300_000;
const figures: string[] = [];
const figure = (line: string) => {
  figures.push(line);
  process.stdout.write(`[figure] exits: ${line}\n`);
};
const log = (line: string) => process.stdout.write(`[lab-exits] ${line}\n`);

let lab: Lab;
let xl: ExitsLab;
let group: ExitGroupInputs;
const measured = (name: string, action: () => Promise<void>) => measuredOn(lab, log, name, action);
const noLeak = expectNoLeak;
emergencyDownOnExit(prefix);
const rootCapture = new RootCapture(prefix);
const t0Lab = Date.now();

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const secs = (ms: number) => (ms / 1000).toFixed(2);
const now = () => Date.now() / 1000;
type Named = { name: string };
const names = (pods: Named[]) => new Set(pods.map((p) => p.name));
/** The flows (client side) of some pods. */
const flowsOf = (pods: Named[]): FlowState[] => {
  const n = names(pods);
  return xl.clientFlows().filter((f) => n.has(f.pod));
};
/** Breaks the client recorded for a flow in [from, to] (epoch seconds). */
const breaksIn = (f: FlowState, from: number, to = Number.POSITIVE_INFINITY) => f.breaks.filter(([t]) => t >= from && t <= to).length;
/** Per flow "pod/flow" -> the epoch of its connection (client side). */
const epochs = (pods: Named[]) => new Map(flowsOf(pods).map((f) => [`${f.pod}/${f.flow}`, f.epoch]));
/**
 * A stall at the server that counts as a disruption: the client's own timeout (flows.py TIMEOUT_S).
 * Shorter gaps (1 s and up are recorded) happen on this loaded 2-core machine without any fault:
 * their longest on the untouched flows is printed as a figure.
 */
const STALL_S = 1.5;
/** The longest heartbeat gap (s) at the server since `from` on the open connections of some pods' flows. */
function longestGap(pods: Named[], from: number): number {
  const n = names(pods);
  let max = 0;
  for (const c of xl.currentConns().values()) {
    if (c.pod === null || !n.has(c.pod)) continue;
    for (const [a, b] of c.gaps) if (b >= from) max = Math.max(max, b - a);
  }
  return max;
}
/**
 * "Untouched", per flow: the same connection (epoch) at the client before and after, no break
 * recorded by the client since `from`, and at the server that connection open with no heartbeat stall
 * of STALL_S since `from` and heard within the last second.
 */
function untouched(pods: Named[], before: Map<string, number>, from: number): { ok: number; bad: string[] } {
  const conns = xl.currentConns();
  const at = xl.serverState().at;
  const bad: string[] = [];
  let ok = 0;
  for (const f of flowsOf(pods)) {
    const key = `${f.pod}/${f.flow}`;
    const c = conns.get(key);
    const why =
      f.epoch !== before.get(key) ? `reconnected (epoch ${before.get(key)} -> ${f.epoch})`
      : breaksIn(f, from) > 0 ? 'break at the client'
      : c === undefined || c.epoch !== f.epoch ? 'not open at the server'
      : c.gaps.some(([a, to]) => to >= from && to - a >= STALL_S) ? `heartbeats stalled ${STALL_S} s or more at the server`
      : c.last === null || at - c.last >= STALL_S ? `silent for ${STALL_S} s or more at the server`
      : '';
    if (why === '') ok += 1;
    else bad.push(`${key}: ${why}`);
  }
  return { ok, bad };
}
/** The exit address the server sees each pod's open flows come from. */
function sourcesOf(pods: Named[]): Map<string, Set<string>> {
  const conns = xl.currentConns();
  const out = new Map<string, Set<string>>();
  for (const p of pods) {
    const s = new Set<string>();
    for (let i = 0; i < FLOWS_PER_POD; i++) {
      const c = conns.get(`${p.name}/${i}`);
      if (c) s.add(c.src);
    }
    out.set(p.name, s);
  }
  return out;
}

let observerNiceWas: number | undefined;

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the data-plane lab needs root: it creates network namespaces');
  if ((await tryRun('command -v python3')).code !== 0) throw new Error('missing python3 (the flow server and client, scripts/flows.py): run .ci/dataplane-deps.sh');
  // The observer (this worker and every read it starts: one session) at a group nice of its own, as
  // flows.py is; put back in afterAll. Without it, at 30 pods a counter read waited over 60 s.
  observerNiceWas = groupNice('self');
  if (observerNiceWas !== undefined) setGroupNice('self', OBSERVER_NICE);
  log(`scheduling groups: ${observerNiceWas === undefined ? 'none (no autogroups)' : `observer at group nice ${OBSERVER_NICE} (was ${observerNiceWas}), flow instruments at ${INSTRUMENT_NICE}`}`);
  await rootCapture.start();
  const product = productInputs();
  const gateway = await gatewayInputs();
  group = await exitGroupInputs();
  log(`exit group "${group.group}" from: ${group.source}; exits ${group.exits.map((e) => `${e.name} (VXLAN ${e.vxlanId})`).join(', ')}`);
  lab = await Lab.up({
    prefix,
    clientSettingsScript: product.clientSettingsScript,
    clientResolvConf: product.clientResolvConf,
    clientLabels: product.clientLabels,
    clientNamespace: CLIENT_NAMESPACE,
    gatewayName: product.gatewayName,
    clusterDomain: product.clusterDomain,
    policies: group.policies,
    clientInitCommand: product.clientInitCommand,
    clientSidecarCommand: product.clientSidecarCommand,
    gateway,
    log,
    sharedOnly: true,
  });
  xl = new ExitsLab(lab, group);
  let t = Date.now();
  await xl.bootExits();
  const exitsMs = Date.now() - t;
  t = Date.now();
  const admitted = await admitPods(group, PODS);
  const inits = await xl.addPods(admitted);
  const podsMs = Date.now() - t;
  t = Date.now();
  await xl.startFlowServer(ADDR.inet);
  xl.startFlowClient('flows-pg', xl.pods, FLOWS_PER_POD, ADDR.inet);
  await waitFor(`${PODS * FLOWS_PER_POD} flows up`, async () => xl.allFlowsUp(), 90_000, 500);
  figure(
    `lab build ${secs(Date.now() - t0Lab)} s: shared part ${secs(lab.buildMs)} s, 3 exit gateway pods ${secs(exitsMs)} s, ${PODS} routed pods (client init, 2 at a time per exit) ${secs(podsMs)} s ` +
      `(init median ${secs(median(inits))} s, max ${secs(Math.max(...inits))} s, restarted by the kubelet ${xl.initRestarts.length} times), ${PODS * FLOWS_PER_POD} flows up ${secs(Date.now() - t)} s`,
  );
  for (const r of xl.initRestarts) log(`client init failed and ran again: ${r}`);
}, 900_000);

afterAll(async () => {
  if (process.env.LAB_KEEP !== '1') await al?.close().catch((err: unknown) => log(`agent lab close: ${(err as Error).message}`));
  await rootCapture.stop();
  rmSync(rootCapture.log, { force: true });
  rmSync(`${rootCapture.log}.pid`, { force: true });
  if (process.env.LAB_KEEP !== '1') await lab?.down();
  figure(`lab wall time ${secs(Date.now() - t0Lab)} s`);
  if (observerNiceWas !== undefined) setGroupNice('self', observerNiceWas);
  if (figures.length > 0) process.stdout.write(`\nFigures, exit group (not assertions):\n${figures.map((f) => `  ${f}`).join('\n')}\n`);
}, 600_000);

describe.sequential('X1 assignment and balance (pod-gateway mode)', () => {
  it("each pod's exit label is the admission's choice, and its vxlan0 carries that exit's VXLAN id to that exit's gateway pod", async () => {
    const wrong: string[] = [];
    // 4 at a time: 30 side by side, each two processes, all ran past 10 s on the busy machine.
    const seen = await mapLimit(xl.pods, 4, async (p) => ({ p, v: await xl.vxlanOf(p) }));
    for (const { p, v } of seen) {
      const e = xl.exit(p.exit);
      if (v.id !== e.vxlanId || v.remote !== e.spec.ip) wrong.push(`${p.name} (${p.exit}): vxlan0 id ${v.id} remote ${v.remote}`);
    }
    expect(wrong).toEqual([]);
    expect(xl.pods.length).toBe(PODS);
  }, SLOW);

  it('balance: pods per exit within 20 % of even', () => {
    const even = PODS / xl.exits.length;
    const counts = Object.fromEntries(xl.exits.map((e) => [e.name, xl.podsOf(e.name).length]));
    figure(`pods per exit (admission, rendezvous with the webhook's loads): ${JSON.stringify(counts)}; even ${even.toFixed(1)}`);
    for (const [name, n] of Object.entries(counts)) {
      expect(Math.abs(n - even) / even, `${name}: ${n} pods`).toBeLessThanOrEqual(0.2);
    }
  });

  it("the internet host sees three exit addresses, each pod's flows from its own exit's address; nothing else arrives", async () => {
    const d = await measured('exits-normal', async () => {
      await sleep(1500);
    });
    const src = sourcesOf(xl.pods);
    const wrong = xl.pods.filter((p) => {
      const s = src.get(p.name);
      return s?.size !== 1 || !s.has(xl.exit(p.exit).publicIP);
    });
    expect(wrong.map((p) => `${p.name} (${p.exit}): ${[...(src.get(p.name) ?? [])].join(',')}`)).toEqual([]);
    const seen = new Set([...src.values()].flatMap((s) => [...s]));
    expect([...seen].sort()).toEqual(xl.exits.map((e) => e.publicIP).sort());
    expect(d.inetViaVpn).toBeGreaterThan(0);
    noLeak(d);
  }, SLOW);
});

describe.sequential('X2 the flow-break detector (negative control)', () => {
  it("one pod's flows blocked for 2.5 s: exactly its 10 flows are counted broken (and not untouched), no other", async () => {
    const victim = xl.pods[0]!;
    const victimEpochs = epochs([victim]);
    const from = now();
    await lab.in(victim.ns, `nft add table inet lab_block`);
    try {
      await lab.in(victim.ns, `nft add chain inet lab_block out '{ type filter hook output priority 0; policy accept; }'`);
      await lab.in(victim.ns, `nft add rule inet lab_block out ip daddr ${ADDR.inet} drop`);
      await sleep(2500);
    } finally {
      await lab.tryIn(victim.ns, 'nft delete table inet lab_block');
    }
    await sleep(500);
    const broken = xl.clientFlows().filter((f) => breaksIn(f, from) > 0);
    expect(broken.filter((f) => f.pod !== victim.name).map((f) => `${f.pod}/${f.flow}`)).toEqual([]);
    expect(broken.filter((f) => f.pod === victim.name).length).toBe(FLOWS_PER_POD);
    // The "untouched" check used below counts each of them as touched.
    expect(untouched([victim], victimEpochs, from).ok).toBe(0);
    await waitFor('the blocked pod\'s flows back', async () => xl.allFlowsUp(), 30_000, 250);
  }, SLOW);
});

describe.sequential('X3 pod-gateway mode: exit vpn-b\'s tunnel dies (its pod lives)', () => {
  let d: Snapshot | undefined;
  const cut: { pod: string; ok: boolean; body: string }[] = [];
  let from = 0;
  let restored = 0;
  let before = new Map<string, number>();
  let noRoute = 0;

  it("exactly vpn-b's pods' flows break, none of vpn-a's and vpn-c's (counted per flow); vpn-b's pods are cut off; nothing leaks", async () => {
    const b = xl.exit('vpn-b');
    const bPods = xl.podsOf('vpn-b');
    const others = xl.pods.filter((p) => p.exit !== 'vpn-b');
    before = epochs(others);
    const gwDrops = async () => (await lab.gwNoRoute(b.spec.ns)) + (await lab.gwForwardDropped(b.spec.ns));
    const drops0 = await gwDrops();
    from = now();
    try {
      d = await measured('exit-b-tunnel-down', async () => {
        await lab.in(b.spec.ns, `ip link set ${b.spec.gluetun.vpnInterface} down`);
        await sleep(3000);
        for (const r of await Promise.all(bPods.map(async (p) => ({ pod: p.name, ...(await lab.curlInet(p.ns, 2)) })))) cut.push(r);
      });
      noRoute = (await gwDrops()) - drops0;
    } finally {
      await lab.script(b.spec.ns, [`ip link set ${b.spec.gluetun.vpnInterface} up`, `ip route replace default dev ${b.spec.gluetun.vpnInterface} table 51820`]);
      restored = now();
    }
    const bFlows = flowsOf(bPods);
    const bBroken = bFlows.filter((f) => breaksIn(f, from, restored) > 0).length;
    const u = untouched(others, before, from);
    figure(
      `pod-gateway mode, vpn-b's tunnel down: flows broken ${bBroken} of ${bFlows.length} on vpn-b, ${others.length * FLOWS_PER_POD - u.ok} of ${others.length * FLOWS_PER_POD} on vpn-a/vpn-c ` +
        `(their longest heartbeat gap at the server ${longestGap(others, from).toFixed(2)} s); ` +
        `disrupted ${((bBroken + others.length * FLOWS_PER_POD - u.ok) / (PODS * FLOWS_PER_POD) * 100).toFixed(1)} % of all flows (vpn-b's share of the pods: ${((bPods.length / PODS) * 100).toFixed(1)} %, ideal 1/N = 33.3 %)`,
    );
    expect(bFlows.length).toBe(bPods.length * FLOWS_PER_POD);
    expect(bBroken).toBe(bFlows.length);
    expect(u.bad).toEqual([]);
    expect(u.ok).toBe(others.length * FLOWS_PER_POD);
    expect(cut.filter((c) => c.ok)).toEqual([]);
    // Refused at vpn-b's gateway (its routing kill switch or its firewall's FORWARD policy).
    expect(noRoute).toBeGreaterThan(0);
    noLeak(d);
  }, SLOW);

  it('vpn-b back: its pods reach the internet again through vpn-b (and only through it); vpn-a/vpn-c flows still untouched', async () => {
    const b = xl.exit('vpn-b');
    const bPods = xl.podsOf('vpn-b');
    const others = xl.pods.filter((p) => p.exit !== 'vpn-b');
    const d2 = await measured('exit-b-back', async () => {
      await waitFor("vpn-b's flows back", async () => xl.allFlowsUp(bPods), 45_000, 200);
    });
    const back = flowsOf(bPods).map((f) => Math.min(...f.connects.filter((t) => t >= restored)) - restored).filter((x) => Number.isFinite(x));
    figure(`pod-gateway mode, vpn-b's tunnel back: its flows reconnected after ${(median(back)).toFixed(2)} s median, ${Math.max(...back).toFixed(2)} s max (the client reconnects every ~1.1 s while cut off)`);
    const src = sourcesOf(bPods);
    expect(bPods.filter((p) => src.get(p.name)?.size !== 1 || !src.get(p.name)?.has(b.publicIP)).map((p) => p.name)).toEqual([]);
    const u = untouched(others, before, from);
    expect(u.bad).toEqual([]);
    noLeak(d2);
  }, SLOW);
});

// ---- agent mode: the agent's real process routes, fails over and drains exit-group pods ----

let al: AgentLab;
/** An agent-mode pod: its name in the API and its network namespace are the same. */
interface APod {
  name: ExtraPodName;
  ns: ExtraPodName;
  exit: string;
  pod: AgentPod;
}
const apods: APod[] = [];
let generation = 1;
const exitNow = (p: APod) => al.api.get('v1', 'Pod', CLIENT_NAMESPACE, p.name)?.metadata?.labels?.[LABEL_EXIT];
const onExit = (name: string) => apods.filter((p) => exitNow(p) === name);
const events = (reason: string) => al.api.list('v1', 'Event', CLIENT_NAMESPACE).filter((e) => (e as { reason?: string }).reason === reason);

interface Move {
  movers: APod[];
  stay: APod[];
  before: Map<string, number>;
  from: number;
  /** Per moved pod: seconds from `from` to its first answer through another exit. */
  restored: Map<string, number>;
  d: Snapshot;
}

/**
 * One exit taken away by `act` (at `from`): every agent pod on it must get its egress back through
 * another exit (a probe connection each 250 ms per pod records when, and from which address the
 * internet host saw it); meanwhile the counters run.
 */
async function moveScenario(name: string, dead: LabExit, act: () => Promise<void>): Promise<Move> {
  const movers = onExit(dead.name);
  const stay = apods.filter((p) => !movers.includes(p));
  const before = epochs(stay);
  xl.probe(movers);
  await sleep(1000);
  const restored = new Map<string, number>();
  const others = new Set(xl.exits.filter((e) => e !== dead).map((e) => e.publicIP));
  let from = 0;
  const d = await measured(name, async () => {
    from = now();
    await act();
    await waitFor(
      `${dead.name}'s ${movers.length} pods back through another exit`,
      async () => {
        const pr = xl.probes();
        for (const p of movers) {
          const hits = (pr[p.name] ?? []).filter(([, done, src]) => done > from && others.has(src)).map(([, done]) => done - from);
          if (hits.length > 0) restored.set(p.name, Math.min(restored.get(p.name) ?? Number.POSITIVE_INFINITY, ...hits));
        }
        return restored.size === movers.length;
      },
      120_000,
      250,
    );
  });
  xl.probe([]);
  return { movers, stay, before, from, restored, d };
}

/**
 * How many moved pods went to the exit where they held a standby lease (the agent's log: the last
 * "standby lease taken" before the scenario, the move after it); those that did not waited for the
 * new exit's ping check, one at a time.
 */
function standbyHits(m: Move): string {
  const lines = agentLines(0) as { t: number; msg: string; exit?: string; pod?: string; to?: string }[];
  const missed: string[] = [];
  for (const p of m.movers) {
    const key = `${CLIENT_NAMESPACE}/${p.name}`;
    const held = lines.filter((l) => l.t < m.from && l.pod === key && l.msg === 'standby lease taken').at(-1)?.exit;
    const to = lines.find((l) => l.t >= m.from && l.pod === key && / to another exit$/.test(l.msg))?.to;
    if (held === undefined || held !== to) missed.push(`${p.name} (standby ${held ?? 'none'}, moved to ${to ?? '?'})`);
  }
  return `moved onto their standby lease's exit: ${m.movers.length - missed.length} of ${m.movers.length}${missed.length > 0 ? ` (not: ${missed.join(', ')})` : ''}`;
}

/** The agent's log lines (JSON) since `from` (epoch s). */
function agentLines(from: number): { t: number; msg: string; exit?: string; state?: string; pod?: string }[] {
  const f = join(lab.work, 'agent.log');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { time?: string; msg: string; exit?: string; state?: string; pod?: string })
    .map((j) => ({ ...j, t: Date.parse(j.time ?? '') / 1000 }))
    .filter((j) => j.t >= from);
}

/** When the exit's probe first answered 500 after `from` (its log's warn line; epoch s), if it did. */
function probeFlip(dead: LabExit, from: number): number | undefined {
  const f = join(lab.work, `exit-probe-${dead.name}.log`);
  if (!existsSync(f)) return undefined;
  for (const l of readFileSync(f, 'utf8').split('\n')) {
    if (!l.startsWith('{')) continue;
    const j = JSON.parse(l) as { time?: number; level?: number; msg?: string };
    if (j.level === 40 && (j.time ?? 0) / 1000 >= from) return (j.time ?? 0) / 1000;
  }
  return undefined;
}

/** When the exit's probe and the agent judged the exit unhealthy or draining, and when the agent moved the pods (s after `from`). */
function agentTimeline(m: Move, dead: LabExit): string {
  const flip = probeFlip(dead, m.from);
  const lines = agentLines(m.from);
  const verdict = lines.find((l) => l.msg === 'exit health' && l.exit === dead.name && l.state !== 'healthy');
  if (verdict === undefined) log(`agent log since the scenario began (first lines): ${lines.slice(0, 4).map((l) => JSON.stringify(l)).join(' | ')}`);
  const moved = lines.filter((l) => /^pod (failed over|drained) to another exit$/.test(l.msg)).map((l) => l.t - m.from);
  return `the exit probe's first 500 at ${flip === undefined ? '-' : (flip - m.from).toFixed(2)} s, the agent's verdict (${verdict?.state ?? 'none'}) at ${verdict ? (verdict.t - m.from).toFixed(2) : '-'} s, its moves at ${moved.length > 0 ? `${Math.min(...moved).toFixed(2)} to ${Math.max(...moved).toFixed(2)}` : '-'} s`;
}

/** The checks every move shares: moved to a healthy exit (label, vxlan0, flows' source), the rest untouched per flow, no leak. */
async function checkMove(m: Move, dead: LabExit, what: string): Promise<void> {
  const times = [...m.restored.values()];
  await waitFor(`the moved pods' flows up again`, async () => xl.allFlowsUp(m.movers), 60_000, 250);
  const u = untouched(m.stay, m.before, m.from);
  const total = apods.length * FLOWS_PER_POD;
  const moverFlows = flowsOf(m.movers);
  const broken = moverFlows.filter((f) => breaksIn(f, m.from) > 0).length;
  figure(
    `agent mode, ${what}: ${m.movers.length} pods moved; egress back after median ${median(times).toFixed(2)} s, max ${Math.max(...times).toFixed(2)} s (goal: median at most 2 s); ` +
      `flows disrupted ${broken + (m.stay.length * FLOWS_PER_POD - u.ok)} of ${total} = ${(((broken + m.stay.length * FLOWS_PER_POD - u.ok) / total) * 100).toFixed(1)} % ` +
      `(the exit's share: ${((m.movers.length / apods.length) * 100).toFixed(1)} %; ideal 1/N = 33.3 %); untouched on the other exits ${u.ok} of ${m.stay.length * FLOWS_PER_POD} ` +
      `(longest heartbeat gap ${longestGap(m.stay, m.from).toFixed(2)} s); ${agentTimeline(m, dead)}; ${standbyHits(m)}; the provider dropped ${m.d.providerInvalid} conntrack-invalid packets from the tunnel (not NATable); ` +
      `the flow instruments' own stalls: ${xl.instrumentStalls(m.from)}`,
  );
  const wrong: string[] = [];
  const src = sourcesOf(m.movers);
  for (const p of m.movers) {
    const to = exitNow(p);
    const e = xl.exits.find((x) => x.name === to);
    const v = await xl.vxlanOf(p);
    if (e === undefined || e === dead) wrong.push(`${p.name}: label ${to}`);
    else if (v.id !== e.vxlanId || v.remote !== e.spec.ip) wrong.push(`${p.name} on ${to}: vxlan0 id ${v.id} remote ${v.remote}`);
    else if (src.get(p.name)?.size !== 1 || !src.get(p.name)?.has(e.publicIP)) wrong.push(`${p.name} on ${to}: flows from ${[...(src.get(p.name) ?? [])].join(',')}`);
  }
  expect(wrong).toEqual([]);
  expect(m.movers.length).toBeGreaterThan(0);
  expect(u.bad).toEqual([]);
  expect(u.ok).toBe(m.stay.length * FLOWS_PER_POD);
  noLeak(m.d);
}

describe.sequential('X4 agent mode: the agent routes exit-group pods to the exit admission chose', () => {
  it('30 agent-mode pods (the webhook admitted them in agent mode): each routed to its exit (label, vxlan0 id and remote), its flows from its exit\'s address; balance within 20 %; no leak', async () => {
    // The pod-gateway-mode pods stop their traffic and their sidecars (their namespaces stay): the agent
    // part has its own 300 flows, and two cores.
    await xl.stopFlowClient('flows-pg');
    await xl.stopSidecars();
    const configs = agentModeConfigs(group);
    al = await AgentLab.start(lab, { config: configs.agent, defaultGateway: false });
    for (const e of xl.exits) al.publishGatewayPod(e.podName, e.podLabels, e.spec.ip, true);
    const probes = await Promise.all(xl.exits.map((e) => xl.probeStatus(e)));
    log(`exit probes answer from the node: ${probes.join(', ')}`);
    al.startAgent();
    await al.waitAgentUp();
    const admitted = await admitAgentPods(group, PODS, 'xq');
    const t0 = Date.now();
    // Created 5 at a time, as a kubelet starts pods side by side (the agent routes them as they come).
    const queue = [...admitted.entries()];
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
          const [k, a] = next;
          const name = a.name as ExtraPodName;
          const pod = await al.createPod(name, `10.244.1.${140 + k}`, { injection: a.injection, deferPolicy: true });
          apods.push({ name, ns: name, exit: a.exit, pod });
        }
      }),
    );
    apods.sort((x, y) => x.name.localeCompare(y.name));
    // The CNI learns the 30 pods' addresses once (each gate holds its app until the agent routed the pod).
    await lab.applyPolicy();
    const starts = await Promise.all(apods.map(async (p) => (await al.waitApp(p.pod, 120_000)) - al.sandboxStarted(p.pod)));
    figure(`agent mode: ${PODS} pods created and routed (all apps started) in ${secs(Date.now() - t0)} s; pod start to app start median ${secs(median(starts))} s, max ${secs(Math.max(...starts))} s`);
    expect(probes).toEqual(xl.exits.map(() => 200));
    const wrong: string[] = [];
    for (const p of apods) {
      const e = xl.exit(p.exit);
      const v = await xl.vxlanOf(p);
      if (exitNow(p) !== p.exit || v.id !== e.vxlanId || v.remote !== e.spec.ip) wrong.push(`${p.name} (${p.exit}): label ${exitNow(p)}, vxlan0 id ${v.id} remote ${v.remote}`);
    }
    expect(wrong).toEqual([]);
    xl.startFlowClient('flows-agent', apods, FLOWS_PER_POD, ADDR.inet);
    await waitFor(`${PODS * FLOWS_PER_POD} agent-mode flows up`, async () => xl.allFlowsUp(apods), 90_000, 500).catch(async (err: unknown) => {
      const down = xl.podsNotUp(apods);
      for (const p of apods.filter((x) => down.includes(x.name))) log(await xl.diagnose(p, exitNow(p)));
      throw new Error(`${(err as Error).message}: not all up on ${down.join(', ')}`);
    });
    const d = await measured('agent-exits-normal', async () => {
      await sleep(1500);
    });
    const src = sourcesOf(apods);
    expect(apods.filter((p) => src.get(p.name)?.size !== 1 || !src.get(p.name)?.has(xl.exit(p.exit).publicIP)).map((p) => p.name)).toEqual([]);
    const even = PODS / xl.exits.length;
    const counts = Object.fromEntries(xl.exits.map((e) => [e.name, onExit(e.name).length]));
    figure(`agent mode: pods per exit (admission): ${JSON.stringify(counts)}`);
    for (const [n, c] of Object.entries(counts)) expect(Math.abs(c - even) / even, `${n}: ${c} pods`).toBeLessThanOrEqual(0.2);
    noLeak(d);
    // 900 s: creating the 30 pods is the lab's own work (a namespace, a veth, a cgroup and pod.sh per
    // pod, 5 at a time): 429 s on this two-core machine at a load of 9 to 11 with the other mode's 30 pods
    // still up. What the agent adds is pod start to app start, bounded by waitApp's 120 s above.
  }, 900_000);
});

describe.sequential('X5 agent mode: exit vpn-b\'s tunnel dies (its pod lives, Ready)', () => {
  let m: Move;
  it("vpn-b's pods fail over to vpn-a/vpn-c; every flow on vpn-a/vpn-c untouched (counted per flow); nothing leaks; Events and labels say where they went", async () => {
    const b = xl.exit('vpn-b');
    // A settled group, as a cluster that has run a while: every pod on vpn-b holds its standby lease
    // where a failover will send it (X6, right after, shows a group that has not settled again)
    await settledStandbys(b, 'the tunnel kill', "X4's end");
    try {
      m = await moveScenario('agent-exit-b-tunnel-down', b, async () => {
        await lab.in(b.spec.ns, `ip link set ${b.spec.gluetun.vpnInterface} down`);
      });
    } finally {
      await lab.script(b.spec.ns, [`ip link set ${b.spec.gluetun.vpnInterface} up`, `ip route replace default dev ${b.spec.gluetun.vpnInterface} table 51820`]);
    }
    await checkMove(m, b, "vpn-b's tunnel down");
    expect(events('ExitFailover').length).toBeGreaterThanOrEqual(m.movers.length);
  }, 600_000);

  it("vpn-b healthy again: no pod moves back on its own (that would break its flows)", async () => {
    const b = xl.exit('vpn-b');
    await waitFor("vpn-b's probe answering 200", async () => (await xl.probeStatus(b)) === 200, 30_000, 250);
    const epochsNow = epochs(apods);
    const from = now();
    await sleep(5000);
    expect(onExit('vpn-b').map((p) => p.name)).toEqual([]);
    expect(untouched(apods, epochsNow, from).bad).toEqual([]);
  }, 120_000);
});

describe.sequential('X6 agent mode: an exit pod deleted (no grace: gone with its namespace)', () => {
  it('its pods fail over to the other exits; their flows untouched; nothing leaks', async () => {
    const dead = [...xl.exits].sort((x, y) => onExit(y.name).length - onExit(x.name).length)[0]!;
    const m = await moveScenario(`agent-exit-${dead.name}-deleted`, dead, async () => {
      al.removeGatewayPod(dead.podName);
      await xl.deleteExitPod(dead);
    });
    await checkMove(m, dead, `${dead.name}'s pod deleted`);
    // The exit comes back as a new pod at a new address (its Deployment's replacement).
    generation += 1;
    await xl.recreateExitPod(dead, `10.244.1.${54 + dead.index}`, generation);
    al.publishGatewayPod(dead.podName, dead.podLabels, dead.spec.ip, true);
    exitPodSince.set(dead.name, now());
    await waitFor(`${dead.name}'s new pod answering its probe`, async () => (await xl.probeStatus(dead)) === 200, 30_000, 250);
  }, 600_000);
});

/**
 * Waits until every pod on `exit` holds its standby lease where the agent wants it (standbysMissing),
 * and prints how long that took. A standby that never comes fails here, by name.
 */
async function settledStandbys(exit: LabExit, before: string, since: string): Promise<void> {
  const movers = onExit(exit.name);
  const settle = Date.now();
  await waitFor(`the standby leases of ${exit.name}'s pods`, () => standbysMissing(movers, exit).length === 0, 180_000, 500).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; still missing: ${standbysMissing(movers, exit).join(', ')}`);
  });
  figure(`agent mode, before ${before} of ${exit.name}: its ${movers.length} pods' standby leases all held ${secs(Date.now() - settle)} s after ${since}`);
}

/** When an exit's current gateway pod was published (epoch s), for the exits X6 replaced. */
const exitPodSince = new Map<string, number>();

/**
 * Each pod's standby lease (the agent's log, "standby lease taken"): on another exit than `dead`, and
 * from that exit's current gateway pod (a replaced pod's dnsmasq holds none of the old one's leases).
 * What is missing, as "pod: why".
 */
function standbysMissing(pods: APod[], dead: LabExit): string[] {
  const last = new Map<string, { t: number; exit?: string }>();
  for (const l of agentLines(0)) if (l.msg === 'standby lease taken' && l.pod !== undefined) last.set(l.pod, l);
  // Where the agent keeps each pod's standby now: the product's own rule over the group as the API
  // holds it (every exit healthy; one node, so every agent-mode pod is this agent's)
  const members = groupPodsOf(al.api.list('v1', 'Pod', CLIENT_NAMESPACE) as never, group.group).map((g) => ({ ...g, mine: g.movable }));
  const want = new Map([...standbyExits(xl.exits.map((e) => e.name), new Map(xl.exits.map((e) => [e.name, { name: e.name, state: 'healthy' as const, reason: 'ok', by: 'probe' as const }])), members)].map(([uid, exit]) => [members.find((g) => g.uid === uid)!.key, exit]));
  return pods.flatMap((p) => {
    const key = `${CLIENT_NAMESPACE}/${p.name}`;
    const l = last.get(key);
    if (l === undefined) return [`${p.name}: none`];
    if (l.exit === dead.name) return [`${p.name}: on ${dead.name} itself`];
    if (l.exit !== want.get(key)) return [`${p.name}: on ${l.exit ?? '?'}, wanted on ${want.get(key) ?? 'none'}`];
    if (l.t < (exitPodSince.get(l.exit ?? '') ?? 0)) return [`${p.name}: from ${l.exit ?? '?'}'s previous pod`];
    return [];
  });
}

describe.sequential('X7 agent mode: an exit drained (its pod gets a deletionTimestamp and routes 10 s more)', () => {
  it("its pods are moved before it stops (each pod's egress comes back through another exit before then); flows on the other exits continue; nothing leaks", async () => {
    const dead = [...xl.exits].sort((x, y) => onExit(y.name).length - onExit(x.name).length)[0]!;
    const movers = onExit(dead.name);
    // A drain of a settled group (X6 replaced an exit's pod just before; its pods' standbys there are
    // taken again, one exchange per exit at a time)
    await settledStandbys(dead, 'the drain', "X6's end");
    let stoppedAbs = 0;
    let stopping: Promise<void> = Promise.resolve();
    const m = await moveScenario(`agent-exit-${dead.name}-drained`, dead, async () => {
      // The API marks the pod terminating; the kubelet sends SIGTERM to the exit probe (it answers
      // 500 "exit is stopping" for its --drain window) and runs gateway-sidecar's preStop (10 s);
      // gluetun is stopped only after both: the manifest's 10 s window, then the pod is gone.
      const t = now();
      al.publishGatewayPod(dead.podName, dead.podLabels, dead.spec.ip, true, true);
      const probe = lab.bg.get(`exit-probe-${dead.name}`);
      if (probe) process.kill(probe.pid, 'SIGTERM');
      stopping = (async () => {
        await sleep(Math.max(0, 10_000 - (now() - t) * 1000));
        stoppedAbs = now();
        al.removeGatewayPod(dead.podName);
        await xl.deleteExitPod(dead);
      })();
    });
    await stopping;
    // Seconds from the scenario's start (m.from, taken just before the deletionTimestamp), as m.restored.
    const stoppedAt = stoppedAbs - m.from;
    // Moved before the stop, by the traffic: the pod's first connection through another exit (the
    // probe connections, every 250 ms) came before the exit stopped routing. (Reading each pod's
    // vxlan0 in a loop instead lagged by seconds on a busy machine: 2 processes per pod per read.)
    const times = [...m.restored.values()];
    const backBeforeStop = movers.filter((p) => (m.restored.get(p.name) ?? Number.POSITIVE_INFINITY) < stoppedAt);
    figure(
      `agent mode, drain of ${dead.name}: ${movers.length} pods; egress back through another exit: median ${median(times).toFixed(2)} s, all by ${Math.max(...times).toFixed(2)} s after the deletionTimestamp ` +
        `(time to drain; ${backBeforeStop.length} of ${movers.length} before the exit stopped routing at ${stoppedAt.toFixed(2)} s); ${standbyHits(m)}`,
    );
    expect(movers.map((p) => `${p.name}: ${backBeforeStop.includes(p) ? 'moved' : `not moved (back at ${m.restored.get(p.name)?.toFixed(2) ?? '-'} s)`} before the stop`)).toEqual(movers.map((p) => `${p.name}: moved before the stop`));
    await checkMove(m, dead, `drain of ${dead.name}`);
  }, 600_000);
});

describe.sequential('hygiene', () => {
  it("the machine's own network namespace saw none of the exits lab's packets", async () => {
    await sleep(300);
    const seen = await rootCapture.stop();
    if (seen.length > 0) log(`root namespace saw: ${seen.slice(0, 5).join(' | ')}`);
    expect(seen).toEqual([]);
  });
});
