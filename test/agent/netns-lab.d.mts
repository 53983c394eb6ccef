// Types of netns-lab.mjs (plain JavaScript so that bench/agent-netns.mjs runs it with node alone).

export declare const canRunNetnsLab: () => boolean;

export interface NetnsLab {
  pod: string;
  node: string;
  gw: string;
  exec(ns: string, argv: string[], stdin?: string): { status: number | null; stdout: string; stderr: string };
  must(ns: string, ...argv: string[]): string;
  /** Replace the gateway: a new pod IP (the old one gone), dnsmasq restarted with an empty lease file. */
  replaceGateway(newIP: string): Promise<void>;
  close(): Promise<void>;
}

/** extraDnsmasqArgs: for experiments (e.g. --no-ping); the default is gateway_sidecar.sh's settings. */
export declare function startNetnsLab(tag: string, extraDnsmasqArgs?: string[]): Promise<NetnsLab>;
