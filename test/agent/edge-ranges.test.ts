// Where the agent process (dist/agent/main.js) takes the cluster's service ranges from, against the API
// double over the wire: the config's cluster.serviceCIDRs when set; else the ServiceCIDR API, watched
// (a range that appears later is used); where that API is not served, nothing (it says so and routes
// nothing, and the gates hold the pods).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_RESOURCES, KubeApiDouble, withoutResource } from '../kube-api-double/index.js';

const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'agent', 'main.js');
const serviceCIDR = (name: string, cidrs: string[]) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name }, spec: { cidrs } });

describe('the agent process: service ranges from the config, else the ServiceCIDR API', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function start(config: string, api: KubeApiDouble) {
    const dir = mkdtempSync(join(tmpdir(), 'podvpn-agent-ranges-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDRs: ['10.42.0.0/24'] } });
    writeFileSync(join(dir, 'kubeconfig'), api.kubeConfig().exportConfig());
    writeFileSync(join(dir, 'config.yaml'), config);
    const port = 20_000 + ((process.pid + cleanup.length * 7) % 20_000);
    const child: ChildProcess = spawn(process.execPath, [MAIN, `--config=${join(dir, 'config.yaml')}`, `--admin-port=${port}`, '--period-ms=200'], {
      env: { ...process.env, KUBECONFIG: join(dir, 'kubeconfig'), NODE_NAME: 'n1' },
    });
    cleanup.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const out = { text: '' };
    child.stdout!.on('data', (d: Buffer) => (out.text += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out.text += d.toString()));
    return {
      out,
      async until(what: RegExp, ms = 8000) {
        for (let t = 0; t < ms && !what.test(out.text); t += 100) await new Promise((r) => setTimeout(r, 100));
        expect(out.text).toMatch(what);
      },
    };
  }
  async function double(resources = DEFAULT_RESOURCES) {
    const api = await KubeApiDouble.start({ resources });
    cleanup.push(() => api.close());
    for (const ns of ['apps', 'podvpn-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    return api;
  }

  it('takes them from the ServiceCIDR API when the config sets none (IPv4 only)', async () => {
    const api = await double();
    api.put(serviceCIDR('kubernetes', ['10.96.0.0/12', 'fd00:10:96::/112']));
    const agent = await start('gateways:\n  default: {}\n', api);
    await agent.until(/"msg":"cluster ranges"/);
    expect(agent.out.text).toContain('"serviceCIDRs":["10.96.0.0/12"]');
    expect(agent.out.text).toContain('"serviceCIDRs":"ServiceCIDR API (networking.k8s.io/v1)"');
    expect(agent.out.text).not.toContain('cluster ranges unknown');
  });

  it('watches the API: no ServiceCIDR yet routes nothing; one created later is used', async () => {
    const api = await double();
    const agent = await start('gateways:\n  default: {}\n', api);
    await agent.until(/cluster ranges unknown/);
    api.put(serviceCIDR('kubernetes', ['10.43.0.0/16']));
    await agent.until(/"msg":"cluster ranges".*"serviceCIDRs":\["10\.43\.0\.0\/16"\]/);
  });

  it('the config wins over the API', async () => {
    const api = await double();
    api.put(serviceCIDR('kubernetes', ['10.96.0.0/12']));
    const agent = await start('cluster:\n  serviceCIDRs: [10.43.0.0/16]\n', api);
    await agent.until(/"msg":"cluster ranges"/);
    expect(agent.out.text).toContain('"serviceCIDRs":"config cluster.serviceCIDRs"');
    expect(agent.out.text).toContain('"serviceCIDRs":["10.43.0.0/16"]');
  });

  it('a cluster without the ServiceCIDR API (before 1.33): it says to set cluster.serviceCIDRs and routes nothing', async () => {
    const api = await double(withoutResource(DEFAULT_RESOURCES, 'networking.k8s.io', 'v1', 'servicecidrs'));
    const agent = await start('gateways:\n  default: {}\n', api);
    await agent.until(/cluster ranges unknown/);
    expect(agent.out.text).toContain('the ServiceCIDR API (networking.k8s.io/v1) is not served: set cluster.serviceCIDRs in the config');
    expect(agent.out.text).not.toContain('watch failed');
  });
});
