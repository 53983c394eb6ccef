// The exit probe's pure part: flags, the verdict over a round at an injected time, the HTTP answer,
// and that health.ts's reader takes the probe's answers as it takes gluetun's.
import { describe, expect, it } from 'vitest';
import { readHealthAnswer } from './health.js';
import { DEFAULT_PROBE_TARGETS, ProbeOptionError, type ProbeRound, STALE_INTERVALS, describeConnectError, parseProbeTarget, probeAnswer, probeVerdict, resolveProbeOptions } from './probe.js';

const PORT = 9998;
const round = (at: number, ...outcomes: Array<[string, boolean, string]>): ProbeRound => ({ at, outcomes: outcomes.map(([target, ok, detail]) => ({ target, ok, detail })) });

describe('resolveProbeOptions', () => {
  it('defaults: two anycast addresses on 443, 1 s interval, 0.8 s timeout, 0.0.0.0:9998, no drain', () => {
    expect(resolveProbeOptions({}, PORT)).toEqual({
      targets: [
        { host: '1.1.1.1', port: 443, label: '1.1.1.1:443' },
        { host: '9.9.9.9', port: 443, label: '9.9.9.9:443' },
      ],
      intervalMs: 1000,
      timeoutMs: 800,
      drainMs: 0,
      listen: { host: '0.0.0.0', port: 9998 },
    });
    expect(DEFAULT_PROBE_TARGETS).toEqual(['1.1.1.1:443', '9.9.9.9:443']);
  });

  it('reads seconds with decimals, IPv6 targets in brackets and a listen address', () => {
    const o = resolveProbeOptions({ targets: ['198.51.100.80:80', '[2606:4700::1111]:443'], interval: '0.5', timeout: '0.25', listen: '[::]:0', drain: '15' }, PORT);
    expect(o.targets.map((t) => [t.host, t.port, t.label])).toEqual([
      ['198.51.100.80', 80, '198.51.100.80:80'],
      ['2606:4700::1111', 443, '[2606:4700::1111]:443'],
    ]);
    expect([o.intervalMs, o.timeoutMs, o.drainMs, o.listen]).toEqual([500, 250, 15_000, { host: '::', port: 0 }]);
    // A shorter interval alone brings the default timeout under it.
    expect(resolveProbeOptions({ interval: '0.5' }, PORT).timeoutMs).toBe(400);
  });

  it.each([
    [{ targets: ['cloudflare.com:443'] }, /--target "cloudflare.com:443": must be an IP address, not a name/],
    [{ targets: ['1.1.1.1'] }, /--target "1.1.1.1": must be IP:PORT/],
    [{ targets: ['1.1.1.1:0'] }, /port must be 1 to 65535/],
    [{ targets: ['1.1.1.1:70000'] }, /port must be 1 to 65535/],
    [{ targets: ['[1.1.1.1]:443'] }, /"1.1.1.1" is not an IPv6 address/],
    [{ targets: ['2606:4700::1111:443'] }, /must be IP:PORT or \[IPv6\]:PORT/],
    [{ targets: Array.from({ length: 9 }, (_, i) => `10.0.0.${i}:443`) }, /at most 8 times, got 9/],
    [{ interval: '0' }, /--interval must be a number of seconds from 0.1 to 60, got "0"/],
    [{ interval: '1s' }, /--interval must be a number of seconds/],
    [{ interval: '-1' }, /--interval must be a number of seconds/],
    [{ timeout: '1' }, /--timeout \(1 s\) must be shorter than --interval \(1 s\)/],
    [{ interval: '2', timeout: '3' }, /--timeout \(3 s\) must be shorter than --interval \(2 s\)/],
    [{ drain: 'soon' }, /--drain must be a number of seconds from 0 to 600/],
    [{ listen: '9998' }, /--listen "9998" must be HOST:PORT/],
  ])('refuses %j with a clear error', (raw, message) => {
    expect(() => resolveProbeOptions(raw, PORT)).toThrow(ProbeOptionError);
    expect(() => resolveProbeOptions(raw, PORT)).toThrow(message);
  });

  it('parses a target as written, trimming spaces', () => {
    expect(parseProbeTarget(' 9.9.9.9:443 ')).toEqual({ host: '9.9.9.9', port: 443, label: '9.9.9.9:443' });
  });
});

