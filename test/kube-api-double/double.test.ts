// The double itself, driven through @kubernetes/client-node as the product drives the real API server.

import {
  ApiException,
  CoreV1Api,
  KubernetesObjectApi,
  makeInformer,
  NetworkingV1Api,
  PatchStrategy,
  type V1NetworkPolicy,
} from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeApiDouble, matchesLabels, withoutResource, DEFAULT_RESOURCES } from './index.js';

let api: KubeApiDouble;
beforeEach(async () => {
  api = await KubeApiDouble.start();
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'downloads' } });
});
afterEach(async () => {
  await api.close();
});

const policy = (name = 'p', cidr = '10.0.0.0/8'): V1NetworkPolicy => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name, namespace: 'downloads', labels: { 'app.kubernetes.io/managed-by': 'podvpn' } },
  spec: { podSelector: { matchLabels: { a: 'b' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr } }] }] },
});

function apiError(err: unknown): { code: number; body: Record<string, unknown> } {
  expect(err).toBeInstanceOf(ApiException);
  const e = err as ApiException<unknown>;
  const body = typeof e.body === 'string' ? (JSON.parse(e.body) as Record<string, unknown>) : (e.body as Record<string, unknown>);
  return { code: e.code, body };
}

describe('CRUD over real HTTP through client-node', () => {
  it('create, get, list with resourceVersion, replace, delete; 404 and 409 are real Status objects', async () => {
    const net = api.kubeConfig().makeApiClient(NetworkingV1Api);
    const created = await net.createNamespacedNetworkPolicy({ namespace: 'downloads', body: policy() });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.metadata?.resourceVersion).toBe(api.resourceVersion);
    const got = await net.readNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p' });
    expect(got.spec?.egress?.[0]?.to?.[0]?.ipBlock?.cidr).toBe('10.0.0.0/8');
    const list = await net.listNetworkPolicyForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=podvpn' });
    expect(list.items).toHaveLength(1);
    expect(list.metadata?.resourceVersion).toBe(api.resourceVersion);
    expect((await net.listNetworkPolicyForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=other' })).items).toHaveLength(0);

    const dup = await net.createNamespacedNetworkPolicy({ namespace: 'downloads', body: policy() }).catch((e: unknown) => e);
    expect(apiError(dup)).toMatchObject({ code: 409, body: { kind: 'Status', status: 'Failure', reason: 'AlreadyExists', code: 409 } });

    const stale = { ...got, metadata: { ...got.metadata, resourceVersion: '1' } };
    const conflict = await net.replaceNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p', body: stale }).catch((e: unknown) => e);
    expect(apiError(conflict).body.reason).toBe('Conflict');

    await net.deleteNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p' });
    const missing = await net.readNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p' }).catch((e: unknown) => e);
    expect(apiError(missing)).toMatchObject({ code: 404, body: { kind: 'Status', reason: 'NotFound', details: { name: 'p', kind: 'networkpolicies' } } });
  });

  it('validates against the Kubernetes schema: 422 Invalid', async () => {
    const net = api.kubeConfig().makeApiClient(NetworkingV1Api);
    const bad = policy();
    (bad.spec as unknown as Record<string, unknown>).policyTypes = 'Egress';
    const err = await net.createNamespacedNetworkPolicy({ namespace: 'downloads', body: bad }).catch((e: unknown) => e);
    expect(apiError(err)).toMatchObject({ code: 422, body: { reason: 'Invalid' } });
    expect(api.list('networking.k8s.io/v1', 'NetworkPolicy')).toHaveLength(0);
  });

  it('refuses objects in a namespace that does not exist', async () => {
    const net = api.kubeConfig().makeApiClient(NetworkingV1Api);
    const err = await net.createNamespacedNetworkPolicy({ namespace: 'nope', body: { ...policy(), metadata: { name: 'p' } } }).catch((e: unknown) => e);
    expect(apiError(err).code).toBe(404);
  });

  it('a merge patch and a JSON patch change the object', async () => {
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: 'downloads', body: { metadata: { name: 'c' }, data: { a: '1' } } });
    const objects = KubernetesObjectApi.makeApiClient(api.kubeConfig());
    await objects.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'downloads' }, data: { b: '2' } } as never, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
    expect(api.get('v1', 'ConfigMap', 'downloads', 'c')?.data).toEqual({ a: '1', b: '2' });
    const res = await fetch(`${api.url}/api/v1/namespaces/downloads/configmaps/c`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json-patch+json' },
      body: JSON.stringify([{ op: 'remove', path: '/data/a' }]),
    });
    expect(res.status).toBe(200);
    expect(api.get('v1', 'ConfigMap', 'downloads', 'c')?.data).toEqual({ b: '2' });
  });

  it('generateName and deletecollection', async () => {
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    const made = await core.createNamespacedSecret({ namespace: 'downloads', body: { metadata: { generateName: 'tls-' } } });
    expect(made.metadata?.name).toMatch(/^tls-.{5}$/);
    await core.deleteCollectionNamespacedSecret({ namespace: 'downloads' });
    expect(api.list('v1', 'Secret', 'downloads')).toEqual([]);
  });
});

