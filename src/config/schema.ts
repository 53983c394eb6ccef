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

/** Most exits a group may have: each is a gateway pod with its own VPN account or device slot. */
export const MAX_EXITS = 16;
/** What the exits of a group share (overlayNetwork, dns, mtu, vxlanPort, connectionRetryCount): refused on one exit. */
const sharedByGroup = z
  .unknown()
  .refine((v) => v === undefined, {
    message:
      "is shared by the exits of a group (one overlay, so a pod's DNS server .1 stays valid when it moves to another exit): set it on the gateway, not on one exit",
  })
  .optional();

/** One exit of a group: its own gateway pod (Deployment, headless Service podvpn-gateway-<name>, VPN Secret). */
export const ExitSchema = z
  .object({
    /** DNS label, unique among every gateway and exit name: it names the exit's Service and Secret. */
    name: z.string().regex(DNS_LABEL, 'exit names must be DNS labels (a-z, 0-9, -)').max(40),
    /** VXLAN network identifier of this exit; unique among all exits and gateways. */
    vxlanId: z.number().int().min(1).max(16_777_215),
    /** DNS name of the exit's headless Service. Default: `podvpn-gateway-<exit>.podvpn-system.svc.<cluster domain>`. */
    address: z.string().regex(DNS_NAME, 'must be a DNS name').optional(),
    /**
     * The exit's health endpoint: 200 while its tunnel passes traffic. Default: the exit probe,
     * `http://<address>:9998/` (`podvpn exit-probe`, about 2 s to notice a dead tunnel); gluetun's
     * own health server, `http://<address>:9999/`, answers the same way but takes a minute or two.
     */
    healthURL: z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).optional(),
    overlayNetwork: sharedByGroup,
    dns: sharedByGroup,
    mtu: sharedByGroup,
    vxlanPort: sharedByGroup,
    connectionRetryCount: sharedByGroup,
  })
  .strict();

export const GatewaySchema = z
  .object({
    /**
     * DNS name of the gateway's headless Service. The client resolves it through cluster DNS to the
     * gateway pod's IP. Default: `podvpn-gateway-<name>.podvpn-system.svc.<cluster domain>`.
     */
    address: z.string().regex(DNS_NAME, 'must be a DNS name').optional(),
    /** VXLAN network identifier; gateways that share pods must differ. Default 42 (not with `exits`: each exit has its own). */
    vxlanId: z.number().int().min(1).max(16_777_215).optional(),
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
    /**
     * An exit group: the gateway is several exits, each its own gateway pod with its own VPN identity
     * and VXLAN id, sharing the overlay above (so `.1`, the pods' DNS server, stays valid when a pod
     * moves). Pods are spread over the exits (src/exits/assign.ts); podvpn.io/exit pins one.
     */
    exits: z.array(ExitSchema).min(1).max(MAX_EXITS).optional(),
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
    const names = new Map<string, string>(Object.keys(cfg.gateways).map((n) => [n, `gateway "${n}"`]));
    for (const [name, gw] of Object.entries(cfg.gateways)) {
      if (gw.exits !== undefined) {
        checkExitGroup(name, gw, ids, names, (path, message) => ctx.addIssue({ code: 'custom', path, message }));
      } else {
        const id = gw.vxlanId ?? DEFAULT_VXLAN_ID;
        const other = ids.get(id);
        if (other !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['gateways', name, 'vxlanId'],
            message: `is also used by ${other}; each gateway needs its own VXLAN id`,
          });
        }
        ids.set(id, `gateway "${name}"`);
      }
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

const DEFAULT_VXLAN_ID = 42;

/**
 * An exit group's own rules: no gateway-level vxlanId or address (each exit has its own), exit names
 * unique among every gateway and exit (each names a Service podvpn-gateway-<exit> in podvpn-system),
 * VXLAN ids unique among every exit and gateway. The shared overlay is structural: an exit cannot set one.
 */
function checkExitGroup(
  name: string,
  gw: z.output<typeof GatewaySchema>,
  ids: Map<number, string>,
  names: Map<string, string>,
  issue: (path: PropertyKey[], message: string) => void,
): void {
  const exits = gw.exits ?? [];
  if (gw.vxlanId !== undefined) {
    issue(['gateways', name, 'vxlanId'], 'is set per exit in an exit group (each exit has its own VXLAN id); remove it here');
  }
  if (gw.address !== undefined) {
    issue(['gateways', name, 'address'], "is set per exit in an exit group (each exit is its own gateway pod and Service); remove it here");
  }
  exits.forEach((exit, i) => {
    const nameOwner = names.get(exit.name);
    if (nameOwner !== undefined) {
      issue(['gateways', name, 'exits', i, 'name'], `"${exit.name}" is also the name of ${nameOwner}; exit and gateway names must all differ (each names a Service podvpn-gateway-<name>)`);
    } else {
      names.set(exit.name, `exit "${exit.name}" of gateway "${name}"`);
    }
    const idOwner = ids.get(exit.vxlanId);
    if (idOwner !== undefined) {
      issue(['gateways', name, 'exits', i, 'vxlanId'], `${exit.vxlanId} is also used by ${idOwner}; each exit needs its own VXLAN id`);
    } else {
      ids.set(exit.vxlanId, `exit "${exit.name}" of gateway "${name}"`);
    }
  });
}

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
  /**
   * Present for an exit group only (then `address` and `vxlanId` above are its first exit's, for
   * callers that have not chosen an exit; injection always chooses one: src/exits/assign.ts).
   */
  exits?: readonly Exit[];
}

/** One exit of a group, resolved. */
export interface Exit {
  name: string;
  /** The exit's headless Service: resolves to its gateway pod's IP. */
  address: string;
  vxlanId: number;
  /** Its health endpoint (src/exits/health.ts says what healthy means). */
  healthURL: string;
}

/** gluetun's health server, as manifests/components/exit-group binds it (HEALTH_SERVER_ADDRESS). */
export const EXIT_HEALTH_PORT = 9999;

/**
 * podvpn's own exit probe in each exit's gateway pod (`podvpn exit-probe`): answers as gluetun's
 * health server does, from a probe through the tunnel every second, so the agent fails pods over in
 * seconds rather than at gluetun's next 60 s check.
 */
export const EXIT_PROBE_PORT = 9998;

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
    const serviceAddress = (n: string) => `${gatewayServiceName(n)}.${SYSTEM_NAMESPACE}.svc.${parsed.cluster.domain}`;
    const exits = gw.exits?.map((e): Exit => {
      const address = e.address ?? serviceAddress(e.name);
      return { name: e.name, address, vxlanId: e.vxlanId, healthURL: e.healthURL ?? `http://${address}:${EXIT_PROBE_PORT}/` };
    });
    gateways[name] = {
      name,
      address: exits?.[0]?.address ?? gw.address ?? serviceAddress(name),
      vxlanId: exits?.[0]?.vxlanId ?? gw.vxlanId ?? DEFAULT_VXLAN_ID,
      vxlanPort: gw.vxlanPort,
      overlayNetwork: gw.overlayNetwork,
      overlayGatewayIP,
      dns: gw.dns ?? overlayGatewayIP,
      mtu: gw.mtu,
      connectionRetryCount: gw.connectionRetryCount,
      ...(exits === undefined ? {} : { exits }),
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
