// The agent image (the Dockerfile's `agent` target) without a Docker engine: every command the agent's
// code invokes is provided by a Debian package the stage installs, at a path on the image's PATH; the
// files the code names (the udhcpc script, dist/agent/main.js, node) are where the stage copies them;
// the DaemonSet runs what the image holds, as the user the image says. The gate (agent mode's init
// container) runs in the webhook image: its command is checked against that image's layout too.
//
// COMMANDS is a static table (what `dpkg -S` answers on the image's Debian release). A test greps
// src/agent for the commands the code runs, so a new command without a row here (and a package in the
// Dockerfile) fails. On a machine of the same release the table itself is checked against dpkg.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UDHCPC_SCRIPT } from '../../src/agent/tunnel.js';
import { VERSION } from '../../src/constants.js';
import { gateCommand } from '../../src/inject/agent-patch.js';
import { parseConfig } from '../../src/config/schema.js';
import { REPO_ROOT, find, render } from '../manifests/render.js';

interface Provider {
  /** The Debian package that holds the binary. */
  pkg: string;
  /** Where the package puts it on Debian 12 (bookworm; /bin and /sbin are /usr/bin and /usr/sbin there). */
  path: string;
  /** Essential packages are in every Debian image whether or not the stage lists them. */
  essential?: boolean;
  /** For busybox: the applets the code calls. */
  applets?: string[];
}

const COMMANDS: Record<string, Provider> = {
  ip: { pkg: 'iproute2', path: '/sbin/ip' },
  bridge: { pkg: 'iproute2', path: '/sbin/bridge' },
  nft: { pkg: 'nftables', path: '/usr/sbin/nft' },
  nsenter: { pkg: 'util-linux', path: '/usr/bin/nsenter', essential: true },
  busybox: { pkg: 'busybox', path: '/bin/busybox', applets: ['udhcpc'] },
  // The udhcpc script's interpreter (#!/bin/sh): udhcpc execs the script
  sh: { pkg: 'dash', path: '/bin/sh', essential: true },
};

