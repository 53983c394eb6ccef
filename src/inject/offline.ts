// Offline injection for GitOps (`podvpn inject`, `podvpn uninject`), pure: documents in, one plan per
// document out: an RFC 6902 patch against the document (the CLI applies it to the YAML document, so
// comments and key order stay) and a report line. The same decision and patch as the webhook, applied
// to Pods, the pod templates of workload kinds and the items of a `kind: List`.
//
// What differs from admission, on purpose: a template that podvpn injected before is refreshed (its
// injection removed and made again from the current config) where the webhook leaves an injected pod
// alone; and there is no AdmissionReview operation: every pod is a CREATE.

import jsonpatch from 'fast-json-patch';
import { gatewayMTUProblem } from '../cluster/pod-mtu.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';
import { LABEL_MANAGED_BY, PRODUCT } from '../constants.js';
import { SKIP_REASONS } from '../errors.js';
import { decide } from './decision.js';
import { injectionPatch } from './patch.js';
import { clientSettings } from './settings.js';
import type { NamespaceFacts, PatchOperation, Pod } from './types.js';
import { uninjectionPatch } from './uninject.js';
import { readPod } from './wire.js';

type Doc = Record<string, unknown>;

/** Where each kind keeps its pod (template), as a path of keys from the document root. */
export const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/** The controller that creates the pods of each kind: the ownerReference the pod will carry. */
const POD_OWNER: Readonly<Record<string, string>> = {
  Deployment: 'ReplicaSet',
  StatefulSet: 'StatefulSet',
  DaemonSet: 'DaemonSet',
  ReplicaSet: 'ReplicaSet',
  ReplicationController: 'ReplicationController',
  Job: 'Job',
  CronJob: 'Job',
};

export interface OfflineOptions {
  config: Config;
  /** undefined: unknown; every pod is refused with `rangesProblem`, as the webhook denies it. */
  ranges: ClusterRanges | undefined;
  rangesProblem?: string | undefined;
  /** For documents that name no namespace: -n, or the kubeconfig context's namespace. */
  namespace?: string | undefined;
  /** Namespaces read from the cluster; a Namespace document in the same input wins. */
  namespaceFacts?: (namespace: string) => NamespaceFacts | undefined;
}

export type Outcome = 'injected' | 'refreshed' | 'unchanged' | 'skipped' | 'refused' | 'uninjected' | 'removed' | 'passed';

export interface Report {
  /** `Deployment/qbittorrent in downloads` */
  subject: string;
  outcome: Outcome;
  detail: string;
  warnings: string[];
}

export interface DocumentPlan {
  /** Against the whole document; empty when it stays as it is. */
  patch: PatchOperation[];
  /** uninject: the document is podvpn's own kill-switch policy and goes. */
  drop: boolean;
  reports: Report[];
}

export interface OfflinePlan {
  documents: DocumentPlan[];
  /** Namespace and gateway of every injected template: where kill-switch policies must exist. */
  routed: Array<{ namespace: string; gateway: string }>;
  /** Some document could not be protected: the CLI writes nothing. */
  refused: boolean;
}

/** The namespaces a multi-document input defines itself (Pod Security, gateway, opt-in labels). */
export function namespacesIn(documents: unknown[]): Map<string, NamespaceFacts> {
  const out = new Map<string, NamespaceFacts>();
  for (const doc of expand(documents)) {
    if (doc.kind !== 'Namespace') continue;
    const meta = isMap(doc.metadata) ? doc.metadata : {};
    if (typeof meta.name !== 'string') continue;
    out.set(meta.name, { labels: stringMap(meta.labels), annotations: stringMap(meta.annotations) });
  }
  return out;
}

