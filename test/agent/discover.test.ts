// Pod network-namespace discovery over a fake /proc tree (a directory: cgroup files and ns/net
// symlinks whose targets read like the kernel's "net:[inode]"), then over the real /proc with a real
// process placed in real kubelet-shaped cgroups (v1 cgroupfs and v2 systemd) in a new network namespace.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroupPaths, findPodNetns, findPodsNetns, inPodCgroup } from '../../src/agent/discover.js';

const UID = '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b';
const U_ = UID.replaceAll('-', '_');
const OTHER = '11111111-2222-4333-8444-555555555555';

// Real /proc/<pid>/cgroup shapes per runtime, driver and cgroup version.
const SHAPES: Record<string, string> = {
  'containerd, systemd, cgroup v2': `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/cri-containerd-aa11.scope\n`,
  'containerd, systemd, cgroup v2, Guaranteed': `0::/kubepods.slice/kubepods-pod${U_}.slice/cri-containerd-aa11.scope\n`,
  'CRI-O, systemd, cgroup v2, BestEffort': `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${U_}.slice/crio-bb22.scope\n`,
  'containerd, cgroupfs, cgroup v1': [
    `12:pids:/kubepods/burstable/pod${UID}/cc33`,
    `11:memory:/kubepods/burstable/pod${UID}/cc33`,
    `1:name=systemd:/kubepods/burstable/pod${UID}/cc33`,
    '0::/',
  ].join('\n'),
  'CRI-O, cgroupfs, cgroup v1, Guaranteed': `4:memory:/kubepods/pod${UID}/crio-dd44\n3:cpu,cpuacct:/kubepods/pod${UID}/crio-dd44\n`,
  'containerd, systemd, cgroup v1': `10:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/cri-containerd-ee55.scope\n`,
  'kind (cgroup root /kubelet), systemd, v2': `0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${U_}.slice/cri-containerd-ff66.scope\n`,
  'agent in a private cgroup namespace, v2': `0::/../../kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/cri-containerd-aa11.scope\n`,
};

