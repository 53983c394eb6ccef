// The mutating admission chain for pod CREATE, as kube-apiserver runs it: in-tree plugins (here the
// ServiceAccount plugin), then the mutating webhooks in order, then, if any webhook changed the pod,
// the whole chain once more ("reinvocation"): every in-tree plugin again, and each webhook with
// reinvocationPolicy IfNeeded that ran before a later change. Modelled on k8s.io/apiserver
// pkg/admission/reinvocation.go and plugin/webhook/mutating/{dispatcher,reinvocationcontext}.go, and
// plugin/pkg/admission/serviceaccount/admission.go (mountServiceAccountToken).

import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import jsonPatch from 'fast-json-patch';
import { same } from './fields.js';

type Obj = Record<string, any>;

/** An AdmissionReview `response` as a webhook returns it. */
export interface WebhookResponse {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  status?: { code?: number; message?: string; reason?: string };
  warnings?: string[];
}

export interface DoubleMutatingWebhook {
  /** The webhook's name (as in a MutatingWebhookConfiguration entry). */
  name: string;
  reinvocationPolicy?: 'Never' | 'IfNeeded';
  /** Called over HTTPS (`caBundle` is the PEM CA to trust), as the API server calls a URL clientConfig... */
  url?: string;
  caBundle?: string;
  /** ...or in-process: receives the AdmissionReview, returns its `response`. */
  handler?: (review: Obj) => WebhookResponse | Promise<WebhookResponse>;
  timeoutSeconds?: number;
}

export interface AdmissionChainOptions {
  /**
   * Model the in-tree ServiceAccount plugin: default serviceAccountName, and mount the API token
   * (a projected kube-api-access-xxxxx volume) into every init and app container that has no mount at
   * /var/run/secrets/kubernetes.io/serviceaccount, unless spec.automountServiceAccountToken is false.
   * ServiceAccount objects are not modelled: the SA is taken to exist and to allow automount.
   */
  serviceAccount?: boolean;
  /** In the API server's order (configurations sorted by name, then entries in order). */
  mutatingWebhooks?: DoubleMutatingWebhook[];
}

export interface WebhookCall {
  webhook: string;
  /** 1: the first pass; 2: reinvocation. */
  pass: 1 | 2;
  changed: boolean;
  allowed: boolean;
}

export class AdmissionDenied extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export const TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

