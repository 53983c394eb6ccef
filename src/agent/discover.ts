// Finding a pod's network namespace from the node (pure over a /proc tree): no CRI or runtime API.
// Every process of a pod (the sandbox's pause and each container) sits under the pod's cgroup, which
// the kubelet names from the pod UID; they all share the pod's network namespace. The agent (hostPID)
// scans /proc/<pid>/cgroup for that name and takes /proc/<pid>/ns/net of a match.
//
// The kubelet's pod cgroup, by cgroup driver (pkg/kubelet/cm/cgroup_manager_linux.go):
//   systemd:  .../kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/<ctr>
//             (Guaranteed: kubepods-pod<uid_>.slice; BestEffort: kubepods-besteffort-pod<uid_>.slice)
//   cgroupfs: .../kubepods/burstable/pod<uid>/<ctr>   (Guaranteed: kubepods/pod<uid>/<ctr>)
// and the container leaf, by runtime: containerd "cri-containerd-<id>.scope" (systemd) or "<id>"
// (cgroupfs); CRI-O "crio-<id>.scope" (systemd; plus "crio-conmon-<id>.scope" for its monitor, which
// runs in the HOST network namespace) or "crio-<id>" (cgroupfs). Only the pod segment is matched, so
// the leaf's form does not matter; conmon is excluded by the namespace check below.
// cgroup v1 lists one line per hierarchy ("4:memory:/kubepods/..."), v2 one line ("0::/kubepods...").
// Paths are relative to the reader's cgroup namespace: an agent in a private cgroupns sees
// "/../../kubepods..." prefixes, and nested nodes (kind, k3s in Docker) add a prefix; segments still match.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcFs {
  readdir(path: string): string[];
  readFile(path: string): string;
  readlink(path: string): string;
}

export const nodeProcFs: ProcFs = {
  readdir: (p) => readdirSync(p),
  readFile: (p) => readFileSync(p, 'utf8'),
  readlink: (p) => readlinkSync(p),
};

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The cgroup path segments that name this pod, for both drivers. */
export function podCgroupSegments(podUID: string): { cgroupfs: string; systemd: RegExp } {
  if (!UID.test(podUID)) throw new Error(`not a pod UID: ${podUID.slice(0, 64)}`);
  const underscored = podUID.replaceAll('-', '_');
  // A --cgroup-root (kind: /kubelet) prefixes every slice name: kubelet-kubepods-burstable-pod<uid_>.slice
  return { cgroupfs: `pod${podUID}`, systemd: new RegExp(`^([a-z0-9_.]+-)?kubepods(-besteffort|-burstable)?-pod${underscored}\\.slice$`) };
}

/** The cgroup paths of /proc/<pid>/cgroup, v1 and v2 alike. */
export function cgroupPaths(content: string): string[] {
  return content
    .split('\n')
    .map((line) => {
      const first = line.indexOf(':');
      const second = line.indexOf(':', first + 1);
      return first < 0 || second < 0 ? '' : line.slice(second + 1);
    })
    .filter((p) => p.startsWith('/'));
}

/** Whether a /proc/<pid>/cgroup content puts the process under the pod's cgroup (kubepods parent required). */
export function inPodCgroup(content: string, podUID: string): boolean {
  const seg = podCgroupSegments(podUID);
  return cgroupPaths(content).some((path) => {
    const parts = path.split('/');
    return parts.some((part, i) => {
      if (seg.systemd.test(part)) return true;
      // cgroupfs: pod<uid> directly under kubepods or under kubepods/<qos>
      if (part !== seg.cgroupfs) return false;
      return parts[i - 1] === 'kubepods' || (parts[i - 2] === 'kubepods' && ['burstable', 'besteffort'].includes(parts[i - 1] ?? ''));
    });
  });
}

export type NetnsResult =
  | { ok: true; pid: number; netns: string; nsPath: string; candidates: number }
  | { ok: false; reason: string };

/**
 * The pod's network namespace: the namespace shared by the pod's processes that is not the node's.
 * Fails, rather than guesses, when no process matches, when every match is in the node's namespace
 * (a hostNetwork pod, or only CRI-O's conmon), or when matches disagree. Bounded: at most maxPids.
 */
export function findPodNetns(
  procRoot: string,
  podUID: string,
  opts: { fs?: ProcFs; maxPids?: number; hostNetns?: string } = {},
): NetnsResult {
  return findPodsNetns(procRoot, [podUID], opts).get(podUID)!;
}

/**
 * findPodNetns for many pods in ONE pass over /proc (the agent's round: each /proc/<pid>/cgroup is
 * read once, whatever the number of pods).
 */
export function findPodsNetns(
  procRoot: string,
  podUIDs: string[],
  opts: { fs?: ProcFs; maxPids?: number; hostNetns?: string } = {},
): Map<string, NetnsResult> {
  const fs = opts.fs ?? nodeProcFs;
  const maxPids = opts.maxPids ?? 100_000;
  // The node's namespace: init's (the agent runs with hostPID), unless the caller knows better.
  const hostNetns = opts.hostNetns ?? safe(() => fs.readlink(join(procRoot, '1', 'ns', 'net')));
  const state = new Map(podUIDs.map((uid) => [uid, { matched: 0, byNetns: new Map<string, number[]>() }]));
  for (const uid of podUIDs) podCgroupSegments(uid); // throws on a malformed UID, before any read
  const pids = state.size === 0 ? [] : fs.readdir(procRoot).filter((d) => /^\d+$/.test(d)).slice(0, maxPids);
  for (const pid of pids) {
    const content = safe(() => fs.readFile(join(procRoot, pid, 'cgroup')));
    if (content === undefined || !content.includes('kubepods')) continue;
    for (const [uid, st] of state) {
      if (!inPodCgroup(content, uid)) continue;
      st.matched++;
      const netns = safe(() => fs.readlink(join(procRoot, pid, 'ns', 'net')));
      if (netns === undefined || netns === hostNetns) break; // exited, or conmon / hostNetwork
      st.byNetns.set(netns, [...(st.byNetns.get(netns) ?? []), Number(pid)]);
      break; // a process is in one pod
    }
  }
  const out = new Map<string, NetnsResult>();
  for (const [uid, { matched, byNetns }] of state) {
    if (matched === 0) out.set(uid, { ok: false, reason: `no process in pod ${uid}'s cgroup (not started yet, or not on this node)` });
    else if (byNetns.size === 0) out.set(uid, { ok: false, reason: `pod ${uid}'s processes are all in the node's network namespace` });
    else if (byNetns.size > 1) {
      out.set(uid, { ok: false, reason: `pod ${uid}'s processes are in ${byNetns.size} network namespaces: ${[...byNetns.keys()].join(', ')}` });
    } else {
      const [netns, members] = [...byNetns.entries()][0]!;
      const pid = Math.min(...members);
      out.set(uid, { ok: true, pid, netns, nsPath: join(procRoot, String(pid), 'ns', 'net'), candidates: members.length });
    }
  }
  return out;
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
