// The pod-gateway client's settings. They travel with the pod: the webhook writes them into the pod
// annotation `podvpn.io/client-settings`, and a downward API volume projects that annotation as
// /config/settings.sh, which client_init.sh and client_sidecar.sh source after the image's defaults.
// No ConfigMap or any other object has to exist in the pod's namespace.

import type { ClusterRanges } from '../cluster/ranges.js';
import { notRoutedCIDRs } from '../cluster/ranges.js';
import type { Gateway } from '../config/schema.js';

export type ClientSettings = Readonly<Record<string, string>>;

// The settings depend only on the gateway and the ranges in force, which change rarely and are
// replaced (never mutated) when they do: remember them per object pair, so the hot path does not
// merge CIDRs on every review (it was most of a review's cost).
const memo = new WeakMap<ClusterRanges, WeakMap<Gateway, ClientSettings>>();
const scripts = new WeakMap<ClientSettings, string>();

export function clientSettings(gateway: Gateway, ranges: ClusterRanges): ClientSettings {
  let byGateway = memo.get(ranges);
  if (byGateway === undefined) memo.set(ranges, (byGateway = new WeakMap()));
  let settings = byGateway.get(gateway);
  if (settings === undefined) byGateway.set(gateway, (settings = Object.freeze(computeSettings(gateway, ranges))));
  return settings;
}

function computeSettings(gateway: Gateway, ranges: ClusterRanges): Record<string, string> {
  const overlay = gateway.overlayNetwork.slice(0, gateway.overlayNetwork.lastIndexOf('.'));
  return {
    // The gateway's headless Service: cluster DNS answers with the gateway pod's IP.
    GATEWAY_NAME: gateway.address,
    K8S_DNS_IPS: ranges.dnsIPs.join(' '),
    // Routed via the pod's own gateway, before the default route is removed (space-separated: the
    // script relies on word splitting).
    NOT_ROUTED_TO_GATEWAY_CIDRS: notRoutedCIDRs(ranges).join(' '),
    VXLAN_ID: String(gateway.vxlanId),
    VXLAN_PORT: String(gateway.vxlanPort),
    // pod-gateway takes the first three octets; the gateway is .1 of that /24.
    VXLAN_IP_NETWORK: overlay,
    VPN_INTERFACE_MTU: String(gateway.mtu),
    // Echoes per gateway check (client_init.sh, client_sidecar.sh): one lost echo must not tear the
    // tunnel and the pod's connections down.
    CONNECTION_RETRY_COUNT: String(gateway.connectionRetryCount),
  };
}

/** settings.sh: one `KEY='value'` per line, quoted so a value is never parsed as shell. */
export function renderSettingsScript(settings: ClientSettings): string {
  const cached = scripts.get(settings);
  if (cached !== undefined) return cached;
  const script = renderScript(settings);
  scripts.set(settings, script);
  return script;
}

function renderScript(settings: ClientSettings): string {
  const lines = Object.entries(settings).map(([k, v]) => `${k}='${v.replaceAll("'", `'\\''`)}'`);
  return `# Written by podvpn; sourced by pod-gateway's client scripts.\n${lines.join('\n')}\n`;
}
