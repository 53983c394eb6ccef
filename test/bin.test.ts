// The `podvpn` bin the way npm installs it: a symlink to dist/cli.js on PATH (npm i -g, npm link),
// and `npx podvpn` resolving node_modules/.bin/podvpn inside a project that installed the packed
// tarball. All offline: the tarball is unpacked by hand and its dependencies linked from this
// checkout, so no registry is asked.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
const POD = 'apiVersion: v1\nkind: Pod\nmetadata: { name: p, namespace: downloads }\nspec:\n  containers: [{ name: a, image: b }]\n';
const CONFIG = 'cluster:\n  podCIDRs: [10.42.0.0/16]\n  serviceCIDRs: [10.43.0.0/16]\n  dnsIPs: [10.43.0.10]\n';

/** What npm's bin-links does: the target made executable, a symlink named after the bin. */
function linkBin(binDir: string, target: string): void {
  chmodSync(target, 0o755);
  mkdirSync(binDir, { recursive: true });
  symlinkSync(target, join(binDir, 'podvpn'));
}

function env(binDir: string): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}`, KUBECONFIG: '/nonexistent', npm_config_offline: 'true' };
}

describe('the podvpn bin as npm installs it', () => {
  it('runs through a symlink on PATH (npm i -g, npm link): prints, injects, and fails loudly', () => {
    const dir = tempDir();
    linkBin(join(dir, 'bin'), join(ROOT, PKG.bin.podvpn!));
    const opts = { env: env(join(dir, 'bin')), encoding: 'utf8' as const, cwd: dir, timeout: 20_000 };
    const version = spawnSync('podvpn', ['version'], opts);
    expect(version.stdout).toBe(`${PKG.version}\n`);
    expect(version.status).toBe(0);
    const config = join(dir, 'podvpn.yaml');
    spawnSync('sh', ['-c', `cat > ${config}`], { input: CONFIG });
    const injected = spawnSync('podvpn', ['inject', '-f', '-', '--config', config], { ...opts, input: POD });
    expect(injected.status, injected.stderr).toBe(0);
    expect(injected.stdout).toContain('podvpn-client-init');
    const usage = spawnSync('podvpn', ['frobnicate'], opts);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('the packed tarball carries the bin, and npx runs it from a project that installed it', () => {
    const dir = tempDir();
    const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, npm_config_offline: 'true' },
      timeout: 60_000,
    });
    expect(packed.status, packed.stderr).toBe(0);
    const { filename, files } = (JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>)[0]!;
    const paths = files.map((f) => f.path);
    expect(paths).toContain(PKG.bin.podvpn);
    expect(paths).toContain('package.json');
    expect(paths.filter((p) => /\.test\.|^test\/|^src\//.test(p))).toEqual([]);
    // A project that installed it: node_modules/podvpn unpacked from the tarball, its dependencies
    // linked from this checkout, node_modules/.bin/podvpn a relative symlink, as npm writes it.
    const project = join(dir, 'project');
    const installed = join(project, 'node_modules', 'podvpn');
    mkdirSync(installed, { recursive: true });
    expect(spawnSync('tar', ['-xzf', join(dir, filename), '-C', installed, '--strip-components=1']).status).toBe(0);
    symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules'));
    const bin = join(project, 'node_modules', '.bin');
    mkdirSync(bin);
    chmodSync(join(installed, PKG.bin.podvpn!), 0o755);
    symlinkSync(join('..', 'podvpn', PKG.bin.podvpn!), join(bin, 'podvpn'));
    const npx = spawnSync('npx', ['--offline', 'podvpn', 'version'], { cwd: project, encoding: 'utf8', env: env(join(dir, 'nothing')), timeout: 60_000 });
    expect(npx.stderr).not.toMatch(/EBADENGINE/);
    expect(npx.stdout).toBe(`${PKG.version}\n`);
    expect(npx.status).toBe(0);
  }, 90_000);

  it('every locked package accepts this Node (no EBADENGINE on npm ci; CI runs Node 20)', () => {
    // npm's own range check (semver, which fastify already brings), on what the lock file records.
    const semver = createRequire(import.meta.url)('semver') as { satisfies(v: string, range: string): boolean };
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: { node?: string } }> };
    const demanding = Object.entries(lock.packages)
      .filter(([, p]) => p.engines?.node !== undefined && !semver.satisfies(process.versions.node, p.engines.node))
      .map(([path, p]) => `${path} (${p.engines!.node})`);
    expect(demanding, 'pin or override these (package.json overrides) so Node 20 installs cleanly').toEqual([]);
  });
});