describe('server-side apply', () => {
  const apply = (fieldManager: string, body: V1NetworkPolicy, opts: { force?: boolean; dryRun?: boolean } = {}) =>
    KubernetesObjectApi.makeApiClient(api.kubeConfig()).patch(
      body,
      undefined,
      opts.dryRun === true ? 'All' : undefined,
      fieldManager,
      opts.force,
      PatchStrategy.ServerSideApply,
    );

  it('creates, records the manager, and is a no-op when applied again identically (same resourceVersion)', async () => {
    const first = await apply('podvpn', policy());
    expect(first.metadata?.managedFields?.[0]).toMatchObject({ manager: 'podvpn', operation: 'Apply' });
    const rv = first.metadata?.resourceVersion;
    const again = await apply('podvpn', policy(), { force: true });
    expect(again.metadata?.resourceVersion).toBe(rv);
    const writes = api.writes().filter((w) => w.verb === 'patch');
    expect(writes.every((w) => w.contentType === 'application/apply-patch+yaml' && w.query.fieldManager === 'podvpn')).toBe(true);
  });

  it('a different manager with a different value conflicts (409 with causes) unless forced', async () => {
    await apply('podvpn', policy());
    const err = await apply('someone-else', policy('p', '192.168.0.0/16')).catch((e: unknown) => e);
    const { code, body } = apiError(err);
    expect(code).toBe(409);
    expect(body.reason).toBe('Conflict');
    expect(String(body.message)).toMatch(/conflict with "podvpn".*\.spec\.egress/);
    const forced = await apply('someone-else', policy('p', '192.168.0.0/16'), { force: true });
    expect(forced.spec?.egress?.[0]?.to?.[0]?.ipBlock?.cidr).toBe('192.168.0.0/16');
    // and podvpn, forcing, takes it back
    const back = await apply('podvpn', policy(), { force: true });
    expect(back.spec?.egress?.[0]?.to?.[0]?.ipBlock?.cidr).toBe('10.0.0.0/8');
  });

  it('an edit by an Update manager is overwritten only with force', async () => {
    await apply('podvpn', policy());
    const net = api.kubeConfig().makeApiClient(NetworkingV1Api);
    const live = await net.readNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p' });
    live.spec!.egress = [{ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }];
    await net.replaceNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p', body: live, fieldManager: 'kubectl-edit' });
    await expect(apply('podvpn', policy())).rejects.toBeInstanceOf(ApiException);
    const restored = await apply('podvpn', policy(), { force: true });
    expect(restored.spec?.egress?.[0]?.to?.[0]?.ipBlock?.cidr).toBe('10.0.0.0/8');
  });

  it('fields dropped from the applied config are removed', async () => {
    await apply('podvpn', { ...policy(), metadata: { ...policy().metadata, labels: { x: '1', y: '2' } } });
    const after = await apply('podvpn', { ...policy(), metadata: { ...policy().metadata, labels: { x: '1' } } });
    expect(after.metadata?.labels).toEqual({ x: '1' });
  });

  it('dryRun=All validates and answers but stores nothing and emits nothing', async () => {
    const rv = api.resourceVersion;
    const out = await apply('podvpn', policy(), { dryRun: true });
    expect(out.metadata?.name).toBe('p');
    expect(api.list('networking.k8s.io/v1', 'NetworkPolicy')).toHaveLength(0);
    expect(api.resourceVersion).toBe(rv);
    const bad = policy();
    bad.spec!.egress = [{ to: [{ ipBlock: {} as never }] }];
    await expect(apply('podvpn', bad, { dryRun: true })).rejects.toBeInstanceOf(ApiException);
    await expect(apply('podvpn', bad)).rejects.toBeInstanceOf(ApiException);
  });

  it('refuses an apply without a field manager', async () => {
    const err = await KubernetesObjectApi.makeApiClient(api.kubeConfig())
      .patch(policy(), undefined, undefined, undefined, undefined, PatchStrategy.ServerSideApply)
      .catch((e: unknown) => e);
    expect(apiError(err).code).toBe(400);
  });
});

