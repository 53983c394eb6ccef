// The agent image's promise that a read-only root filesystem is enough (root): the agent's compiled
// code routes a pod from a mount namespace whose / is read-only, with a fresh tmpfs on /tmp as the
// DaemonSet's emptyDir, exactly as manifests/agent mounts it. Every command the agent runs (nsenter,
// ip, bridge, nft, busybox udhcpc and the lease script) runs there. Afterwards /tmp is still empty: the
// commands keep no files at all.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunNetnsLab, type NetnsLab, startNetnsLab } from './netns-lab.mjs';
import { RANGES } from './fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const AGENT = join(ROOT, 'dist', 'agent', 'agent.js');

// Runs inside the read-only mount namespace: one reconcile round for one pod, and what it saw. The
// checkout is seen there through a read-only bind at RO_ROOT: a checkout under /tmp (a CI clone) would
// otherwise be hidden by the fresh /tmp.
const driver = (podNs: string) => `
import { readdirSync, writeFileSync } from 'node:fs';
const root = process.env.RO_ROOT;
const { Agent, execRun } = await import(root + '/dist/agent/agent.js');
let rootWritable = true;
try { writeFileSync('/.ro-probe', 'x'); } catch (err) { rootWritable = err.code !== 'EROFS'; }
let checkoutWritable = true;
try { writeFileSync(root + '/dist/.ro-probe', 'x'); } catch (err) { checkoutWritable = err.code !== 'EROFS'; }
const failed = [];
const routed = [];
const agent = new Agent(
  { netnsOf: () => ({ ok: true, nsPath: '/run/netns/${podNs}' }), run: (s) => execRun(s), now: () => Date.now() },
  { failed: (_p, m) => failed.push(m), routed: (_p, g) => routed.push(g) },
);
agent.udhcpcScript = root + '/src/agent/udhcpc-lease.sh';
const gw = { name: 'default', address: 'x', vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', dns: '172.16.0.1', mtu: 1370 };
await agent.reconcile(
  [{ uid: '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b', namespace: 'apps', name: 'web', gateway: 'default' }],
  new Map([['default', { config: gw, state: { name: 'default', podIP: '10.42.2.9', ready: true } }]]),
  ${JSON.stringify(RANGES)},
);
process.stdout.write(JSON.stringify({ rootWritable, checkoutWritable, failed, routed, tmp: readdirSync('/tmp') }));
`;

describe.skipIf(!canRunNetnsLab())('the agent with a read-only root filesystem (root)', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    expect(existsSync(AGENT), 'npm run build first').toBe(true);
    lab = await startNetnsLab(`ro${process.pid}`);
  });
  afterAll(async () => lab?.close());

  it('routes a pod with / read-only and only an empty /tmp writable, and leaves /tmp empty', () => {
    // The bind's mount point, made on the host before / turns read-only; only the namespace sees the mount.
    const keep = `/run/podvpn-ro-root-${process.pid}`;
    mkdirSync(keep, { recursive: true });
    let r;
    try {
      r = spawnSync(
        'unshare',
        [
          '--mount', '--propagation', 'private', '--', 'sh', '-c',
          'mount --bind "$2" "$3" && mount -o remount,bind,ro "$3" && mount -o remount,bind,ro / && mount -t tmpfs -o size=16m tmpfs /tmp && RO_ROOT="$3" exec "$0" --input-type=module -e "$1"',
          process.execPath, driver(lab.pod), ROOT, keep,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
    } finally {
      rmdirSync(keep);
    }
    expect(r.status, r.stderr).toBe(0);
    const seen = JSON.parse(r.stdout) as { rootWritable: boolean; checkoutWritable: boolean; failed: string[]; routed: string[]; tmp: string[] };
    expect(seen.rootWritable, 'control: the root filesystem really is read-only in there').toBe(false);
    expect(seen.checkoutWritable, 'control: the code the agent runs from is read-only too').toBe(false);
    expect(seen.failed).toEqual([]);
    expect(seen.routed).toEqual(['default']);
    expect(seen.tmp).toEqual([]);
    // The pod is routed for real: its default route is the tunnel and the gateway answers through it
    expect(lab.must(lab.pod, 'ip', '-4', 'route', 'show', 'default')).toMatch(/via 172\.16\.0\.1 dev vxlan0/);
    expect(lab.exec(lab.pod, ['ping', '-c3', '-i0.3', '-W2', '172.16.0.1']).status).toBe(0);
  });
});
