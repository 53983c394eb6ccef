// Agent-mode figures on real network namespaces (root; not part of `npm run bench`, which needs no
// root): time for the agent loop to route a new pod (firewall, routes, VXLAN, DHCP from dnsmasq,
// default route, marker), and to repair a pod after its gateway is replaced (new pod IP, new dnsmasq).
// The bench is test/agent/netns-lab.mjs: pod-gateway's gateway commands and dnsmasq, no VPN, no kubelet.
// Run: npm run build && node bench/agent-netns.mjs

import { join } from 'node:path';
import { Agent, execRun } from '../dist/agent/agent.js';
import { startNetnsLab } from '../test/agent/netns-lab.mjs';

const RUNS = Number(process.env.RUNS ?? 5);
const RANGES = { podCIDRs: ['10.42.0.0/16'], serviceCIDRs: ['10.43.0.0/16'], extraCIDRs: [], dnsIPs: ['10.43.0.10'], sources: {} };
const GW = { name: 'default', address: 'x', vxlanId: 42, vxlanPort: 4789, overlayNetwork: '172.16.0.0/24', overlayGatewayIP: '172.16.0.1', dns: '172.16.0.1', mtu: 1370 };
const POD = { uid: '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b', namespace: 'bench', name: 'web', gateway: 'default' };
const gateways = (podIP) => new Map([['default', { config: GW, state: { name: 'default', podIP, ready: true } }]]);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const route = [];
const repair = [];
for (let i = 0; i < RUNS; i++) {
  const lab = await startNetnsLab(`b${process.pid}${i}`);
  try {
    const agent = new Agent({ netnsOf: () => ({ ok: true, nsPath: `/run/netns/${lab.pod}` }), run: (s) => execRun(s), now: () => Date.now() });
    agent.udhcpcScript = join(import.meta.dirname, '..', 'src', 'agent', 'udhcpc-lease.sh');
    let t = performance.now();
    await agent.reconcile([POD], gateways('10.42.2.9'), RANGES);
    route.push(performance.now() - t);
    await lab.replaceGateway('10.42.2.10');
    t = performance.now();
    await agent.reconcile([POD], gateways('10.42.2.10'), RANGES);
    repair.push(performance.now() - t);
    if (lab.exec(lab.pod, ['ping', '-c1', '-W2', '172.16.0.1']).status !== 0) throw new Error('gateway not reachable after repair');
  } finally {
    await lab.close();
  }
}
const fmt = (xs) => `median ${median(xs).toFixed(0)} ms (runs: ${xs.map((x) => x.toFixed(0)).join(', ')})`;
console.log(`agent: route a new pod            ${fmt(route)}`);
console.log(`agent: repair after gateway replaced ${fmt(repair)}`);
