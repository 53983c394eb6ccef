// podvpn inside a modelled kube-apiserver admission chain (test/kube-api-double/admission.ts): the
// in-tree ServiceAccount plugin, podvpn's webhook over TLS (reinvocationPolicy IfNeeded, as in
// manifests/base), a second mutating webhook after it, and the API server's one reinvocation pass.
// Pods are created through client-node, and the stored pod is checked.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type DoubleMutatingWebhook, TOKEN_PATH } from './kube-api-double/admission.js';
import { KubeApiDouble } from './kube-api-double/index.js';
import { podvpnChainWebhook, startServer, tempDir } from './helpers.js';

let api: KubeApiDouble;
let server: Awaited<ReturnType<typeof startServer>>;
let podvpn: DoubleMutatingWebhook;
let core: CoreV1Api;

/** Like Vault's agent injector with agent-init-first: prepends its init container, once. */
const prepending: DoubleMutatingWebhook = {
  name: 'zz-mesh-prepend.example.com',
  reinvocationPolicy: 'Never',
  handler: (review) => {
    const pod = review.request.object;
    const inits: Array<{ name: string }> = pod.spec.initContainers ?? [];
    if (inits.some((c) => c.name === 'mesh-init')) return { uid: review.request.uid, allowed: true };
    const init = { name: 'mesh-init', image: 'example.com/mesh-init:1.0' };
    const patch = pod.spec.initContainers === undefined ? [{ op: 'add', path: '/spec/initContainers', value: [init] }] : [{ op: 'add', path: '/spec/initContainers/0', value: init }];
    return { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
  },
};

beforeAll(async () => {
  api = await KubeApiDouble.start();
  api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' }, spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24'] } });
  for (const name of ['kube-system', 'podvpn-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  api.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'kube-dns', namespace: 'kube-system' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads', labels: { 'podvpn.io/inject': 'enabled' } } });
  const dir = tempDir();
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
  server = await startServer({ noKube: false, kubeconfig });
  podvpn = podvpnChainWebhook(server);
  core = api.kubeConfig().makeApiClient(CoreV1Api);
});
afterAll(async () => {
  await server?.shutdown();
  await api?.close();
});
beforeEach(() => {
  api.webhookCalls.length = 0;
});

/** The pod opts in itself (label podvpn.io/inject: "true"). */
const optIn = (pod: V1Pod): V1Pod => ({ ...pod, metadata: { ...pod.metadata, labels: { ...pod.metadata?.labels, 'podvpn.io/inject': 'true' } } });
const app = (name: string, initContainers?: string[]): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name },
  spec: {
    ...(initContainers === undefined ? {} : { initContainers: initContainers.map((n) => ({ name: n, image: `example.com/${n}:1.0` })) }),
    containers: [{ name: 'app', image: 'example.com/app:1.0' }],
  },
});
const initNames = (pod: V1Pod) => (pod.spec?.initContainers ?? []).map((c) => c.name);
const tokenMount = (c: { volumeMounts?: Array<{ name: string; mountPath: string }> }) => c.volumeMounts?.find((m) => m.mountPath === TOKEN_PATH)?.name;
const callsTo = (name: string) => api.webhookCalls.filter((c) => c.webhook === name);

