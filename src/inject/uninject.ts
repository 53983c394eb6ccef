// Uninjection (pure): a pod podvpn injected in, the RFC 6902 patch that gives the pod back as it was
// out. It removes what podvpn.io/status names (containers, volume), the routed label and podvpn's
// annotations, then undoes the status's record: values podvpn replaced come back (`prior`), what it
// created where nothing was goes again (`created`; a list or map only when nothing else is in it).

import { ANNOTATION_CLIENT_SETTINGS, ANNOTATION_STATUS, LABEL_EXIT, LABEL_ROUTED } from '../constants.js';
import { escapePointer } from './patch-parts.js';
import type { InjectionStatus, PatchOperation, Pod } from './types.js';

export interface Uninjection {
  patch: PatchOperation[];
  /** Things the user should know (a status from before podvpn recorded what it replaced). */
  notes: string[];
}

/** The pod's podvpn.io/status, or undefined when it has none (or one that is not podvpn's JSON). */
export function readStatus(pod: Pod): InjectionStatus | undefined {
  const raw = pod.metadata?.annotations?.[ANNOTATION_STATUS];
  if (typeof raw !== 'string') return undefined;
  try {
    const status = JSON.parse(raw) as Partial<InjectionStatus>;
    if (status === null || typeof status !== 'object') return undefined;
    return {
      version: String(status.version ?? ''),
      gateway: String(status.gateway ?? ''),
      initContainers: strings(status.initContainers),
      containers: strings(status.containers),
      volumes: strings(status.volumes),
      ...(typeof status.exit === 'string' ? { exit: status.exit } : {}),
      ...(isMap(status.prior) ? { prior: status.prior } : {}),
      ...(Array.isArray(status.created) ? { created: strings(status.created) } : {}),
    };
  } catch {
    return undefined;
  }
}

/** undefined when the pod carries no podvpn.io/status: nothing to remove. */
export function uninjectionPatch(pod: Pod): Uninjection | undefined {
  if (!isMap(pod.metadata?.annotations) || typeof pod.metadata.annotations[ANNOTATION_STATUS] !== 'string') return undefined;
  const status = readStatus(pod) ?? { version: '', gateway: '', initContainers: [], containers: [], volumes: [] };
  const work = structuredClone(pod) as Record<string, unknown>;
  const patch: PatchOperation[] = [];
  const notes: string[] = [];
  const apply = (op: EditOperation): void => {
    patch.push(op);
    applyOp(work, op);
  };

  removeNamed(work, '/spec/initContainers', status.initContainers, apply);
  removeNamed(work, '/spec/containers', status.containers, apply);
  removeNamed(work, '/spec/volumes', status.volumes, apply);
  const labels = get(work, '/metadata/labels');
  if (isMap(labels) && LABEL_ROUTED in labels) apply({ op: 'remove', path: `/metadata/labels/${escapePointer(LABEL_ROUTED)}` });
  // The exit label is podvpn's when its status records an exit (exit groups).
  if (status.exit !== undefined && isMap(labels) && LABEL_EXIT in labels) apply({ op: 'remove', path: `/metadata/labels/${escapePointer(LABEL_EXIT)}` });
  for (const key of [ANNOTATION_STATUS, ANNOTATION_CLIENT_SETTINGS]) {
    const annotations = get(work, '/metadata/annotations');
    if (isMap(annotations) && key in annotations) apply({ op: 'remove', path: `/metadata/annotations/${escapePointer(key)}` });
  }

  if (status.prior === undefined && status.created === undefined) {
    // Written before podvpn kept a record: its DNS settings are podvpn's, the pod's own are unknown.
    if (get(work, '/spec/dnsPolicy') === 'None') apply({ op: 'remove', path: '/spec/dnsPolicy' });
    if (get(work, '/spec/dnsConfig') !== undefined) apply({ op: 'remove', path: '/spec/dnsConfig' });
    notes.push('its podvpn.io/status predates the record of the pod\'s own DNS settings: dnsPolicy and dnsConfig removed, not restored');
  }
  // Deepest first, so a map podvpn created is empty by the time it is considered.
  const record = [
    ...Object.entries(status.prior ?? {}).map(([path, value]) => ({ path, value, created: false })),
    ...(status.created ?? []).map((path) => ({ path, value: undefined, created: true })),
  ].sort((a, b) => depth(b.path) - depth(a.path) || (a.path < b.path ? 1 : -1));
  for (const { path, value, created } of record) {
    const current = get(work, path);
    if (!created) {
      if (!parentExists(work, path)) continue;
      apply({ op: current === undefined ? 'add' : 'replace', path, value });
    } else if (current !== undefined && (isScalarField(path) || isEmpty(current))) {
      apply({ op: 'remove', path });
    }
  }
  return { patch, notes };
}

function removeNamed(work: Record<string, unknown>, path: string, names: string[], apply: (op: EditOperation) => void): void {
  const list = get(work, path);
  if (!Array.isArray(list)) return;
  // Highest index first: each removal leaves the earlier indexes valid.
  for (let i = list.length - 1; i >= 0; i--) {
    const item = list[i] as { name?: unknown } | null;
    if (item !== null && typeof item === 'object' && typeof item.name === 'string' && names.includes(item.name)) {
      apply({ op: 'remove', path: `${path}/${i}` });
    }
  }
}

/** dnsPolicy and dnsConfig podvpn set wholesale: removed even when not empty. */
function isScalarField(path: string): boolean {
  return path === '/spec/dnsPolicy' || path === '/spec/dnsConfig';
}

function isEmpty(value: unknown): boolean {
  if (Array.isArray(value)) return value.length === 0;
  if (isMap(value)) return Object.keys(value).length === 0;
  return false;
}

function depth(path: string): number {
  return path.split('/').length;
}

function tokens(path: string): string[] {
  return path
    .split('/')
    .slice(1)
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function get(root: unknown, path: string): unknown {
  let node = root;
  for (const t of tokens(path)) {
    if (Array.isArray(node)) node = node[Number(t)];
    else if (isMap(node)) node = node[t];
    else return undefined;
  }
  return node;
}

function parentExists(root: unknown, path: string): boolean {
  const parent = get(root, `/${path.split('/').slice(1, -1).join('/')}`.replace(/^\/$/, ''));
  return path.split('/').length === 2 || isMap(parent) || Array.isArray(parent);
}

/** What uninjection writes: removals and plain values, never a test or a move. */
type EditOperation = Exclude<PatchOperation, { op: 'test' } | { op: 'move' }>;

function applyOp(root: Record<string, unknown>, op: EditOperation): void {
  const ts = tokens(op.path);
  const last = ts.pop();
  if (last === undefined) return; // the root itself: uninjection never writes it
  const parent = ts.length === 0 ? root : get(root, `/${ts.map(escapePointer).join('/')}`);
  if (Array.isArray(parent)) {
    if (op.op === 'remove') parent.splice(Number(last), 1);
    else parent[Number(last)] = op.value;
  } else if (isMap(parent)) {
    if (op.op === 'remove') delete parent[last];
    else parent[last] = op.value;
  }
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