describe('watch', () => {
  it('an informer lists, then sees ADDED, MODIFIED and DELETED as JSON lines', async () => {
    api.put(policy('pre'));
    const kc = api.kubeConfig();
    const net = kc.makeApiClient(NetworkingV1Api);
    const informer = makeInformer<V1NetworkPolicy>(
      kc,
      '/apis/networking.k8s.io/v1/networkpolicies',
      () => net.listNetworkPolicyForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=podvpn' }),
      'app.kubernetes.io/managed-by=podvpn',
    );
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    await informer.start();
    await waitFor(() => seen.includes('add pre'));
    api.put(policy('new'));
    api.put({ ...policy('unlabelled'), metadata: { name: 'unlabelled', namespace: 'downloads' } });
    api.put(policy('new', '10.1.0.0/16'));
    api.remove('networking.k8s.io/v1', 'NetworkPolicy', 'downloads', 'new');
    await waitFor(() => seen.includes('delete new'));
    expect(seen).toEqual(['add pre', 'add new', 'update new', 'delete new']);
    await informer.stop();
  });

  it('a label-selector watch sees an object that stops matching as DELETED and one that starts as ADDED', async () => {
    api.put(policy('p'));
    const rv = api.resourceVersion;
    api.put({ ...policy('p'), metadata: { name: 'p', namespace: 'downloads', labels: {} } });
    api.put(policy('p'));
    const lines = await readWatch(
      `${api.url}/apis/networking.k8s.io/v1/networkpolicies?watch=1&resourceVersion=${rv}&labelSelector=${encodeURIComponent('app.kubernetes.io/managed-by=podvpn')}`,
    );
    expect(lines.map((l) => l.type)).toEqual(['DELETED', 'ADDED']);
  });

  it('resumes from a resourceVersion; an expired one gets a 410 ERROR event', async () => {
    api.put(policy('a'));
    const rv = api.resourceVersion;
    api.put(policy('b'));
    const lines = await readWatch(`${api.url}/apis/networking.k8s.io/v1/namespaces/downloads/networkpolicies?watch=1&resourceVersion=${rv}`);
    expect(lines.map((l) => `${l.type} ${l.object.metadata.name}`)).toEqual(['ADDED b']);
    api.compact();
    api.put(policy('c'));
    const expired = await readWatch(`${api.url}/apis/networking.k8s.io/v1/networkpolicies?watch=true&resourceVersion=2`);
    expect(expired[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  });
});

describe('faults', () => {
  it('an injected fault answers a Status with the chosen code, `times` limits it', async () => {
    const net = api.kubeConfig().makeApiClient(NetworkingV1Api);
    api.fault({ verb: 'create', resource: 'networkpolicies', status: 403, message: 'RBAC says no', times: 1 });
    const err = await net.createNamespacedNetworkPolicy({ namespace: 'downloads', body: policy() }).catch((e: unknown) => e);
    expect(apiError(err)).toMatchObject({ code: 403, body: { reason: 'Forbidden', message: 'RBAC says no' } });
    await net.createNamespacedNetworkPolicy({ namespace: 'downloads', body: policy() });
  });

  it('down refuses connections; up serves the same store again', async () => {
    const net = api.kubeConfig().makeApiClient(NetworkingV1Api);
    api.put(policy());
    await api.down();
    await expect(net.readNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p' })).rejects.toThrow(/ECONNREFUSED|connect/);
    await api.up();
    const got = await net.readNamespacedNetworkPolicy({ namespace: 'downloads', name: 'p' });
    expect(got.metadata?.name).toBe('p');
  });
});

describe('registry and services', () => {
  it('an API the cluster lacks is a 404 in discovery and on its paths', async () => {
    const lacking = await KubeApiDouble.start({ resources: withoutResource(DEFAULT_RESOURCES, 'networking.k8s.io', 'v1', 'servicecidrs') });
    const net = lacking.kubeConfig().makeApiClient(NetworkingV1Api);
    const err = await net.listServiceCIDR().catch((e: unknown) => e);
    expect(apiError(err).code).toBe(404);
    await lacking.close();
  });

  it('a Service with an out-of-range clusterIP is refused with the real message; dry run stores nothing', async () => {
    const core = api.kubeConfig().makeApiClient(CoreV1Api);
    const body = { metadata: { name: 'probe' }, spec: { clusterIP: '1.1.1.1', ports: [{ port: 443 }] } };
    const err = await core.createNamespacedService({ namespace: 'downloads', body, dryRun: 'All' }).catch((e: unknown) => e);
    // The text a real kube-apiserver v1.34 returned (shared/research/real-apiserver.md, D4).
    expect(apiError(err).body.message).toBe(
      'Service "probe" is invalid: spec.clusterIPs: Invalid value: ["1.1.1.1"]: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12',
    );
    const ok = await core.createNamespacedService({ namespace: 'downloads', body: { ...body, spec: { ports: [{ port: 443 }] } }, dryRun: 'All' });
    expect(ok.spec?.clusterIP).toMatch(/^10\.96\./);
    expect(api.list('v1', 'Service')).toHaveLength(0);
  });

  it('a terminating namespace refuses creates (apply included) with the real 403; updates still work', async () => {
    const net = api.kubeConfig().makeApiClient(NetworkingV1Api);
    await net.createNamespacedNetworkPolicy({ namespace: 'downloads', body: policy('kept') });
    api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'downloads' } });
    api.terminateNamespace('downloads', { deleteContent: false });
    const ns = api.get('v1', 'Namespace', undefined, 'downloads') as { status: { phase: string }; metadata: { deletionTimestamp?: string } };
    expect(ns.status.phase).toBe('Terminating');
    expect(ns.metadata.deletionTimestamp).toBeDefined();
    const err = await KubernetesObjectApi.makeApiClient(api.kubeConfig())
      .patch(policy('podvpn-killswitch-default'), undefined, undefined, 'podvpn', true, PatchStrategy.ServerSideApply)
      .catch((e: unknown) => e);
    expect(apiError(err)).toEqual({
      code: 403,
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'networkpolicies.networking.k8s.io "podvpn-killswitch-default" is forbidden: unable to create new content in namespace downloads because it is being terminated',
        reason: 'Forbidden',
        details: {
          name: 'podvpn-killswitch-default',
          group: 'networking.k8s.io',
          kind: 'networkpolicies',
          causes: [{ reason: 'NamespaceTerminating', message: 'namespace downloads is being terminated', field: 'metadata.namespace' }],
        },
        code: 403,
      },
    });
    // an existing object can still be changed; the content goes when the namespace controller is done
    await net.replaceNamespacedNetworkPolicy({ namespace: 'downloads', name: 'kept', body: policy('kept', '10.1.0.0/16') });
    api.finishTermination('downloads');
    expect(api.list('networking.k8s.io/v1', 'NetworkPolicy', 'downloads')).toEqual([]);
    expect(api.get('v1', 'Namespace', undefined, 'downloads')).toBeUndefined();
  });

  it('label selectors: equality, inequality, existence, set', () => {
    const l = { a: '1', b: '2' };
    expect(matchesLabels(l, 'a=1,b')).toBe(true);
    expect(matchesLabels(l, 'a!=1')).toBe(false);
    expect(matchesLabels(l, '!c')).toBe(true);
    expect(matchesLabels(l, 'a in (1,3),b notin (3)')).toBe(true);
    expect(matchesLabels(l, 'c')).toBe(false);
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Read a watch stream's lines for a moment, then hang up. */
async function readWatch(url: string): Promise<Array<{ type: string; object: { metadata: { name: string }; [k: string]: unknown } }>> {
  const ctl = new AbortController();
  const res = await fetch(url, { signal: ctl.signal });
  const out: string[] = [];
  const reader = res.body!.getReader();
  const timer = setTimeout(() => ctl.abort(), 300);
  let buf = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
    }
  } catch {
    // aborted
  }
  clearTimeout(timer);
  out.push(...buf.split('\n').filter((l) => l.trim() !== ''));
  return out.map((l) => JSON.parse(l) as never);
}

describe('the modelled ServiceAccount admission plugin', () => {
  it('mounts one kube-api-access volume into every container without a mount at the token path', async () => {
    const { serviceAccountPlugin, TOKEN_PATH } = await import('./admission.js');
    const pod = {
      spec: {
        initContainers: [{ name: 'masked', volumeMounts: [{ name: 'empty', mountPath: TOKEN_PATH }] }, { name: 'i' }],
        containers: [{ name: 'c' }],
        volumes: [{ name: 'empty', emptyDir: {} }],
      },
    };
    const out = serviceAccountPlugin(pod);
    expect(out.spec.serviceAccountName).toBe('default');
    expect(out.spec.initContainers[0].volumeMounts).toEqual([{ name: 'empty', mountPath: TOKEN_PATH }]);
    const vol = out.spec.volumes[1].name as string;
    expect(vol).toMatch(/^kube-api-access-[0-9a-f]{5}$/);
    expect(out.spec.initContainers[1].volumeMounts).toEqual([{ name: vol, readOnly: true, mountPath: TOKEN_PATH }]);
    expect(out.spec.containers[0].volumeMounts).toEqual([{ name: vol, readOnly: true, mountPath: TOKEN_PATH }]);
    expect(serviceAccountPlugin(out), 'a re-run changes nothing').toEqual(out);
    const noAuto = { spec: { automountServiceAccountToken: false, containers: [{ name: 'c' }] } };
    expect(serviceAccountPlugin(noAuto).spec.containers[0].volumeMounts).toBeUndefined();
    const mirror = { metadata: { annotations: { 'kubernetes.io/config.mirror': 'x' } }, spec: { containers: [{ name: 'c' }] } };
    expect(serviceAccountPlugin(mirror)).toEqual(mirror);
  });
});
