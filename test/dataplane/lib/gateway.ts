// The gateway pod's settings, read from podvpn's rendered manifest, and the gluetun-like firewall
// built from them. Pure: text in, settings and iptables commands out (the lab runs them).

import { parseAllDocuments } from 'yaml';

export const GATEWAY_DEPLOYMENT = 'podvpn-gateway-default';
export const GATEWAY_NAMESPACE = 'podvpn-system';

/**
 * pod-gateway v1.13.0's /default_config/settings.sh (the image's defaults, before /config/settings.sh),
 * for the lab's own reading of the settings (the scripts themselves source the image's file).
 */
export const POD_GATEWAY_DEFAULTS: Readonly<Record<string, string>> = {
  VXLAN_ID: '42',
  VXLAN_PORT: '0',
  VXLAN_IP_NETWORK: '172.16.0',
  VXLAN_GATEWAY_FIRST_DYNAMIC_IP: '20',
  VPN_INTERFACE: 'tun0',
  VPN_BLOCK_OTHER_TRAFFIC: 'true',
  VPN_TRAFFIC_PORT: '443',
  VPN_LOCAL_CIDRS: '10.0.0.0/8 192.168.0.0/16',
  DNS_LOCAL_CIDRS: 'local',
  DNS_LOCAL_SERVER: '',
  CONNECTION_RETRY_COUNT: '1',
  GATEWAY_ENABLE_DNSSEC: 'true',
  VPN_INTERFACE_MTU: '',
};

/** A volume a container sees: a directory (hides the image's) or one file (subPath). */
export interface VolumeMount {
  path: string;
  dir: boolean;
  /** Directory mounts: file name -> text. subPath mounts: one entry, keyed ''. */
  files: Record<string, string>;
}

/** A pod-gateway container of the gateway pod, as the manifest runs it. */
export interface GatewayContainer {
  name: string;
  command: string[];
  mounts: VolumeMount[];
}

export interface GatewayManifestSettings {
  /** Where the values came from (for the lab's log and report). */
  source: string;
  /** pod-gateway's gateway settings: image defaults, then the containers' env, then /config/settings.sh. */
  podGateway: Record<string, string>;
  /** The gluetun container's environment (plain values and ConfigMap references resolved). */
  gluetunEnv: Record<string, string>;
  /** gluetun's /iptables/post-rules.txt, one iptables command a line ([] when absent). */
  postRules: string[];
  /** Extra dnsmasq config files the pod-gateway sidecar sees in /etc/dnsmasq.d/. */
  dnsmasqConf: string[];
  /** The pod-gateway containers (gateway-init, gateway-sidecar) with their commands and volumes. */
  podGatewayContainers?: GatewayContainer[];
  /** gluetun's command when the manifest overrides the image's entrypoint (a start wrapper). */
  gluetunCommand?: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Parses `KEY=value` / `KEY="value"` / `KEY='value'` / `export KEY=...` lines; ignores the rest. */
export function parseSettingsScript(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let value = (m[2] ?? '').trim();
    if (value.startsWith("'")) {
      value = value.replace(/^'((?:[^']|'\\'')*)'.*$/, '$1').replaceAll("'\\''", "'");
    } else if (value.startsWith('"')) {
      value = value.replace(/^"((?:[^"\\]|\\.)*)".*$/, '$1').replace(/\\(.)/g, '$1');
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    out[m[1] as string] = value;
  }
  return out;
}

