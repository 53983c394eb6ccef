// The injection golden cases (src/inject/testdata/<case>.input.yaml), one definition for every test
// that runs them: their shape, the ranges and ports each case is admitted with, and the shape of the
// webhook golden src/inject/golden.test.ts writes. The golden test runs them in-process through both
// paths; test/webhook-conformance.test.ts sends them over TLS and holds each reply to its golden.

import { join } from 'node:path';
import { parse } from 'yaml';
import type { AdmissionPorts } from '../src/admission/review.js';
import type { ClusterRanges } from '../src/cluster/ranges.js';
import { parseConfig } from '../src/config/schema.js';
import type { NamespaceFacts, Pod } from '../src/inject/types.js';
import { goldenCases, readInput } from './golden.js';

export const INJECT_TESTDATA = join(import.meta.dirname, '..', 'src', 'inject', 'testdata');

/** A case: the pod and the context it is admitted in. */
export interface InjectCase {
  /** request.namespace (default downloads). */
  namespace?: string;
  /** request.operation (default CREATE). */
  operation?: string;
  /** The namespace as the cache knows it; absent: not known (standalone). */
  namespaceFacts?: NamespaceFacts;
  /** podvpn's config, as the config file holds it. */
  config?: unknown;
  /** null: the ranges are unknown. */
  ranges?: null;
  /** The pod network's MTU as discovery found it (src/cluster/pod-mtu.ts). */
  podMTU?: { value: number; source: string };
  pod: Pod;
}

/** What `<case>.webhook.golden.yaml` holds. */
export type WebhookGolden =
  | { outcome: 'injected'; gateway: string; warnings: string[]; pod: unknown }
  | { outcome: 'reordered'; gateway: string; patch: unknown[]; initContainers: string[] }
  | { outcome: 'skipped'; reason: string }
  | { outcome: 'denied'; reason: string; message: string };

/** The ranges every case is admitted with, unless it says they are unknown. */
const GOLDEN_RANGES: ClusterRanges = {
  podCIDRs: ['10.42.0.0/16'],
  serviceCIDRs: ['10.43.0.0/16'],
  extraCIDRs: ['192.168.1.0/24'],
  dnsIPs: ['10.43.0.10'],
  sources: { podCIDRs: 'test', serviceCIDRs: 'test', dnsIPs: 'test' },
};

export function rangesOf(c: InjectCase): ClusterRanges | undefined {
  if (c.ranges === null) return undefined;
  return c.podMTU === undefined ? GOLDEN_RANGES : { ...GOLDEN_RANGES, podMTU: c.podMTU };
}

/** Admission's ports for the case: its config, namespace facts and ranges; the kill switch is in place. */
export function portsFor(c: InjectCase): AdmissionPorts {
  return {
    config: parseConfig(c.config ?? {}),
    namespaceFacts: () => c.namespaceFacts,
    ranges: () => rangesOf(c),
    ensureKillSwitch: async () => ({ ok: true }),
  };
}

/** Every case, sorted by name. */
export function injectCases(): Array<{ name: string; c: InjectCase }> {
  return goldenCases(INJECT_TESTDATA).map((name) => ({ name, c: parse(readInput(INJECT_TESTDATA, name)) as InjectCase }));
}
