import { describe, expect, it } from 'vitest';
import type { ClusterRanges } from '../cluster/ranges.js';
import { parseConfig } from '../config/schema.js';
import { clusterSearches, droppedNameservers, MAX_DNS_SEARCH_LIST_CHARS, MAX_DNS_SEARCH_PATHS, mergeSearches, searchesProblem } from './dns.js';
import { dnsConfig } from './patch-parts.js';
import { clientSettings } from './settings.js';
import type { Pod } from './types.js';

const OURS = clusterSearches('downloads', 'cluster.local');

describe('dnsConfig searches under the API server limits', () => {
  it('keeps ours first, then the user list in order, without duplicates', () => {
    expect(mergeSearches(OURS, ['corp.example', 'svc.cluster.local', 'corp.example', '', 7, 'lab.example'])).toEqual({
      searches: [...OURS, 'corp.example', 'lab.example'],
      overLimit: false,
    });
  });
  it('fills up to exactly 32 search paths, and flags the 33rd', () => {
    const fits = Array.from({ length: MAX_DNS_SEARCH_PATHS - OURS.length }, (_, i) => `s${i}.example`);
    expect(mergeSearches(OURS, fits)).toEqual({ searches: [...OURS, ...fits], overLimit: false });
    const over = mergeSearches(OURS, [...fits, 'one-more.example']);
    expect(over.overLimit).toBe(true);
    expect(over.searches).toHaveLength(MAX_DNS_SEARCH_PATHS);
  });
  it('counts characters as the API server does: the list joined by spaces, at most 2048', () => {
    const long = 'a'.repeat(MAX_DNS_SEARCH_LIST_CHARS - OURS.join(' ').length - 1);
    expect(mergeSearches(OURS, [long]).overLimit).toBe(false);
    expect(mergeSearches(OURS, [`${long}b`]).overLimit).toBe(true);
  });
  it('copies at most the limit however long the list is, and duplicates cost nothing', () => {
    const huge = Array.from({ length: 250_000 }, (_, i) => `s${i}`);
    expect(mergeSearches(OURS, huge).searches).toHaveLength(MAX_DNS_SEARCH_PATHS);
    const same = Array.from({ length: 250_000 }, () => 'corp.example');
    expect(mergeSearches(OURS, same)).toEqual({ searches: [...OURS, 'corp.example'], overLimit: false });
  });
  it('names the problem, with how many the user may keep', () => {
    expect(searchesProblem('downloads', 'cluster.local', ['corp.example'])).toBeUndefined();
    const problem = searchesProblem('downloads', 'cluster.local', Array.from({ length: 40 }, (_, i) => `s${i}`));
    expect(problem).toMatch(/40 entries.*32 search paths, 2048 characters.*at most 29 searches of your own/);
  });
});

describe('dropped nameservers, for the warning', () => {
  it('lists at most three, each clipped, and counts the rest', () => {
    expect(droppedNameservers(['1.1.1.1', '172.16.0.1'], '172.16.0.1')).toEqual(['1.1.1.1']);
    expect(droppedNameservers(Array.from({ length: 100_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`), '172.16.0.1')).toEqual([
      '10.0.0.0',
      '10.0.0.1',
      '10.0.0.2',
      'and 99997 more',
    ]);
    expect(droppedNameservers(['x'.repeat(10_000)], '172.16.0.1')[0]!.length).toBeLessThan(100);
    expect(droppedNameservers(undefined, '172.16.0.1')).toEqual([]);
  });
});

describe('the dropped-nameserver warning of the injected dnsConfig', () => {
  const config = parseConfig({});
  const gateway = config.gateways.default!;
  const ranges: ClusterRanges = { podCIDRs: ['10.42.0.0/16'], serviceCIDRs: ['10.43.0.0/16'], extraCIDRs: [], dnsIPs: ['10.43.0.10'], sources: { podCIDRs: 't', serviceCIDRs: 't', dnsIPs: 't' } };
  const warningFor = (nameservers: unknown[]): string[] => {
    const pod: Pod = { metadata: { name: 'app' }, spec: { containers: [{ name: 'app', image: 'x' }], dnsConfig: { nameservers: nameservers as string[] } } };
    return dnsConfig({ pod, namespace: 'downloads', gateway, settings: clientSettings(gateway, ranges), config }).warnings;
  };

  it('names each of three IPv6 nameservers and what replaced them, whole (the API server fits warnings, not the patch)', () => {
    const v6 = ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:0db8:0000:0000:0000:ff00:0042:8330', 'fd12:3456:789a:0001:0000:0000:0000:0053'];
    expect(warningFor(v6)).toEqual([`podvpn: dnsConfig nameservers ${v6.join(', ')} replaced by the VPN gateway's DNS`]);
  });

  it('stays bounded and never splits a character, however long or many the nameservers', () => {
    const [warning] = warningFor([`${'x'.repeat(49)}`, '\u{1F600}'.repeat(5000), ...Array.from({ length: 1000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`)]);
    // Three names of at most 64 characters each (clipped, with what was cut), the count of the rest.
    expect(warning!.length).toBeLessThan(400);
    expect(warning).toMatch(/and 999 more replaced by the VPN gateway's DNS$/);
    expect(warning, 'no lone surrogate (invalid UTF-8 on the wire)').not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });
});
