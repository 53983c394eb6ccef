// The in-pod firewall: goldens of the rendered ruleset, then (as root) nft parses and loads it in a
// throwaway network namespace and the kernel enforces it: cluster traffic on eth0 passes, the internet
// on eth0 and DNS to cluster DNS are dropped and counted, and an unprivileged process cannot remove it.

import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterRanges } from '../../src/cluster/ranges.js';
import { firewallRuleset } from '../../src/agent/firewall.js';
import { expectGoldenFile } from '../golden.js';

const DIR = join(import.meta.dirname, '..', '..', 'src', 'agent', 'testdata');
const ranges = (podCIDRs: string[], serviceCIDRs: string[], extraCIDRs: string[] = []): ClusterRanges => ({
  podCIDRs,
  serviceCIDRs,
  extraCIDRs,
  dnsIPs: ['10.43.0.10'],
  sources: { podCIDRs: 'test', serviceCIDRs: 'test', dnsIPs: 'test' },
});
const CASES: Record<string, ClusterRanges> = {
  'ipv4-k3s': ranges(['10.42.0.0/16'], ['10.43.0.0/16'], ['192.168.1.0/24']),
  'dual-stack': ranges(['10.244.0.0/16', 'fd00:10:244::/56'], ['10.96.0.0/12', 'fd00:10:96::/112']),
  'overlapping-ranges-merged': ranges(['10.0.0.0/8'], ['10.96.0.0/12'], ['10.1.0.0/16']),
};

function golden(name: string, text: string) {
  expectGoldenFile(join(DIR, `firewall-${name}.nft`), text);
}

describe('in-pod firewall ruleset', () => {
  for (const [name, r] of Object.entries(CASES)) {
    it(`golden: ${name}`, () => golden(name, firewallRuleset({ ranges: r, gatewayOverlayIP: '172.16.0.1' })));
  }
  it('IPv6 cluster ranges open only the IPv6 cluster set, never the tunnel', () => {
    const v4only = firewallRuleset({ ranges: CASES['ipv4-k3s']!, gatewayOverlayIP: '172.16.0.1' });
    expect(v4only).not.toMatch(/ip6 daddr/);
    expect(v4only).toMatch(/oifname "vxlan0" meta nfproto ipv4 accept/);
  });
});

const NS = `podvpn-fw-${process.pid}`;
const PEER = `podvpn-fwn-${process.pid}`;
const root = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0;
const inNs = (ns: string, ...args: string[]) => spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' });
const must = (ns: string, ...args: string[]) => {
  const r = inNs(ns, ...args);
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

describe.skipIf(!root)('in-pod firewall in a real network namespace (root)', () => {
  beforeAll(() => {
    for (const ns of [NS, PEER]) {
      spawnSync('ip', ['netns', 'del', ns]);
      expect(spawnSync('ip', ['netns', 'add', ns]).status).toBe(0);
      must(ns, 'ip', 'link', 'set', 'lo', 'up');
    }
    // The pod's eth0 is one end of a veth pair, the node (the CNI's next hop) the other.
    must(NS, 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'node0', 'netns', PEER);
    must(NS, 'ip', 'addr', 'add', '10.42.1.5/24', 'dev', 'eth0');
    must(NS, 'ip', 'link', 'set', 'eth0', 'up');
    must(NS, 'ip', 'route', 'add', 'default', 'via', '10.42.1.1');
    must(PEER, 'ip', 'addr', 'add', '10.42.1.1/24', 'dev', 'node0');
    must(PEER, 'ip', 'addr', 'add', '10.43.0.10/32', 'dev', 'node0');
    must(PEER, 'ip', 'addr', 'add', '198.51.100.7/32', 'dev', 'node0');
    must(PEER, 'ip', 'link', 'set', 'node0', 'up');
  });
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', NS]);
    spawnSync('ip', ['netns', 'del', PEER]);
  });

  it('nft -c accepts every golden ruleset', () => {
    for (const name of Object.keys(CASES)) {
      const r = spawnSync('ip', ['netns', 'exec', NS, 'nft', '-c', '-f', join(DIR, `firewall-${name}.nft`)], { encoding: 'utf8' });
      expect(r.stderr, name).toBe('');
      expect(r.status, name).toBe(0);
    }
  });

  it('loaded: the cluster answers on eth0, the internet and cluster DNS are dropped and counted; loading twice is the same', () => {
    const ruleset = firewallRuleset({ ranges: CASES['ipv4-k3s']!, gatewayOverlayIP: '172.16.0.1' });
    const file = join(tmpdir(), `podvpn-fw-${process.pid}.nft`);
    writeFileSync(file, ruleset);
    // Control: without the firewall the "internet" address (on the node side) answers over eth0
    expect(inNs(NS, 'ping', '-c1', '-W1', '198.51.100.7').status, 'control: reachable before the firewall').toBe(0);
    must(NS, 'nft', '-f', file);
    // Counters aside (the link's own IPv6 neighbour discovery is dropped and counted meanwhile)
    const rules = () => must(NS, 'nft', 'list', 'table', 'inet', 'podvpn').replace(/counter packets \d+ bytes \d+/g, 'counter');
    const before = rules();
    must(NS, 'nft', '-f', file);
    expect(rules()).toBe(before);
    rmSync(file);

    expect(inNs(NS, 'ping', '-c1', '-W1', '10.42.1.1').status, 'cluster next hop').toBe(0);
    const internet = inNs(NS, 'ping', '-c1', '-W1', '198.51.100.7');
    expect(internet.status, 'internet via eth0').not.toBe(0);
    // A DNS query to cluster DNS, in the cluster's range, still does not leave
    const dns = inNs(NS, 'busybox', 'nslookup', 'example.com', '10.43.0.10');
    expect(dns.status).not.toBe(0);
    const listing = must(NS, 'nft', 'list', 'table', 'inet', 'podvpn');
    expect(listing).toMatch(/counter packets [1-9]\d* bytes \d+ drop comment "dns outside the tunnel"/);
    expect(listing).toMatch(/counter packets [1-9]\d* bytes \d+ drop comment "not cluster, not tunnel"/);
  });

  it('an unprivileged process in the pod cannot flush or delete it', () => {
    const r = inNs(NS, 'setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
      'nft', 'delete', 'table', 'inet', 'podvpn');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
    expect(must(NS, 'nft', 'list', 'tables')).toMatch(/inet podvpn/);
  });
});
