// How fast the exit probe (`podvpn exit-probe`, the built CLI with its default 1 s interval and 0.8 s
// timeout) turns 500 after its target is lost, and 200 after it is back. Two kinds of loss:
//   - blackhole: the target stops answering SYNs (as a dead WireGuard tunnel: the packet goes out,
//     nothing comes back). A listener in a child process whose event loop is then blocked (it never
//     accepts) with its queue held full; Linux drops further SYNs.
//   - refused: the target's listener closes (an RST comes back at once).
// Each run starts a fresh probe and target, waits for 200, waits a random phase (0-1 s, so the loss
// falls anywhere in a round), loses the target and polls the probe every 10 ms until it says 500; then,
// after another random phase, brings the target back on the same port and polls until 200.
//
//   npm run build && node bench/exit-probe.mjs [--runs 8]

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, get } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, percentile, root } from './lib.mjs';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '8' } } });
const RUNS = Number(values.runs);
const CLI = process.env.BENCH_PODVPN_CLI ?? join(root, 'dist/cli.js');
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

function status(url) {
  return new Promise((ok) => {
    const req = get(url, { timeout: 1000 }, (res) => {
      res.resume();
      ok(res.statusCode);
    });
    req.on('error', () => ok(0));
    req.on('timeout', () => req.destroy());
  });
}

async function until(url, want) {
  const start = performance.now();
  while ((await status(url)) !== want) {
    if (performance.now() - start > 10_000) throw new Error(`no ${want} within 10 s`);
    await sleep(10);
  }
  return performance.now();
}

async function switchableTarget() {
  const code = `const s = require('net').createServer((c) => c.on('error', () => {})).listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => process.stdout.write(s.address().port + '\\n'));
process.stdin.on('data', () => { process.stdout.write('blocked\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = Number(String((await once(child.stdout, 'data'))[0]).trim());
  const held = [];
  return {
    port,
    /** Lose the target; resolves at the moment from which no SYN is answered. */
    async blackhole() {
      child.stdin.write('block\n');
      await once(child.stdout, 'data');
      for (;;) {
        const s = connect(port, '127.0.0.1');
        s.on('error', () => undefined);
        held.push(s);
        const sent = performance.now();
        const connected = await Promise.race([once(s, 'connect').then(() => true), sleep(100).then(() => false)]);
        // This SYN went unanswered: the queue was full when it was sent.
        if (!connected) return sent;
      }
    },
    async refuse() {
      child.kill('SIGKILL');
      await once(child, 'exit');
      return performance.now();
    },
    stop() {
      for (const s of held) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

async function run(kind) {
  const target = await switchableTarget();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const probe = spawn(process.execPath, [CLI, 'exit-probe', '--target', `127.0.0.1:${target.port}`, '--listen', `127.0.0.1:${port}`], { stdio: 'ignore' });
  try {
    await until(url, 200);
    await sleep(Math.random() * 1000);
    const lost = kind === 'blackhole' ? await target.blackhole() : await target.refuse();
    const down = await until(url, 500);
    target.stop();
    // Back at a random phase too: a listener on the same port.
    await sleep(50 + Math.random() * 1000);
    const server = createServer();
    await new Promise((ok) => server.listen(target.port, '127.0.0.1', ok));
    const back = performance.now();
    const up = await until(url, 200);
    server.close();
    return { toUnhealthy: down - lost, toHealthy: up - back };
  } finally {
    probe.kill('SIGKILL');
    target.stop();
  }
}

const summary = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: Math.round(s[0]), p50: Math.round(percentile(s, 50)), max: Math.round(s[s.length - 1]) };
};

const out = {};
for (const kind of ['blackhole', 'refused']) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run(kind));
  out[kind] = { runs: RUNS, toUnhealthyMs: summary(runs.map((r) => r.toUnhealthy)), toHealthyMs: summary(runs.map((r) => r.toHealthy)) };
  process.stderr.write(`${kind}: loss → 500 ${JSON.stringify(out[kind].toUnhealthyMs)} ms; back → 200 ${JSON.stringify(out[kind].toHealthyMs)} ms (${RUNS} runs)\n`);
}
process.stdout.write(`${JSON.stringify({ interval: '1 s', timeout: '0.8 s', ...out }, null, 2)}\n`);
