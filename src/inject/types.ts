// The shapes the pure core reads. Everything may be missing or null on the wire: the API server
// sends the object as the client wrote it, before defaulting by later plugins.

import type { V1Container, V1PodDNSConfig, V1Volume } from '@kubernetes/client-node';

export interface ObjectMeta {
  name?: string | null;
  generateName?: string | null;
  namespace?: string | null;
  labels?: Record<string, string> | null;
  annotations?: Record<string, string> | null;
  ownerReferences?: Array<{ kind?: string; name?: string; apiVersion?: string }> | null;
  [key: string]: unknown;
}

export interface PodSpec {
  containers?: V1Container[] | null;
  initContainers?: V1Container[] | null;
  volumes?: V1Volume[] | null;
  hostNetwork?: boolean | null;
  dnsPolicy?: string | null;
  dnsConfig?: V1PodDNSConfig | null;
  [key: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta | null;
  spec?: PodSpec | null;
  [key: string]: unknown;
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
