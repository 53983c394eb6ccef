// CIDR arithmetic, pure: parse, normalise, de-duplicate, merge, coverage, and the public-range guard.
// Addresses are bigints inside one family; IPv4 and IPv6 never mix (an IPv4-mapped IPv6 range is
// refused rather than silently treated as either).

import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The network address (host bits cleared). */
  network: bigint;
  prefix: number;
}

export class CidrError extends Error {
  readonly code = 'PODVPN_ERR_CIDR';
  constructor(message: string) {
    super(message);
    this.name = 'CidrError';
  }
}

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

const ALL_ONES = { 4: (1n << 32n) - 1n, 6: (1n << 128n) - 1n } as const;
// Every prefix's mask, computed once: range arithmetic asks for them per address and per range.
const MASKS = { 4: Array.from({ length: 33 }, (_, p) => computeMask(4, p)), 6: Array.from({ length: 129 }, (_, p) => computeMask(6, p)) } as const;

/** Parse `a.b.c.d/n` or `x::/n`. A bare address is refused: a range must say how wide it is. */
export function parseCidr(text: string, what = 'range'): Cidr {
  const value = text.trim();
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    // Pick the family first: ipaddr.parseCIDR tries IPv6 and throws for every IPv4 range (10x slower).
    parsed = value.includes(':') ? ipaddr.IPv6.parseCIDR(value) : ipaddr.IPv4.parseCIDR(value);
  } catch {
    throw new CidrError(`${what} "${text}" is not a CIDR (expected e.g. 10.244.0.0/16 or fd00::/64)`);
  }
  const [addr, prefix] = parsed;
  if (addr.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(value.split('/')[0] ?? '')) {
    throw new CidrError(`${what} "${text}" is not a CIDR: write IPv4 as four decimal parts`);
  }
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    throw new CidrError(`${what} "${text}" is an IPv4-mapped IPv6 range: write it as IPv4`);
  }
  const family: Family = addr.kind() === 'ipv4' ? 4 : 6;
  const raw = bytesToBigint(addr.toByteArray());
  return { family, network: raw & mask(family, prefix), prefix };
}

