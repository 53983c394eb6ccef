// Apply an RFC 6902 patch to a parsed YAML document in place, through the `yaml` library's Document
// API: keys keep their order, comments (`# renovate:` markers among them) stay where they were, and
// only the nodes the patch names change.

import { type Document, isMap, isSeq } from 'yaml';
import type { PatchOperation } from './types.js';

export class YamlPatchError extends Error {}

export function applyToDocument(doc: Document, patch: readonly PatchOperation[]): void {
  for (const op of patch) {
    const tokens = op.path
      .split('/')
      .slice(1)
      .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = tokens.pop();
    if (last === undefined) throw new YamlPatchError(`cannot ${op.op} the document root`);
    const parent = tokens.length === 0 ? doc.contents : doc.getIn(tokens, true);
    if (isSeq(parent)) {
      const index = last === '-' ? parent.items.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.items.length) throw new YamlPatchError(`no index ${last} at ${op.path}`);
      if (op.op === 'remove') parent.items.splice(index, 1);
      else if (op.op === 'add') parent.items.splice(index, 0, doc.createNode(op.value));
      else parent.items[index] = doc.createNode(op.value);
    } else if (isMap(parent)) {
      if (op.op === 'remove') parent.delete(last);
      else parent.set(last, doc.createNode(op.value));
    } else {
      throw new YamlPatchError(`no map or list at ${op.path}`);
    }
  }
}
