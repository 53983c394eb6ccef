import { describe, expect, it } from 'vitest';
import { nodeRangeCoverage, notRoutedFromSettings } from './coverage.js';

describe('node range coverage', () => {
  it("reads a pod's NOT_ROUTED_TO_GATEWAY_CIDRS from its settings", () => {
    expect(notRoutedFromSettings("# Written by podvpn\nK8S_DNS_IPS='10.96.0.10'\nNOT_ROUTED_TO_GATEWAY_CIDRS='10.244.0.0/24 10.96.0.0/12'\n")).toEqual([
      '10.244.0.0/24',
      '10.96.0.0/12',
    ]);
    expect(notRoutedFromSettings('nothing here')).toBeUndefined();
    expect(notRoutedFromSettings(undefined)).toBeUndefined();
  });

  it('a node added later: its range is in force now, but pods admitted before lack it', () => {
    const nodes = [
      { node: 'node-0', cidrs: ['10.42.0.0/24'] },
      { node: 'node-1', cidrs: ['10.42.1.0/24'] },
    ];
    const pods = [
      { namespace: 'downloads', name: 'old', notRouted: ['10.42.0.0/24', '10.43.0.0/16'] },
      { namespace: 'downloads', name: 'new', notRouted: ['10.42.0.0/23', '10.43.0.0/16'] },
      { namespace: 'downloads', name: 'offline' },
    ];
    expect(nodeRangeCoverage(nodes, ['10.42.0.0/23'], pods)).toEqual({
      notInForce: [],
      missingFromPods: [{ node: 'node-1', cidr: '10.42.1.0/24', pods: 1, example: 'downloads/old' }],
      podsMissing: 1,
    });
  });

  it('a range in force that is too narrow, and a covering one (the negative control)', () => {
    const nodes = [{ node: 'node-0', cidrs: ['10.244.5.0/24'] }];
    expect(nodeRangeCoverage(nodes, ['10.244.0.0/24'], []).notInForce).toEqual([{ node: 'node-0', cidr: '10.244.5.0/24' }]);
    expect(nodeRangeCoverage(nodes, ['10.244.0.0/16'], [{ namespace: 'a', name: 'b', notRouted: ['10.244.0.0/16'] }])).toEqual({
      notInForce: [],
      missingFromPods: [],
      podsMissing: 0,
    });
  });
});
