// Rules that admission, the decision and the kill-switch reconciler must agree on, written once.

import type { Config } from '../config/schema.js';
import { ANNOTATION_GATEWAY, LABEL_INJECT, NAMESPACE_INJECT_VALUE } from '../constants.js';

/** A pod CREATE (not a subresource such as pods/ephemeralcontainers): the only review podvpn injects. */
export function isPodCreate(r: { operation: string; resource: string; subResource?: string | undefined }): boolean {
  return r.operation === 'CREATE' && r.resource === 'pods' && (r.subResource ?? '') === '';
}

/** Has the namespace opted in (label podvpn.io/inject=enabled)? */
export function namespaceOptedIn(labels: Readonly<Record<string, string>>): boolean {
  return labels[LABEL_INJECT] === NAMESPACE_INJECT_VALUE;
}

/**
 * The gateway a routed pod uses: the pod's annotation, else its namespace's, else the default. The
 * webhook asks it per pod; the reconciler per opted-in namespace (no pod annotations). String(): wire
 * input is not checked to be a string.
 */
export function gatewayNameFor(
  podAnnotations: Readonly<Record<string, string>>,
  namespaceAnnotations: Readonly<Record<string, string>> | undefined,
  config: Pick<Config, 'defaultGateway'>,
): string {
  return String(podAnnotations[ANNOTATION_GATEWAY] ?? namespaceAnnotations?.[ANNOTATION_GATEWAY] ?? config.defaultGateway);
}