describe('probeVerdict (injected clock)', () => {
  const interval = 1000;
  const t0 = 1_000_000;

  it('is unhealthy before the first round, with the reason gluetun would give in its words', () => {
    expect(probeVerdict({ last: undefined, stopping: false }, t0, interval)).toEqual({ healthy: false, reason: 'probe did not run yet' });
  });

  it('is healthy when at least one target connected in the latest round', () => {
    const last = round(t0, ['1.1.1.1:443', false, 'timed out'], ['9.9.9.9:443', true, 'connected']);
    expect(probeVerdict({ last, stopping: false }, t0 + 10, interval)).toEqual({ healthy: true, reason: 'ok' });
  });

  it('names every target and why when none connected', () => {
    const last = round(t0, ['1.1.1.1:443', false, 'timed out'], ['9.9.9.9:443', false, 'refused']);
    expect(probeVerdict({ last, stopping: false }, t0, interval)).toEqual({ healthy: false, reason: 'no target answered: 1.1.1.1:443 timed out, 9.9.9.9:443 refused' });
  });

  it(`believes a round for ${STALE_INTERVALS} intervals and no longer (a stalled loop is not health)`, () => {
    const last = round(t0, ['1.1.1.1:443', true, 'connected']);
    expect(probeVerdict({ last, stopping: false }, t0 + STALE_INTERVALS * interval, interval).healthy).toBe(true);
    expect(probeVerdict({ last, stopping: false }, t0 + STALE_INTERVALS * interval + 1, interval)).toEqual({ healthy: false, reason: 'last probe round is stale (3001 ms old)' });
  });

  it('is unhealthy while the exit is stopping, whatever the last round said', () => {
    const last = round(t0, ['1.1.1.1:443', true, 'connected']);
    expect(probeVerdict({ last, stopping: true }, t0, interval)).toEqual({ healthy: false, reason: 'exit is stopping' });
  });
});

describe('probeAnswer and the reader in health.ts', () => {
  const healthy = { healthy: true, reason: 'ok' };
  const sick = { healthy: false, reason: 'no target answered: 1.1.1.1:443 timed out' };

  it("answers as gluetun's handler: GET 200 empty, 500 with the reason and a newline, 400 to other methods", () => {
    expect(probeAnswer('GET', healthy)).toEqual({ status: 200, body: '' });
    expect(probeAnswer('GET', sick)).toEqual({ status: 500, body: 'no target answered: 1.1.1.1:443 timed out\n' });
    for (const m of ['HEAD', 'POST', 'PUT', 'DELETE', undefined]) expect(probeAnswer(m, healthy)).toEqual({ status: 400, body: 'method not supported for healthcheck\n' });
  });

  it('reads back through readHealthAnswer as healthy / unhealthy with the reason', () => {
    const ok = probeAnswer('GET', healthy);
    expect(readHealthAnswer('vpn-a', ok.status, ok.body, 5)).toEqual({ exit: 'vpn-a', healthy: true, reason: 'ok', at: 5 });
    const bad = probeAnswer('GET', sick);
    expect(readHealthAnswer('vpn-a', bad.status, bad.body, 5)).toEqual({ exit: 'vpn-a', healthy: false, reason: sick.reason, at: 5, definitive: true });
  });

  it('words connect errors as a reason says them', () => {
    expect(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPERM', 'EADDRNOTAVAIL', undefined].map(describeConnectError)).toEqual([
      'refused',
      'timed out',
      'host unreachable',
      'network unreachable',
      'blocked by the firewall (EPERM)',
      'EADDRNOTAVAIL',
      'failed',
    ]);
  });
});
