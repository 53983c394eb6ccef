// The RBAC grants exactly the API calls in src/kube/permissions.ts: nothing missing (the code
// would get 403), nothing extra (least privilege). Compared verb by verb, per namespace.

import { describe, expect, it } from 'vitest';
import { SELF_MANAGED_SECRET_NAME, SYSTEM_NAMESPACE, WEBHOOK_CONFIGURATION_NAME } from '../../src/constants.js';
import { AGENT_API_PERMISSIONS, API_PERMISSIONS, type Feature, grantKey, permissionGrants } from '../../src/kube/permissions.js';
import { type K8sObject, find, render } from './render.js';

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

/** Everything the webhook's (or another workload's) ServiceAccount is granted, as grant keys. */
function grantsOf(objects: K8sObject[], kind = 'Deployment', name = 'podvpn-webhook'): string[] {
  const deployment = find(objects, kind, name, SYSTEM_NAMESPACE);
  const sa = deployment.spec.template.spec.serviceAccountName as string;
  const boundTo = (b: K8sObject): boolean =>
    (b.subjects as Array<{ kind: string; name: string; namespace?: string }>).some(
      (s) => s.kind === 'ServiceAccount' && s.name === sa && s.namespace === SYSTEM_NAMESPACE,
    );
  const out = new Set<string>();
  const add = (scope: string, rules: Rule[]): void => {
    for (const r of rules) {
      expect(r.nonResourceURLs, 'no non-resource URLs').toBeUndefined();
      for (const g of r.apiGroups ?? []) {
        for (const res of r.resources ?? []) {
          for (const v of r.verbs) {
            expect(v, 'no wildcard verbs').not.toBe('*');
            expect(res, 'no wildcard resources').not.toBe('*');
            out.add(grantKey(scope, g, res, r.resourceNames, v));
          }
        }
      }
    }
  };
  for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding' && boundTo(o))) {
    expect(b.roleRef.kind).toBe('ClusterRole');
    add('cluster', find(objects, 'ClusterRole', b.roleRef.name).rules as Rule[]);
  }
  for (const b of objects.filter((o) => o.kind === 'RoleBinding' && boundTo(o))) {
    expect(b.roleRef.kind, 'RoleBindings bind Roles, never ClusterRoles').toBe('Role');
    add(b.metadata.namespace!, find(objects, 'Role', b.roleRef.name, b.metadata.namespace).rules as Rule[]);
  }
  return [...out].sort();
}

describe('RBAC', () => {
  it('default install (self-managed certificates): exactly the listed API calls', () => {
    expect(grantsOf(render('.'))).toEqual(permissionGrants(API_PERMISSIONS));
  });

  it('agent overlay: the webhook unchanged, the node agent exactly its listed (read-only) calls', () => {
    expect(grantsOf(render('overlays/agent'))).toEqual(permissionGrants(API_PERMISSIONS));
    expect(grantsOf(render('overlays/agent'), 'DaemonSet', 'podvpn-agent')).toEqual(permissionGrants(AGENT_API_PERMISSIONS));
  });

  it('cert-manager overlay: the same minus the self-managed certificate calls', () => {
    const core: Feature[] = ['core'];
    expect(grantsOf(render('overlays/cert-manager'))).toEqual(permissionGrants(API_PERMISSIONS, core));
  });

  it('limits Secret reads and webhook patches to the objects podvpn owns', () => {
    const grants = grantsOf(render('.'));
    const secretReads = grants.filter((g) => g.includes('|secrets|') && !g.endsWith('|create'));
    expect(secretReads.length).toBeGreaterThan(0);
    for (const g of secretReads) expect(g).toBe(grantKey(SYSTEM_NAMESPACE, '', 'secrets', [SELF_MANAGED_SECRET_NAME], g.split('|')[4]!));
    for (const g of grants.filter((g) => g.includes('mutatingwebhookconfigurations'))) {
      expect(g.split('|')[3]).toBe(WEBHOOK_CONFIGURATION_NAME);
    }
    // Nothing lets the webhook read Secrets cluster-wide or write pods.
    expect(grants.filter((g) => g.startsWith('cluster||secrets'))).toEqual([]);
    expect(grants.filter((g) => g.includes('|pods|') && !g.endsWith('|list') && !g.endsWith('|watch'))).toEqual([]);
  });

  it('the list itself is well-formed: no name limits on create/list/watch, every entry explained', () => {
    for (const p of API_PERMISSIONS) {
      expect(p.usedBy.length, p.resource).toBeGreaterThan(10);
      if (p.resourceNames !== undefined) {
        for (const v of p.verbs) expect(['create', 'list', 'watch'], `${p.resource} ${v}`).not.toContain(v);
      }
    }
  });
});
