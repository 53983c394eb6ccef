// Golden files (the harness and its convention: test/golden.ts). Each case, testdata/<case>.input.yaml
// (a pod and its context), runs through both paths, as Istio runs its injector's:
//
//   <case>.webhook.golden.yaml  admission: the outcome and, when injected, the pod after the patch
//                               (validated against the Pod schema; re-reviewing it gives no patch)
//   <case>.offline.golden.yaml  `podvpn inject` on the same pod as a manifest (a Namespace document
//                               carries the case's namespace facts): the report and the output
//
// and then checks that both paths agree (the same pod, or the same skip or refusal), and that uninject
// gives back exactly what went in: the pod object after the webhook, the text after offline inject.

import jsonpatch from 'fast-json-patch';
import { Pod as PodModel } from 'kubernetes-models/v1/Pod';
import { describe, expect, it } from 'vitest';
import { type Document, parseAllDocuments, stringify } from 'yaml';
import { expectGolden, orphanGoldens } from '../../test/golden.js';
import { INJECT_TESTDATA as DIR, type InjectCase as Case, injectCases, portsFor, rangesOf } from '../../test/inject-cases.js';
import { admit, type Outcome } from '../admission/review.js';
import { parseConfig } from '../config/schema.js';
import { ANNOTATION_STATUS } from '../constants.js';
import { planInjection, planUninjection, type Report } from './offline.js';
import type { Pod } from './types.js';
import { uninjectionPatch } from './uninject.js';
import { applyToDocument } from './yaml-edit.js';


/**
 * Where the paths differ on purpose. The webhook sees UPDATEs (offline every pod is a CREATE), and it
 * leaves a pod that carries podvpn.io/status alone, where `podvpn inject` refreshes it.
 */
const OFFLINE_DIFFERS: Record<string, string> = {
  'not-pod-create': 'offline has no operation: every document is a pod to create',
  'already-injected': 'offline refreshes an earlier injection with the current config',
  'incomplete-injection': 'offline refreshes an earlier injection, which puts the routed label back',
  reordered: 'offline refreshes an earlier injection, which puts the clients first again',
  refresh: 'offline refreshes an earlier injection with the current config, or removes it where the pod is no longer routed',
};

async function review(c: Case, pod: Pod): Promise<Outcome> {
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

function applyPatch(pod: Pod, patch: unknown[]): Pod {
  return jsonpatch.applyPatch(structuredClone(pod), patch as jsonpatch.Operation[], true, false).newDocument;
}

/** The case as a manifest: its namespace as a Namespace document (when the case has facts), then the pod. */
function manifestOf(c: Case): string {
  const ns = c.namespace ?? 'downloads';
  const docs: unknown[] = [];
  if (c.namespaceFacts !== undefined) {
    docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: c.namespaceFacts.labels, annotations: c.namespaceFacts.annotations } });
  }
  docs.push({ apiVersion: 'v1', kind: 'Pod', ...c.pod });
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

function offline(c: Case, text: string): { reports: Report[]; docs: Document[]; text: string } {
  const docs = parseAllDocuments(text) as Document[];
  const plan = planInjection(
    docs.map((d) => d.toJS() as unknown),
    { config: parseConfig(c.config ?? {}), ranges: rangesOf(c), namespace: c.namespace ?? 'downloads' },
  );
  if (!plan.refused) plan.documents.forEach((p, i) => applyToDocument(docs[i]!, p.patch));
  return { reports: plan.documents.flatMap((p) => p.reports), docs, text: docs.map((d) => d.toString({ lineWidth: 0 })).join('') };
}

function stableStatus(pod: Pod): Pod {
  const copy = structuredClone(pod);
  const annotations = copy.metadata?.annotations;
  if (annotations?.[ANNOTATION_STATUS] !== undefined) {
    const status = JSON.parse(annotations[ANNOTATION_STATUS]) as { version: string };
    status.version = '<version>'; // keep goldens stable across releases
    annotations[ANNOTATION_STATUS] = JSON.stringify(status);
  }
  return copy;
}

/** The pod without apiVersion and kind: a manifest has them, a case's pod may not. */
function bare(pod: Pod): Pod {
  const { apiVersion: _a, kind: _k, ...rest } = pod;
  return rest;
}

const cases = injectCases();

