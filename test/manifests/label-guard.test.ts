// The ValidatingAdmissionPolicy that keeps podvpn's marks on a running pod
// (manifests/components/routed-pod-guard). Its CEL is evaluated here with @bufbuild/cel (a conformance-tested CEL evaluator)
// on old/new pod pairs, as the API server binds them (object, oldObject as maps). Not run here: the
// API server's own compile and type-check of the expressions against the Pod schema, and its cost
// budget; a real cluster (or envtest) is needed for those.

import { run } from '@bufbuild/cel';
import { ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { describe, expect, it } from 'vitest';
import { ANNOTATION_CLIENT_SETTINGS, ANNOTATION_STATUS, LABEL_ROUTED } from '../../src/constants.js';
import { render } from './render.js';

const objects = render('.');
const policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy' && o.metadata.name === 'podvpn-routed-pod-guard')!;
const binding = objects.find((o) => o.kind === 'ValidatingAdmissionPolicyBinding')!;

type Pod = { metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } };
const toCel = (v: unknown): unknown =>
  Array.isArray(v) ? v.map(toCel) : v !== null && typeof v === 'object' ? new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)])) : v;

/** The messages of the validations that fail for this update (empty: allowed). */
function denials(oldPod: Pod, newPod: Pod): string[] {
  return (policy.spec.validations as Array<{ expression: string; message: string }>)
    .filter((v) => run(v.expression, { object: toCel(newPod), oldObject: toCel(oldPod) } as never) !== true)
    .map((v) => v.message);
}

const routed: Pod = {
  metadata: {
    name: 'web',
    labels: { app: 'web', [LABEL_ROUTED]: 'default' },
    annotations: { [ANNOTATION_STATUS]: '{"gateway":"default"}', [ANNOTATION_CLIENT_SETTINGS]: "GATEWAY_NAME='x'\n" },
  },
};
const edit = (f: (p: Pod) => void): Pod => {
  const p = structuredClone(routed);
  f(p);
  return p;
};

describe('the routed-pod guard (ValidatingAdmissionPolicy)', () => {
  it('is in both installs (default and cert-manager), valid against the v1 schema, bound with Deny, and matches only pod UPDATEs', () => {
    for (const dir of ['.', 'overlays/cert-manager']) {
      expect(render(dir).filter((o) => o.metadata.name === 'podvpn-routed-pod-guard').map((o) => o.kind).sort(), dir).toEqual([
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
      ]);
    }
    expect(() => new ValidatingAdmissionPolicy(policy as never).validate()).not.toThrow();
    expect(() => new ValidatingAdmissionPolicyBinding(binding as never).validate()).not.toThrow();
    expect(binding.spec).toEqual({ policyName: policy.metadata.name, validationActions: ['Deny'] });
    expect(policy.spec.failurePolicy).toBe('Fail');
    expect(policy.spec.matchConstraints.resourceRules).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods'] }]);
  });

  it('refuses removing or changing the routed label, the status or the client settings', () => {
    expect(denials(routed, edit((p) => delete p.metadata.labels![LABEL_ROUTED]))).toEqual([expect.stringMatching(/^the label podvpn.io\/routed/)]);
    expect(denials(routed, edit((p) => (p.metadata.labels![LABEL_ROUTED] = 'other')))).toHaveLength(1);
    expect(denials(routed, edit((p) => delete p.metadata.labels))).toHaveLength(1);
    expect(denials(routed, edit((p) => delete p.metadata.annotations![ANNOTATION_STATUS]))).toEqual([expect.stringMatching(/podvpn.io\/status/)]);
    expect(denials(routed, edit((p) => (p.metadata.annotations![ANNOTATION_CLIENT_SETTINGS] = "NOT_ROUTED_TO_GATEWAY_CIDRS='0.0.0.0/0'")))).toEqual([
      expect.stringMatching(/podvpn.io\/client-settings/),
    ]);
    expect(denials(routed, edit((p) => delete p.metadata.annotations))).toHaveLength(2);
  });

  it('allows every other update: other labels and annotations, an unrouted pod, adding the marks', () => {
    expect(denials(routed, routed)).toEqual([]);
    expect(denials(routed, edit((p) => (p.metadata.labels!.app = 'web2')))).toEqual([]);
    expect(denials(routed, edit((p) => (p.metadata.annotations!.note = 'x')))).toEqual([]);
    const plain: Pod = { metadata: { name: 'plain' } };
    expect(denials(plain, { metadata: { name: 'plain', labels: { a: 'b' } } })).toEqual([]);
    expect(denials({ metadata: { name: 'p', labels: { a: 'b' } } }, { metadata: { name: 'p' } })).toEqual([]);
    expect(denials(plain, routed), 'adding the marks only boxes a pod in').toEqual([]);
  });

  it('names the label and annotations podvpn uses (src/constants.ts)', () => {
    const text = JSON.stringify(policy.spec.validations);
    for (const name of [LABEL_ROUTED, ANNOTATION_STATUS, ANNOTATION_CLIENT_SETTINGS]) expect(text).toContain(`'${name}'`);
  });
});
