// Golden files: testdata/<case>.yaml (a pod and its context) -> testdata/<case>.yaml.injected (the
// outcome and, when injected, the pod after the patch). REFRESH_GOLDEN=1 rewrites the goldens; a
// golden without its case fails. Each injected result is re-reviewed: the second patch is empty.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import jsonpatch from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { type AdmissionPorts, admit } from '../admission/review.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import { parseConfig } from '../config/schema.js';
import { ANNOTATION_STATUS } from '../constants.js';
import type { NamespaceFacts, Pod } from './types.js';

const DIR = join(import.meta.dirname, 'testdata');
const REFRESH = process.env.REFRESH_GOLDEN === '1' || process.env.REFRESH_GOLDEN === 'true';

const RANGES: ClusterRanges = {
  podCIDRs: ['10.42.0.0/16'],
  serviceCIDRs: ['10.43.0.0/16'],
  extraCIDRs: ['192.168.1.0/24'],
  dnsIPs: ['10.43.0.10'],
  sources: { podCIDRs: 'test', serviceCIDRs: 'test', dnsIPs: 'test' },
};

interface Case {
  namespace?: string;
  operation?: string;
  namespaceFacts?: NamespaceFacts;
  config?: unknown;
  /** null: the ranges are unknown. */
  ranges?: null;
  pod: Pod;
}

function portsFor(c: Case): AdmissionPorts {
  return {
    config: parseConfig(c.config ?? {}),
    namespaceFacts: () => c.namespaceFacts,
    ranges: () => (c.ranges === null ? undefined : RANGES),
    ensureKillSwitch: async () => ({ ok: true }),
  };
}

async function review(c: Case, pod: Pod) {
  return admit(
    {
      uid: 'golden',
      operation: c.operation ?? 'CREATE',
      resource: { resource: 'pods' },
      namespace: c.namespace ?? 'downloads',
      name: pod.metadata?.name ?? pod.metadata?.generateName ?? '',
      dryRun: false,
      object: pod,
    },
    portsFor(c),
  );
}

const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('injection golden files', () => {
  it('has at least 20 cases and no golden without its case', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
    const orphans = readdirSync(DIR)
      .filter((f) => f.endsWith('.yaml.injected'))
      .filter((f) => !cases.includes(f.slice(0, -'.injected'.length)));
    expect(orphans, 'goldens whose case file is gone: delete them').toEqual([]);
  });

  for (const file of cases) {
    it(file.replace(/\.yaml$/, ''), async () => {
      const c = parse(readFileSync(join(DIR, file), 'utf8')) as Case;
      const outcome = await review(c, c.pod);
      let result: Record<string, unknown>;
      if (outcome.outcome === 'injected') {
        // The patch must apply, as RFC 6902, to the object exactly as sent.
        const patched = jsonpatch.applyPatch(structuredClone(c.pod), outcome.patch as jsonpatch.Operation[], true, false)
          .newDocument;
        new PodModel(patched as never).validate();
        const again = await review(c, patched);
        expect(again, 're-reviewing the injected pod must give an empty patch').toEqual({
          outcome: 'skipped',
          reason: 'already-injected',
          warnings: [],
        });
        const status = JSON.parse(patched.metadata!.annotations![ANNOTATION_STATUS]!) as { version: string };
        status.version = '<version>'; // keep goldens stable across releases
        patched.metadata!.annotations![ANNOTATION_STATUS] = JSON.stringify(status);
        result = { outcome: 'injected', gateway: outcome.gateway, warnings: outcome.warnings, pod: patched };
      } else if (outcome.outcome === 'skipped') {
        result = { outcome: 'skipped', reason: outcome.reason };
      } else {
        result = { outcome: 'denied', reason: outcome.reason, message: outcome.message };
      }
      const text = stringify(result, { lineWidth: 0 });
      const goldenPath = join(DIR, `${file}.injected`);
      if (REFRESH || !existsSync(goldenPath)) {
        if (!REFRESH) throw new Error(`no golden for ${file}: run npm run test:golden:refresh and review the diff`);
        writeFileSync(goldenPath, text);
      }
      expect(text).toBe(readFileSync(goldenPath, 'utf8'));
    });
  }
});