describe('injection golden files', () => {
  it('has at least 20 cases, and no golden without its case', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
    expect(orphanGoldens(DIR, ['webhook', 'offline']), 'goldens whose case file is gone: delete them').toEqual([]);
  });

  for (const { name, c } of cases) {
    describe(name, () => {

      it('webhook: golden outcome; the patch applies and validates; a second review is empty; uninject restores the pod', async () => {
        const outcome = await review(c, c.pod);
        let result: Record<string, unknown>;
        if (outcome.outcome === 'injected') {
          // The patch must apply, as RFC 6902, to the object exactly as sent.
          const patched = applyPatch(c.pod, outcome.patch);
          new PodModel(patched as never).validate();
          const again = await review(c, patched);
          expect(again, 're-reviewing the injected pod must give an empty patch').toEqual({ outcome: 'skipped', reason: 'already-injected', warnings: [] });
          const undo = uninjectionPatch(patched)!;
          expect(JSON.stringify(applyPatch(patched, undo.patch)), 'uninject gives back the pod as sent, key order too').toBe(JSON.stringify(c.pod));
          result = { outcome: 'injected', gateway: outcome.gateway, warnings: outcome.warnings, pod: stableStatus(patched) };
        } else if (outcome.outcome === 'reordered') {
          // Another webhook moved podvpn's clients back: the moves apply, and the next review is a no-op.
          const patched = applyPatch(c.pod, outcome.patch);
          new PodModel(patched as never).validate();
          expect(await review(c, patched)).toEqual({ outcome: 'skipped', reason: 'already-injected', warnings: [] });
          const initContainers = (patched.spec?.initContainers ?? []).map((x) => x.name);
          result = { outcome: 'reordered', gateway: outcome.gateway, patch: outcome.patch, initContainers };
        } else if (outcome.outcome === 'skipped') {
          result = { outcome: 'skipped', reason: outcome.reason };
        } else {
          result = { outcome: 'denied', reason: outcome.reason, message: outcome.message };
        }
        expectGolden(DIR, name, 'webhook', stringify(result, { lineWidth: 0 }));
      });

      it('offline: golden output, the same answer as the webhook, and uninject gives the input text back', async () => {
        const input = manifestOf(c);
        const out = offline(c, input);
        const podReport = out.reports.at(-1)!;
        const header = out.reports.map((r) => `# ${r.subject}: ${r.outcome}: ${r.detail}${r.warnings.map((w) => `\n#   warning: ${w}`).join('')}`).join('\n');
        const pod = out.docs.at(-1)!.toJS() as Pod & { kind?: string; apiVersion?: string };
        const shown = [...out.docs.slice(0, -1).map((d) => d.toString({ lineWidth: 0 })), stringify(stableStatus(pod), { lineWidth: 0 })].join('---\n');
        expectGolden(DIR, name, 'offline', `${header}\n---\n${shown}`);

        const webhook = await review(c, c.pod);
        // A pod that already carries podvpn's status is a re-admission to the webhook, a refresh offline.
        const carriesStatus = typeof c.pod.metadata?.annotations?.[ANNOTATION_STATUS] === 'string';
        const differs =
          webhook.outcome === 'injected'
            ? undefined
            : carriesStatus
              ? OFFLINE_DIFFERS.refresh
              : webhook.outcome === 'reordered'
                ? OFFLINE_DIFFERS.reordered
                : OFFLINE_DIFFERS[webhook.reason];
        if (differs === OFFLINE_DIFFERS.refresh) {
          expect(['refreshed', 'unchanged', 'uninjected', 'refused'], differs).toContain(podReport.outcome);
        }
        if (differs === undefined) {
          if (webhook.outcome === 'injected') {
            expect(podReport.outcome).toBe('injected');
            expect(JSON.stringify(bare(pod)), 'offline and webhook give the same pod').toBe(JSON.stringify(bare(applyPatch(c.pod, webhook.patch))));
            expect(podReport.warnings).toEqual(webhook.warnings.map((w) => w.replace(/^podvpn: /, '')));
          } else if (webhook.outcome === 'skipped') {
            expect(podReport.outcome).toBe('skipped');
            expect(podReport.detail).toContain(`(${webhook.reason})`);
          } else if (webhook.outcome === 'denied') {
            expect(podReport.outcome).toBe('refused');
            expect(podReport.detail).toBe(webhook.message);
          }
        }
        if (podReport.outcome === 'injected') {
          const back = parseAllDocuments(out.text) as Document[];
          const undo = planUninjection(back.map((d) => d.toJS() as unknown));
          undo.documents.forEach((p, i) => applyToDocument(back[i]!, p.patch));
          expect(back.map((d) => d.toString({ lineWidth: 0 })).join(''), 'inject then uninject gives the input back').toBe(
            (parseAllDocuments(input) as Document[]).map((d) => d.toString({ lineWidth: 0 })).join(''),
          );
        }
      });
    });
  }
});
