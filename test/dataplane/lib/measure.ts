// Counter deltas around an action, and the no-leak check, shared by the lab's test files.

import { expect } from 'vitest';
import { sleep } from './exec.js';
import { Lab, type Snapshot } from './lab.js';

/** Runs `action` between two snapshots of `lab`'s counters; logs and returns the deltas. */
export async function measuredOn(lab: Lab, log: (line: string) => void, name: string, action: () => Promise<void>): Promise<Snapshot> {
  const before = await lab.snapshot();
  try {
    await action();
  } finally {
    // Late packets of a failed flow still count.
    await sleep(300);
  }
  const d = Lab.delta(before, await lab.snapshot());
  log(`${name}: ${JSON.stringify(d)}`);
  if (d.uplinkClear > 0 || d.gatewayClear > 0) log(`${name}: clear-text flows seen so far: ${await lab.clearSeen()}`);
  return d;
}

/** "No leak": nothing at the internet host but through the VPN exit, nothing in the clear on the uplink or out of the gateway. */
export function expectNoLeak(d: Snapshot | undefined): void {
  expect(d, 'scenario did not run').toBeDefined();
  expect({ inetLeak: d?.inetLeak, inetLeak6: d?.inetLeak6, uplinkClear: d?.uplinkClear, gatewayClear: d?.gatewayClear }).toEqual({
    inetLeak: 0,
    inetLeak6: 0,
    uplinkClear: 0,
    gatewayClear: 0,
  });
}
