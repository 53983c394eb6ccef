// The pod network's MTU, where the CNI publishes it in the API (pure readers), and the rule a
// gateway's tunnel MTU must meet. What each CNI says:
//
//   Calico (manifest)   ConfigMap kube-system/calico-config, veth_mtu: the MTU of every pod's veth.
//                       "0" (the default since Calico 3.23's manifests): Felix auto-detects it on each
//                       node (underlay - IPIP 20 / VXLAN 50 / WireGuard 60) and the API does not say it.
//   Calico (operator)   Installation operator.tigera.io/v1 "default", spec.calicoNetwork.mtu: the same;
//                       absent: auto-detected.
//   Cilium              ConfigMap kube-system/cilium-config, mtu: the device MTU ("0" or absent:
//                       auto-detected). Pods' routes leave room for the tunnel (VXLAN/Geneve 50 in the
//                       default tunnel routing mode, 0 in native routing) and for WireGuard (80), as
//                       Cilium's pkg/mtu getRouteMTU does (older releases took only the 80 with
//                       WireGuard in tunnel mode: then this is 50 low, on the safe side).
//                       With IPsec the overhead depends on the key length: not read.
//   Flannel (and k3s)   net-conf.json names no MTU: flanneld derives it per node from the underlay
//                       (VXLAN: underlay - 50) into /run/flannel/subnet.env, which the API never shows.
//
// Several answers (two CNIs, a migration): the smallest wins, since every pod must fit.

import { MTU_OVERHEAD } from '../config/schema.js';

/** The pod network's MTU and where it came from. */
export interface PodMTU {
  value: number;
  source: string;
}

/** What the CNIs published, as the API returned it (undefined: not there). */
export interface CniObjects {
  /** data of ConfigMap kube-system/calico-config */
  calicoConfig?: Record<string, string>;
  /** The Tigera operator's Installation "default" (operator.tigera.io/v1), whole. */
  tigeraInstallation?: { spec?: { calicoNetwork?: { mtu?: unknown } } } | null;
  /** data of ConfigMap kube-system/cilium-config */
  ciliumConfig?: Record<string, string>;
  /** ConfigMap kube-flannel-cfg: where it was found and its data. */
  flannelConfig?: { namespace: string; data: Record<string, string> };
}

export interface PodMTUReading {
  /** undefined: no CNI says it (then the gateways' mtu is used as configured, unchecked). */
  found: PodMTU | undefined;
  /** Why a source gave no MTU, one line each (for the log). */
  notes: string[];
}

/** Cilium's overheads (pkg/mtu): a VXLAN or Geneve tunnel header, and WireGuard's. */
export const CILIUM_TUNNEL_OVERHEAD = 50;
export const CILIUM_WIREGUARD_OVERHEAD = 80;

/** An MTU as a CNI writes it: a positive integer the kernel could accept for an IPv4 link. */
function parseMTU(raw: unknown): number | 'auto' | 'invalid' {
  if (raw === undefined || raw === null || raw === '' || raw === 0 || raw === '0') return 'auto';
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : '';
  if (!/^\d{1,5}$/.test(text)) return 'invalid';
  const n = Number(text);
  if (n === 0) return 'auto';
  return n >= 576 && n <= 65_535 ? n : 'invalid';
}

