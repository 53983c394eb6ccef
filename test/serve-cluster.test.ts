// `podvpn serve` connected to a cluster (the Kubernetes API test double, through a kubeconfig file):
// discovery, the namespace cache, ensure-before-admit, dry-run and fail-closed, end to end over TLS.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiDouble } from './kube-api-double/index.js';
import { post, reviewOf, startServer, tempDir } from './helpers.js';

const POLICY = 'podvpn-killswitch-default';
const pod = (name: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { generateName: `${name}-` }, spec: { containers: [{ name: 'app', image: 'busybox:1.36' }] } });

let api: KubeApiDouble;
let server: Awaited<ReturnType<typeof startServer>>;
let ca: string;
const SERVICE = { servername: 'podvpn-webhook.podvpn-system.svc' };

beforeAll(async () => {
  api = await KubeApiDouble.start();
  api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'] } });
  api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-2' }, spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'podvpn-system' } });
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads', labels: { 'podvpn.io/inject': 'enabled' } } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'photos' } });
  api.put({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'podvpn' },
    webhooks: [
      {
        name: 'namespaces.podvpn.io',
        admissionReviewVersions: ['v1'],
        sideEffects: 'NoneOnDryRun',
        clientConfig: { service: { name: 'podvpn-webhook', namespace: 'podvpn-system', path: '/mutate' } },
      },
    ],
  });
  const dir = tempDir();
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
  server = await startServer({ noKube: false, kubeconfig, selfManagedCerts: true });
  const secret = api.get('v1', 'Secret', 'podvpn-system', 'podvpn-webhook-tls') as { data: Record<string, string> };
  ca = Buffer.from(secret.data['ca.crt']!, 'base64').toString('utf8');
});
afterAll(async () => {
  await server?.shutdown();
  await api?.close();
});