/** plugin/pkg/admission/serviceaccount: Admit on a pod CREATE (mirror pods untouched). */
export function serviceAccountPlugin(pod: Obj): Obj {
  const out = structuredClone(pod);
  if (out.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined) return out;
  out.spec ??= {};
  const spec = out.spec;
  if (typeof spec.serviceAccountName !== 'string' || spec.serviceAccountName === '') spec.serviceAccountName = 'default';
  if (spec.automountServiceAccountToken === false) return out;
  const volumes: Obj[] = Array.isArray(spec.volumes) ? spec.volumes : [];
  const existing = volumes.find((v) => typeof v?.name === 'string' && v.name.startsWith('kube-api-access-'));
  const volumeName: string = existing?.name ?? `kube-api-access-${randomUUID().replaceAll('-', '').slice(0, 5)}`;
  let needsVolume = false;
  for (const list of [spec.initContainers, spec.containers]) {
    if (!Array.isArray(list)) continue;
    for (const c of list) {
      const mounts: Obj[] = Array.isArray(c.volumeMounts) ? c.volumeMounts : [];
      if (mounts.some((m) => m?.mountPath === TOKEN_PATH)) continue;
      c.volumeMounts = [...mounts, { name: volumeName, readOnly: true, mountPath: TOKEN_PATH }];
      needsVolume = true;
    }
  }
  if (existing === undefined && needsVolume) {
    spec.volumes = [
      ...volumes,
      {
        name: volumeName,
        projected: {
          defaultMode: 420,
          sources: [
            { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
            { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
          ],
        },
      },
    ];
  }
  return out;
}

/**
 * Run the chain on a pod CREATE. Returns the admitted pod and the webhooks' warnings; throws
 * AdmissionDenied with the API server's message when a webhook denies or cannot be called
 * (failurePolicy Fail).
 */
export async function runMutatingChain(
  pod: Obj,
  ctx: { namespace: string; dryRun: boolean; options: AdmissionChainOptions; calls: WebhookCall[] },
): Promise<{ pod: Obj; warnings: string[] }> {
  const hooks = ctx.options.mutatingWebhooks ?? [];
  const warnings: string[] = [];
  let object = structuredClone(pod);
  let previouslyInvoked = new Set<string>();
  const reinvoke = new Set<string>();
  let shouldReinvoke = false;
  let lastWebhookOutput: Obj | undefined;
  const requireReinvokingPrevious = () => {
    for (const h of previouslyInvoked) reinvoke.add(h);
    previouslyInvoked = new Set();
  };
  for (const pass of [1, 2] as const) {
    if (pass === 2 && !shouldReinvoke) break;
    if (ctx.options.serviceAccount === true) object = serviceAccountPlugin(object);
    if (pass === 2 && !same(lastWebhookOutput, object)) requireReinvokingPrevious(); // an in-tree plugin changed it
    for (const hook of hooks) {
      if (pass === 2 && !reinvoke.has(hook.name)) continue;
      const { response, uid } = await callWebhook(hook, object, ctx);
      if (response.uid !== uid) {
        throw new AdmissionDenied(500, 'InternalError', `Internal error occurred: failed calling webhook "${hook.name}": expected response.uid="${uid}", got "${response.uid}"`);
      }
      warnings.push(...(response.warnings ?? []));
      if (!response.allowed) {
        const code = (response.status?.code ?? 0) < 400 ? 400 : response.status!.code!;
        const detail = response.status?.message || response.status?.reason;
        throw new AdmissionDenied(
          code,
          code === 403 ? 'Forbidden' : 'BadRequest',
          `admission webhook "${hook.name}" denied the request${detail ? `: ${detail}` : ' without explanation'}`,
        );
      }
      let changed = false;
      if (response.patch !== undefined) {
        if (response.patchType !== 'JSONPatch') {
          throw new AdmissionDenied(500, 'InternalError', `Internal error occurred: failed calling webhook "${hook.name}": unsupported patch type "${response.patchType}"`);
        }
        const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as jsonPatch.Operation[];
        let next: Obj;
        try {
          next = jsonPatch.applyPatch(structuredClone(object), ops, true, false).newDocument;
        } catch (err) {
          throw new AdmissionDenied(500, 'InternalError', `Internal error occurred: JSON Patch: ${(err as Error).message}`);
        }
        changed = !same(object, next);
        object = next;
      }
      ctx.calls.push({ webhook: hook.name, pass, changed, allowed: true });
      if (changed) {
        requireReinvokingPrevious();
        shouldReinvoke = true;
      }
      if (hook.reinvocationPolicy === 'IfNeeded') previouslyInvoked.add(hook.name);
    }
    lastWebhookOutput = structuredClone(object);
  }
  return { pod: object, warnings };
}

async function callWebhook(
  hook: DoubleMutatingWebhook,
  object: Obj,
  ctx: { namespace: string; dryRun: boolean },
): Promise<{ response: WebhookResponse; uid: string }> {
  const uid = randomUUID();
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: typeof object.metadata?.name === 'string' ? object.metadata.name : '',
      namespace: ctx.namespace,
      operation: 'CREATE',
      userInfo: { username: 'double-admin', groups: ['system:masters', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: ctx.dryRun,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
  try {
    if (hook.handler !== undefined) return { response: await hook.handler(structuredClone(review)), uid };
    const body = await postJson(hook.url!, hook.caBundle, JSON.stringify(review), (hook.timeoutSeconds ?? 10) * 1000);
    return { response: (JSON.parse(body) as { response: WebhookResponse }).response, uid };
  } catch (err) {
    throw new AdmissionDenied(
      500,
      'InternalError',
      `Internal error occurred: failed calling webhook "${hook.name}": failed to call webhook: ${(err as Error).message}`,
    );
  }
}

function postJson(url: string, ca: string | undefined, body: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`the server responded with ${res.statusCode}`));
          else resolve(Buffer.concat(chunks).toString('utf8'));
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('context deadline exceeded')));
    req.on('error', reject);
    req.end(body);
  });
}
