// The reply's warnings, fitted as the API server fits them (k8s.io/apiserver/pkg/endpoints/filters/
// warning.go): whole while their total stays under 4,096 runes, else each cut to 256 and the rest dropped.

import { describe, expect, it } from 'vitest';
import { buildResponse, fitWarnings, WARNING_ITEM_RUNES, WARNINGS_TOTAL_RUNES } from './review.js';

const runes = (s: string) => [...s].length;

describe('fitWarnings', () => {
  it('passes warnings whole while their total is under 4,096 runes (no cut at 120)', () => {
    const long = `dry run: podvpn would create NetworkPolicy ${'n'.repeat(63)}/podvpn-killswitch-default (the kill switch for gateway "default") before admitting this pod; nothing was written`;
    expect(long.length).toBeGreaterThan(200);
    expect(fitWarnings([long, 'short'])).toEqual([long, 'short']);
    const justUnder = ['a'.repeat(2000), 'b'.repeat(2095)];
    expect(fitWarnings(justUnder)).toEqual(justUnder);
  });

  it('beyond 4,096 runes in total: each cut to 256 runes, and what does not fit is dropped', () => {
    const many = Array.from({ length: 40 }, (_, i) => `${i}:${'x'.repeat(300)}`);
    const fitted = fitWarnings(many);
    expect(fitted.length).toBeGreaterThan(0);
    expect(fitted.length).toBeLessThan(many.length);
    for (const w of fitted) expect(runes(w)).toBeLessThanOrEqual(WARNING_ITEM_RUNES);
    expect(fitted.reduce((n, w) => n + runes(w), 0)).toBeLessThan(WARNINGS_TOTAL_RUNES);
    expect(fitted[0]).toMatch(/^0:x+\.\.\.$/);
  });

  it('counts runes, not UTF-16 units: an emoji is one rune', () => {
    const w = '🙂'.repeat(WARNING_ITEM_RUNES + 10);
    const [cut] = fitWarnings([w, 'y'.repeat(WARNINGS_TOTAL_RUNES)]);
    expect(runes(cut!)).toBe(WARNING_ITEM_RUNES);
    expect(cut!.endsWith('🙂...')).toBe(true);
  });

  it('buildResponse uses it', () => {
    const w = `podvpn: ${'z'.repeat(500)}`;
    const body = buildResponse({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'u', { outcome: 'skipped', reason: 'already-injected', warnings: [w] }) as {
      response: { warnings: string[] };
    };
    expect(body.response.warnings).toEqual([w]);
  });
});