export function planInjection(documents: unknown[], opts: OfflineOptions): OfflinePlan {
  const inInput = namespacesIn(documents);
  const facts = (ns: string) => inInput.get(ns) ?? opts.namespaceFacts?.(ns);
  const routed = new Map<string, { namespace: string; gateway: string }>();
  let refused = false;
  const plans = documents.map((doc, index) =>
    forEachWorkload(doc, index, (d, prefix, path, subject) => {
      const kind = String(d.kind); // forEachWorkload visits only the kinds of TEMPLATE_PATHS
      const meta = isMap(d.metadata) ? d.metadata : {};
      const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : opts.namespace;
      if (namespace === undefined) {
        refused = true;
        return refuse(
          subject,
          'it names no namespace, and its DNS search path and kill-switch policy depend on it; pass -n NAMESPACE ' +
            '(the namespace kustomize\'s `namespace:` or kubectl\'s context will give it), or set metadata.namespace',
        );
      }
      const where = `${subject} in ${namespace}`;
      const template = getPath(d, path);
      if (!isMap(template)) return { patch: [], drop: false, reports: [report(where, 'passed', 'no pod template')] };
      const read = readPod({ metadata: template.metadata, spec: template.spec });
      if (!read.ok) {
        refused = true;
        return refuse(where, read.message);
      }
      let pod = read.pod;
      let base: PatchOperation[] = [];
      const undo = uninjectionPatch(pod);
      if (undo !== undefined) {
        base = undo.patch;
        pod = apply(pod, undo.patch);
      }
      const decision = decide({
        operation: 'CREATE',
        resource: 'pods',
        namespace,
        pod: withOwner(pod, POD_OWNER[kind]),
        namespaceFacts: facts(namespace),
        ranges: opts.ranges,
        rangesProblem: opts.rangesProblem,
        config: opts.config,
        // Exit groups: a template stands for all its pods, so its key is the workload's; a Pod is keyed
        // as the webhook keys it (src/exits/assign.ts).
        exitKey: kind === 'Pod' ? undefined : `${namespace}/${kind}/${typeof meta.name === 'string' ? meta.name : ''}`,
      });
      if (decision.action === 'deny') {
        refused = true;
        return refuse(where, decision.message);
      }
      if (decision.action === 'skip' || decision.action === 'readmit') {
        const reason = decision.action === 'skip' ? decision.reason : 'already-injected';
        const why = `${SKIP_REASONS[reason]} (${reason})`;
        if (undo === undefined) return { patch: [], drop: false, reports: [report(where, 'skipped', why)] };
        return { patch: prefixed(base, prefix), drop: false, reports: [report(where, 'uninjected', `${why}: podvpn's earlier injection removed`, undo.notes)] };
      }
      // As the webhook denies it: a tunnel MTU the pod network cannot carry crash-loops the client.
      const mtuProblem = gatewayMTUProblem(decision.gateway, opts.ranges?.podMTU);
      if (mtuProblem !== undefined) {
        refused = true;
        return refuse(where, mtuProblem);
      }
      const injection = injectionPatch({
        pod,
        namespace,
        gateway: decision.gateway,
        settings: clientSettings(decision.gateway, decision.ranges),
        dataPlane: decision.dataPlane,
        config: opts.config,
        exit: decision.exit,
      });
      routed.set(`${namespace}/${decision.gateway.name}`, { namespace, gateway: decision.gateway.name });
      const warnings = [...(undo?.notes ?? []), ...decision.warnings, ...injection.warnings].map(unprefixed);
      const through = `through gateway ${decision.gateway.name}${decision.exit === undefined ? '' : `, exit ${decision.exit}`}`;
      if (undo === undefined) {
        return { patch: prefixed(injection.patch, prefix), drop: false, reports: [report(where, 'injected', through, warnings)] };
      }
      const before = { metadata: template.metadata, spec: template.spec };
      const after = apply(pod, injection.patch);
      if (JSON.stringify(after) === JSON.stringify(before)) {
        return { patch: [], drop: false, reports: [report(where, 'unchanged', `already injected ${through}, up to date`, warnings)] };
      }
      return {
        patch: prefixed([...base, ...injection.patch], prefix),
        drop: false,
        reports: [report(where, 'refreshed', `${through}: the earlier injection replaced with the current config`, warnings)],
      };
    }),
  );
  return { documents: plans, routed: [...routed.values()].sort((a, b) => `${a.namespace}/${a.gateway}`.localeCompare(`${b.namespace}/${b.gateway}`)), refused };
}

export function planUninjection(documents: unknown[]): OfflinePlan {
  const plans = documents.map((doc, index) => {
    if (isKillSwitchPolicy(doc)) {
      return { patch: [], drop: true, reports: [report(describe(doc, index), 'removed', "podvpn's kill-switch policy")] };
    }
    return forEachWorkload(doc, index, (d, prefix, path, subject) => {
      const template = getPath(d, path);
      if (!isMap(template)) return { patch: [], drop: false, reports: [report(subject, 'passed', 'no pod template')] };
      const read = readPod({ metadata: template.metadata, spec: template.spec });
      const undo = read.ok ? uninjectionPatch(read.pod) : undefined;
      if (undo === undefined) return { patch: [], drop: false, reports: [report(subject, 'unchanged', 'not injected')] };
      return { patch: prefixed(undo.patch, prefix), drop: false, reports: [report(subject, 'uninjected', "podvpn's injection removed", undo.notes)] };
    });
  });
  return { documents: plans, routed: [], refused: false };
}

