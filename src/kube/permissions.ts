// Every Kubernetes API call podvpn's modules are meant to make, in one list. The install manifests'
// RBAC (manifests/base/rbac.yaml) must grant exactly these, no more: test/manifests compares them
// rule by rule. A module that starts calling something new adds it here first, then to the RBAC.

import { SELF_MANAGED_SECRET_NAME, SYSTEM_NAMESPACE, WEBHOOK_CONFIGURATION_NAME } from '../constants.js';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/**
 * Which part of podvpn needs the call. `self-managed-certs` is dropped when certificates come from
 * cert-manager (manifests/overlays/cert-manager removes those rules).
 */
export type Feature = 'core' | 'self-managed-certs';

export interface ApiPermission {
  /** '' is the core group. */
  apiGroup: string;
  resource: string;
  verbs: Verb[];
  /** A namespace, or 'cluster' for every namespace / cluster-scoped objects (a ClusterRole). */
  scope: string;
  /** Limit to these object names (never possible for create, list or watch). */
  resourceNames?: string[];
  feature: Feature;
  /** The module that makes the call, and why. */
  usedBy: string;
}

export const API_PERMISSIONS: readonly ApiPermission[] = [
  {
    apiGroup: '',
    resource: 'namespaces',
    verbs: ['get', 'list', 'watch'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'src/kube/namespace-cache.ts, the one namespace watch (admission and the kill-switch reconciler): opt-in labels, gateway annotation, Pod Security level (watch; get when the watch may lag)',
  },
  {
    apiGroup: '',
    resource: 'nodes',
    verbs: ['list'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'cluster range discovery: nodes spec.podCIDRs',
  },
  {
    apiGroup: '',
    resource: 'pods',
    verbs: ['list', 'watch'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'kill-switch reconciler: which namespaces still have routed pods (list); src/exits/load-watch.ts: pods per exit of an exit group, label podvpn.io/exit (list, watch; only with an exit group)',
  },
  {
    apiGroup: 'networking.k8s.io',
    resource: 'networkpolicies',
    // create: a server-side apply that creates the policy needs it besides patch.
    verbs: ['list', 'watch', 'create', 'patch', 'delete'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'kill-switch reconciler: the egress policy in every routed namespace',
  },
  {
    apiGroup: 'networking.k8s.io',
    resource: 'servicecidrs',
    verbs: ['list'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'cluster range discovery: the ServiceCIDR API',
  },
  {
    apiGroup: '',
    resource: 'services',
    verbs: ['create'],
    scope: SYSTEM_NAMESPACE,
    feature: 'core',
    usedBy: 'cluster range discovery: a dryRun=All Service create whose error names the service range',
  },
  {
    apiGroup: '',
    resource: 'services',
    verbs: ['get'],
    scope: 'kube-system',
    resourceNames: ['kube-dns'],
    feature: 'core',
    usedBy: 'cluster range discovery: the cluster DNS IP',
  },
  {
    apiGroup: '',
    resource: 'configmaps',
    verbs: ['get'],
    scope: 'kube-system',
    resourceNames: ['kubeadm-config', 'kube-proxy', 'cilium-config', 'calico-config'],
    feature: 'core',
    usedBy: "cluster range discovery: kubeadm podSubnet/serviceSubnet, kube-proxy's clusterCIDR, Cilium's cluster pool and mtu, Calico's veth_mtu",
  },
  {
    apiGroup: '',
    resource: 'configmaps',
    verbs: ['get'],
    // Flannel's manifest keeps it in namespace kube-flannel (older ones in kube-system); a Role there
    // would need that namespace to exist at install.
    scope: 'cluster',
    resourceNames: ['kube-flannel-cfg'],
    feature: 'core',
    usedBy: "cluster range discovery: Flannel's net-conf.json Network",
  },
  {
    apiGroup: 'crd.projectcalico.org',
    resource: 'ippools',
    verbs: ['list'],
    scope: 'cluster',
    feature: 'core',
    usedBy: "cluster range discovery: Calico's IP pools",
  },
  {
    apiGroup: 'operator.tigera.io',
    resource: 'installations',
    verbs: ['get'],
    scope: 'cluster',
    resourceNames: ['default'],
    feature: 'core',
    usedBy: "pod MTU discovery: the Tigera operator's Installation spec.calicoNetwork.mtu",
  },
  {
    apiGroup: '',
    resource: 'secrets',
    verbs: ['create'],
    scope: SYSTEM_NAMESPACE,
    feature: 'self-managed-certs',
    usedBy: 'src/tls/self-managed.ts: the first replica stores the CA and serving certificate',
  },
  {
    apiGroup: '',
    resource: 'secrets',
    verbs: ['get', 'update'],
    scope: SYSTEM_NAMESPACE,
    resourceNames: [SELF_MANAGED_SECRET_NAME],
    feature: 'self-managed-certs',
    usedBy: 'src/tls/self-managed.ts: reuse and renew the certificate (update with resourceVersion)',
  },
  {
    apiGroup: 'admissionregistration.k8s.io',
    resource: 'mutatingwebhookconfigurations',
    verbs: ['get', 'patch'],
    scope: 'cluster',
    resourceNames: [WEBHOOK_CONFIGURATION_NAME],
    feature: 'self-managed-certs',
    usedBy: "src/tls/self-managed.ts: keep our own webhook configuration's caBundle current",
  },
];

/** One grant per verb, as a comparable string: `<scope>|<group>|<resource>|<names>|<verb>`. */
export function permissionGrants(perms: readonly ApiPermission[], features?: readonly Feature[]): string[] {
  const out = new Set<string>();
  for (const p of perms) {
    if (features !== undefined && !features.includes(p.feature)) continue;
    for (const verb of p.verbs) out.add(grantKey(p.scope, p.apiGroup, p.resource, p.resourceNames, verb));
  }
  return [...out].sort();
}

export function grantKey(scope: string, apiGroup: string, resource: string, resourceNames: readonly string[] | undefined, verb: string): string {
  const names = resourceNames === undefined || resourceNames.length === 0 ? '*' : [...resourceNames].sort().join(',');
  return `${scope}|${apiGroup}|${resource}|${names}|${verb}`;
}

/**
 * The podvpn node agent's API calls (manifests/agent/agent.yaml, ClusterRole podvpn-agent), held to
 * its RBAC by test/manifests/rbac.test.ts like the webhook's. Read-only: the agent writes nothing
 * through the API; everything it changes is inside pods' network namespaces on its own node.
 */
export const AGENT_API_PERMISSIONS: readonly ApiPermission[] = [
  {
    apiGroup: '',
    resource: 'pods',
    verbs: ['list', 'watch'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'podvpn-agent: routed pods on its node (fieldSelector spec.nodeName), the gateway pods (IP, Ready), and with an exit group every pod labelled podvpn.io/exit (the group\'s loads)',
  },
  {
    apiGroup: '',
    resource: 'pods',
    verbs: ['patch'],
    scope: 'cluster',
    feature: 'core',
    usedBy: "podvpn-agent (exit groups): the label podvpn.io/exit of its own node's pods it moves to another exit (failover, drain); a merge patch naming the pod's uid",
  },
  {
    apiGroup: '',
    resource: 'events',
    verbs: ['create'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'podvpn-agent (exit groups): an Event on each pod it moves (ExitFailover, ExitDrain, ExitAssigned)',
  },
  {
    apiGroup: '',
    resource: 'nodes',
    verbs: ['list', 'watch'],
    scope: 'cluster',
    feature: 'core',
    usedBy: "podvpn-agent: nodes' spec.podCIDRs, so a node added later updates every routed pod's ranges",
  },
  {
    apiGroup: 'networking.k8s.io',
    resource: 'servicecidrs',
    verbs: ['list', 'watch'],
    scope: 'cluster',
    feature: 'core',
    usedBy: 'podvpn-agent: the service ranges when the config sets no cluster.serviceCIDRs (ServiceCIDR API, Kubernetes 1.33+)',
  },
];