/** Parse a single address as a host range (/32 or /128). */
export function parseAddress(text: string): Cidr {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(text.trim());
  } catch {
    throw new CidrError(`"${text}" is not an IP address`);
  }
  const family: Family = addr.kind() === 'ipv4' ? 4 : 6;
  return { family, network: bytesToBigint(addr.toByteArray()), prefix: bits(family) };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.network)}/${c.prefix}`;
}

export function formatAddress(family: Family, value: bigint): string {
  const length = family === 4 ? 4 : 16;
  const bytes: number[] = [];
  let v = value;
  for (let i = 0; i < length; i++) {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** `10.1.2.3/8` → `10.0.0.0/8`; IPv6 in its shortest form. */
export function normalizeCidr(text: string): string {
  return formatCidr(parseCidr(text));
}

export function firstAddress(c: Cidr): bigint {
  return c.network;
}

export function lastAddress(c: Cidr): bigint {
  return c.network | ~mask(c.family, c.prefix) & allOnes(c.family);
}

export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return (
    outer.family === inner.family &&
    outer.prefix <= inner.prefix &&
    (inner.network & mask(outer.family, outer.prefix)) === outer.network
  );
}

export function containsAddress(ranges: readonly Cidr[], family: Family, address: bigint): boolean {
  return ranges.some((r) => r.family === family && address >= firstAddress(r) && address <= lastAddress(r));
}

/**
 * The smallest list of CIDRs covering exactly the union of the inputs: duplicates and ranges inside
 * another go, adjacent siblings join (10.0.0.0/25 + 10.0.0.128/25 → 10.0.0.0/24). Sorted: IPv4
 * first, then by address.
 */
export function mergeCidrs(ranges: readonly Cidr[]): Cidr[] {
  const out: Cidr[] = [];
  for (const family of [4, 6] as const) {
    const intervals = ranges
      .filter((r) => r.family === family)
      .map((r) => [firstAddress(r), lastAddress(r)] as [bigint, bigint])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const joined: Array<[bigint, bigint]> = [];
    for (const [lo, hi] of intervals) {
      const last = joined[joined.length - 1];
      if (last !== undefined && lo <= last[1] + 1n) {
        if (hi > last[1]) last[1] = hi;
      } else {
        joined.push([lo, hi]);
      }
    }
    for (const [lo, hi] of joined) out.push(...intervalToCidrs(family, lo, hi));
  }
  return out;
}

/** Parse, normalise and merge a list of CIDR strings. `what` names the list in errors. */
export function mergeCidrStrings(texts: readonly string[], what = 'range'): string[] {
  return mergeCidrs(texts.map((t) => parseCidr(t, what))).map(formatCidr);
}

/**
 * The merged set, each output range placed where its first contributing input appeared. For inputs
 * that neither overlap nor touch this is the input, de-duplicated and normalised, in the user's order.
 */
export function mergeCidrStringsStable(texts: readonly string[], what = 'range'): string[] {
  const parsed = texts.map((t) => parseCidr(t, what));
  const merged = mergeCidrs(parsed);
  const firstIndex = (m: Cidr) => parsed.findIndex((p) => containsCidr(m, p) || containsCidr(p, m));
  return merged
    .map((m) => ({ m, i: firstIndex(m) }))
    .sort((a, b) => a.i - b.i)
    .map(({ m }) => formatCidr(m));
}

/** The fewest CIDRs covering [lo, hi]. */
export function intervalToCidrs(family: Family, lo: bigint, hi: bigint): Cidr[] {
  const width = bits(family);
  const out: Cidr[] = [];
  let cur = lo;
  while (cur <= hi) {
    // The largest block aligned at cur that does not pass hi.
    let size = width;
    while (size > 0) {
      const blockBits = BigInt(width - size + 1);
      const blockSize = 1n << blockBits;
      if ((cur & (blockSize - 1n)) !== 0n || cur + blockSize - 1n > hi) break;
      size--;
    }
    out.push({ family, network: cur, prefix: size });
    cur += 1n << BigInt(width - size);
  }
  return out;
}

/** Subtract `minus` from `from`: what of `from` is not covered by any of `minus`. */
export function subtractCidrs(from: readonly Cidr[], minus: readonly Cidr[]): Cidr[] {
  const out: Cidr[] = [];
  for (const family of [4, 6] as const) {
    const holes = mergeCidrs(minus.filter((m) => m.family === family)).map(
      (m) => [firstAddress(m), lastAddress(m)] as const,
    );
    for (const r of mergeCidrs(from.filter((f) => f.family === family))) {
      let pieces: Array<[bigint, bigint]> = [[firstAddress(r), lastAddress(r)]];
      for (const [hlo, hhi] of holes) {
        const next: Array<[bigint, bigint]> = [];
        for (const [lo, hi] of pieces) {
          if (hhi < lo || hlo > hi) {
            next.push([lo, hi]);
            continue;
          }
          if (hlo > lo) next.push([lo, hlo - 1n]);
          if (hhi < hi) next.push([hhi + 1n, hi]);
        }
        pieces = next;
      }
      for (const [lo, hi] of pieces) out.push(...intervalToCidrs(family, lo, hi));
    }
  }
  return out;
}

/**
 * Address space that is not the public internet: a kill switch may allow these. Everything else is
 * public, and allowing any of it would let a routed pod reach the internet without the VPN.
 */
export const NON_PUBLIC_RANGES: readonly string[] = [
  '10.0.0.0/8', // RFC 1918
  '172.16.0.0/12', // RFC 1918
  '192.168.0.0/16', // RFC 1918
  '100.64.0.0/10', // RFC 6598 shared (CGNAT; Tailscale, some clusters)
  '169.254.0.0/16', // link-local (Istio ambient's ztunnel address)
  '127.0.0.0/8', // loopback
  'fc00::/7', // unique local
  'fe80::/10', // link-local
  '::1/128', // loopback
];

const NON_PUBLIC = NON_PUBLIC_RANGES.map((r) => parseCidr(r));

/** The parts of `ranges` that are public address space (empty when all are private). */
export function publicParts(ranges: readonly string[]): string[] {
  return subtractCidrs(
    ranges.map((r) => parseCidr(r)),
    NON_PUBLIC,
  ).map(formatCidr);
}

export class PublicRangeError extends Error {
  readonly code = 'PODVPN_ERR_PUBLIC_RANGE';
  constructor(
    message: string,
    readonly offending: Array<{ range: string; source: string; publicParts: string[] }>,
  ) {
    super(message);
    this.name = 'PublicRangeError';
  }
}

/**
 * The safety guard: refuse allowed ranges that cover public address space (they would open the kill
 * switch to the internet) unless the user forces it with `cluster.allowPublicRanges: true`.
 */
export function assertNoPublicRanges(
  ranges: ReadonlyArray<{ range: string; source: string }>,
  opts: { allowPublicRanges: boolean },
): void {
  if (opts.allowPublicRanges) return;
  const offending = ranges
    .map((r) => ({ ...r, publicParts: publicParts([r.range]) }))
    .filter((r) => r.publicParts.length > 0);
  if (offending.length === 0) return;
  const lines = offending.map(
    (o) => `${o.range} (from ${o.source}) covers public addresses ${summarise(o.publicParts)}`,
  );
  throw new PublicRangeError(
    `refusing to allow public address space in the kill switch: a routed pod could reach the internet ` +
      `without the VPN.\n  ${lines.join('\n  ')}\n` +
      `Fix the range, or set cluster.allowPublicRanges: true if the cluster really uses public addresses.`,
    offending,
  );
}

function summarise(parts: string[]): string {
  return parts.length <= 3 ? parts.join(', ') : `${parts.slice(0, 3).join(', ')} and ${parts.length - 3} more`;
}

function computeMask(family: Family, prefix: number): bigint {
  return (allOnes(family) << BigInt(bits(family) - prefix)) & allOnes(family);
}

function mask(family: Family, prefix: number): bigint {
  return MASKS[family][prefix] ?? computeMask(family, prefix);
}

function allOnes(family: Family): bigint {
  return ALL_ONES[family];
}

function bytesToBigint(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}
