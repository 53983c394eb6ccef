// The kill-switch policy of an exit group: one policy per namespace and group (the routed label is the
// group's name, whatever the pod's exit), which lets the group's routed pods reach every exit of the
// group by selector (Cilium does not match pod IPs against ipBlock) and adds nothing to what a
// single-exit gateway's policy allows. Which routed pods may reach an exit is the exit's side:
// examples/exit-group/group.yaml, tested in test/manifests/exit-group.test.ts (a pod of another group
// is kept out there: NetworkPolicy only allows, so the egress side cannot subtract other exits from
// "the cluster").
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { expectGoldenFile } from '../../test/golden.js';
import { LABEL_EXIT, LABEL_ROUTED } from '../constants.js';
import { buildKillSwitchPolicy } from '../killswitch/policy.js';
import { RANGES } from './fixtures.js';

describe('kill-switch policy of an exit group', () => {
  const policy = buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'vpn', ranges: RANGES });

  it('selects every routed pod of the group, whichever exit it leaves through (golden)', () => {
    expect(policy.spec.podSelector).toEqual({ matchLabels: { [LABEL_ROUTED]: 'vpn' } });
    expect(Object.keys(policy.spec.podSelector.matchLabels ?? {})).not.toContain(LABEL_EXIT);
    expectGoldenFile(`${import.meta.dirname}/testdata/killswitch-exit-group.golden.yaml`, stringify(policy));
  });

  it('reaches every exit pod (podvpn-system, any label) through the selector rule, as Cilium needs', () => {
    const selectorRules = policy.spec.egress.filter((r) => r.ports === undefined && r.to.some((p) => p.namespaceSelector !== undefined));
    expect(selectorRules).toEqual([{ to: [{ namespaceSelector: {} }] }]);
  });

  it("allows nothing a single-exit gateway's policy does not: the same rules, only the names differ", () => {
    const single = buildKillSwitchPolicy({ namespace: 'downloads', gateway: 'default', ranges: RANGES });
    expect(policy.spec.egress).toEqual(single.spec.egress);
    expect(policy.spec.policyTypes).toEqual(single.spec.policyTypes);
  });
});
