// The agent's exit verdicts, on an injected clock: two failed probe polls in a row make an exit
// unhealthy; the pod's state (gone, not Ready, terminating) decides first; an exit whose probe never
// answered (manifests without it) is judged by Ready alone.
import { describe, expect, it } from 'vitest';
import { readHealthAnswer, unreachable } from '../exits/health.js';
import type { ExitPodState } from './cluster-view.js';
import { exitVerdict, FAILURES_TO_UNHEALTHY, type ProbeMemory, PROBE_INTERVAL_MS, probeURL, recordPoll, SILENT_FAILURES_TO_UNHEALTHY, STALE_POLLS } from './exit-health.js';

const POD: ExitPodState = { name: 'vpn-a', podIP: '10.42.5.1', ready: true, vxlanId: 101, terminating: false };
const ok = (at: number) => readHealthAnswer('vpn-a', 200, '', at);
const down = (at: number) => readHealthAnswer('vpn-a', 500, 'dial tcp 1.1.1.1:443: i/o timeout', at);
const silent = (at: number) => unreachable('vpn-a', Object.assign(new Error('x'), { cause: { code: 'ECONNREFUSED' } }), at);
/** No answer within the poll's timeout (fetch's AbortSignal.timeout): says nothing sure about the exit. */
const late = (at: number) => unreachable('vpn-a', Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }), at);
/** The probe server's own request timeout (408): its reader was slow. */
const slow = (at: number) => readHealthAnswer('vpn-a', 408, '', at);

/** Polls PROBE_INTERVAL_MS apart from t=0: [reading, answered] each. */
function polls(list: Array<'ok' | 'down' | 'silent' | 'late' | 'slow'>, podIP = POD.podIP!): { mem: ProbeMemory | undefined; at: number } {
  let mem: ProbeMemory | undefined;
  let at = 0;
  for (const p of list) {
    const r = { ok, down, silent, late, slow }[p](at);
    mem = recordPoll(mem, podIP, r, p === 'ok' || p === 'down' || p === 'slow');
    at += PROBE_INTERVAL_MS;
  }
  return { mem, at: at - PROBE_INTERVAL_MS };
}

describe('exit verdict', () => {
  it(`unhealthy after ${FAILURES_TO_UNHEALTHY} failed polls in a row, not after one; a 200 resets the count`, () => {
    const one = polls(['ok', 'down']);
    expect(exitVerdict(POD, one.mem, one.at)).toMatchObject({ state: 'healthy', by: 'probe' });
    const two = polls(['ok', 'down', 'down']);
    expect(exitVerdict(POD, two.mem, two.at)).toEqual({ name: 'vpn-a', state: 'unhealthy', reason: 'exit probe: dial tcp 1.1.1.1:443: i/o timeout', by: 'probe' });
    const back = polls(['ok', 'down', 'ok', 'down']);
    expect(exitVerdict(POD, back.mem, back.at).state).toBe('healthy');
    // a probe that answered once and then falls silent (it died with the exit): counted as failures
    const gone = polls(['ok', 'silent', 'silent']);
    expect(exitVerdict(POD, gone.mem, gone.at)).toMatchObject({ state: 'unhealthy', reason: 'exit probe: unreachable (ECONNREFUSED)' });
  });

  it(`no answer in time, or a 408, is not the exit's word: unhealthy only after ${SILENT_FAILURES_TO_UNHEALTHY} such polls in a row`, () => {
    // The exits lab at 30 pods: the agent's polls to all three exits timed out at once on a busy node.
    const two = polls(['ok', 'late', 'slow']);
    expect(exitVerdict(POD, two.mem, two.at)).toMatchObject({ state: 'healthy', by: 'probe' });
    const three = polls(['ok', 'late', 'slow', 'late']);
    expect(exitVerdict(POD, three.mem, three.at)).toMatchObject({ state: 'unhealthy', reason: 'exit probe: unreachable (timed out)' });
    // one 500 between silences is not two 500s in a row
    const mixed = polls(['ok', 'down', 'late']);
    expect(exitVerdict(POD, mixed.mem, mixed.at).state).toBe('healthy');
    // a 500 after silence: the 500s in a row decide (here one), or the run of failures (here three)
    expect(exitVerdict(POD, polls(['ok', 'late', 'down']).mem, two.at).state).toBe('healthy');
    expect(exitVerdict(POD, polls(['ok', 'late', 'late', 'down']).mem, three.at).state).toBe('unhealthy');
  });

  it('the pod decides first: gone, terminating (draining), not Ready', () => {
    const fine = polls(['ok']);
    expect(exitVerdict(undefined, fine.mem, fine.at)).toMatchObject({ state: 'unhealthy', reason: 'no gateway pod' });
    expect(exitVerdict({ ...POD, podIP: undefined }, fine.mem, fine.at)).toMatchObject({ state: 'unhealthy', reason: 'no gateway pod' });
    expect(exitVerdict({ ...POD, terminating: true }, fine.mem, fine.at)).toMatchObject({ state: 'draining' });
    expect(exitVerdict({ ...POD, ready: false }, fine.mem, fine.at)).toMatchObject({ state: 'unhealthy', reason: 'gateway pod not Ready' });
  });

  it('a probe that never answered (older manifests): Ready alone decides, however many polls failed', () => {
    const never = polls(['silent', 'silent', 'silent', 'silent']);
    expect(exitVerdict(POD, never.mem, never.at)).toEqual({ name: 'vpn-a', state: 'healthy', reason: 'ok', by: 'ready' });
    expect(exitVerdict({ ...POD, ready: false }, never.mem, never.at).state).toBe('unhealthy');
  });

  it("a new gateway pod (new IP) starts afresh: the old pod's failures and answers do not carry over", () => {
    const old = polls(['ok', 'down', 'down']);
    const replaced = { ...POD, podIP: '10.42.5.9' };
    expect(exitVerdict(replaced, old.mem, old.at)).toMatchObject({ state: 'healthy', by: 'ready' });
    const first = recordPoll(old.mem, '10.42.5.9', down(old.at + 1000), true);
    expect(first.failures).toBe(1);
    expect(exitVerdict(replaced, first, old.at + 1000)).toMatchObject({ state: 'healthy', by: 'probe' });
  });

  it('a stale reading (the poller stalled) is not believed: Ready alone', () => {
    const two = polls(['ok', 'down', 'down']);
    expect(exitVerdict(POD, two.mem, two.at + STALE_POLLS * PROBE_INTERVAL_MS).state).toBe('unhealthy');
    expect(exitVerdict(POD, two.mem, two.at + (STALE_POLLS + 1) * PROBE_INTERVAL_MS)).toMatchObject({ state: 'healthy', by: 'ready' });
  });

  it('probe URL: the exit pod address and port', () => {
    expect(probeURL('10.42.5.1', 9998)).toBe('http://10.42.5.1:9998/');
    expect(probeURL('fd00::5', 9998)).toBe('http://[fd00::5]:9998/');
  });
});