/** A NetworkPolicy podvpn wrote: managed by podvpn and named podvpn-killswitch-<gateway>. */
export function isKillSwitchPolicy(doc: unknown): doc is Doc {
  if (!isMap(doc) || doc.kind !== 'NetworkPolicy' || !isMap(doc.metadata)) return false;
  const meta = doc.metadata;
  return typeof meta.name === 'string' && meta.name.startsWith('podvpn-killswitch-') && stringMap(meta.labels)[LABEL_MANAGED_BY] === PRODUCT;
}

type Visit = (doc: Doc, prefix: string, path: readonly string[], subject: string) => DocumentPlan;

/** Run `visit` on the document, or on each item of a `kind: List`, and merge the plans. */
function forEachWorkload(doc: unknown, index: number, visit: Visit): DocumentPlan {
  if (!isMap(doc)) return { patch: [], drop: false, reports: doc === null || doc === undefined ? [] : [report(`document ${index + 1}`, 'passed', 'not a Kubernetes object')] };
  if (doc.kind === 'List' || (typeof doc.kind === 'string' && doc.kind.endsWith('List') && Array.isArray(doc.items))) {
    const items = Array.isArray(doc.items) ? doc.items : [];
    const plans = items.map((item, i) => {
      if (!isMap(item)) return { patch: [], drop: false, reports: [report(`${String(doc.kind)} item ${i + 1}`, 'passed', 'not a Kubernetes object')] };
      const path = TEMPLATE_PATHS[String(item.kind)];
      if (path === undefined) return { patch: [], drop: false, reports: [report(describe(item, i), 'passed', 'no pod template')] };
      return visit(item, withTemplatePrefix(`/items/${i}`, path), path, describe(item, i));
    });
    if (items.length === 0) return { patch: [], drop: false, reports: [report(describe(doc, index), 'passed', 'an empty List')] };
    return { patch: plans.flatMap((p) => p.patch), drop: false, reports: plans.flatMap((p) => p.reports) };
  }
  const path = TEMPLATE_PATHS[String(doc.kind)];
  if (path === undefined) return { patch: [], drop: false, reports: [report(describe(doc, index), 'passed', 'no pod template')] };
  return visit(doc, withTemplatePrefix('', path), path, describe(doc, index));
}

function refuse(subject: string, message: string): DocumentPlan {
  return { patch: [], drop: false, reports: [report(subject, 'refused', message)] };
}

function report(subject: string, outcome: Outcome, detail: string, warnings: string[] = []): Report {
  return { subject, outcome, detail, warnings };
}

function describe(doc: Doc, index: number): string {
  const meta = isMap(doc.metadata) ? doc.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : typeof meta.generateName === 'string' ? meta.generateName : `(document ${index + 1})`;
  return `${typeof doc.kind === 'string' ? doc.kind : '(no kind)'}/${name}`;
}

/** Decide on the pod the controller will create: it carries its owner (a Job's pod: warnings for Jobs). */
function withOwner(pod: Pod, owner: string | undefined): Pod {
  if (owner === undefined) return pod;
  // uid: the controller does not exist yet; only its kind is read (the warnings for Jobs).
  return { ...pod, metadata: { ...pod.metadata, ownerReferences: [{ kind: owner, name: '(controller)', apiVersion: 'v1', uid: '' }] } };
}

function prefixed(patch: PatchOperation[], prefix: string): PatchOperation[] {
  return prefix === '' ? patch : patch.map((op) => ({ ...op, path: `${prefix}${op.path}` }));
}

function withTemplatePrefix(prefix: string, path: readonly string[]): string {
  return `${prefix}${path.map((p) => `/${p}`).join('')}`;
}

function apply(pod: Pod, patch: PatchOperation[]): Pod {
  return jsonpatch.applyPatch(structuredClone(pod), patch as jsonpatch.Operation[], true, false).newDocument;
}

/** Expand Lists into their items. */
function expand(documents: unknown[]): Doc[] {
  return documents.flatMap((d) => (isMap(d) && Array.isArray(d.items) && typeof d.kind === 'string' && d.kind.endsWith('List') ? d.items.filter(isMap) : isMap(d) ? [d] : []));
}

function unprefixed(warning: string): string {
  return warning.replace(/^podvpn: /, '');
}

function getPath(root: Doc, path: readonly string[]): unknown {
  let node: unknown = root;
  for (const key of path) {
    if (!isMap(node)) return undefined;
    node = node[key];
  }
  return node;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown): Record<string, string> {
  if (!isMap(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

