// The names a serving certificate is issued for.

import { isIP } from 'node:net';
import { SYSTEM_NAMESPACE, WEBHOOK_SERVICE_NAME } from '../constants.js';

/** The webhook Service's DNS names, as the API server dials it. */
export function webhookDnsNames(namespace = SYSTEM_NAMESPACE, service = WEBHOOK_SERVICE_NAME): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/**
 * Names for a webhook that also runs outside a cluster (a local API server, a kind cluster dialling the
 * host, curl): the Service's names, localhost, the loopback addresses, and the listen address when it
 * is a specific IP (not 0.0.0.0 or ::, which no client dials).
 */
export function localServingNames(listenHost: string, namespace = SYSTEM_NAMESPACE): string[] {
  const host = listenHost.replace(/^\[(.*)\]$/, '$1');
  const listenIp = isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::' ? [host] : [];
  return [...new Set([...webhookDnsNames(namespace), 'localhost', '127.0.0.1', '::1', ...listenIp])];
}