describe('pod cgroup matching', () => {
  for (const [name, content] of Object.entries(SHAPES)) {
    it(`matches ${name}`, () => {
      expect(inPodCgroup(content, UID)).toBe(true);
      expect(inPodCgroup(content, OTHER)).toBe(false);
    });
  }

  it('does not match look-alikes: another pod, a UID prefix, pod<uid> outside kubepods, the QoS slice itself', () => {
    expect(inPodCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}x.slice/a.scope`, UID)).toBe(false);
    expect(inPodCgroup(`4:memory:/kubepods/burstable/pod${UID}0/x`, UID)).toBe(false);
    expect(inPodCgroup(`4:memory:/user.slice/pod${UID}/x`, UID)).toBe(false);
    expect(inPodCgroup('0::/kubepods.slice/kubepods-burstable.slice\n', UID)).toBe(false);
    expect(() => inPodCgroup('0::/', '../../etc')).toThrow(/not a pod UID/);
  });

  it('reads v1 and v2 lines, including controller lists with commas and empty names', () => {
    expect(cgroupPaths('3:cpu,cpuacct:/a\n0::/b\ngarbage\n')).toEqual(['/a', '/b']);
  });
});

describe('findPodNetns over a fake /proc tree', () => {
  const root = mkdtempSync(join(tmpdir(), 'podvpn-proc-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const proc = (pid: number, cgroup: string, netns: string) => {
    mkdirSync(join(root, String(pid), 'ns'), { recursive: true });
    writeFileSync(join(root, String(pid), 'cgroup'), cgroup);
    symlinkSync(netns, join(root, String(pid), 'ns', 'net'));
  };
  proc(1, '0::/init.scope\n', 'net:[4026531840]');
  // CRI-O's conmon sits under the pod slice but in the node's namespace; pause and app in the pod's.
  proc(900, `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-conmon-bb22.scope\n`, 'net:[4026531840]');
  proc(901, `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-bb22.scope\n`, 'net:[4026532999]');
  proc(950, `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${U_}.slice/crio-cc33.scope\n`, 'net:[4026532999]');
  proc(960, `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${OTHER.replaceAll('-', '_')}.slice/crio-x.scope\n`, 'net:[4026533111]');
  mkdirSync(join(root, 'self')); // non-numeric entries are ignored
  mkdirSync(join(root, '970')); // a process that exited between readdir and read

  it("finds the pod's namespace, skipping conmon in the node's namespace and other pods", () => {
    expect(findPodNetns(root, UID)).toEqual({ ok: true, pid: 901, netns: 'net:[4026532999]', nsPath: join(root, '901', 'ns', 'net'), candidates: 2 });
    expect(findPodNetns(root, OTHER)).toMatchObject({ ok: true, pid: 960, netns: 'net:[4026533111]' });
  });

  it('says why when the pod has no process, or only processes in the node namespace, or several namespaces', () => {
    expect(findPodNetns(root, '99999999-2222-4333-8444-555555555555')).toMatchObject({ ok: false, reason: expect.stringMatching(/no process/) });
    // Without knowing the node's namespace, conmon's and the pod's disagree: refused, not guessed.
    expect(findPodNetns(root, UID, { hostNetns: 'net:[0]' })).toMatchObject({ ok: false, reason: expect.stringMatching(/2 network namespaces/) });
    const hostOnly = mkdtempSync(join(tmpdir(), 'podvpn-proc-'));
    mkdirSync(join(hostOnly, '5', 'ns'), { recursive: true });
    writeFileSync(join(hostOnly, '5', 'cgroup'), `4:memory:/kubepods/pod${UID}/x\n`);
    symlinkSync('net:[1]', join(hostOnly, '5', 'ns', 'net'));
    expect(findPodNetns(hostOnly, UID, { hostNetns: 'net:[1]' })).toMatchObject({ ok: false, reason: expect.stringMatching(/node's network namespace/) });
    rmSync(hostOnly, { recursive: true });
  });

  it('many pods in one pass: each file read once, the same answers as one by one', () => {
    let reads = 0;
    const counting = {
      readdir: (p: string) => readdirSync(p),
      readFile: (p: string) => (reads++, readFileSync(p, 'utf8')),
      readlink: (p: string) => readlinkSync(p),
    };
    const both = findPodsNetns(root, [UID, OTHER], { fs: counting });
    expect(reads).toBe(6); // each pid directory once: 1, 900, 901, 950, 960, and 970 (whose read fails)
    expect(both.get(UID)).toEqual(findPodNetns(root, UID));
    expect(both.get(OTHER)).toEqual(findPodNetns(root, OTHER));
  });

  it('bounds the scan', () => {
    expect(findPodNetns(root, UID, { maxPids: 1 })).toMatchObject({ ok: false });
  });
});

// A real process in a real network namespace, placed in real cgroups named as the kubelet names them.
const V1 = '/sys/fs/cgroup/pids';
const V2 = '/sys/fs/cgroup/unified';
const canCgroup = process.getuid?.() === 0 && existsSync(join(V1, 'cgroup.procs')) && spawnSync('unshare', ['--net', 'true']).status === 0;

describe.skipIf(!canCgroup)('findPodNetns on the real /proc (root: real cgroups and a real network namespace)', () => {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once('exit', r), c.kill('SIGKILL'))))));
    for (const d of dirs.reverse()) rmdirSync(d); // empty again once the process is gone
  });

  const start = async (cgroupDirs: string[]) => {
    const child = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
    children.push(child);
    await new Promise((r) => setTimeout(r, 200));
    // unshare execs sleep: the same pid, now in a new network namespace
    for (const dir of cgroupDirs) {
      let cur = '';
      for (const part of dir.split('/').filter(Boolean)) {
        cur += `/${part}`;
        if (!existsSync(cur)) {
          mkdirSync(cur);
          dirs.push(cur);
        }
      }
      writeFileSync(join(dir, 'cgroup.procs'), String(child.pid));
    }
    return child.pid!;
  };

  it('cgroupfs driver, cgroup v1 (containerd layout)', async () => {
    const uid = '0a1b2c3d-1111-4222-8333-444455556666';
    const pid = await start([join(V1, 'kubepods', 'burstable', `pod${uid}`, 'c0ffee')]);
    const found = findPodNetns('/proc', uid, { hostNetns: readlinkSync('/proc/self/ns/net') });
    expect(found).toMatchObject({ ok: true, pid });
    expect(found.ok && found.netns).not.toBe(readlinkSync('/proc/self/ns/net'));
  });

  it.skipIf(!existsSync(join(V2, 'cgroup.procs')))('systemd driver, cgroup v2 (CRI-O layout)', async () => {
    const uid = '0a1b2c3d-7777-4888-8999-aaaabbbbcccc';
    const slice = `kubepods-besteffort-pod${uid.replaceAll('-', '_')}.slice`;
    const pid = await start([join(V2, 'kubepods.slice', 'kubepods-besteffort.slice', slice, 'crio-beef.scope')]);
    expect(findPodNetns('/proc', uid, { hostNetns: readlinkSync('/proc/self/ns/net') })).toMatchObject({ ok: true, pid });
  });
});
