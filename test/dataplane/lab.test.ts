// The data-plane lab: the kill switch proven in a real kernel, scenario by scenario, with packet counts
// at the internet host and on the node's uplink. Needs root, /dev/net/tun and .ci/dataplane-deps.sh.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { q, sleep, tryRun, waitFor } from './lib/exec.js';
import { gatewayInputs, productInputs } from './lib/inputs.js';
import { ADDR, APP_NAME, INTERNET_NAME, Lab, type Snapshot, TLS_BODY_BYTES } from './lib/lab.js';

const prefix = process.env.LAB_PREFIX ?? `pv${process.pid % 100000}`;
const figures: string[] = [];
const figure = (line: string) => {
  figures.push(line);
  process.stdout.write(`[figure] ${line}\n`);
};
const log = (line: string) => process.stdout.write(`[lab] ${line}\n`);

let lab: Lab;
const deltas = new Map<string, Snapshot>();

/** Runs `action` between two snapshots and records the counter deltas under `name`. */
async function measured(name: string, action: () => Promise<void>): Promise<Snapshot> {
  const before = await lab.snapshot();
  try {
    await action();
  } finally {
    // Late packets of a failed flow still count.
    await sleep(300);
  }
  const d = Lab.delta(before, await lab.snapshot());
  deltas.set(name, d);
  log(`${name}: ${JSON.stringify(d)}`);
  return d;
}

const noLeak = (d: Snapshot | undefined) => {
  expect(d, 'scenario did not run').toBeDefined();
  expect({ inetLeak: d?.inetLeak, inetLeak6: d?.inetLeak6, uplinkClear: d?.uplinkClear }).toEqual({
    inetLeak: 0,
    inetLeak6: 0,
    uplinkClear: 0,
  });
};

beforeAll(async () => {
  const product = productInputs();
  const gateway = await gatewayInputs();
  log(`gateway settings from: ${gateway.source}`);
  lab = await Lab.up({
    prefix,
    clientSettingsScript: product.clientSettingsScript,
    clientResolvConf: product.clientResolvConf,
    clientLabels: product.clientLabels,
    clientNamespace: 'downloads',
    gatewayName: product.gatewayName,
    clusterDomain: product.clusterDomain,
    policies: product.policies,
    gateway,
    log,
  });
  figure(`lab build time: ${(lab.buildMs / 1000).toFixed(2)} s (8 namespaces, WireGuard handshake, client init with DHCP)`);
}, 120_000);

afterAll(async () => {
  if (process.env.LAB_KEEP !== '1') await lab?.down();
  if (figures.length > 0) process.stdout.write(`\nFigures (not assertions):\n${figures.map((f) => `  ${f}`).join('\n')}\n`);
}, 60_000);

describe.sequential('1 normal operation', () => {
  it('the internet sees the VPN exit address, and nothing else arrives', async () => {
    let reply = '';
    const d = await measured('normal', async () => {
      reply = (await lab.curlInet('client')).body;
    });
    expect(reply).toBe(ADDR.vpnExit);
    expect(d.inetViaVpn).toBeGreaterThan(0);
    expect(d.uplinkTunnel).toBeGreaterThan(0);
    noLeak(d);
  });

  it('the client got its overlay address by DHCP from the gateway and routes by default through vxlan0', async () => {
    const addr = await lab.in('client', 'ip -4 -o addr show dev vxlan0');
    const net = lab.pg.VXLAN_IP_NETWORK;
    expect(addr).toMatch(new RegExp(`inet ${net?.replaceAll('.', '\\.')}\\.(\\d+)/24`));
    const leases = await lab.in('gw', `cat ${lab.work}/gw.leases`);
    expect(leases.length).toBeGreaterThan(0);
    expect(await lab.in('client', 'ip -4 route show default')).toMatch(new RegExp(`default via ${net}\\.1 dev vxlan0`));
  });

  it('in-cluster traffic works: a pod directly, a Service, cluster DNS for a cluster name', async () => {
    const direct = await lab.tryIn('client', `curl -s --max-time 2 http://${ADDR.app}:8080/`);
    expect(direct.stdout.trim()).toBe(ADDR.client);
    const svc = await lab.tryIn('client', `curl -s --max-time 2 http://${ADDR.appService}/`);
    expect(svc.stdout.trim()).toBe(ADDR.client);
    const name = await lab.tryIn('client', `dig +short +time=1 +tries=2 ${APP_NAME}`);
    expect(name.stdout.trim()).toBe(ADDR.appService);
  });
});
