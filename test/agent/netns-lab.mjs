// A three-namespace bench for the agent's tests and bench/agent-netns.mjs (root): the pod (eth0
// 10.42.1.5/24), the node (routes between pod IPs, as a CNI does) and a gateway built with pod-gateway's
// gateway_init.sh commands and gateway_sidecar.sh's dnsmasq DHCP settings. Not the data-plane lab: no
// gluetun, VPN or policy. Plain JavaScript (types in netns-lab.d.mts) so the bench runs it with node
// alone; it lives outside src/ so it never compiles into the published dist/.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** @returns {boolean} */
export const canRunNetnsLab = () => {
  const ok = process.getuid?.() === 0 && spawnSync('ip', ['netns', 'list']).status === 0 && spawnSync('which', ['dnsmasq']).status === 0;
  // CI runs as root with the tools installed (.ci/run): a skip there would count a test that never ran.
  if (!ok && process.env.CI === 'true') throw new Error('CI must run the root network-namespace tests: run as root with bash .ci/dataplane-deps.sh first');
  return ok;
};

/**
 * extraDnsmasqArgs: for experiments (e.g. --no-ping); the default is gateway_sidecar.sh's settings.
 * @param {string} tag @param {string[]} [extraDnsmasqArgs] @returns {Promise<import('./netns-lab.d.mts').NetnsLab>}
 */
export async function startNetnsLab(tag, extraDnsmasqArgs = []) {
  const pod = `pv-pod-${tag}`;
  const node = `pv-node-${tag}`;
  const gw = `pv-gw-${tag}`;
  const tmp = mkdtempSync(join(tmpdir(), 'podvpn-gw-'));
  const exec = (ns, argv, stdin) => spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', input: stdin });
  const must = (ns, ...argv) => {
    const r = exec(ns, argv);
    if (r.status !== 0) throw new Error(`${ns}: ${argv.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  for (const ns of [pod, node, gw]) {
    spawnSync('ip', ['netns', 'del', ns]);
  }
  return build();

  async function build() {
    for (const ns of [pod, node, gw]) {
      if (spawnSync('ip', ['netns', 'add', ns]).status !== 0) throw new Error(`ip netns add ${ns}`);
      must(ns, 'ip', 'link', 'set', 'lo', 'up');
    }
    must(node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const [ns, peer, addr, nodeAddr] of [[pod, 'p0', '10.42.1.5/24', '10.42.1.1/24'], [gw, 'g0', '10.42.2.9/24', '10.42.2.1/24']]) {
      must(ns, 'ip', 'link', 'add', 'eth0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', peer, 'netns', node);
      must(ns, 'ip', 'addr', 'add', addr, 'dev', 'eth0');
      must(ns, 'ip', 'link', 'set', 'eth0', 'up');
      must(ns, 'ip', 'route', 'add', 'default', 'via', nodeAddr.split('/')[0]);
      must(node, 'ip', 'addr', 'add', nodeAddr, 'dev', peer);
      must(node, 'ip', 'link', 'set', peer, 'mtu', '1450', 'up');
    }
    must(gw, 'ip', 'link', 'add', 'vxlan0', 'type', 'vxlan', 'id', '42', 'dev', 'eth0', 'dstport', '4789');
    must(gw, 'ip', 'addr', 'add', '172.16.0.1/24', 'dev', 'vxlan0');
    must(gw, 'ip', 'link', 'set', 'up', 'dev', 'vxlan0');
    let dnsmasq = startDnsmasq(0);
    let generation = 0;
    return {
      pod,
      node,
      gw,
      exec,
      must,
      async replaceGateway(newIP) {
        await stop(dnsmasq);
        must(gw, 'ip', 'addr', 'flush', 'dev', 'eth0');
        must(gw, 'ip', 'addr', 'add', `${newIP}/24`, 'dev', 'eth0');
        must(gw, 'ip', 'route', 'replace', 'default', 'via', '10.42.2.1');
        must(gw, 'bridge', 'fdb', 'flush', 'dev', 'vxlan0');
        dnsmasq = startDnsmasq(++generation);
        await new Promise((r) => setTimeout(r, 300));
      },
      async close() {
        await stop(dnsmasq);
        for (const ns of [pod, node, gw]) spawnSync('ip', ['netns', 'del', ns]);
        rmSync(tmp, { recursive: true, force: true });
      },
    };
  }

  function startDnsmasq(generation) {
    return spawn(
      'ip',
      ['netns', 'exec', gw, 'dnsmasq', '--keep-in-foreground', '--port=0', '--interface=vxlan0', '--bind-interfaces',
        '--dhcp-range=172.16.0.20,172.16.0.255,12h', `--dhcp-leasefile=${join(tmp, `leases-${generation}`)}`,
        `--pid-file=${join(tmp, `pid-${generation}`)}`, '--log-facility=-', ...extraDnsmasqArgs],
      { stdio: 'ignore' },
    );
  }
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once('exit', () => r());
    child.kill('SIGTERM');
  });
}
