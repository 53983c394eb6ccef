// The live kill-switch policies, shared by the guard (its own applies) and the reconciler (the watch).

import type { LivePolicy } from './client.js';

/** Live kill-switch policies by namespace/name: fed by the watch and by our own applies. */
export class PolicyCache {
  private readonly byKey = new Map<string, LivePolicy>();
  get(namespace: string, name: string): LivePolicy | undefined {
    return this.byKey.get(`${namespace}/${name}`);
  }
  set(policy: LivePolicy): void {
    const ns = policy.metadata?.namespace;
    const name = policy.metadata?.name;
    if (ns !== undefined && name !== undefined) this.byKey.set(`${ns}/${name}`, policy);
  }
  delete(namespace: string, name: string): void {
    this.byKey.delete(`${namespace}/${name}`);
  }
  list(): LivePolicy[] {
    return [...this.byKey.values()];
  }
}
