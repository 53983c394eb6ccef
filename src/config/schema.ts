// One config schema, validated once at start. It feeds the server, the CLI and the manifests.

import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { DATA_PLANES, SYSTEM_NAMESPACE, VERSION } from '../constants.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const ipv4 = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s), {
  message: 'must be an IPv4 address such as 10.96.0.10',
});
const cidr = z.string().refine((s) => isCidr(s), {
  message: 'must be a CIDR such as 10.244.0.0/16',
});

function isCidr(value: string): boolean {
  try {
    ipaddr.parseCIDR(value);
    return true;
  } catch {
    return false;
  }
}

/** The pod-gateway client takes the overlay as three octets and a fixed /24 with the gateway at .1. */
const overlayNetwork = z
  .string()
  .refine((s) => /^\d+\.\d+\.\d+\.0\/24$/.test(s) && isCidr(s), {
    message: 'must be an IPv4 /24 ending in .0/24 (pod-gateway hard-codes a /24 with the gateway at .1)',
  });

export const GatewaySchema = z
  .object({
    /**
     * DNS name of the gateway's headless Service. The client resolves it through cluster DNS to the
     * gateway pod's IP. Default: `podvpn-gateway-<name>.podvpn-system.svc.<cluster domain>`.
     */
    address: z.string().regex(DNS_NAME, 'must be a DNS name').optional(),
    /** VXLAN network identifier; gateways that share pods must differ. */
    vxlanId: z.number().int().min(1).max(16_777_215).default(42),
    /** 4789 (IANA VXLAN), never 8472: Flannel and Cilium use 8472 for their own overlay. */
    vxlanPort: z.number().int().min(1).max(65_535).default(4789),
    /** The client-to-gateway overlay. The gateway is .1 and serves DHCP and DNS there. */
    overlayNetwork: overlayNetwork.default('172.16.0.0/24'),
    /** Nameserver the routed pods use: the gateway's dnsmasq, reached through the tunnel. */
    dns: ipv4.optional(),
    /**
     * MTU of the routed pods' and the gateway's vxlan0 (pod-gateway sets vxlan0 to exactly this:
     * its min(eth0 - 50, mtu) test never works) and of the gateway's WireGuard (WIREGUARD_MTU, kept
     * equal in the gateway manifest). Must be at most the pod network's MTU - 80 (WireGuard over
     * IPv6; VXLAN needs 50): else the kernel refuses vxlan0's MTU and every init container
     * crash-loops, or the tunnel's packets do not fit. 1320 (gluetun's own default) fits pod
     * networks of 1400 and up: Flannel/Calico/Cilium VXLAN on a 1500 or a 1450 underlay.
     */
    mtu: z.number().int().min(1280).max(9000).default(1320),
    /**
     * pod-gateway's CONNECTION_RETRY_COUNT for the routed pods: echoes per gateway check. 1 (the
     * image's default) tears the tunnel, and every open connection, down on one lost echo.
     */
    connectionRetryCount: z.number().int().min(1).max(10).default(3),
  })
  .strict();

const ImagesSchema = z
  .object({
    /** pod-gateway image with client_init.sh and client_sidecar.sh. */
    client: z.string().min(1).default('ghcr.io/angelnu/pod-gateway:v1.13.0'),
    pullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
    /** podvpn's own image: agent mode's gate init container runs from it. */
    podvpn: z.string().min(1).default(`ghcr.io/podvpn/podvpn:v${VERSION}`),
  })
  .strict();

const ResourceListSchema = z.record(z.string(), z.string());
const ResourcesSchema = z
  .object({
    requests: ResourceListSchema.default({ cpu: '10m', memory: '16Mi' }),
    limits: ResourceListSchema.default({ cpu: '100m', memory: '64Mi' }),
  })
  .strict();

const ClusterSchema = z
  .object({
    domain: z.string().regex(DNS_NAME, 'must be a DNS name such as cluster.local').default('cluster.local'),
    /** Pod and service ranges. Empty: discovered from the cluster (never guessed). */
    podCIDRs: z.array(cidr).default([]),
    serviceCIDRs: z.array(cidr).default([]),
    /** Ranges inside the cluster's reach that pods may use directly, such as the home LAN. */
    extraAllowedCIDRs: z.array(cidr).default([]),
    /** Refuse allowed ranges that cover public address space unless this is set: it would open the kill switch. */
    allowPublicRanges: z.boolean().default(false),
    /** The cluster DNS Service IPs the client uses to resolve the gateway. Empty: discovered. */
    dnsIPs: z.array(ipv4).default([]),
    /**
     * The pod network's MTU (a pod's eth0). When set, every gateway's `mtu` is checked against it
     * (at most podMTU - 80) and discovery is not asked. Unset: read where the CNI publishes it
     * (src/cluster/pod-mtu.ts); set it where the CNI does not (Flannel, k3s) and uses less than 1400.
     */
    podMTU: z.number().int().min(1280).max(9000).optional(),
  })
  .strict();