/** Finds the gateway Deployment in rendered manifests (kustomize output) and reads its settings. */
export function readGatewayManifest(yamlText: string, source: string, deploymentName: string = GATEWAY_DEPLOYMENT): GatewayManifestSettings {
  const docs = parseAllDocuments(yamlText)
    .map((d) => d.toJS() as unknown)
    .flatMap((d) => (isObj(d) && d.kind === 'List' ? arr(d.items) : [d]))
    .filter(isObj);
  const meta = (d: Obj) => (isObj(d.metadata) ? d.metadata : {});
  const deployment = docs.find(
    (d) => d.kind === 'Deployment' && meta(d).name === deploymentName && (meta(d).namespace ?? GATEWAY_NAMESPACE) === GATEWAY_NAMESPACE,
  );
  if (!deployment) throw new Error(`${source}: no Deployment ${GATEWAY_NAMESPACE}/${deploymentName}`);
  const configMaps = new Map<string, Record<string, string>>();
  for (const d of docs) {
    if (d.kind !== 'ConfigMap') continue;
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(isObj(d.data) ? d.data : {})) if (typeof v === 'string') data[k] = v;
    configMaps.set(String(meta(d).name), data);
  }
  const podSpec = isObj(deployment.spec) && isObj(deployment.spec.template) && isObj(deployment.spec.template.spec)
    ? deployment.spec.template.spec
    : {};
  const containers = [...arr(podSpec.initContainers), ...arr(podSpec.containers)].filter(isObj);
  const volumes = new Map<string, Obj>();
  for (const v of arr(podSpec.volumes).filter(isObj)) volumes.set(String(v.name), v);

  const envOf = (c: Obj): Record<string, string> => {
    const env: Record<string, string> = {};
    for (const from of arr(c.envFrom).filter(isObj)) {
      const ref = isObj(from.configMapRef) ? str(from.configMapRef.name) : undefined;
      const prefix = str(from.prefix) ?? '';
      if (ref !== undefined) for (const [k, v] of Object.entries(configMaps.get(ref) ?? {})) env[prefix + k] = v;
    }
    for (const e of arr(c.env).filter(isObj)) {
      const name = str(e.name);
      if (name === undefined) continue;
      if (typeof e.value === 'string') env[name] = e.value;
      else if (isObj(e.valueFrom) && isObj(e.valueFrom.configMapKeyRef)) {
        const ref = e.valueFrom.configMapKeyRef;
        const v = configMaps.get(String(ref.name))?.[String(ref.key)];
        if (v !== undefined) env[name] = v;
      }
    }
    return env;
  };
  /** Every file a container sees from ConfigMap volumes: path -> text (directory and subPath mounts). */
  const mountedFiles = (c: Obj): Map<string, string> => {
    const files = new Map<string, string>();
    for (const m of arr(c.volumeMounts).filter(isObj)) {
      const vol = volumes.get(String(m.name));
      if (!vol || !isObj(vol.configMap)) continue;
      const data = configMaps.get(String(vol.configMap.name)) ?? {};
      const items = arr(vol.configMap.items).filter(isObj);
      // path inside the volume -> ConfigMap key
      const entries: [string, string][] =
        items.length > 0 ? items.map((i) => [String(i.path), String(i.key)]) : Object.keys(data).map((k) => [k, k]);
      const mountPath = (typeof m.mountPath === 'string' ? m.mountPath : '').replace(/\/+$/, '');
      for (const [path, key] of entries) {
        const text = data[key];
        if (text === undefined) continue;
        if (typeof m.subPath === 'string' && m.subPath !== '') {
          if (m.subPath === path) files.set(mountPath, text);
        } else {
          files.set(`${mountPath}/${path}`, text);
        }
      }
    }
    return files;
  };
  /** The ConfigMap volumes as mounts (directory or subPath), for the lab's containers. */
  const volumeMounts = (c: Obj): VolumeMount[] => {
    const out: VolumeMount[] = [];
    for (const m of arr(c.volumeMounts).filter(isObj)) {
      const vol = volumes.get(String(m.name));
      if (!vol || !isObj(vol.configMap)) continue;
      const data = configMaps.get(String(vol.configMap.name)) ?? {};
      const items = arr(vol.configMap.items).filter(isObj);
      const entries: [string, string][] =
        items.length > 0 ? items.map((i) => [String(i.path), String(i.key)]) : Object.keys(data).map((k) => [k, k]);
      const path = (typeof m.mountPath === 'string' ? m.mountPath : '').replace(/\/+$/, '');
      const files: Record<string, string> = {};
      if (typeof m.subPath === 'string' && m.subPath !== '') {
        const hit = entries.find(([p]) => p === m.subPath);
        const text = hit ? data[hit[1]] : undefined;
        if (text !== undefined) out.push({ path, dir: false, files: { '': text } });
        continue;
      }
      for (const [p, key] of entries) if (data[key] !== undefined) files[p] = data[key];
      out.push({ path, dir: true, files });
    }
    return out;
  };
  const image = (c: Obj) => (typeof c.image === 'string' ? c.image : '');
  const gluetun = containers.find((c) => /gluetun/.test(image(c)) || c.name === 'gluetun');
  if (!gluetun) throw new Error(`${source}: the gateway Deployment has no gluetun container`);
  const podGatewayContainers = containers.filter((c) => /pod-gateway/.test(image(c)));
  if (podGatewayContainers.length === 0) throw new Error(`${source}: the gateway Deployment has no pod-gateway container`);

  const podGateway: Record<string, string> = { ...POD_GATEWAY_DEFAULTS };
  for (const c of podGatewayContainers) Object.assign(podGateway, envOf(c));
  const dnsmasqConf: string[] = [];
  for (const c of podGatewayContainers) {
    const files = mountedFiles(c);
    const text = files.get('/config/settings.sh');
    if (text !== undefined) {
      Object.assign(podGateway, parseSettingsScript(text));
      // An exit's settings.sh sources its own file from the same volume (`. /config/exit.sh`): VXLAN_ID.
      for (const m of text.matchAll(/^\s*\.\s+(\/config\/[\w.-]+)\s*$/gm)) {
        const sourced = files.get(m[1] as string);
        if (sourced !== undefined) Object.assign(podGateway, parseSettingsScript(sourced));
      }
    }
    for (const [path, conf] of files) if (path.startsWith('/etc/dnsmasq.d/') && !dnsmasqConf.includes(conf)) dnsmasqConf.push(conf);
  }
  const postRulesText = mountedFiles(gluetun).get('/iptables/post-rules.txt') ?? '';
  return {
    source,
    podGateway,
    gluetunEnv: envOf(gluetun),
    dnsmasqConf,
    podGatewayContainers: podGatewayContainers.map((c) => ({
      name: typeof c.name === 'string' ? c.name : '',
      command: arr(c.command).map(String),
      mounts: volumeMounts(c),
    })),
    ...(arr(gluetun.command).length > 0 ? { gluetunCommand: arr(gluetun.command).map(String) } : {}),
    postRules: postRulesText
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^(iptables|ip6tables|iptables-nft|ip6tables-nft) /.test(l)),
  };
}

