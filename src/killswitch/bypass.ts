// NetworkPolicies only add allowances: another egress policy that selects routed pods and allows the
// internet voids the kill switch for them. This finds such policies (pure), so the reconciler can
// say so in the log and the webhook in a warning on every routed pod of that namespace.

import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyEgressRule, V1NetworkPolicySpec } from '@kubernetes/client-node';
import { CidrError, publicParts, subtractCidrs, parseCidr, formatCidr } from '../cidr/cidr.js';
import { LABEL_MANAGED_BY, LABEL_ROUTED, PRODUCT } from '../constants.js';

export interface EgressBypass {
  namespace: string;
  name: string;
  /** What it allows, for the log and the warning. */
  allows: string;
}

/**
 * Policies in `namespaces` (those with routed pods or opted in) that are not podvpn's, may select
 * routed pods, and allow egress to public addresses: a rule without `to` (any destination) or an
 * `ipBlock` that still covers public space after its `except`s. Pod and namespace selectors are
 * cluster peers and are not counted. Selectors that exclude routed pods (`podvpn.io/routed`
 * DoesNotExist) are not counted either; any other selector might match them.
 */
export function findEgressBypasses(policies: readonly V1NetworkPolicy[], namespaces: ReadonlySet<string>): EgressBypass[] {
  const found: EgressBypass[] = [];
  for (const policy of policies) {
    const namespace = policy.metadata?.namespace;
    const name = policy.metadata?.name;
    if (namespace === undefined || name === undefined || !namespaces.has(namespace)) continue;
    if (policy.metadata?.labels?.[LABEL_MANAGED_BY] === PRODUCT) continue;
    const spec: V1NetworkPolicySpec = policy.spec ?? {};
    const types = spec.policyTypes ?? (spec.egress !== undefined && spec.egress !== null ? ['Ingress', 'Egress'] : ['Ingress']);
    if (!types.includes('Egress')) continue;
    if (excludesRoutedPods(spec.podSelector)) continue;
    const allows = publicEgress(spec.egress ?? []);
    if (allows !== undefined) found.push({ namespace, name, allows });
  }
  return found.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

function excludesRoutedPods(selector: V1LabelSelector | undefined): boolean {
  return (selector?.matchExpressions ?? []).some((e) => e.key === LABEL_ROUTED && e.operator === 'DoesNotExist');
}

function publicEgress(rules: readonly V1NetworkPolicyEgressRule[]): string | undefined {
  for (const rule of rules) {
    const to = rule?.to ?? [];
    if (to.length === 0) return 'egress to any destination';
    for (const peer of to) {
      const block = peer?.ipBlock;
      if (block?.cidr === undefined) continue;
      try {
        const open = subtractCidrs([parseCidr(block.cidr)], (block.except ?? []).map((e) => parseCidr(e))).map(formatCidr);
        const exposed = publicParts(open);
        if (exposed.length > 0) return `egress to ${block.cidr}${block.except?.length ? ` except ${block.except.join(', ')}` : ''}, which covers public addresses`;
      } catch (err) {
        if (!(err instanceof CidrError)) throw err;
      }
    }
  }
  return undefined;
}
