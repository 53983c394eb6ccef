// Shared by the agent's tests (unit tests in src/agent and the root tests here). Not in src/: it is
// not part of the product, so it does not compile into dist/.

import type { ClusterRanges } from '../../src/cluster/ranges.js';

export const RANGES: ClusterRanges = {
  podCIDRs: ['10.42.0.0/16'],
  serviceCIDRs: ['10.43.0.0/16'],
  extraCIDRs: ['192.168.1.0/24'],
  dnsIPs: ['169.254.20.10'],
  sources: { podCIDRs: 'test', serviceCIDRs: 'test', dnsIPs: 'test' },
};
export const GW = { podIP: '10.42.2.9', vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', mtu: 1370 };
