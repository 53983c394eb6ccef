// The agent's process edge against the API double: the built dist/agent/main.js, list+watch of this
// node's routed pods (field selector), the gateway pods and the nodes, over the real wire format;
// /healthz and /metrics. No network namespaces here: the routed pod has no process on this machine,
// so the agent reports it as not routed yet, which is what a real node shows before the sandbox runs.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiDouble } from '../kube-api-double/index.js';

const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'agent', 'main.js');
const status = JSON.stringify({ version: '0.1.0', gateway: 'default', dataPlane: 'agent', initContainers: ['podvpn-gate'], containers: [], volumes: [] });
const routedPod = (name: string, uid: string, nodeName: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'apps', uid, labels: { 'podvpn.io/routed': 'default' }, annotations: { 'podvpn.io/status': status } },
  spec: { nodeName, containers: [{ name: 'app', image: 'x' }] },
  status: { phase: 'Pending' },
});

describe('podvpn-agent process against the API double', () => {
  let api: KubeApiDouble;
  let agent: ChildProcess;
  let out = '';
  const dir = mkdtempSync(join(tmpdir(), 'podvpn-agent-'));
  const port = 20_000 + (process.pid % 20_000);
  const get = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: r.status, body: await r.text() };
  };

  beforeAll(async () => {
    api = await KubeApiDouble.start();
    for (const ns of ['apps', 'podvpn-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDRs: ['10.42.0.0/24'] } });
    api.put(routedPod('web-n1', '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b', 'n1'));
    api.put(routedPod('web-n2', '11111111-2222-4333-8444-555555555555', 'n2'));
    api.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'podvpn-gateway-default-abc', namespace: 'podvpn-system', labels: { 'app.kubernetes.io/name': 'podvpn-gateway', 'app.kubernetes.io/instance': 'podvpn-gateway-default' } },
      spec: { nodeName: 'n2', containers: [{ name: 'gw', image: 'x' }] },
      status: { phase: 'Running', podIP: '10.42.0.9', conditions: [{ type: 'Ready', status: 'True' }] },
    });
    writeFileSync(join(dir, 'kubeconfig'), api.kubeConfig().exportConfig());
    writeFileSync(join(dir, 'config.yaml'), 'cluster:\n  serviceCIDRs: [10.43.0.0/16]\n  dnsIPs: [10.43.0.10]\n');
    agent = spawn(process.execPath, [MAIN, `--config=${join(dir, 'config.yaml')}`, `--admin-port=${port}`, '--period-ms=200'], {
      env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), NODE_NAME: 'n1' },
    });
    agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 50 && !out.includes('pod not routed yet'); i++) await new Promise((r) => setTimeout(r, 100));
  });
  afterAll(async () => {
    if (agent.exitCode === null) agent.kill('SIGKILL');
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sees only its node's routed pod, and says why it is not routed yet", () => {
    expect(out.indexOf('"msg":"podvpn-agent started"')).toBeGreaterThanOrEqual(0);
    expect(out.indexOf('"msg":"podvpn-agent started"'), 'nothing acted on before every list arrived').toBeLessThan(out.indexOf('pod not routed yet'));
    expect(out).not.toContain('cluster ranges unknown');
    expect(out).toMatch(/"pod not routed yet","pod":"apps\/web-n1","error":"no process in pod [0-9a-f-]{36}'s cgroup/);
    expect(out).not.toContain('web-n2');
  });

  it('serves /healthz and /metrics (gateway health from the gateway pod, no pod routed)', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });
    const metrics = (await get('/metrics')).body;
    expect(metrics).toMatch(/^podvpn_agent_gateway_ready\{gateway="default"\} 1$/m);
    expect(metrics).toMatch(/^podvpn_agent_pod_failures_total [1-9]/m);
    expect(metrics).not.toMatch(/^podvpn_agent_pods_routed\{/m);
    expect(metrics).toMatch(/^podvpn_agent_route_seconds_count 0$/m);
  });

  it('a gateway whose VPN goes down (Ready=False) shows in the gateway metric', async () => {
    const gw = api.get('v1', 'Pod', 'podvpn-system', 'podvpn-gateway-default-abc')!;
    api.put({ ...gw, status: { ...(gw.status as object), conditions: [{ type: 'Ready', status: 'False' }] } });
    for (let i = 0; i < 30; i++) {
      if (/^podvpn_agent_gateway_ready\{gateway="default"\} 0$/m.test((await get('/metrics')).body)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect((await get('/metrics')).body).toMatch(/^podvpn_agent_gateway_ready\{gateway="default"\} 0$/m);
  });

  it('exits 0 on SIGTERM', async () => {
    const code = await new Promise((r) => {
      agent.once('exit', r);
      agent.kill('SIGTERM');
    });
    expect(code).toBe(0);
  });
});
