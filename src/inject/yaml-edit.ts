// Apply an RFC 6902 patch to a parsed YAML document in place, through the `yaml` library's Document
// API: keys keep their order, comments (`# renovate:` markers among them) stay where they were, and
// only the nodes the patch names change.

import { type Document, isMap, isNode, isSeq } from 'yaml';
import type { PatchOperation } from './types.js';

export class YamlPatchError extends Error {}

export function applyToDocument(doc: Document, patch: readonly PatchOperation[]): void {
  for (const op of patch) {
    if (op.op === 'test') continue; // a guard for the API server; the document is the one the patch was made from
    if (op.op === 'move') {
      const node: unknown = doc.getIn(pointer(op.from), true);
      if (node === undefined) throw new YamlPatchError(`nothing at ${op.from} to move`);
      applyToDocument(doc, [{ op: 'remove', path: op.from }]);
      insert(doc, op.path, 'add', node);
      continue;
    }
    insert(doc, op.path, op.op, op.op === 'remove' ? undefined : op.value);
  }
}

function pointer(path: string): string[] {
  return path
    .split('/')
    .slice(1)
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function insert(doc: Document, path: string, op: 'add' | 'replace' | 'remove', value: unknown): void {
  const tokens = pointer(path);
  const last = tokens.pop();
  if (last === undefined) throw new YamlPatchError(`cannot ${op} the document root`);
  const parent = tokens.length === 0 ? doc.contents : doc.getIn(tokens, true);
  if (isSeq(parent)) {
    const index = last === '-' ? parent.items.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.items.length) throw new YamlPatchError(`no index ${last} at ${path}`);
    if (op === 'remove') parent.items.splice(index, 1);
    else if (op === 'add') parent.items.splice(index, 0, node(doc, value));
    else parent.items[index] = node(doc, value);
  } else if (isMap(parent)) {
    if (op === 'remove') parent.delete(last);
    else parent.set(last, node(doc, value));
  } else {
    throw new YamlPatchError(`no map or list at ${path}`);
  }
}

/** A node taken from the document (a move) is put back as it is, comments included. */
function node(doc: Document, value: unknown): unknown {
  return isNode(value) ? value : doc.createNode(value);
}
