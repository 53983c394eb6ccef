// The exit a new pod gets at admission (pure), for the webhook and offline `podvpn inject` alike.
//
// A single-exit gateway: nothing changes (no exit label), but a pin must not name an exit that is not
// there. An exit group: the pin (annotation podvpn.io/exit) if it names one of the group's exits,
// else rendezvous over the exits believed healthy, with the loads when known (assign.ts). The pod is
// then injected against that exit's own gateway view: its Service and VXLAN id, the group's overlay.

import type { Config, Exit, Gateway } from '../config/schema.js';
import { ANNOTATION_EXIT, ANNOTATION_GATEWAY, type DataPlane } from '../constants.js';
import { clip } from '../util/clip.js';
import { chooseExit } from './assign.js';

/** What the webhook believes about a group's exits; undefined fields: not known. */
export interface ExitFacts {
  /** Names of the exits whose health endpoint said healthy at the last check. */
  healthy?: ReadonlySet<string> | undefined;
  /** Routed pods per exit now. */
  loads?: ReadonlyMap<string, number> | undefined;
}

export type ExitDecision =
  | { ok: true; gateway: Gateway; exit?: string; warnings: string[] }
  | { ok: false; reason: 'unknown-exit'; message: string };

export function exitForPod(input: {
  gateway: Gateway;
  podAnnotations: Readonly<Record<string, unknown>>;
  /** The rendezvous key (assign.ts podExitKey, or a template's key offline). */
  key: string;
  /** Both data planes assign the same way: the agent then routes the pod through its exit (and fails it over). */
  dataPlane: DataPlane;
  config: Config;
  facts?: ExitFacts | undefined;
}): ExitDecision {
  const { gateway, podAnnotations, key, config } = input;
  const rawPin = Object.hasOwn(podAnnotations, ANNOTATION_EXIT) ? podAnnotations[ANNOTATION_EXIT] : undefined;
  const pin = rawPin === undefined ? undefined : typeof rawPin === 'string' ? rawPin : JSON.stringify(rawPin);
  const exits = gateway.exits;
  if (exits === undefined) {
    if (pin === undefined || pin === gateway.name) return { ok: true, gateway, warnings: [] };
    return { ok: false, reason: 'unknown-exit', message: unknownExit(pin, gateway, config) };
  }
  const names = exits.map((e) => e.name);
  const choice = chooseExit({ key, exits: names, pin, healthy: input.facts?.healthy, loads: input.facts?.loads });
  if (!choice.ok) return { ok: false, reason: 'unknown-exit', message: unknownExit(choice.pin, gateway, config) };
  const exit = exits.find((e) => e.name === choice.exit)!;
  const warnings: string[] = [];
  if (choice.how === 'pinned' && choice.pinnedUnhealthy === true) {
    warnings.push(`podvpn: pinned exit ${exit.name} is not healthy; the pod has no internet until it is (it fails closed)`);
  }
  if (choice.how === 'rendezvous-all-unhealthy') {
    warnings.push(`podvpn: no exit of gateway ${gateway.name} is healthy; the pod waits on exit ${exit.name} (no internet until it is back)`);
  }
  return { ok: true, gateway: exitView(gateway, exit), exit: exit.name, warnings };
}

function unknownExit(pin: string, gateway: Gateway, config: Config): string {
  const where = Object.values(config.gateways).find((g) => g.exits?.some((e) => e.name === pin));
  const have = gateway.exits === undefined ? `it has one exit, "${gateway.name}"` : `exits: ${gateway.exits.map((e) => e.name).join(', ')}`;
  const hint =
    where !== undefined && where.name !== gateway.name
      ? `; "${clip(pin)}" is an exit of gateway "${where.name}": annotate the pod ${ANNOTATION_GATEWAY}: ${where.name}`
      : '; fix the annotation or add the exit to the gateway in podvpn\'s config';
  return `the pod annotation ${ANNOTATION_EXIT}="${clip(pin)}" names no exit of gateway "${gateway.name}" (${have})${hint}`;
}

// One view per (group, exit), made once: clientSettings() memoises by the gateway object.
const views = new WeakMap<Gateway, Map<string, Gateway>>();

/** The group as one exit sees it: the exit's Service and VXLAN id, the group's name, overlay and DNS. */
export function exitView(gateway: Gateway, exit: Exit): Gateway {
  let byExit = views.get(gateway);
  if (byExit === undefined) views.set(gateway, (byExit = new Map<string, Gateway>()));
  let view = byExit.get(exit.name);
  if (view === undefined) byExit.set(exit.name, (view = Object.freeze({ ...gateway, address: exit.address, vxlanId: exit.vxlanId })));
  return view;
}