export const ConfigSchema = z
  .object({
    gateways: z
      .record(z.string().regex(DNS_LABEL, 'gateway names must be DNS labels (a-z, 0-9, -)').max(40), GatewaySchema)
      .default({ default: GatewaySchema.parse({}) })
      .refine((g) => Object.keys(g).length > 0, { message: 'at least one gateway is required' }),
    defaultGateway: z.string().default('default'),
    cluster: ClusterSchema.default(ClusterSchema.parse({})),
    images: ImagesSchema.default(ImagesSchema.parse({})),
    resources: ResourcesSchema.default(ResourcesSchema.parse({})),
    /** `native`: restartPolicy Always init container (Kubernetes >= 1.29; Jobs complete). `container`: a plain container. */
    sidecarMode: z.enum(['native', 'container']).default('native'),
    /**
     * `pod-gateway`: pod-gateway's client init and sidecar in each routed pod (root, NET_ADMIN).
     * `agent`: the podvpn-agent DaemonSet builds the tunnel from the node; the pod gets one unprivileged
     * gate init container. A namespace overrides it with the podvpn.io/data-plane annotation.
     */
    dataPlane: z.enum(DATA_PLANES).default('pod-gateway'),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    if (!(cfg.defaultGateway in cfg.gateways)) {
      ctx.addIssue({
        code: 'custom',
        path: ['defaultGateway'],
        message: `names no gateway in gateways (have: ${Object.keys(cfg.gateways).join(', ')})`,
      });
    }
    const ids = new Map<number, string>();
    for (const [name, gw] of Object.entries(cfg.gateways)) {
      const other = ids.get(gw.vxlanId);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['gateways', name, 'vxlanId'],
          message: `is also used by gateway "${other}"; each gateway needs its own VXLAN id`,
        });
      }
      ids.set(gw.vxlanId, name);
      const podMTU = cfg.cluster.podMTU;
      if (podMTU !== undefined && gw.mtu > podMTU - MTU_OVERHEAD) {
        ctx.addIssue({
          code: 'custom',
          path: ['gateways', name, 'mtu'],
          message: `${gw.mtu} does not fit cluster.podMTU ${podMTU}: at most ${podMTU - MTU_OVERHEAD} (WireGuard over IPv6 needs 80 bytes, VXLAN 50; the kernel refuses a bigger vxlan0 and the init containers crash-loop)`,
        });
      }
    }
  });

/** What the pod network must carry around a routed pod's packet: WireGuard over IPv6 (80) >= VXLAN (50). */
export const MTU_OVERHEAD = 80;

type ParsedConfig = z.output<typeof ConfigSchema>;

/** A gateway with every default resolved: what the injector and the manifests use. */
export interface Gateway {
  name: string;
  address: string;
  vxlanId: number;
  vxlanPort: number;
  overlayNetwork: string;
  /** The gateway's own overlay address (.1 of the overlay). */
  overlayGatewayIP: string;
  dns: string;
  mtu: number;
  connectionRetryCount: number;
}

export interface Config extends Omit<ParsedConfig, 'gateways'> {
  gateways: Record<string, Gateway>;
}

export function gatewayServiceName(name: string): string {
  return `podvpn-gateway-${name}`;
}

export class ConfigError extends Error {
  readonly code = 'PODVPN_ERR_CONFIG';
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Validate raw config (from YAML or defaults); the error names every bad field by its path. */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = ConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
    throw new ConfigError(`invalid ${source}:\n  ${issues.join('\n  ')}`, issues);
  }
  return resolveDefaults(result.data);
}

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

function resolveDefaults(parsed: ParsedConfig): Config {
  const gateways: Record<string, Gateway> = {};
  for (const [name, gw] of Object.entries(parsed.gateways)) {
    const base = gw.overlayNetwork.slice(0, gw.overlayNetwork.lastIndexOf('.'));
    const overlayGatewayIP = `${base}.1`;
    gateways[name] = {
      name,
      address: gw.address ?? `${gatewayServiceName(name)}.${SYSTEM_NAMESPACE}.svc.${parsed.cluster.domain}`,
      vxlanId: gw.vxlanId,
      vxlanPort: gw.vxlanPort,
      overlayNetwork: gw.overlayNetwork,
      overlayGatewayIP,
      dns: gw.dns ?? overlayGatewayIP,
      mtu: gw.mtu,
      connectionRetryCount: gw.connectionRetryCount,
    };
  }
  return { ...parsed, gateways };
}

/** Built-in defaults: `npm start` works with no file. */
export function defaultConfig(): Config {
  return parseConfig({}, 'built-in defaults');
}

/**
 * Ranges used only when no cluster is connected and the config gives none (standalone `serve`, offline
 * `inject`): kubeadm's defaults. With a cluster, ranges come from config or discovery, never from here.
 */
export const STANDALONE_CLUSTER_DEFAULTS = {
  podCIDRs: ['10.244.0.0/16'],
  serviceCIDRs: ['10.96.0.0/12'],
  dnsIPs: ['10.96.0.10'],
} as const;
