// Offline injection for GitOps (`podvpn inject`): the same decision and patch as the webhook, applied
// to Pods and to the pod templates of workload kinds. Other documents pass through unchanged.

import jsonpatch from 'fast-json-patch';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';
import { decide } from './decision.js';
import { injectionPatch } from './patch.js';
import { clientSettings } from './settings.js';
import type { Pod } from './types.js';

type Doc = Record<string, unknown>;

/** Where each kind keeps its pod (template), as a path of keys from the document root. */
const TEMPLATE_PATHS: Record<string, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export interface OfflineOptions {
  config: Config;
  ranges: ClusterRanges;
  /** Namespace for documents that name none (like kubectl's current namespace). */
  defaultNamespace: string;
}

export interface OfflineResult {
  documents: unknown[];
  /** Namespace and gateway of every injected pod or template: where kill-switch policies must exist. */
  routed: Array<{ namespace: string; gateway: string }>;
  /** One line per document that was not injected and why, for stderr. */
  notes: string[];
}

export class OfflineInjectionError extends Error {}

export function injectDocuments(documents: unknown[], opts: OfflineOptions): OfflineResult {
  const routed = new Map<string, { namespace: string; gateway: string }>();
  const notes: string[] = [];
  const out = documents.map((doc, index) => {
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return doc;
    const d = doc as Doc;
    const kind = typeof d.kind === 'string' ? d.kind : '';
    const path = TEMPLATE_PATHS[kind];
    if (path === undefined) return doc;
    const meta = (d.metadata ?? {}) as { name?: string; namespace?: string };
    const label = `${kind}/${meta.name ?? `(document ${index + 1})`}`;
    const namespace = meta.namespace ?? opts.defaultNamespace;
    const template = getPath(d, path) as Pod | undefined;
    if (template === undefined || template === null || typeof template !== 'object') {
      notes.push(`${label}: no pod template, left unchanged`);
      return doc;
    }
    const pod: Pod = { metadata: template.metadata, spec: template.spec };
    const decision = decide({
      operation: 'CREATE',
      resource: 'pods',
      namespace,
      pod,
      namespaceFacts: undefined,
      ranges: opts.ranges,
      config: opts.config,
    });
    if (decision.action === 'skip') {
      notes.push(`${label}: not injected (${decision.reason})`);
      return doc;
    }
    if (decision.action === 'deny') throw new OfflineInjectionError(`${label}: ${decision.message}`);
    const { patch, warnings } = injectionPatch({
      pod,
      namespace,
      gateway: decision.gateway,
      settings: clientSettings(decision.gateway, opts.ranges),
      dataPlane: decision.dataPlane,
      config: opts.config,
    });
    for (const w of [...decision.warnings, ...warnings]) notes.push(`${label}: ${w}`);
    const injected = jsonpatch.applyPatch(structuredClone(pod), patch as jsonpatch.Operation[], true, false).newDocument;
    routed.set(`${namespace}/${decision.gateway.name}`, { namespace, gateway: decision.gateway.name });
    if (path.length === 0) return { ...d, metadata: injected.metadata, spec: injected.spec };
    const copy = structuredClone(d);
    const target = getPath(copy, path) as Doc;
    target.metadata = injected.metadata;
    target.spec = injected.spec;
    return copy;
  });
  return { documents: out, routed: [...routed.values()], notes };
}

function getPath(root: Doc, path: string[]): unknown {
  let node: unknown = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Doc)[key];
  }
  return node;
}
