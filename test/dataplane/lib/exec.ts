// Bounded shell helpers for the lab. Every command has a timeout; every background process is
// started in its own process group and recorded, so the lab stops exactly what it started.

import { execFile, spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync, writeFileSync } from 'node:fs';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly result: RunResult,
  ) {
    super(`command failed (${result.code}): ${cmd}\n${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'CommandError';
  }
}

/**
 * Runs `bash -c cmd`, killed after timeoutMs. Never throws: the caller reads the code.
 *
 * --norc: node gives a child's stdin as a socket, and bash takes a socket on stdin for rshd or sshd:
 * at SHLVL 0 or 1 it then runs /etc/bash.bashrc and ~/.bashrc, even with -c. A test run started with
 * SHLVL unset (a tool's shell, npx) on a machine whose ~/.bashrc runs `pyenv init` so paid about 10
 * processes per command: 1.27 s for `bash -c echo` at a load of 8, against 15 ms with --norc. That,
 * not the kernel, was the exits lab's "reads that do not run" (README).
 */
export function tryRun(cmd: string, timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['--norc', '-c', cmd],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        let code = 0;
        if (err) {
          const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
          code = typeof e.code === 'number' ? e.code : e.killed ? 124 : 1;
        }
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * Commands that must succeed wait this long by default (tryRun's checks keep 10 s): right after
 * another lab file the kernel is still tearing its namespaces down, and every namespace and link
 * operation waits on it. An exits-lab run 11 minutes after a 30-pod run failed creating one pod
 * (its namespace, sysctl, link) at 10 s, while the same steps take milliseconds on a quiet kernel.
 */
export const MUST_SUCCEED_TIMEOUT_MS = 60_000;

/** Runs `bash -c cmd`; throws CommandError when it exits non-zero or times out. */
export async function run(cmd: string, timeoutMs = MUST_SUCCEED_TIMEOUT_MS): Promise<string> {
  const r = await tryRun(cmd, timeoutMs);
  if (r.code !== 0) throw new CommandError(cmd, r);
  return r.stdout;
}

/** Single-quotes a value for bash. */
export function q(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export interface Background {
  name: string;
  pid: number;
  log: string;
}

/**
 * Starts `cmd` detached with output to `log`. Detached is setsid(2): its own session, so its own
 * process group (stopBackground signals the group) and, where the kernel groups tasks by session
 * (sched_autogroup_enabled, Debian's default), its own scheduling group, which shares the CPU with
 * the other groups as one task would. `groupNice` sets that group's nice (see setGroupNice).
 */
export function startBackground(name: string, cmd: string, log: string, opts: { groupNice?: number } = {}): Background {
  const fd = openSync(log, 'a');
  try {
    const child = spawn('bash', ['-c', `exec ${cmd}`], { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${name}: ${cmd}`);
    if (opts.groupNice !== undefined) setGroupNice(child.pid, opts.groupNice);
    return { name, pid: child.pid, log };
  } finally {
    closeSync(fd);
  }
}

/**
 * The nice of the scheduling group (autogroup) of `pid`'s session, or undefined where the kernel has
 * none (built without CONFIG_SCHED_AUTOGROUP). With autogroups on, a task's own nice (nice(1)) only
 * ranks it inside its session: the CPU is first shared out between the sessions, one share each, so
 * the lab's observer (the test worker and all the reads it starts, one session) got the share of one
 * of the lab's 60-odd detached pods and programs. Measured on this two-core machine with 10 busy
 * sessions: 30 `nft list tables` side by side took 3.5 s, and 0.75 s with autogroups off.
 */
export function groupNice(pid: number | 'self'): number | undefined {
  try {
    const m = /nice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Sets the nice of `pid`'s session's scheduling group (root may lower it); a no-op without autogroups. */
export function setGroupNice(pid: number | 'self', nice: number): void {
  if (groupNice(pid) === undefined) return;
  writeFileSync(`/proc/${pid}/autogroup`, String(nice));
}

export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie (state Z) has stopped: it waits for its new parent to reap it.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Stops a process group we started: SIGTERM, then SIGKILL after graceMs. Tolerates a gone process. */
export async function stopBackground(bg: Background, graceMs = 1_000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-bg.pid, sig);
    } catch {
      try {
        process.kill(bg.pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  if (!isAlive(bg.pid)) return;
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(bg.pid)) return;
    await sleep(20);
  }
  signal('SIGKILL');
  await waitFor(`${bg.name} to die`, async () => !isAlive(bg.pid), 2_000).catch(() => undefined);
}

/** fn over items, at most `limit` at a time, results in the items' order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` every intervalMs until it returns true; throws after timeoutMs. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 25,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function fileHas(path: string, needle: string | RegExp): boolean {
  if (!existsSync(path)) return false;
  const text = readFileSync(path, 'utf8');
  return typeof needle === 'string' ? text.includes(needle) : needle.test(text);
}
