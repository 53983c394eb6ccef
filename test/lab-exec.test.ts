// The data-plane lab's command helpers (test/dataplane/lib/exec.ts), held to what the lab relies on.
// They run here, in the main test run, because they need neither root nor network namespaces.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapLimit, sleep, tryRun } from './dataplane/lib/exec.js';

describe('tryRun and a ~/.bashrc', () => {
  let home: string;
  const saved = { HOME: process.env.HOME, SHLVL: process.env.SHLVL };
  beforeAll(() => {
    // A HOME whose .bashrc leaves a mark, and SHLVL 0, as a test run started from a tool's shell has.
    home = mkdtempSync(join(tmpdir(), 'podvpn-bashrc-'));
    writeFileSync(join(home, '.bashrc'), `touch ${JSON.stringify(join(home, 'sourced'))}\n`);
    process.env.HOME = home;
    process.env.SHLVL = '0';
  });
  afterAll(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(home, { recursive: true, force: true });
  });

  it('control: bash -c from node, stdin a socket, SHLVL 0, runs ~/.bashrc (the cost tryRun avoids)', async () => {
    await new Promise<void>((resolve) => execFile('bash', ['-c', 'true'], () => resolve()));
    const sourced = existsSync(join(home, 'sourced'));
    rmSync(join(home, 'sourced'), { force: true });
    expect(sourced).toBe(true);
  });

  it('tryRun runs the command without ~/.bashrc', async () => {
    const r = await tryRun('echo ran');
    expect(r).toMatchObject({ code: 0, stdout: 'ran\n' });
    expect(existsSync(join(home, 'sourced'))).toBe(false);
  });
});

describe('mapLimit', () => {
  it('keeps the items\' order and never runs more than the limit at once', async () => {
    let running = 0;
    let most = 0;
    const out = await mapLimit([50, 10, 30, 0, 20, 40, 5], 3, async (ms) => {
      running += 1;
      most = Math.max(most, running);
      await sleep(ms);
      running -= 1;
      return ms * 2;
    });
    expect(out).toEqual([100, 20, 60, 0, 40, 80, 10]);
    expect(most).toBe(3);
  });

  it('an empty list, and a failure rejects', async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
    await expect(mapLimit([1, 2, 3], 2, async (n) => {
      if (n === 2) throw new Error('two');
      return n;
    })).rejects.toThrow('two');
  });
});
