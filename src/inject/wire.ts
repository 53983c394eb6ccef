// The one place unknown input becomes a Pod (pure): the AdmissionReview's object, or the pod template
// of a document `podvpn inject` reads. The API server only sends what it decoded into a Pod, but the
// webhook does not authenticate its callers and YAML can hold anything.

import type { Pod } from './types.js';

export type PodRead = { ok: true; pod: Pod } | { ok: false; message: string };

/**
 * The pod, or why it is not one: it must be an object whose metadata and spec are objects (or
 * absent or null). What is inside them is read defensively by the core (see Pod).
 */
export function readPod(value: unknown): PodRead {
  if (!isObject(value)) return invalid('the pod in the AdmissionReview is not an object');
  for (const field of ['metadata', 'spec'] as const) {
    const v = value[field];
    if (v !== undefined && v !== null && !isObject(v)) return invalid(`the pod's ${field} is not an object`);
  }
  return { ok: true, pod: value };
}

function invalid(what: string): PodRead {
  return { ok: false, message: `${what}; podvpn cannot route it` };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
