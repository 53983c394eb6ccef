// The shapes the pure core reads. Everything may be missing or null on the wire: the API server
// sends the object as the client wrote it, before defaulting by later plugins.

import type { V1ObjectMeta, V1Pod, V1PodSpec } from '@kubernetes/client-node';

/** client-node's type as it may arrive: every field optional and possibly null. */
type OnTheWire<T> = { [K in keyof T]?: T[K] | null };

export type ObjectMeta = OnTheWire<V1ObjectMeta>;
export type PodSpec = OnTheWire<V1PodSpec>;

/**
 * A pod as the pure core reads it: client-node's V1Pod with nullable metadata and spec fields, so a
 * misspelt field does not compile. Made from unknown input only by readPod() (wire.ts), which checks
 * the object, its metadata and its spec. Scalar values and list items are not checked there: the core
 * compares them with typeof / String() where a user's YAML may hold another type (an unquoted `true`).
 */
export interface Pod extends Omit<V1Pod, 'metadata' | 'spec'> {
  metadata?: ObjectMeta | null;
  spec?: PodSpec | null;
}

/** What the webhook knows about the pod's namespace (from the watch cache); undefined if unknown. */
export interface NamespaceFacts {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** An RFC 6902 operation, as the API server applies it. */
export type PatchOperation =
  | { op: 'add' | 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'test'; path: string; value: unknown }
  | { op: 'move'; from: string; path: string };

/** podvpn.io/status: what the webhook injected, so a re-admitted pod is recognised. */
export interface InjectionStatus {
  version: string;
  gateway: string;
  /** Present in agent mode only ("agent"); absent means pod-gateway. */
  dataPlane?: 'agent';
  initContainers: string[];
  containers: string[];
  volumes: string[];
  /** Exit groups: the exit assigned at admission (the label podvpn.io/exit says the current one). */
  exit?: string;
  /** Values podvpn replaced, by JSON pointer (`/spec/dnsPolicy`), for uninject. */
  prior?: Record<string, unknown>;
  /** JSON pointers podvpn created where nothing was, for uninject. */
  created?: string[];
}