describe('podvpn in the admission chain', () => {
  it('a later webhook that prepends an init container: podvpn is reinvoked and puts its clients back in front', async () => {
    api.setAdmission({ serviceAccount: true, mutatingWebhooks: [podvpn, prepending] });
    const stored = await core.createNamespacedPod({ namespace: 'downloads', body: app('two-webhooks', ['migrate', 'fetch-config']) });
    expect(initNames(stored)).toEqual(['podvpn-client-init', 'podvpn-client', 'mesh-init', 'migrate', 'fetch-config']);
    expect(callsTo(podvpn.name).map((c) => [c.pass, c.changed])).toEqual([
      [1, true],
      [2, true], // the reinvocation moved the clients back
    ]);
  });

  it('negative control: the same chain without podvpn stores the foreign init first', async () => {
    api.setAdmission({ serviceAccount: true, mutatingWebhooks: [prepending] });
    const stored = await core.createNamespacedPod({ namespace: 'downloads', body: app('control', ['migrate']) });
    expect(initNames(stored)).toEqual(['mesh-init', 'migrate']);
  });

  it("the ServiceAccount plugin's re-run mounts no token into podvpn's containers, and podvpn is called once", async () => {
    api.setAdmission({ serviceAccount: true, mutatingWebhooks: [podvpn] });
    const stored = await core.createNamespacedPod({ namespace: 'downloads', body: app('token', ['migrate']) });
    const inits = stored.spec!.initContainers!;
    expect(inits.map((c) => [c.name, tokenMount(c)])).toEqual([
      ['podvpn-client-init', 'podvpn-no-api-token'],
      ['podvpn-client', 'podvpn-no-api-token'],
      ['migrate', expect.stringMatching(/^kube-api-access-/)],
    ]);
    expect(tokenMount(stored.spec!.containers[0]!)).toMatch(/^kube-api-access-/);
    expect(callsTo(podvpn.name), 'no second review').toHaveLength(1);
  });

  it('negative control: a webhook that adds a container without that mount is reinvoked after the plugin mounts the token', async () => {
    const adder: DoubleMutatingWebhook = {
      name: 'adds-a-container.example.com',
      reinvocationPolicy: 'IfNeeded',
      handler: (review) => {
        const has = review.request.object.spec.containers.some((c: { name: string }) => c.name === 'extra');
        const patch = has ? [] : [{ op: 'add', path: '/spec/containers/-', value: { name: 'extra', image: 'example.com/extra:1.0' } }];
        return { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') };
      },
    };
    api.setAdmission({ serviceAccount: true, mutatingWebhooks: [adder] });
    const stored = await core.createNamespacedPod({ namespace: 'downloads', body: app('control-token') });
    expect(tokenMount(stored.spec!.containers.find((c) => c.name === 'extra')!)).toMatch(/^kube-api-access-/);
    expect(callsTo(adder.name)).toHaveLength(2);
  });

  // The dry-run tests use a pod that opts in itself, in a namespace that did not: the reconciler writes
  // the policy of every opted-in namespace on its own, and could otherwise race the review to it (it
  // did once in a fresh-clone CI run, and the warning was rightly not sent for a current policy).
  it('a dry run costs one dry-run apply of the policy, not two', async () => {
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dryrun' } });
    api.setAdmission({ serviceAccount: true, mutatingWebhooks: [podvpn] });
    const before = api.requests.length;
    const stored = await core.createNamespacedPod({ namespace: 'dryrun', body: optIn(app('dry')), dryRun: 'All' });
    expect(initNames(stored)).toEqual(['podvpn-client-init', 'podvpn-client']);
    const applies = api.requests.slice(before).filter((r) => r.resource === 'networkpolicies' && r.verb === 'patch');
    expect(applies.map((r) => r.dryRun)).toEqual([true]);
    expect(api.get('networking.k8s.io/v1', 'NetworkPolicy', 'dryrun', 'podvpn-killswitch-default')).toBeUndefined();
  });

  it('the dry-run warning reaches the client whole, as a Warning header, with "nothing was written"', async () => {
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'dryrun-warning' } });
    api.setAdmission({ serviceAccount: true, mutatingWebhooks: [podvpn] });
    const res = await fetch(`${api.url}/api/v1/namespaces/dryrun-warning/pods?dryRun=All`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(optIn(app('warned'))),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('warning')).toBe(
      '299 - "dry run: podvpn would create NetworkPolicy dryrun-warning/podvpn-killswitch-default (the kill switch for gateway \\"default\\") before admitting this pod; nothing was written"',
    );
  });

  it('/metrics carries the node-range coverage gauges (0 here; their values are tested on the reconciler)', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    expect(text).toMatch(/^podvpn_node_pod_ranges_uncovered 0$/m);
    expect(text).toMatch(/^podvpn_routed_pods_missing_node_ranges 0$/m);
  });

  it("a webhook's denial comes back as the API server words it", async () => {
    api.setAdmission({ serviceAccount: true, mutatingWebhooks: [podvpn] });
    const hostNet = app('hostnet');
    hostNet.spec!.hostNetwork = true;
    await expect(core.createNamespacedPod({ namespace: 'downloads', body: hostNet })).rejects.toMatchObject({
      code: 403,
      body: expect.stringContaining('admission webhook \\"namespace.inject.podvpn.io\\" denied the request: pod uses hostNetwork'),
    });
  });
});
