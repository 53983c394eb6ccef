#!/usr/bin/env node
// Agent mode's gate: the routed pod's first init container. Unprivileged: it reads the pod's own
// /proc/net files until the node agent's tunnel, route and firewall marker are all there, then exits 0.
// Past the timeout it exits 1 and says what is missing; the kubelet restarts it (init containers are
// retried), so the app's containers never start unrouted. Only node:fs: it starts fast and small.

import { readFileSync } from 'node:fs';
import { gateMissing } from './gate-check.js';

function arg(name: string, fallback?: string): string {
  const prefix = `--${name}=`;
  const found = process.argv.find((a) => a.startsWith(prefix));
  if (found !== undefined) return found.slice(prefix.length);
  if (fallback !== undefined) return fallback;
  process.stderr.write(`podvpn-gate: missing --${name}\n`);
  process.exit(2);
}

const gatewayIP = arg('gateway');
const readyLink = arg('ready-link', 'podvpn-ready');
const timeoutMs = Number(arg('timeout', '120')) * 1000;
const intervalMs = 500;
const started = Date.now();

function check(): string[] {
  return gateMissing(
    { netDev: readFileSync('/proc/self/net/dev', 'utf8'), netRoute: readFileSync('/proc/self/net/route', 'utf8') },
    { gatewayIP, readyLink },
  );
}

function loop(): void {
  const missing = check();
  if (missing.length === 0) {
    process.stdout.write(`podvpn-gate: routed through ${gatewayIP} after ${Date.now() - started} ms\n`);
    process.exit(0);
  }
  if (Date.now() - started >= timeoutMs) {
    process.stderr.write(
      `podvpn-gate: after ${Math.round(timeoutMs / 1000)} s the pod is still not routed: ${missing.join('; ')}. ` +
        'Is the podvpn-agent DaemonSet running on this node (kubectl -n podvpn-system get pods -l app.kubernetes.io/name=podvpn-agent -o wide)?\n',
    );
    process.exit(1);
  }
  setTimeout(loop, intervalMs);
}

loop();
