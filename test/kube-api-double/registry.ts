// The resources the double serves: group/version/resource → kind, namespaced or not, and how an
// object of that kind is validated (the kubernetes-models JSON schema, like the API server's).

import { Namespace, Node, Pod, Secret, Service, ConfigMap, Event } from 'kubernetes-models/v1';
import { NetworkPolicy, ServiceCIDR } from 'kubernetes-models/networking.k8s.io/v1';
import { MutatingWebhookConfiguration, ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  /** Plural, lower case: the URL segment (`networkpolicies`). */
  resource: string;
  kind: string;
  namespaced: boolean;
  /** Throws with a message when the object is invalid (answered as 422 Invalid). */
  validate?: (obj: Record<string, unknown>) => void;
}

type Model = new (data: never) => { validate(): void };
const schema =
  (model: Model) =>
  (obj: Record<string, unknown>): void => {
    // managedFields and the other server-set fields are fine for the schema; validate a copy.
    new model(structuredClone(obj) as never).validate();
  };

export function apiVersionOf(r: Pick<ResourceType, 'group' | 'version'>): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

export const DEFAULT_RESOURCES: ResourceType[] = [
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, validate: schema(Namespace) },
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, validate: schema(Node) },
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, validate: schema(Pod) },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true, validate: schema(Service) },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true, validate: schema(ConfigMap) },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true, validate: schema(Secret) },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    resource: 'networkpolicies',
    kind: 'NetworkPolicy',
    namespaced: true,
    validate: schema(NetworkPolicy),
  },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    resource: 'servicecidrs',
    kind: 'ServiceCIDR',
    namespaced: false,
    validate: schema(ServiceCIDR),
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    resource: 'mutatingwebhookconfigurations',
    kind: 'MutatingWebhookConfiguration',
    namespaced: false,
    validate: schema(MutatingWebhookConfiguration),
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    resource: 'validatingwebhookconfigurations',
    kind: 'ValidatingWebhookConfiguration',
    namespaced: false,
    validate: schema(ValidatingWebhookConfiguration),
  },
];

/** The same list without a resource (a cluster that lacks an API, e.g. no ServiceCIDR before 1.33). */
export function withoutResource(resources: ResourceType[], group: string, version: string, resource: string): ResourceType[] {
  return resources.filter((r) => !(r.group === group && r.version === version && r.resource === resource));
}

/**
 * core/v1 Events, validated as kube-apiserver does for a create (the schema, and ValidateEvent's rule
 * that involvedObject.namespace is the Event's). Not in DEFAULT_RESOURCES: a test that serves Events
 * adds it, so the agent's "no Events API" path stays the default.
 */
export const EVENTS_RESOURCE: ResourceType = {
  group: '',
  version: 'v1',
  resource: 'events',
  kind: 'Event',
  namespaced: true,
  validate: (obj) => {
    new Event(structuredClone(obj) as never).validate();
    const involved = (obj.involvedObject ?? {}) as { namespace?: string };
    const ns = (obj.metadata as { namespace?: string }).namespace;
    if (involved.namespace !== ns) throw new Error(`involvedObject.namespace: Invalid value: "${involved.namespace ?? ''}": does not match event.namespace`);
  },
};
