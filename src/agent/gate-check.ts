// The gate's check (pure): what is missing, read from the pod's own /proc/net files. See
// src/inject/agent-patch.ts for why these three facts, and why the pod cannot fake them.

export interface GateFacts {
  /** /proc/net/dev of the pod's network namespace. */
  netDev: string;
  /** /proc/net/route (IPv4 main table) of the pod's network namespace. */
  netRoute: string;
}

export interface GateExpectation {
  /** The gateway's overlay address, the default route's next hop (for example 172.16.0.1). */
  gatewayIP: string;
  /** The link the agent creates after the tunnel and the firewall. */
  readyLink: string;
  tunnelLink?: string;
}

/** Link names in /proc/net/dev (after the two header lines, "name: counters..."). */
export function linkNames(netDev: string): string[] {
  return netDev
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0]?.trim() ?? '')
    .filter((name) => name !== '');
}

export interface RouteEntry {
  iface: string;
  destination: string;
  gateway: string;
  mask: string;
}

/** /proc/net/route: hex, host byte order (little-endian on every architecture Kubernetes runs on). */
export function routes(netRoute: string): RouteEntry[] {
  return netRoute
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 8)
    .map((f) => ({ iface: f[0]!, destination: hexToIPv4(f[1]!), gateway: hexToIPv4(f[2]!), mask: hexToIPv4(f[7]!) }));
}

export function hexToIPv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  if (!/^[0-9A-Fa-f]{8}$/.test(hex) || Number.isNaN(n)) return '?';
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
}

/** Everything still missing, each said so that a user reading `kubectl logs -c podvpn-gate` can act. */
export function gateMissing(facts: GateFacts, want: GateExpectation): string[] {
  const tunnel = want.tunnelLink ?? 'vxlan0';
  const links = linkNames(facts.netDev);
  const missing: string[] = [];
  if (!links.includes(tunnel)) missing.push(`no ${tunnel} link (the tunnel to the gateway is not built)`);
  const defaults = routes(facts.netRoute).filter((r) => r.destination === '0.0.0.0' && r.mask === '0.0.0.0');
  if (!defaults.some((r) => r.iface === tunnel && r.gateway === want.gatewayIP)) {
    const seen = defaults.map((r) => `via ${r.gateway} dev ${r.iface}`).join(', ') || 'none';
    missing.push(`no default route via ${want.gatewayIP} dev ${tunnel} (default routes now: ${seen}; no DHCP lease from the gateway yet?)`);
  }
  if (!links.includes(want.readyLink)) {
    missing.push(`no ${want.readyLink} marker (the podvpn-agent has not finished the in-pod firewall)`);
  }
  return missing;
}