export interface GluetunSettings {
  firewall: boolean;
  vpnType: string;
  vpnInterface: string;
  outboundSubnets: string[];
  inputPorts: number[];
  vpnInputPorts: number[];
  wireguardMtu: number;
  postRules: string[];
}

/** gluetun's MTU when WIREGUARD_MTU is unset (the lab assumes its current default). */
export const GLUETUN_DEFAULT_WIREGUARD_MTU = 1320;

const list = (v: string | undefined) =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

export function gluetunSettings(m: GatewayManifestSettings): GluetunSettings {
  const env = m.gluetunEnv;
  const vpnType = (env.VPN_TYPE ?? 'openvpn').toLowerCase();
  const ports = (v: string | undefined) =>
    list(v).map((p) => {
      const n = Number(p);
      if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`gluetun: bad port "${p}"`);
      return n;
    });
  return {
    // gluetun >= 3.40 names the switch FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT; FIREWALL before.
    firewall: !['off', 'no', 'false'].includes(
      (env.FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT ?? env.FIREWALL ?? 'on').toLowerCase(),
    ),
    vpnType,
    vpnInterface: env.VPN_INTERFACE ?? (vpnType === 'wireguard' ? 'wg0' : 'tun0'),
    outboundSubnets: list(env.FIREWALL_OUTBOUND_SUBNETS),
    inputPorts: ports(env.FIREWALL_INPUT_PORTS),
    vpnInputPorts: ports(env.FIREWALL_VPN_INPUT_PORTS),
    wireguardMtu: env.WIREGUARD_MTU ? Number(env.WIREGUARD_MTU) : GLUETUN_DEFAULT_WIREGUARD_MTU,
    postRules: m.postRules,
  };
}

