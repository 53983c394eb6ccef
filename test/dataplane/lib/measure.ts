// Counter deltas around an action, and the no-leak check, shared by the lab's test files.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { type Background, fileHas, q, sleep, startBackground, stopBackground, tryRun, waitFor } from './exec.js';
import { Lab, type Snapshot } from './lab.js';

/**
 * If the run is interrupted (CI timeout, Ctrl-C) afterAll never runs: remove this prefix's lab by its
 * recorded PIDs and names on the way out. A no-op after a normal teardown; off with LAB_KEEP=1.
 */
export function emergencyDownOnExit(prefix: string): void {
  if (process.env.LAB_KEEP === '1') return;
  const down = () => {
    spawnSync('bash', [join(dirname(fileURLToPath(import.meta.url)), '..', 'down.sh'), prefix], { timeout: 20_000, stdio: 'ignore' });
  };
  process.once('exit', down);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      down();
      process.exit(130);
    });
  }
}

/**
 * A capture in the machine's own (root) network namespace for every range and port the lab uses:
 * the lab's packets must never appear there (nothing of the lab is attached to it).
 */
const ROOT_CAPTURE_FILTER =
  '(net 10.244.0.0/16 or net 10.96.0.0/12 or net 203.0.113.0/24 or net 198.51.100.0/24 or net 10.64.0.0/24 or net 172.16.0.0/24 or udp port 4789 or udp port 51820 or net 2001:db8::/32 or net fd00:10:244::/48)';

export class RootCapture {
  private bg: Background | undefined;
  readonly log: string;
  constructor(prefix: string) {
    this.log = `/run/podvpn-lab/${prefix}.rootcap`;
  }
  async start(): Promise<void> {
    mkdirSync('/run/podvpn-lab', { recursive: true });
    writeFileSync(this.log, '');
    // The machine's own traffic (its own addresses at either end) is not the lab's: a lab packet in
    // this namespace would carry lab addresses. (This machine talks to 203.0.113.80:443 itself.)
    const own = (await tryRun("ip -o addr show | awk '{print $4}' | cut -d/ -f1")).stdout.split('\n').filter((a) => a !== '');
    const filter = `${ROOT_CAPTURE_FILTER}${own.map((a) => ` and not host ${a}`).join('')}`;
    this.bg = startBackground('root-capture', `tcpdump -Z root -l -nn -q -i any ${q(filter)}`, this.log);
    writeFileSync(`${this.log}.pid`, `${this.bg.pid}\n`);
    await waitFor('the root-namespace capture', () => fileHas(this.log, 'listening on'), 10_000);
  }
  /** Stops the capture; the packet lines it saw. */
  async stop(): Promise<string[]> {
    if (this.bg) await stopBackground(this.bg);
    this.bg = undefined;
    const lines = existsSync(this.log) ? readFileSync(this.log, 'utf8').split('\n') : [];
    return lines.filter((l) => / IP6? /.test(l));
  }
}

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
  if (d.inetLeak > 0) log(`${name}: leaks seen so far at the internet host (src . dst . proto . sport . dport): ${await lab.leakSeen()}`);
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