/** Read the pod network's MTU from what the CNIs published. Pure. */
export function podMTUFromCni(objects: CniObjects): PodMTUReading {
  const notes: string[] = [];
  const found: PodMTU[] = [];

  if (objects.calicoConfig !== undefined) {
    const label = 'ConfigMap kube-system/calico-config veth_mtu';
    const v = parseMTU(objects.calicoConfig.veth_mtu);
    if (typeof v === 'number') found.push({ value: v, source: `${label} ${v}` });
    else if (v === 'auto') notes.push(`${label}: 0 or absent, Calico auto-detects the MTU on each node and the API does not say it`);
    else notes.push(`${label}: ${JSON.stringify(objects.calicoConfig.veth_mtu)} is not an MTU`);
  }

  if (objects.tigeraInstallation !== undefined) {
    const label = 'Installation default (operator.tigera.io/v1) spec.calicoNetwork.mtu';
    const raw = objects.tigeraInstallation?.spec?.calicoNetwork?.mtu;
    const v = parseMTU(raw);
    if (typeof v === 'number') found.push({ value: v, source: `${label} ${v}` });
    else if (v === 'auto') notes.push(`${label}: not set, Calico auto-detects the MTU on each node and the API does not say it`);
    else notes.push(`${label}: ${JSON.stringify(raw)} is not an MTU`);
  }

  if (objects.ciliumConfig !== undefined) {
    const c = objects.ciliumConfig;
    const label = 'ConfigMap kube-system/cilium-config mtu';
    const v = parseMTU(c.mtu);
    if (v === 'auto') notes.push(`${label}: 0 or absent, Cilium auto-detects the MTU on each node and the API does not say it`);
    else if (v === 'invalid') notes.push(`${label}: ${JSON.stringify(c.mtu)} is not an MTU`);
    else if (c['enable-ipsec'] === 'true') notes.push(`${label} ${v}: with IPsec the pods' MTU depends on the cipher; not read`);
    else {
      // Cilium < 1.14: tunnel: vxlan|geneve|disabled (default vxlan); 1.14+: routing-mode tunnel|native.
      const native = c['routing-mode'] === 'native' || c.tunnel === 'disabled';
      const wireguard = c['enable-wireguard'] === 'true';
      const overhead = (native ? 0 : CILIUM_TUNNEL_OVERHEAD) + (wireguard ? CILIUM_WIREGUARD_OVERHEAD : 0);
      const parts = [native ? 'native routing' : `tunnel - ${CILIUM_TUNNEL_OVERHEAD}`, ...(wireguard ? [`WireGuard - ${CILIUM_WIREGUARD_OVERHEAD}`] : [])];
      found.push({ value: v - overhead, source: `${label} ${v} (${parts.join(', ')})` });
    }
  }

  if (objects.flannelConfig !== undefined) {
    let backend = 'vxlan';
    try {
      const parsed = JSON.parse(objects.flannelConfig.data['net-conf.json'] ?? '{}') as { Backend?: { Type?: unknown } } | null;
      if (typeof parsed?.Backend?.Type === 'string') backend = parsed.Backend.Type;
    } catch {
      // the pod-range reader notes an unreadable net-conf.json
    }
    notes.push(
      `ConfigMap ${objects.flannelConfig.namespace}/kube-flannel-cfg: Flannel publishes no MTU (backend ${backend}: flanneld derives it on each node from the underlay${backend === 'vxlan' ? ' - 50' : ''})`,
    );
  }

  if (found.length === 0) return { found: undefined, notes };
  const smallest = found.reduce((a, b) => (b.value < a.value ? b : a));
  const others = found.filter((f) => f !== smallest);
  return {
    found: others.length === 0 ? smallest : { value: smallest.value, source: `${smallest.source}, the smallest of ${found.map((f) => f.source).join('; ')}` },
    notes,
  };
}

/** The largest tunnel MTU that fits a pod network: room for WireGuard over IPv6 (80) >= VXLAN (50). */
export function largestTunnelMTU(podMTU: number): number {
  return podMTU - MTU_OVERHEAD;
}

/** The smallest tunnel MTU the config accepts (IPv6's minimum: the tunnel carries IPv6 too). */
export const MIN_TUNNEL_MTU = 1280;

/**
 * Why a routed pod of this gateway would not work on this pod network (its vxlan0 would be refused
 * and the client's init container crash-loop), with the numbers and what to set; undefined when the
 * gateway's mtu fits or the pod network's MTU is unknown. Pure.
 */
export function gatewayMTUProblem(gateway: { name: string; mtu: number }, podMTU: PodMTU | undefined): string | undefined {
  if (podMTU === undefined) return undefined;
  const max = largestTunnelMTU(podMTU.value);
  if (gateway.mtu <= max) return undefined;
  const head =
    `podvpn will not route pods through gateway "${gateway.name}": its tunnel MTU ${gateway.mtu} does not fit ` +
    `the pod network's MTU ${podMTU.value} (from ${podMTU.source}), which leaves at most ${max} ` +
    `(${podMTU.value} - ${MTU_OVERHEAD} for WireGuard over IPv6; VXLAN needs 50), so the routed pod's vxlan0 ` +
    `would be refused and its init container would crash-loop.`;
  if (max < MIN_TUNNEL_MTU) {
    return (
      `${head} No tunnel MTU fits: podvpn needs at least ${MIN_TUNNEL_MTU} (IPv6's minimum), so a pod network MTU of ` +
      `${MIN_TUNNEL_MTU + MTU_OVERHEAD} or more. If the pod network's MTU is not ${podMTU.value}, set it in the podvpn config: ` +
      `cluster:\n  podMTU: <the MTU of a pod's eth0>`
    );
  }
  return (
    `${head} Set in the podvpn config:\n  gateways:\n    ${gateway.name}:\n      mtu: ${max}\n` +
    `and the same WIREGUARD_MTU in that gateway's manifest (env WIREGUARD_MTU: "${max}" on its gluetun container); ` +
    `or, if the pod network's MTU is not ${podMTU.value}, set cluster.podMTU to the MTU of a pod's eth0.`
  );
}
