// The gateway's dnsmasq never leases the overlay's broadcast address (root, real dnsmasq and busybox
// udhcpc in two network namespaces). pod-gateway's gateway_sidecar.sh writes a dhcp-range that ends at
// .255, and dnsmasq skips .0 and .255 only for class C addresses, so in the overlay 172.16.0.0/24 it
// leases 172.16.0.255, which leaves the pod unable to reach its gateway. The shipped
// manifests/gateway/base/dnsmasq.conf (mounted at /etc/dnsmasq.d/podvpn.conf) reserves it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunNetnsLab } from '../agent/netns-lab.mjs';

const SHIPPED = join(import.meta.dirname, '..', '..', 'manifests', 'gateway', 'base', 'dnsmasq.conf');
const sh = (cmd: string) => spawnSync('bash', ['--norc', '-c', cmd], { encoding: 'utf8', timeout: 20_000 });

describe.skipIf(!canRunNetnsLab())("the gateway's dnsmasq and the overlay's broadcast address (root)", () => {
  const tag = `bc${process.pid % 100000}`;
  const gw = `pv-${tag}-g`;
  const pod = `pv-${tag}-p`;
  let tmp = '';

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'podvpn-dnsmasq-'));
    const r = sh(
      `set -e; ip netns add ${gw}; ip netns add ${pod}; ip link add v-${tag} netns ${gw} type veth peer name eth0 netns ${pod};` +
        ` ip -n ${gw} addr add 172.16.0.1/24 dev v-${tag}; ip -n ${gw} link set v-${tag} up; ip -n ${pod} link set eth0 up`,
    );
    expect(r.status, r.stderr).toBe(0);
  });
  afterAll(() => {
    sh(`ip netns del ${gw}; ip netns del ${pod}`);
    rmSync(tmp, { recursive: true, force: true });
  });

  /** dnsmasq with gateway_sidecar.sh's range shape (its end .255; the start narrowed to .250 so the pool is small), then a client asking for .255. */
  function leaseWith(extraConf: string, mac: string): string {
    const conf = join(tmp, `dnsmasq-${mac.slice(-2)}.conf`);
    writeFileSync(conf, `port=0\ninterface=v-${tag}\nbind-interfaces\ndhcp-range=172.16.0.250,172.16.0.255,12h\ndhcp-leasefile=${join(tmp, `leases-${mac.slice(-2)}`)}\nno-ping\n${extraConf}\n`);
    const pid = join(tmp, 'dnsmasq.pid');
    const start = sh(`ip netns exec ${gw} dnsmasq -C ${conf} --pid-file=${pid}`);
    expect(start.status, start.stderr).toBe(0);
    try {
      sh(`ip -n ${pod} link set eth0 down && ip -n ${pod} link set eth0 address ${mac} && ip -n ${pod} link set eth0 up`);
      const r = sh(`ip netns exec ${pod} busybox udhcpc -f -q -n -i eth0 -t 5 -T 1 -r 172.16.0.255 -s /bin/true 2>&1`);
      return /lease of (\S+) obtained/.exec(r.stdout)?.[1] ?? `no lease: ${r.stdout.trim()}`;
    } finally {
      sh(`kill $(cat ${pid}); sleep 0.2`);
    }
  }

  it('control: without the shipped file, dnsmasq leases 172.16.0.255 to a client that asks for it', () => {
    expect(leaseWith('', '02:00:00:00:0b:01')).toBe('172.16.0.255');
  });

  it('with the shipped dnsmasq.conf: the client gets another address of the range', () => {
    const got = leaseWith(readFileSync(SHIPPED, 'utf8'), '02:00:00:00:0b:02');
    expect(got).toMatch(/^172\.16\.0\.25[0-4]$/);
  });
});
