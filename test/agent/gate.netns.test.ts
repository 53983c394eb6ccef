// The gate as the kubelet runs it: the built entry, as UID 65532 with no capabilities, inside a real
// network namespace. Needs root to create the namespace (the lab machine and CI are root); without it
// the namespace case is reported as skipped, not passed.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const GATE = join(ROOT, 'dist', 'agent', 'gate.js');
const NS = `podvpn-gate-${process.pid}`;
const isRoot = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0;

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: env ?? process.env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err, ms: Date.now() - started }));
  });
}

const sh = (...args: string[]) => {
  const r = spawnSync('ip', ['netns', 'exec', NS, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
};

describe('podvpn-gate entry (built dist/agent/gate.js)', () => {
  beforeAll(() => {
    if (!existsSync(GATE)) throw new Error('run npm run build first (npm test does)');
  });

  it('without an agent: exits 1 after its timeout and names every missing piece', async () => {
    const r = await run(process.execPath, [GATE, '--gateway=172.16.0.1', '--timeout=1']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no vxlan0 link/);
    expect(r.err).toMatch(/no default route via 172\.16\.0\.1 dev vxlan0/);
    expect(r.err).toMatch(/no podvpn-ready marker/);
    expect(r.err).toMatch(/podvpn-agent DaemonSet running on this node/);
    expect(r.ms).toBeGreaterThanOrEqual(1000);
  });

  describe.skipIf(!isRoot)('in a real network namespace, as UID 65532 with no capabilities', () => {
    beforeAll(() => {
      spawnSync('ip', ['netns', 'del', NS]);
      expect(spawnSync('ip', ['netns', 'add', NS]).status).toBe(0);
      sh('ip', 'link', 'set', 'lo', 'up');
      sh('ip', 'link', 'add', 'vxlan0', 'type', 'vxlan', 'id', '42', 'dstport', '4789');
      sh('ip', 'addr', 'add', '172.16.0.7/24', 'dev', 'vxlan0');
      sh('ip', 'link', 'set', 'vxlan0', 'up');
      sh('ip', 'route', 'add', 'default', 'via', '172.16.0.1', 'dev', 'vxlan0');
    });
    afterAll(() => {
      spawnSync('ip', ['netns', 'del', NS]);
    });

    it('waits while the marker is missing, then exits 0 once the agent adds it', async () => {
      const gate = run('ip', [
        'netns', 'exec', NS,
        'setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs',
        process.execPath, GATE, '--gateway=172.16.0.1', '--timeout=20',
      ]);
      await new Promise((r) => setTimeout(r, 1500));
      sh('ip', 'link', 'add', 'podvpn-ready', 'type', 'bridge');
      const r = await gate;
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/routed through 172\.16\.0\.1/);
      expect(r.ms).toBeGreaterThanOrEqual(1500);
    });

    it('the unprivileged gate cannot create the marker itself (the pod cannot fake readiness)', () => {
      const r = spawnSync(
        'ip',
        ['netns', 'exec', NS, 'setpriv', '--reuid=65532', '--regid=65532', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
          'ip', 'link', 'add', 'fake-ready', 'type', 'bridge'],
        { encoding: 'utf8' },
      );
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/Operation not permitted/);
    });
  });
});
