// The built CLI as a user runs it: a real process, real files, real signals.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { post, tempDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist', 'cli.js');

function run(args: string[], input?: string) {
  return spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 20_000 });
}

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: qbittorrent
  namespace: downloads
spec:
  selector:
    matchLabels: { app: qbittorrent }
  template:
    metadata:
      labels: { app: qbittorrent }
    spec:
      containers:
        - name: qbittorrent
          image: lscr.io/linuxserver/qbittorrent:5.0.3
---
apiVersion: v1
kind: Service
metadata:
  name: qbittorrent
spec:
  ports: [{ port: 8080 }]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: cleanup
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: cleanup
              image: busybox:1.36
---
apiVersion: v1
kind: Pod
metadata:
  name: unrouted
  labels: { podvpn.io/inject: "false" }
spec:
  containers:
    - name: app
      image: busybox:1.36
`;

describe('podvpn inject', () => {
  it('injects pod templates, passes other documents through, keeps the document order', () => {
    const result = run(['inject', '-f', '-'], DEPLOYMENT);
    expect(result.status, result.stderr).toBe(0);
    const docs = parseAllDocuments(result.stdout).map((d) => d.toJS());
    expect(docs.map((d) => d.kind)).toEqual(['Deployment', 'Service', 'CronJob', 'Pod', 'NetworkPolicy', 'NetworkPolicy']);
    const [deployment, service, cronjob, pod, policyDefault, policyDownloads] = docs;
    // One kill-switch policy per touched namespace, from the same ranges as the client's routes.
    expect([policyDefault.metadata.namespace, policyDownloads.metadata.namespace]).toEqual(['default', 'downloads']);
    expect(policyDownloads.metadata.name).toBe('podvpn-killswitch-default');
    expect(policyDownloads.spec.podSelector.matchLabels).toEqual({ 'podvpn.io/routed': 'default' });
    const allowed = policyDownloads.spec.egress.flatMap((r: any) => (r.to ?? []).map((p: any) => p.ipBlock?.cidr)).filter(Boolean);
    const routes = deployment.spec.template.metadata.annotations['podvpn.io/client-settings'].match(/NOT_ROUTED_TO_GATEWAY_CIDRS='([^']*)'/)[1].split(' ');
    expect([...allowed].sort()).toEqual([...routes].sort());
    const names = (spec: any) => spec.initContainers.map((c: any) => c.name);
    expect(names(deployment.spec.template.spec)).toEqual(['podvpn-client-init', 'podvpn-client']);
    expect(deployment.spec.template.metadata.labels['podvpn.io/routed']).toBe('default');
    expect(deployment.spec.template.spec.dnsConfig.searches[0]).toBe('downloads.svc.cluster.local');
    expect(names(cronjob.spec.jobTemplate.spec.template.spec)).toEqual(['podvpn-client-init', 'podvpn-client']);
    expect(cronjob.spec.jobTemplate.spec.template.spec.dnsConfig.searches[0]).toBe('default.svc.cluster.local');
    expect(service).toEqual(parseAllDocuments(DEPLOYMENT)[1]!.toJS());
    expect(pod.spec.initContainers).toBeUndefined();
    expect(result.stderr).toMatch(/Pod\/unrouted: not injected \(opted-out\)/);
    expect(result.stderr).toMatch(/cluster\.podCIDRs not in config/);
  });

  it('is idempotent: injecting its own output changes nothing', () => {
    const once = run(['inject', '-f', '-'], DEPLOYMENT).stdout;
    const twice = run(['inject', '-f', '-'], once);
    expect(twice.status).toBe(0);
    expect(twice.stdout).toBe(once);
  });

  it('uses the configured ranges and namespace flag', () => {
    const dir = tempDir();
    const config = join(dir, 'podvpn.yaml');
    writeFileSync(config, 'cluster:\n  podCIDRs: [10.42.0.0/16]\n  serviceCIDRs: [10.43.0.0/16]\n  dnsIPs: [10.43.0.10]\n');
    const input = join(dir, 'pod.yaml');
    writeFileSync(input, 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  containers: [{ name: a, image: b }]\n');
    const result = run(['inject', '-f', input, '--config', config, '-n', 'media']);
    expect(result.status, result.stderr).toBe(0);
    const pod = parseAllDocuments(result.stdout)[0]!.toJS();
    expect(pod.metadata.annotations['podvpn.io/client-settings']).toContain("NOT_ROUTED_TO_GATEWAY_CIDRS='10.42.0.0/15'");
    expect(pod.spec.dnsConfig.searches[0]).toBe('media.svc.cluster.local');
    expect(result.stderr).not.toMatch(/not in config/);
  });

  it('refuses a configured range that would open the kill switch, unless forced', () => {
    const dir = tempDir();
    const config = join(dir, 'public.yaml');
    writeFileSync(config, 'cluster:\n  extraAllowedCIDRs: [0.0.0.0/0]\n');
    const pod = 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec:\n  containers: [{ name: a, image: b }]\n';
    const refused = run(['inject', '-f', '-', '--config', config], pod);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/0\.0\.0\.0\/0/);
    writeFileSync(config, 'cluster:\n  extraAllowedCIDRs: [0.0.0.0/0]\n  allowPublicRanges: true\n');
    expect(run(['inject', '-f', '-', '--config', config], pod).status).toBe(0);
  });

  it('fails with the reason for a pod it cannot protect', () => {
    const result = run(['inject', '-f', '-'], 'apiVersion: v1\nkind: Pod\nmetadata: { name: h }\nspec:\n  hostNetwork: true\n  containers: [{ name: a, image: b }]\n');
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/Pod\/h: pod uses hostNetwork/);
  });

  it('names the bad config field', () => {
    const dir = tempDir();
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'gateways:\n  default:\n    vxlanPort: 99999\ncluster:\n  podCIDRs: [10.42.0.0/33]\n');
    const result = run(['inject', '-f', '-', '--config', config], 'kind: Service\n');
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/gateways\.default\.vxlanPort: /);
    expect(result.stderr).toMatch(/cluster\.podCIDRs\[0\]: must be a CIDR/);
  });

  it('explains usage errors', () => {
    expect(run(['inject']).stderr).toMatch(/inject needs -f FILE/);
    expect(run(['frobnicate']).status).toBe(2);
    expect(run(['serve', '--bogus']).status).toBe(2);
  });
});

describe('podvpn certs', () => {
  it('writes a CA and serving certificate that openssl verifies, keys 0600, and reuses them', () => {
    const dir = tempDir();
    const first = run(['certs', '--out', dir, '--dns-name', 'podvpn-webhook.podvpn-system.svc', '--dns-name', 'localhost']);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^wrote CA/);
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'tls.crt')], { encoding: 'utf8' });
    expect(verify.stdout.trim()).toBe(`${join(dir, 'tls.crt')}: OK`);
    const text = spawnSync('openssl', ['x509', '-in', join(dir, 'tls.crt'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
    expect(text).toMatch(/DNS:podvpn-webhook\.podvpn-system\.svc, DNS:localhost/);
    expect(text).toMatch(/TLS Web Server Authentication/);
    expect(text).toMatch(/CA:FALSE/);
    const caText = spawnSync('openssl', ['x509', '-in', join(dir, 'ca.crt'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
    expect(caText).toMatch(/CA:TRUE/);
    expect(caText).toMatch(/Certificate Sign/);
    expect(statSync(join(dir, 'tls.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    const before = readFileSync(join(dir, 'tls.crt'), 'utf8');
    const second = run(['certs', '--out', dir, '--dns-name', 'podvpn-webhook.podvpn-system.svc', '--dns-name', 'localhost']);
    expect(second.stdout).toMatch(/^kept existing/);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(before);
  });
});

describe('podvpn serve as a process', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = undefined;
  });

  function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });
  }

  async function waitFor<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await fn().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('starts standalone with built-in defaults, serves, counts, and drains on SIGTERM', async () => {
    const certs = tempDir();
    const logs: string[] = [];
    const webhookPort = 20_000 + Math.floor(Math.random() * 20_000);
    const adminPort = webhookPort + 1;
    child = spawn(
      process.execPath,
      [CLI, 'serve', '--listen', `127.0.0.1:${webhookPort}`, '--admin-listen', `127.0.0.1:${adminPort}`, '--certs-dir', certs, '--shutdown-delay', '1'],
      { env: { ...process.env, KUBECONFIG: '/nonexistent', HOME: certs }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout!.on('data', (c: Buffer) => logs.push(...c.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
    const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));

    await waitFor(async () => ((await httpGet(adminPort, '/readyz')).status === 200 ? true : undefined), 30_000);
    expect(existsSync(join(certs, 'ca.key'))).toBe(true);
    const ca = readFileSync(join(certs, 'ca.crt'), 'utf8');
    const reply = await post(webhookPort, ca, readFileSync(join(ROOT, 'examples', 'review.json')));
    expect(reply.json().response.allowed).toBe(true);

    const metrics = (await httpGet(adminPort, '/metrics')).body;
    expect(metrics).toMatch(/podvpn_admission_reviews_total\{outcome="injected",reason="default"\} 1/);
    expect(metrics).toMatch(/podvpn_admission_review_duration_seconds_count\{outcome="injected"\} 1/);

    child.kill('SIGTERM');
    await waitFor(async () => ((await httpGet(adminPort, '/readyz')).status === 503 ? true : undefined), 2000);
    expect(await exited).toBe(0);

    const json = logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(json.some((l) => /standalone: no cluster configured/.test(l.msg))).toBe(true);
    const review = json.find((l) => l.msg === 'review');
    expect(review).toMatchObject({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', namespace: 'downloads', pod: 'qbittorrent-7d9c6b8f5-', outcome: 'injected' });
    expect(logs.join('\n')).not.toMatch(/PRIVATE KEY/);
    expect(logs.join('\n')).not.toMatch(/Deprecation/);
  }, 60_000);
});
