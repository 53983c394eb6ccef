import { describe, expect, it } from 'vitest';
import { coalesced } from './coalesce.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('coalesced', () => {
  it('a trigger during a run makes one more run after it (not lost, not parallel)', async () => {
    let runs = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const seen: number[] = [];
    let state = 0;
    const trigger = coalesced(async () => {
      runs += 1;
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const at = state;
      await tick(30);
      seen.push(at);
      inFlight -= 1;
    });
    const first = trigger();
    await tick(5);
    state = 1; // an event arrives while the first run is in progress
    void trigger();
    void trigger(); // and another: still one more run
    await first;
    await tick(60);
    expect(runs).toBe(2);
    expect(maxInFlight).toBe(1);
    expect(seen).toEqual([0, 1]); // the second run saw the state the event brought
  });

  it('a run that throws is reported and does not stop later runs', async () => {
    const errors: unknown[] = [];
    let n = 0;
    const trigger = coalesced(async () => {
      n += 1;
      if (n === 1) throw new Error('boom');
    }, (e) => errors.push(e));
    await trigger();
    await trigger();
    expect(n).toBe(2);
    expect(errors).toHaveLength(1);
  });
});
