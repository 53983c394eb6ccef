import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertNoPublicRanges,
  CidrError,
  type Cidr,
  containsAddress,
  firstAddress,
  formatCidr,
  lastAddress,
  mergeCidrs,
  mergeCidrStrings,
  mergeCidrStringsStable,
  normalizeCidr,
  parseAddress,
  parseCidr,
  PublicRangeError,
  publicParts,
  subtractCidrs,
} from './cidr.js';

describe('parse and normalise', () => {
  it.each([
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['10.244.0.0/16', '10.244.0.0/16'],
    [' 192.168.1.77/24 ', '192.168.1.0/24'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['10.0.0.1/32', '10.0.0.1/32'],
    ['fd00:0:0:0::1/64', 'fd00::/64'],
    ['FD12:3456::/48', 'fd12:3456::/48'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeCidr(input)).toBe(expected);
  });

  it.each(['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'ten/8', '', '10.0.0/8', '0x0a.0.0.0/8', '::ffff:10.0.0.0/104'])(
    'refuses %j with a CidrError naming it',
    (bad) => {
      expect(() => parseCidr(bad, 'cluster.podCIDRs[0]')).toThrow(CidrError);
      expect(() => parseCidr(bad, 'cluster.podCIDRs[0]')).toThrow(/cluster\.podCIDRs\[0\]/);
    },
  );

  it('first and last addresses', () => {
    const c = parseCidr('10.0.0.0/30');
    expect(firstAddress(c)).toBe(parseAddress('10.0.0.0').network);
    expect(lastAddress(c)).toBe(parseAddress('10.0.0.3').network);
  });
});

describe('merge', () => {
  it.each([
    [['10.0.0.0/24', '10.0.0.0/24'], ['10.0.0.0/24']],
    [['10.0.0.0/16', '10.0.5.0/24'], ['10.0.0.0/16']],
    [['10.0.0.0/25', '10.0.0.128/25'], ['10.0.0.0/24']],
    [['10.0.1.0/24', '10.0.0.0/24', '10.0.2.0/24'], ['10.0.0.0/23', '10.0.2.0/24']],
    [['10.244.0.0/16', '10.96.0.0/12'], ['10.96.0.0/12', '10.244.0.0/16']],
    [['fd00::/64', '10.0.0.0/8', 'fd00::/48'], ['10.0.0.0/8', 'fd00::/48']],
    [[], []],
  ])('%j → %j', (input, expected) => {
    expect(mergeCidrStrings(input)).toEqual(expected);
  });

  it('stable order keeps the user order when nothing overlaps', () => {
    expect(mergeCidrStringsStable(['10.244.0.0/16', '10.96.0.0/12', '10.244.0.0/16'])).toEqual([
      '10.244.0.0/16',
      '10.96.0.0/12',
    ]);
    expect(mergeCidrStringsStable(['192.168.1.0/24', '10.0.1.0/24', '10.0.0.0/24'])).toEqual([
      '192.168.1.0/24',
      '10.0.0.0/23',
    ]);
  });
});

// A small universe so every address can be checked: ranges inside 10.0.0.0/24 (and one family-6
// twin), with prefixes that overlap, nest and touch often.
const arbSmallV4: fc.Arbitrary<Cidr> = fc
  .record({ offset: fc.integer({ min: 0, max: 255 }), prefix: fc.integer({ min: 24, max: 32 }) })
  .map(({ offset, prefix }) => parseCidr(`10.0.0.${offset}/${prefix}`));
const arbSmallV6: fc.Arbitrary<Cidr> = fc
  .record({ offset: fc.integer({ min: 0, max: 255 }), prefix: fc.integer({ min: 120, max: 128 }) })
  .map(({ offset, prefix }) => parseCidr(`fd00::${offset.toString(16)}/${prefix}`));
const base4 = parseAddress('10.0.0.0').network;
const base6 = parseAddress('fd00::').network;

describe('merge covers exactly the same addresses (property)', () => {
  it('every address in and around the universe is covered by the merge iff by the input', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(arbSmallV4, arbSmallV6), { maxLength: 12 }), (input) => {
        const merged = mergeCidrs(input);
        // Every address is compared; the disagreements are collected and asserted once per input
        // (an expect() per address cost more than the merge itself).
        const disagree: string[] = [];
        for (let i = -2n; i < 258n; i++) {
          if (containsAddress(merged, 4, base4 + i) !== containsAddress(input, 4, base4 + i)) disagree.push(`v4 +${i}`);
          if (containsAddress(merged, 6, base6 + i) !== containsAddress(input, 6, base6 + i)) disagree.push(`v6 +${i}`);
        }
        expect(disagree).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('the merge is minimal: disjoint, non-adjacent-mergeable, idempotent, normalised', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(arbSmallV4, arbSmallV6), { maxLength: 12 }), (input) => {
        const merged = mergeCidrs(input);
        expect(mergeCidrs(merged)).toEqual(merged);
        for (let i = 1; i < merged.length; i++) {
          const a = merged[i - 1]!;
          const b = merged[i]!;
          if (a.family === b.family) expect(lastAddress(a) < firstAddress(b)).toBe(true);
        }
        for (const m of merged) expect(normalizeCidr(formatCidr(m))).toBe(formatCidr(m));
        expect(merged.length).toBeLessThanOrEqual(Math.max(input.length, 0) * 16);
      }),
      { numRuns: 300 },
    );
  });

  it('wide random ranges: boundary addresses agree', () => {
    const arbV4 = fc
      .record({ a: fc.integer({ min: 0, max: 0xffffffff }), prefix: fc.integer({ min: 0, max: 32 }) })
      .map(({ a, prefix }) => parseCidr(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${prefix}`));
    fc.assert(
      fc.property(fc.array(arbV4, { maxLength: 8 }), (input) => {
        const merged = mergeCidrs(input);
        const probes = input.flatMap((c) => [firstAddress(c) - 1n, firstAddress(c), lastAddress(c), lastAddress(c) + 1n]);
        for (const p of probes) {
          if (p < 0n || p > 0xffffffffn) continue;
          expect(containsAddress(merged, 4, p)).toBe(containsAddress(input, 4, p));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('negative control: the same property fails for a merge that drops one address', () => {
    // A broken merge: drops the last address of the first range it returns.
    const broken = (input: Cidr[]): Cidr[] => {
      const m = mergeCidrs(input);
      const first = m[0];
      if (first === undefined) return m;
      return [...subtractCidrs([first], [{ family: first.family, network: lastAddress(first), prefix: first.family === 4 ? 32 : 128 }]), ...m.slice(1)];
    };
    const result = fc.check(
      fc.property(fc.array(fc.oneof(arbSmallV4, arbSmallV6), { maxLength: 12 }), (input) => {
        const merged = broken(input);
        for (let i = -2n; i < 258n; i++) {
          if (containsAddress(merged, 4, base4 + i) !== containsAddress(input, 4, base4 + i)) return false;
          if (containsAddress(merged, 6, base6 + i) !== containsAddress(input, 6, base6 + i)) return false;
        }
        return true;
      }),
      { numRuns: 100 },
    );
    expect(result.failed).toBe(true);
  });
});

describe('public-range guard', () => {
  it('private ranges have no public parts', () => {
    expect(publicParts(['10.244.0.0/16', '10.96.0.0/12', '192.168.1.0/24', '100.64.0.0/10', 'fd00::/64'])).toEqual([]);
  });

  it('finds the public part of a range that is partly public', () => {
    expect(publicParts(['172.0.0.0/8'])).toContain('172.0.0.0/12');
    expect(publicParts(['172.0.0.0/8'])).not.toContain('172.16.0.0/12');
    expect(publicParts(['0.0.0.0/0']).length).toBeGreaterThan(0);
    expect(publicParts(['2001:db8::/32'])).toEqual(['2001:db8::/32']);
  });

  it('refuses a public range with the source and how to force it', () => {
    const attempt = () =>
      assertNoPublicRanges(
        [
          { range: '10.0.0.0/8', source: 'config cluster.podCIDRs' },
          { range: '8.8.8.0/24', source: 'config cluster.extraAllowedCIDRs' },
        ],
        { allowPublicRanges: false },
      );
    expect(attempt).toThrow(PublicRangeError);
    expect(attempt).toThrow(/8\.8\.8\.0\/24 \(from config cluster\.extraAllowedCIDRs\)/);
    expect(attempt).toThrow(/allowPublicRanges: true/);
    expect(attempt).not.toThrow(/10\.0\.0\.0\/8/);
  });

  it('allows it when forced, and allows private ranges without force', () => {
    expect(() => assertNoPublicRanges([{ range: '0.0.0.0/0', source: 'x' }], { allowPublicRanges: true })).not.toThrow();
    expect(() =>
      assertNoPublicRanges([{ range: '192.168.0.0/16', source: 'x' }], { allowPublicRanges: false }),
    ).not.toThrow();
  });
});
