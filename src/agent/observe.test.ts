// The parsers of what the agent reads back from a pod's namespace, on output captured from iproute2
// 6.1 and nftables 1.0.6 (Debian bookworm, the agent image's packages).

import { describe, expect, it } from 'vitest';
import { parseAddress, parseLinks, parseNftSet, parseRoutes } from './observe.js';

// `printf 'link show\nroute show\naddr show\n' | ip -4 -j -force -batch -` in a routed pod (trimmed).
const BATCH = [
  '[{"ifindex":1,"ifname":"lo","mtu":65536,"operstate":"UNKNOWN"},{"ifindex":2,"ifname":"eth0","mtu":1450,"link_index":9},{"ifindex":3,"ifname":"vxlan0","mtu":1320},{"ifindex":4,"ifname":"podvpn-ready","mtu":1500}]',
  '[{"dst":"default","gateway":"172.16.0.1","dev":"vxlan0","flags":[]},{"dst":"10.42.0.0/16","gateway":"169.254.1.1","dev":"eth0","flags":["onlink"]},{"dst":"172.16.0.0/24","dev":"vxlan0","protocol":"kernel","scope":"link","prefsrc":"172.16.0.23","flags":[]}]',
  '[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},{"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.42.1.7","prefixlen":32}]},{"ifindex":3,"ifname":"vxlan0","addr_info":[{"family":"inet","local":"172.16.0.23","prefixlen":24}]}]',
  '',
].join('\n');

// `nft -j list table inet podvpn` (sets only; the chains and rules follow them in the real output).
const TABLE = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'podvpn', handle: 1 } },
    { set: { family: 'inet', name: 'cluster4', table: 'podvpn', type: 'ipv4_addr', flags: ['interval'], elem: ['10.43.0.10', { prefix: { addr: '10.42.0.0', len: 16 } }] } },
    { set: { family: 'inet', name: 'cluster6', table: 'podvpn', type: 'ipv6_addr', flags: ['interval'], elem: [{ prefix: { addr: 'fd00:10:42::', len: 56 } }] } },
    { chain: { family: 'inet', table: 'podvpn', name: 'output', handle: 3 } },
  ],
});

describe('observe: one ip batch, one nft table', () => {
  const [links, routes, addrs] = BATCH.split('\n');

  it('reads links, routes and the tunnel address from the three lines of one ip batch', () => {
    expect(parseLinks(links!).names).toEqual(['lo', 'eth0', 'vxlan0', 'podvpn-ready']);
    expect(parseLinks(links!).mtu.get('eth0')).toBe(1450);
    expect(parseRoutes(routes!)).toEqual({ defaultViaTunnel: '172.16.0.1', eth0Gateway: '169.254.1.1' });
    expect(parseAddress(addrs!, 'vxlan0')).toBe('172.16.0.23');
    // every link's addresses are in the batch's third line: without `dev` the first would be lo's
    expect(parseAddress(addrs!)).toBe('127.0.0.1');
    expect(parseAddress(addrs!, 'missing0')).toBeUndefined();
  });

  it("reads vxlan0's VXLAN id from `ip -d` (the exit a pod's tunnel goes to)", () => {
    // `ip -4 -d -j link show` on bookworm (iproute2 6.1), trimmed: a vxlan link's linkinfo
    const detailed =
      '[{"ifindex":1,"ifname":"lo","mtu":65536},{"ifindex":2,"ifname":"vxlan0","mtu":1320,"link_type":"ether","linkinfo":{"info_kind":"vxlan","info_data":{"id":101,"link":"eth0","port_range":{"low":0,"high":0},"port":4789,"learning":true,"ttl":0,"df":"unset","ageing":300}}},{"ifindex":3,"ifname":"podvpn-ready","mtu":1500,"linkinfo":{"info_kind":"bridge","info_data":{"forward_delay":1500}}}]';
    expect([...parseLinks(detailed).vxlanId]).toEqual([['vxlan0', 101]]);
    // without -d there is no linkinfo: no id, never a guess
    expect(parseLinks(links!).vxlanId.size).toBe(0);
  });

  it('takes each family from its own set of the whole table', () => {
    expect(parseNftSet(TABLE, 4)).toEqual(['10.42.0.0/16', '10.43.0.10/32']);
    expect(parseNftSet(TABLE, 6)).toEqual(['fd00:10:42::/56']);
  });

  it('reads nothing from an empty answer (the read failed)', () => {
    expect(parseLinks('').names).toEqual([]);
    expect(parseNftSet('', 4)).toEqual([]);
  });
});
