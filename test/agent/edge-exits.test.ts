// The agent's process with an exit group, against the API double and a stand-in exit probe: the built
// dist/agent/main.js watches every pod labelled podvpn.io/exit, polls each exit's probe every 500 ms,
// and when exit A's probe answers 500 twice in a row moves its node's pod off A: the label patched to
// B, an ExitFailover Event, the metrics. Exit B has no probe (nothing listens): judged by Ready alone,
// logged once. The pods have no process on this machine, so their tunnels wait ("no process in the
// cgroup"); the decision and the API writes do not depend on them.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Event } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RESOURCES, KubeApiDouble, type ResourceType } from '../kube-api-double/index.js';
import { FAILURES_TO_UNHEALTHY, PROBE_INTERVAL_MS } from '../../src/agent/exit-health.js';

const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'agent', 'main.js');
const EVENTS: ResourceType = { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, validate: (o) => new Event(structuredClone(o) as never).validate() };
const status = JSON.stringify({ version: '0.1.0', gateway: 'vpn', dataPlane: 'agent', exit: 'vpn-a', initContainers: ['podvpn-gate'], containers: [], volumes: [] });
const routedPod = (name: string, uid: string, nodeName: string, exit: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'apps', uid, labels: { 'podvpn.io/routed': 'vpn', 'podvpn.io/exit': exit }, annotations: { 'podvpn.io/status': status } },
  spec: { nodeName, containers: [{ name: 'app', image: 'x' }] },
  status: { phase: 'Running' },
});
const exitPod = (exit: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: `podvpn-gateway-${exit}-abc`,
    namespace: 'podvpn-system',
    labels: { 'app.kubernetes.io/name': 'podvpn-gateway', 'app.kubernetes.io/instance': `podvpn-gateway-${exit}`, 'podvpn.io/gateway': 'vpn' },
  },
  spec: { nodeName: 'n2', containers: [{ name: 'gw', image: 'x' }] },
  status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
});

describe('podvpn-agent process with an exit group', () => {
  let api: KubeApiDouble;
  let agent: ChildProcess;
  let probe: Server;
  let probeHealthy = true;
  let out = '';
  const dir = mkdtempSync(join(tmpdir(), 'podvpn-agent-exits-'));
  const port = 20_000 + ((process.pid + 7) % 20_000);
  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const until = async (check: () => boolean | Promise<boolean>, ms = 10_000) => {
    for (const end = Date.now() + ms; Date.now() < end; ) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };

  beforeAll(async () => {
    // Exit A's probe on 127.0.0.1 (A's pod IP); B's pod IP 127.0.0.2 has nothing on that port
    probe = createServer((_req, res) => (probeHealthy ? res.writeHead(200).end() : res.writeHead(500).end('dial tcp 1.1.1.1:443: i/o timeout')));
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const probePort = (probe.address() as AddressInfo).port;
    api = await KubeApiDouble.start({ resources: [...DEFAULT_RESOURCES, EVENTS] });
    for (const ns of ['apps', 'podvpn-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDRs: ['10.42.0.0/24'] } });
    api.put(routedPod('web-n1', '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b', 'n1', 'vpn-a'));
    api.put(routedPod('web-n2', '11111111-2222-4333-8444-555555555555', 'n2', 'vpn-a'));
    api.put(exitPod('vpn-a', '127.0.0.1'));
    api.put(exitPod('vpn-b', '127.0.0.2'));
    writeFileSync(join(dir, 'kubeconfig'), api.kubeConfig().exportConfig());
    writeFileSync(
      join(dir, 'config.yaml'),
      'gateways:\n  vpn:\n    exits:\n      - {name: vpn-a, vxlanId: 101}\n      - {name: vpn-b, vxlanId: 102}\ndefaultGateway: vpn\ncluster:\n  serviceCIDRs: [10.43.0.0/16]\n  dnsIPs: [10.43.0.10]\n',
    );
    agent = spawn(process.execPath, [MAIN, `--config=${join(dir, 'config.yaml')}`, `--admin-port=${port}`, '--period-ms=500', `--exit-probe-port=${probePort}`], {
      env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), NODE_NAME: 'n1' },
    });
    agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('does not answer'));
  });
  afterAll(async () => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
    await api.close();
    await new Promise((r) => probe.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('watches the exit-labelled pods of every node; both exits healthy (B by Ready alone, said once); nothing moves', async () => {
    const reads = api.requests.filter((r) => r.resource === 'pods' && (r.verb === 'list' || r.verb === 'watch') && r.query.labelSelector === 'podvpn.io/exit');
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((r) => r.namespace === undefined && r.query.fieldSelector === undefined)).toBe(true);
    expect(out.match(/exit vpn-b: its probe at http:\/\/127\.0\.0\.2:\d+\/ does not answer/g)).toHaveLength(1);
    const m = await metrics();
    expect(m).toMatch(/^podvpn_agent_exit_healthy\{gateway="vpn",exit="vpn-a"\} 1$/m);
    expect(m).toMatch(/^podvpn_agent_exit_healthy\{gateway="vpn",exit="vpn-b"\} 1$/m);
    expect(m).toMatch(/^podvpn_agent_exit_pods\{gateway="vpn",exit="vpn-a"\} 1$/m);
    expect(api.requests.filter((r) => r.verb === 'patch' || r.verb === 'create')).toEqual([]);
  });

  it("exit A's probe answers 500: after two polls its node's pod moves to B (label, Event, metrics); the other node's pod is left to its agent", async () => {
    const t0 = Date.now();
    probeHealthy = false;
    expect(await until(() => api.get('v1', 'Pod', 'apps', 'web-n1')!.metadata!.labels!['podvpn.io/exit'] === 'vpn-b')).toBe(true);
    const ms = Date.now() - t0;
    // Two polls PROBE_INTERVAL_MS apart: the second at least one interval after the first failed one.
    expect(ms, 'two failed polls, not one').toBeGreaterThanOrEqual((FAILURES_TO_UNHEALTHY - 1) * PROBE_INTERVAL_MS - 100);
    expect(api.get('v1', 'Pod', 'apps', 'web-n2')!.metadata!.labels!['podvpn.io/exit']).toBe('vpn-a');
    expect(await until(() => api.list('v1', 'Event', 'apps').length === 1)).toBe(true);
    expect(api.list('v1', 'Event', 'apps')[0]).toMatchObject({ reason: 'ExitFailover', type: 'Warning', involvedObject: { name: 'web-n1' } });
    const m = await metrics();
    expect(m).toMatch(/^podvpn_agent_exit_failovers_total\{gateway="vpn",from="vpn-a",to="vpn-b"\} 1$/m);
    expect(m).toMatch(/^podvpn_agent_exit_healthy\{gateway="vpn",exit="vpn-a"\} 0$/m);
    expect(out).toMatch(/"msg":"exit health","gateway":"vpn","exit":"vpn-a","state":"unhealthy","reason":"exit probe: dial tcp 1.1.1.1:443: i\/o timeout","by":"probe"/);
    process.stdout.write(`agent process: probe 500 -> label patched in ${ms} ms\n`);
  });

  it('A recovers: nobody moves back', async () => {
    probeHealthy = true;
    expect(await until(async () => /^podvpn_agent_exit_healthy\{gateway="vpn",exit="vpn-a"\} 1$/m.test(await metrics()))).toBe(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect(api.get('v1', 'Pod', 'apps', 'web-n1')!.metadata!.labels!['podvpn.io/exit']).toBe('vpn-b');
    expect(api.list('v1', 'Event', 'apps')).toHaveLength(1);
  });
});