export interface GatewayRuntime {
  /** The interface of the default route (eth0) and its address. */
  defaultIf: string;
  defaultIP: string;
  /** Routes without a gateway on Ethernet-like links (eth0's, vxlan0's), as gluetun finds them. */
  localNetworks: { iface: string; ip: string; cidr: string }[];
  endpoint: { ip: string; port: number; protocol: 'udp' | 'tcp' };
}

const isV6 = (s: string) => s.includes(':');

/**
 * The iptables commands gluetun runs, following its internal/firewall. Firewall enable: default-drop
 * policies for IPv4 and IPv6; loopback; established/related; each local network out of and into its
 * interface; FIREWALL_OUTBOUND_SUBNETS out of the default interface from its IP; FIREWALL_INPUT_PORTS
 * (TCP and UDP) on the default interface; /iptables/post-rules.txt verbatim. Then, when the tunnel
 * connects: the VPN endpoint on the default interface, all output through the VPN interface and
 * FIREWALL_VPN_INPUT_PORTS on it. With FIREWALL=off gluetun adds nothing (every policy stays ACCEPT).
 */
export function gluetunFirewallCommands(s: GluetunSettings, rt: GatewayRuntime): string[] {
  if (!s.firewall) return [];
  const both = (rule: string) => [`iptables ${rule}`, `ip6tables ${rule}`];
  const fam = (addr: string) => (isV6(addr) ? 'ip6tables' : 'iptables');
  const cmds: string[] = [];
  for (const chain of ['INPUT', 'OUTPUT', 'FORWARD']) cmds.push(...both(`--policy ${chain} DROP`));
  cmds.push(...both('--append INPUT -i lo -j ACCEPT'), ...both('--append OUTPUT -o lo -j ACCEPT'));
  cmds.push(...both('--append OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'));
  cmds.push(...both('--append INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'));
  for (const n of rt.localNetworks) {
    if (isV6(n.cidr) !== isV6(n.ip)) continue;
    cmds.push(`${fam(n.cidr)} --append OUTPUT -o ${n.iface} -s ${n.ip} -d ${n.cidr} -j ACCEPT`);
  }
  for (const subnet of s.outboundSubnets) {
    if (isV6(subnet) !== isV6(rt.defaultIP)) continue;
    cmds.push(`${fam(subnet)} --append OUTPUT -o ${rt.defaultIf} -s ${rt.defaultIP} -d ${subnet} -j ACCEPT`);
  }
  for (const n of rt.localNetworks) cmds.push(`${fam(n.cidr)} --append INPUT -i ${n.iface} -d ${n.cidr} -j ACCEPT`);
  for (const port of s.inputPorts) {
    for (const proto of ['tcp', 'udp']) cmds.push(...both(`--append INPUT -i ${rt.defaultIf} -p ${proto} --dport ${port} -j ACCEPT`));
  }
  // The user's post-rules end gluetun's firewall enable.
  for (const rule of s.postRules) cmds.push(rule.replace(/^(ip6?tables)-nft /, '$1 '));
  // The VPN connection (gluetun's SetVPNConnection), once the tunnel is configured.
  const e = rt.endpoint;
  cmds.push(`${fam(e.ip)} --append OUTPUT -d ${e.ip} -o ${rt.defaultIf} -p ${e.protocol} -m ${e.protocol} --dport ${e.port} -j ACCEPT`);
  cmds.push(...both(`--append OUTPUT -o ${s.vpnInterface} -j ACCEPT`));
  for (const port of s.vpnInputPorts) {
    for (const proto of ['tcp', 'udp']) cmds.push(...both(`--append INPUT -i ${s.vpnInterface} -p ${proto} --dport ${port} -j ACCEPT`));
  }
  return cmds;
}
