// Exit health, pure: the verdict from gluetun's health server's answer, and freshness. The fetcher and
// the poller against a stand-in server: test/exits/health.test.ts.
import { describe, expect, it } from 'vitest';
import { healthyExits, type HealthReading, readHealthAnswer, unreachable } from './health.js';

describe('readHealthAnswer', () => {
  it('200: healthy', () => expect(readHealthAnswer('vpn-a', 200, '', 1)).toEqual({ exit: 'vpn-a', healthy: true, reason: 'ok', at: 1 }));
  it("definitive: a 500, or the pod's address refusing or unreachable; not a timeout, a 408 or other statuses", () => {
    const err = (code: string) => Object.assign(new Error('fetch failed'), { cause: { code } });
    expect(readHealthAnswer('vpn-a', 500, 'x', 1).definitive).toBe(true);
    expect(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET'].map((c) => unreachable('vpn-a', err(c), 1).definitive)).toEqual([true, true, true, undefined]);
    expect(unreachable('vpn-a', Object.assign(new Error('aborted'), { name: 'TimeoutError' }), 1)).toEqual({ exit: 'vpn-a', healthy: false, reason: 'unreachable (timed out)', at: 1 });
    expect([408, 404, 503].map((st) => readHealthAnswer('vpn-a', st, '', 1).definitive)).toEqual([undefined, undefined, undefined]);
    expect(readHealthAnswer('vpn-a', 200, '', 1).definitive).toBeUndefined();
  });

  it("500: unhealthy, with gluetun's error text on one line", () => {
    expect(readHealthAnswer('vpn-a', 500, 'small periodic check: all check tries failed:\n ping 1.1.1.1: timeout\n', 2)).toEqual({
      exit: 'vpn-a',
      healthy: false,
      reason: 'small periodic check: all check tries failed: ping 1.1.1.1: timeout',
      at: 2,
      definitive: true,
    });
  });
  it('anything else: unhealthy, saying what came (a proxy, a wrong port)', () => {
    expect(readHealthAnswer('vpn-a', 404, 'not found', 3).reason).toBe('unexpected HTTP 404: not found');
    expect(readHealthAnswer('vpn-a', 204, '', 3).healthy).toBe(false);
  });
  it('clips a long body', () => expect(readHealthAnswer('vpn-a', 500, 'x'.repeat(5000), 0).reason).toHaveLength(200));
});

describe('healthyExits', () => {
  const r = (exit: string, healthy: boolean, at: number): [string, HealthReading] => [exit, { exit, healthy, reason: '', at }];
  const exits = ['vpn-a', 'vpn-b', 'vpn-c'];
  it('is undefined with no fresh reading (admission then ranks over all exits)', () => {
    expect(healthyExits(exits, new Map(), 100_000, 10_000)).toBeUndefined();
    expect(healthyExits(exits, new Map([r('vpn-a', true, 0)]), 100_000, 10_000)).toBeUndefined();
  });
  it('names the exits with a fresh 200; stale and unhealthy ones are out', () => {
    const readings = new Map([r('vpn-a', true, 95_000), r('vpn-b', false, 95_000), r('vpn-c', true, 60_000)]);
    expect(healthyExits(exits, readings, 100_000, 10_000)).toEqual(new Set(['vpn-a']));
  });
  it('is empty, not undefined, when every fresh reading is unhealthy', () => {
    expect(healthyExits(exits, new Map([r('vpn-a', false, 99_000)]), 100_000, 10_000)).toEqual(new Set());
  });
});