/** The commands a TypeScript source runs as Steps (`argv: ['cmd', ...]`), and the busybox applets. */
function invokedCommands(source: string): { commands: Set<string>; applets: Set<string> } {
  const commands = new Set([...source.matchAll(/argv:\s*\[\s*'([^']+)'/g)].map((m) => m[1]!));
  const applets = new Set([...source.matchAll(/'busybox',\s*'([^']+)'/g)].map((m) => m[1]!));
  return { commands, applets };
}

/** What the stage does not provide of what the code invokes (empty: all provided). */
function unprovided(used: { commands: Set<string>; applets: Set<string> }, installed: string[], path: string[]): string[] {
  const out: string[] = [];
  for (const cmd of used.commands) {
    const p = COMMANDS[cmd];
    if (p === undefined) {
      out.push(`${cmd}: no row in COMMANDS (which Debian package provides it?)`);
      continue;
    }
    if (!p.essential && !installed.includes(p.pkg)) out.push(`${cmd}: package ${p.pkg} is not installed by the agent stage`);
    if (!onPath(p.path, path)) out.push(`${cmd}: ${p.path} is not on the image's PATH`);
  }
  for (const applet of used.applets) {
    if (!COMMANDS.busybox!.applets!.includes(applet)) out.push(`busybox ${applet}: not a listed applet of Debian's busybox`);
  }
  return out;
}

/** Debian 12 is merged-/usr: /bin and /sbin are links to /usr/bin and /usr/sbin. */
const onPath = (file: string, path: string[]) => {
  const dir = posix.dirname(file);
  const merged = dir.replace(/^\/(s?bin)$/, '/usr/$1');
  return path.includes(dir) || path.includes(merged);
};

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
/** One stage's lines, by its `AS name`. */
function stage(name: string): string {
  const lines = dockerfile.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^FROM\\s+\\S+\\s+AS\\s+${name}\\s*$`, 'i').test(l));
  if (start < 0) throw new Error(`no stage ${name}`);
  const end = lines.findIndex((l, i) => i > start && /^FROM\s/.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}
const agentStage = stage('agent');
const aptInstalled = (text: string): string[] => {
  const joined = text.replace(/\\\n/g, ' ');
  const m = /apt-get install ([^&\n]+)/.exec(joined);
  return (m?.[1] ?? '').split(/\s+/).filter((w) => w !== '' && !w.startsWith('-'));
};
const imagePath = (/^ENV PATH=(\S+)$/m.exec(agentStage)?.[1] ?? '').split(':');
const workdir = /^WORKDIR (\S+)$/m.exec(agentStage)?.[1] ?? '';
/** COPY lines of the stage: source(s), destination (relative ones resolved against WORKDIR), flags. */
const copies = [...agentStage.matchAll(/^COPY ((?:--\S+ )*)(.+) (\S+)$/gm)].map((m) => ({
  flags: m[1]!.trim().split(/\s+/).filter(Boolean),
  sources: m[2]!.split(' '),
  dest: posix.resolve(workdir, m[3]!),
}));
const agentSources = readdirSync(join(REPO_ROOT, 'src', 'agent'))
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
  .map((f) => ({ file: f, text: readFileSync(join(REPO_ROOT, 'src', 'agent', f), 'utf8') }));

describe('the agent image (Dockerfile target agent)', () => {
  it('is a named stage before the webhook, so a plain build still builds the webhook', () => {
    const froms = dockerfile.split('\n').filter((l) => /^FROM\s/.test(l));
    expect(froms.at(-1)).toMatch(/distroless\/nodejs/);
    expect(froms.some((l) => / AS agent$/.test(l))).toBe(true);
    // Node comes from the build stage's image: the agent's Debian release must be that image's
    expect(agentStage).toMatch(/^FROM debian:\$\{DEBIAN_RELEASE\}-slim AS agent$/m);
    expect(stage('build')).toMatch(/^FROM node:\$\{NODE_MAJOR\}-\$\{DEBIAN_RELEASE\}-slim AS build$/m);
    expect(dockerfile).toMatch(/^ARG DEBIAN_RELEASE=bookworm$/m);
  });

  it('runs its commands through one door: only agent.ts starts processes, each a Step argv', () => {
    const spawning = agentSources.filter((s) => /from 'node:child_process'/.test(s.text)).map((s) => s.file);
    expect(spawning).toEqual(['agent.ts']);
  });

  it('provides every command src/agent invokes, from a package the stage installs, on its PATH', () => {
    const used = invokedCommands(agentSources.map((s) => s.text).join('\n'));
    // The grep finds what the agent is known to run (so it is not finding nothing)
    expect([...used.commands].sort()).toEqual(expect.arrayContaining(['bridge', 'busybox', 'ip', 'nft', 'nsenter']));
    expect([...used.applets]).toEqual(['udhcpc']);
    const script = readFileSync(join(REPO_ROOT, 'src', 'agent', 'udhcpc-lease.sh'), 'utf8');
    used.commands.add(/^#!(\S+)/.exec(script)![1] === '/bin/sh' ? 'sh' : 'unknown interpreter');
    expect(unprovided(used, aptInstalled(agentStage), imagePath)).toEqual([]);
  });

  it('negative control: a command with no package, or a package the stage lacks, is reported', () => {
    const used = invokedCommands("const s = { argv: ['tc', 'qdisc'] }; const d = { argv: ['busybox', 'udhcpc6'] };");
    expect(unprovided(used, aptInstalled(agentStage), imagePath)).toEqual([
      'tc: no row in COMMANDS (which Debian package provides it?)',
      'busybox udhcpc6: not a listed applet of Debian\'s busybox',
    ]);
    expect(unprovided(invokedCommands("{ argv: ['nft', '-f', '-'] }"), ['iproute2'], imagePath)).toEqual(['nft: package nftables is not installed by the agent stage']);
  });

  it('copies the udhcpc script, executable, to the path the code passes to udhcpc', () => {
    const copy = copies.find((c) => c.sources.includes('src/agent/udhcpc-lease.sh'));
    expect(copy?.dest).toBe(UDHCPC_SCRIPT);
    expect(copy?.flags).toContain('--chmod=0755');
    expect(readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n')).not.toContain('src/agent/');
  });

  it("ships the webhook's compiled dist/ and production dependencies, and node", () => {
    expect(copies.find((c) => c.sources.includes('/src/dist'))?.flags).toContain('--from=build');
    expect(copies.find((c) => c.sources.includes('/app/node_modules'))?.flags).toContain('--from=deps');
    expect(copies.find((c) => c.sources.includes('/usr/local/bin/node'))?.dest).toBe('/usr/local/bin/node');
    expect(agentStage).not.toMatch(/npm (ci|install)/);
  });

  describe('the DaemonSet runs what the image holds', () => {
    const objects = render('agent');
    const container = find(objects, 'DaemonSet', 'podvpn-agent', 'podvpn-system').spec.template.spec.containers[0];

    it('its command is the entrypoint: node where the stage copies it, main.js under the copied dist/', () => {
      const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(agentStage)![1]!) as string[];
      expect(container.command).toEqual(entrypoint);
      const [node, main] = container.command as [string, string];
      expect(copies.some((c) => c.dest === node)).toBe(true);
      const dist = copies.find((c) => c.sources.includes('/src/dist'))!.dest;
      expect(main.startsWith(`${dist}/`)).toBe(true);
      // dist/ is compiled from src/: main.js exists when its source does
      expect(existsSync(join(REPO_ROOT, 'src', posix.relative(dist, main).replace(/\.js$/, '.ts')))).toBe(true);
    });

    it('as the user the image says (root: Kubernetes gives added capabilities only to UID 0), root filesystem read-only', () => {
      expect(agentStage).toMatch(/^USER 0:0$/m);
      expect(container.securityContext.runAsUser).toBe(0);
      expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
      // Writable: an emptyDir on /tmp and nothing else (the commands keep no files)
      const pod = find(objects, 'DaemonSet', 'podvpn-agent', 'podvpn-system').spec.template.spec;
      const emptyDirs = pod.volumes.filter((v: any) => 'emptyDir' in v).map((v: any) => v.name);
      expect(container.volumeMounts.filter((m: any) => emptyDirs.includes(m.name)).map((m: any) => m.mountPath)).toEqual(['/tmp']);
    });

    it("its tag follows the webhook image's: the same registry path and v<package version>", () => {
      const webhook = find(render('base'), 'Deployment', 'podvpn-webhook', 'podvpn-system').spec.template.spec.containers[0].image;
      expect(webhook).toBe(`ghcr.io/podvpn/podvpn:v${VERSION}`);
      expect(container.image).toBe(`ghcr.io/podvpn/podvpn-agent:v${VERSION}`);
      expect(parseConfig({}).images.podvpn).toBe(webhook);
      // And the Dockerfile's build lines name the same tags
      expect(dockerfile).toContain(`docker build -t ${webhook} .`);
      expect(dockerfile).toContain(`docker build --target agent -t ${container.image} .`);
    });
  });

  it('the gate (agent mode, in the webhook image) runs distroless node on dist/agent/gate.js', () => {
    const webhookStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const [node, gate] = gateCommand(parseConfig({}).gateways.default!);
    expect(webhookStage).toMatch(/distroless\/nodejs/);
    expect(webhookStage).toContain(`ENTRYPOINT ["${node}"`);
    expect(webhookStage).toMatch(/^WORKDIR \/app$/m);
    expect(gate).toBe('/app/dist/agent/gate.js');
    expect(existsSync(join(REPO_ROOT, 'src', 'agent', 'gate.ts'))).toBe(true);
  });
});

// The table against dpkg, on a machine of the image's release (this repository's CI and lab hosts are
// Debian 12). Elsewhere these checks cannot run: the table stays as written above.
const debianRelease = (() => {
  try {
    return /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
})();
const hasDpkg = spawnSync('dpkg', ['--version']).status === 0;
describe.skipIf(!(hasDpkg && debianRelease === 'bookworm'))('the COMMANDS table against dpkg on Debian bookworm', () => {
  it.each(Object.entries(COMMANDS).map(([cmd, p]) => ({ cmd, ...p })))('$cmd: $path belongs to $pkg, Essential as the table says', (p) => {
    const owner = execFileSync('dpkg', ['-S', p.path], { encoding: 'utf8' });
    // "pkg: /path" (a diversion adds "diversion by ..." lines, as dash's /bin/sh)
    expect(owner.split('\n').filter((l) => !l.startsWith('diversion')).map((l) => l.split(':')[0])).toContain(p.pkg);
    const status = execFileSync('dpkg-query', ['-W', '-f', '${Essential}', p.pkg], { encoding: 'utf8' }).trim();
    expect(status === 'yes', `${p.pkg} Essential`).toBe(p.essential === true);
  });

  it("busybox's Debian build has the udhcpc applet", () => {
    expect(execFileSync('dpkg', ['-S', '/bin/busybox'], { encoding: 'utf8' })).toMatch(/^busybox: /);
    const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n');
    for (const a of COMMANDS.busybox!.applets!) expect(applets).toContain(a);
  });
});
