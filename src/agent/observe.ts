// Reading a pod's network state back from the kernel (pure parsers of `ip -j`, `bridge -j` and
// `nft -j` output). The agent keeps no state file: after a restart this is all it knows, and it is
// enough to decide (reconcile.ts) without disturbing a pod that is already routed.

import { FIREWALL_TABLE } from './firewall.js';
import { POD_LINK, TUNNEL } from './tunnel.js';

type Json = Record<string, unknown>;

function parseJson(text: string): unknown {
  const t = text.trim();
  return t === '' ? [] : JSON.parse(t);
}
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v.filter((x) => x !== null && typeof x === 'object') as Json[]) : []);


/** ip -d -j link show: names, MTUs, and each VXLAN link's id (the VNI; -d adds linkinfo). */
export function parseLinks(json: string): { names: string[]; mtu: Map<string, number>; vxlanId: Map<string, number> } {
  const links = arr(parseJson(json));
  const vxlanId = new Map<string, number>();
  for (const l of links) {
    const info = l.linkinfo as Json | undefined;
    const id = (info?.info_data as Json | undefined)?.id;
    if (info?.info_kind === 'vxlan' && typeof id === 'number') vxlanId.set(String(l.ifname), id);
  }
  return {
    names: links.map((l) => String(l.ifname)),
    mtu: new Map(links.map((l) => [String(l.ifname), Number(l.mtu)])),
    vxlanId,
  };
}

/** ip -j -4 route show (main table) */
export function parseRoutes(json: string): { eth0Gateway?: string; defaultViaTunnel?: string } {
  const routes = arr(parseJson(json));
  const out: { eth0Gateway?: string; defaultViaTunnel?: string } = {};
  for (const r of routes) {
    if (r.dst === 'default' && r.dev === TUNNEL && typeof r.gateway === 'string') out.defaultViaTunnel = r.gateway;
  }
  const eth0Default = routes.find((r) => r.dst === 'default' && r.dev === POD_LINK && typeof r.gateway === 'string');
  const eth0Any = routes.find((r) => r.dev === POD_LINK && typeof r.gateway === 'string');
  const gw = (eth0Default ?? eth0Any)?.gateway;
  if (typeof gw === 'string') out.eth0Gateway = gw;
  return out;
}

/** bridge -j fdb show dev vxlan0: the all-zeros entries' destinations (the gateway pod; two mid-repoint). */
export function parseFdbRemotes(json: string): string[] {
  return arr(parseJson(json))
    .filter((e) => e.mac === '00:00:00:00:00:00' && typeof e.dst === 'string')
    .map((e) => e.dst as string);
}

/** ip -j -4 addr show [dev vxlan0]: the first IPv4 address of `dev` (of any link when not given). */
export function parseAddress(json: string, dev?: string): string | undefined {
  for (const link of arr(parseJson(json))) {
    if (dev !== undefined && link.ifname !== dev) continue;
    for (const a of arr(link.addr_info)) if (a.family === 'inet' && typeof a.local === 'string') return a.local;
  }
  return undefined;
}

/**
 * nft -j list table inet podvpn (or list set ... cluster4): the elements of set cluster4 (family 4)
 * or cluster6 (family 6) as CIDRs.
 */
export function parseNftSet(json: string, family: 4 | 6): string[] {
  const doc = parseJson(json) as Json;
  const items = arr((doc as { nftables?: unknown }).nftables);
  const name = family === 4 ? 'cluster4' : 'cluster6';
  const set = items.map((i) => i.set as Json | undefined).find((s) => s !== undefined && s.table === FIREWALL_TABLE && s.name === name);
  const host = family === 4 ? 32 : 128;
  return arr(set?.elem ?? [])
    .map((e) => (e.prefix ? `${String((e.prefix as Json).addr)}/${String((e.prefix as Json).len)}` : undefined))
    .concat((Array.isArray(set?.elem) ? set.elem : []).filter((e): e is string => typeof e === 'string').map((a) => `${a}/${host}`))
    .filter((x): x is string => x !== undefined);
}