describe('serve against a cluster', () => {
  it('serves the certificate kept in the Secret, and puts its CA into the webhook configuration', () => {
    const webhook = api.get('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', '', 'podvpn') as any;
    const bundle = Buffer.from(webhook.webhooks[0].clientConfig.caBundle, 'base64').toString('utf8').replaceAll('\r\n', '\n');
    expect(bundle).toContain(ca.replaceAll('\r\n', '\n').trim());
  });

  it('applies the kill-switch policy before it admits the first routed pod, with discovered ranges', async () => {
    // A namespace that did not opt in, and a pod that opts in itself: the reconciler (which writes the
    // policies of opted-in namespaces on its own, 100 ms after start) cannot have written it first.
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'media' } });
    expect(api.get('networking.k8s.io/v1', 'NetworkPolicy', 'media', POLICY)).toBeUndefined();
    const optIn = { ...pod('qbittorrent'), metadata: { generateName: 'qbittorrent-', labels: { 'podvpn.io/inject': 'true' } } };
    const review = reviewOf(optIn, { namespace: 'media' });
    const reply = (await post(server.webhookPort, ca, JSON.stringify(review), SERVICE)).json();
    expect(reply.response.allowed).toBe(true);
    const policy = api.get('networking.k8s.io/v1', 'NetworkPolicy', 'media', POLICY) as any;
    expect(policy, 'the policy exists by the time the pod is admitted').toBeDefined();
    expect(policy.metadata.labels['app.kubernetes.io/managed-by']).toBe('podvpn');
    const patch = JSON.parse(Buffer.from(reply.response.patch, 'base64').toString('utf8')) as Array<{ path: string; value: any }>;
    const settings = patch.find((op) => op.path === '/metadata/annotations')!.value['podvpn.io/client-settings'] as string;
    expect(settings).toContain("K8S_DNS_IPS='10.96.0.10'");
    const routed = /NOT_ROUTED_TO_GATEWAY_CIDRS='([^']*)'/.exec(settings)![1]!.split(' ');
    const allowed = policy.spec.egress.flatMap((r: any) => (r.to ?? []).map((p: any) => p.ipBlock?.cidr)).filter(Boolean);
    expect([...allowed].sort()).toEqual([...routed].sort());
    expect(routed).toContain('10.244.0.0/23');
  });

  it('writes nothing for a dry run, and says what it would have written', async () => {
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dry', labels: { 'podvpn.io/inject': 'enabled' } } });
    const writesBefore = api.writes().filter((w) => !w.dryRun).length;
    const review = reviewOf(pod('sabnzbd'), { namespace: 'dry', dryRun: true });
    const reply = (await post(server.webhookPort, ca, JSON.stringify(review), SERVICE)).json();
    expect(reply.response.allowed).toBe(true);
    expect(reply.response.patch).toBeDefined();
    expect(api.get('networking.k8s.io/v1', 'NetworkPolicy', 'dry', POLICY)).toBeUndefined();
    expect(api.writes().filter((w) => !w.dryRun).length).toBe(writesBefore);
    expect((reply.response.warnings ?? []).join(' ')).toMatch(/dry run|would/i);
  });

  it('skips pods of namespaces that did not opt in, and routes a pod that opts in itself', async () => {
    const skipped = (await post(server.webhookPort, ca, JSON.stringify(reviewOf(pod('immich'), { namespace: 'photos' })), SERVICE)).json();
    expect(skipped.response).toEqual({ uid: expect.any(String), allowed: true });
    const optIn = { ...pod('prowlarr'), metadata: { generateName: 'prowlarr-', labels: { 'podvpn.io/inject': 'true' } } };
    const routed = (await post(server.webhookPort, ca, JSON.stringify(reviewOf(optIn, { namespace: 'photos' })), SERVICE)).json();
    expect(routed.response.allowed).toBe(true);
    expect(api.get('networking.k8s.io/v1', 'NetworkPolicy', 'photos', POLICY)).toBeDefined();
  });

  it('ensures the policy for a pod injected beforehand (podvpn inject, reinvocation) too', async () => {
    // A namespace that did not opt in: only the admission path, not the reconciler, can have made the policy.
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'gitops' } });
    const injected = {
      ...pod('radarr'),
      metadata: { generateName: 'radarr-', labels: { 'podvpn.io/routed': 'default' }, annotations: { 'podvpn.io/status': '{"version":"0.1.0","gateway":"default"}' } },
    };
    const reply = (await post(server.webhookPort, ca, JSON.stringify(reviewOf(injected, { namespace: 'gitops' })), SERVICE)).json();
    expect(reply.response).toEqual({ uid: expect.any(String), allowed: true });
    expect(api.get('networking.k8s.io/v1', 'NetworkPolicy', 'gitops', POLICY)).toBeDefined();
  });

  it('warns when another egress policy in the namespace would void the kill switch', async () => {
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'leaky' } });
    api.put({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'allow-all-egress', namespace: 'leaky' }, spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{}] } }, 'helm');
    // Opting the namespace in makes the reconciler look at it.
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'leaky', labels: { 'podvpn.io/inject': 'enabled' } } });
    const deadline = Date.now() + 10_000;
    let warnings: string[] = [];
    while (Date.now() < deadline) {
      const reply = (await post(server.webhookPort, ca, JSON.stringify(reviewOf(pod('nzbget'), { namespace: 'leaky' })), SERVICE)).json();
      expect(reply.response.allowed).toBe(true);
      warnings = reply.response.warnings ?? [];
      if (warnings.length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(warnings.join(' ')).toMatch(/NetworkPolicy allow-all-egress allows internet egress/);
    // Negative control: a namespace without such a policy gets no warning.
    const clean = (await post(server.webhookPort, ca, JSON.stringify(reviewOf(pod('q'), { namespace: 'downloads' })), SERVICE)).json();
    expect(clean.response.warnings).toBeUndefined();
  });

  it('denies a routed pod, with the reason, when the policy cannot be written (fail closed)', async () => {
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'refused', labels: { 'podvpn.io/inject': 'enabled' } } });
    const clear = api.fault({ resource: 'networkpolicies', namespace: 'refused', status: 403, message: 'networkpolicies is forbidden' });
    try {
      const reply = (await post(server.webhookPort, ca, JSON.stringify(reviewOf(pod('a'), { namespace: 'refused' })), SERVICE)).json();
      expect(reply.response.allowed).toBe(false);
      expect(reply.response.status.message).toMatch(/kill-switch NetworkPolicy.*forbidden/s);
    } finally {
      clear();
    }
  });
});
