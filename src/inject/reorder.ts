// The client containers go first, and stay first (pure). A later mutating webhook can prepend its own
// init container (Vault's agent injector with agent-init-first, a mesh's init): on reinvocation the pod
// already carries podvpn.io/status, and this patch moves podvpn's init containers back to the front,
// so nothing the pod runs starts before the tunnel exists.

import { CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME, GATE_INIT_NAME } from '../constants.js';
import type { PatchOperation, Pod } from './types.js';

/**
 * The `move` operations (RFC 6902) that put podvpn's init containers at indexes 0 (the client init) and
 * 1 (the native sidecar, when it is an init container), keeping every other init container in its
 * relative order. Empty when they are already in front or absent. Each move is preceded by a `test` of
 * the moved container's name, so the patch applies only to the list it was computed for. The names are
 * podvpn's fixed container names, never read from the pod's own (user-writable) status annotation.
 */
export function clientsFirstPatch(pod: Pod): PatchOperation[] {
  const list = pod.spec?.initContainers;
  if (!Array.isArray(list)) return [];
  const names = list.map((c) => (c !== null && typeof c === 'object' && typeof c.name === 'string' ? c.name : undefined));
  const wanted = [CLIENT_INIT_NAME, CLIENT_SIDECAR_NAME, GATE_INIT_NAME].filter((n) => names.includes(n));
  const ops: PatchOperation[] = [];
  wanted.forEach((name, target) => {
    const from = names.indexOf(name);
    if (from === target) return;
    ops.push({ op: 'test', path: `/spec/initContainers/${from}/name`, value: name });
    ops.push({ op: 'move', from: `/spec/initContainers/${from}`, path: `/spec/initContainers/${target}` });
    names.splice(from, 1);
    names.splice(target, 0, name);
  });
  return ops;
}
