// AdmissionReview in, AdmissionReview out. Reads the review, asks the pure decision and injection,
// ensures the kill switch through an injected port, and shapes the reply the API server expects.

import { gatewayMTUProblem } from '../cluster/pod-mtu.js';
import type { ClusterRanges } from '../cluster/ranges.js';
import type { Config } from '../config/schema.js';
import { ADMISSION_API_VERSION } from '../constants.js';
import type { EnsureResult } from './ports.js';
import { type DenyReason, HttpError, type SkipReason } from '../errors.js';
import type { ExitFacts } from '../exits/admission.js';
import { decide } from '../inject/decision.js';
import { injectionPatch } from '../inject/patch.js';
import { isPodCreate } from '../inject/rules.js';
import { clientsFirstPatch } from '../inject/reorder.js';
import { clientSettings } from '../inject/settings.js';
import type { NamespaceFacts, PatchOperation } from '../inject/types.js';
import { readPod } from '../inject/wire.js';
import { clip } from '../util/clip.js';

export interface AdmissionRequest {
  uid: string;
  operation: string;
  resource: { group?: string; version?: string; resource: string };
  subResource?: string;
  namespace: string;
  name: string;
  dryRun: boolean;
  object: unknown;
}

export interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request: AdmissionRequest;
}

/** Validate the envelope; anything the API server would never send is a 4xx with the reason. */
export function parseReview(body: unknown): AdmissionReview {
  if (!isObject(body)) {
    throw new HttpError('PODVPN_ERR_NOT_ADMISSION_REVIEW', 'expected a JSON object');
  }
  const review = body;
  if (review.kind !== 'AdmissionReview') {
    throw new HttpError('PODVPN_ERR_NOT_ADMISSION_REVIEW', `kind is ${clip(JSON.stringify(review.kind ?? null) ?? '')}`);
  }
  if (review.apiVersion !== ADMISSION_API_VERSION) {
    throw new HttpError('PODVPN_ERR_UNSUPPORTED_VERSION', `got ${clip(JSON.stringify(review.apiVersion ?? null) ?? '')}`);
  }
  const r = review.request;
  if (!isObject(r)) throw new HttpError('PODVPN_ERR_NO_REQUEST');
  if (typeof r.uid !== 'string' || r.uid === '') throw new HttpError('PODVPN_ERR_NO_UID');
  const resource = isObject(r.resource) ? r.resource : undefined;
  // Names for the log only; the object itself is checked by readPod() in admit().
  const meta = isObject(r.object) && isObject(r.object.metadata) ? r.object.metadata : undefined;
  return {
    apiVersion: review.apiVersion,
    kind: review.kind,
    request: {
      uid: r.uid,
      operation: typeof r.operation === 'string' ? r.operation : '',
      resource: { resource: typeof resource?.resource === 'string' ? resource.resource : '' },
      subResource: typeof r.subResource === 'string' ? r.subResource : undefined,
      namespace: str(r.namespace) ?? str(meta?.namespace) ?? '',
      name: str(r.name) ?? str(meta?.name) ?? str(meta?.generateName) ?? '',
      dryRun: r.dryRun === true,
      object: r.object,
    },
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** What admission needs from the edges: the namespace cache, the ranges and the kill switch. */
export interface AdmissionPorts {
  config: Config;
  namespaceFacts(namespace: string): NamespaceFacts | undefined;
  /**
   * Read the namespace from the API, bypassing the cache. Called only when the cache has not seen the
   * namespace, or says it did not opt in although the API server sent us the pod: a watch that lags
   * behind a fresh label must not let a pod through unrouted.
   */
  fetchNamespaceFacts?(namespace: string): Promise<NamespaceFacts | undefined | 'throttled'>;
  ranges(): ClusterRanges | undefined;
  /** Why ranges() is undefined, with what to configure: the denial says it. */
  rangesProblem?(): string | undefined;
  /** Exit groups: what is known of a group's exits (health, loads); absent: nothing (src/exits). */
  exitFacts?(gateway: string): ExitFacts | undefined;
  /** Exit groups: a pod was given an exit (not a dry run), so the loads count it before the watch does. */
  exitAssigned?(a: { namespace: string; prefix: string; gateway: string; exit: string }): void;
  /** Make sure the kill-switch policy exists before the pod is admitted. */
  ensureKillSwitch(namespace: string, gateway: string, opts: { dryRun: boolean }): Promise<EnsureResult>;
}

export type Outcome =
  | { outcome: 'injected'; gateway: string; patch: PatchOperation[]; warnings: string[]; exit?: string }
  /** Already injected, but another webhook put init containers in front of the client: moved back. */
  | { outcome: 'reordered'; gateway: string; patch: PatchOperation[]; warnings: string[] }
  | { outcome: 'skipped'; reason: SkipReason; warnings: string[] }
  | { outcome: 'denied'; reason: DenyReason; message: string; warnings: string[] };

export async function admit(request: AdmissionRequest, ports: AdmissionPorts): Promise<Outcome> {
  if (!isPodCreate({ operation: request.operation, resource: request.resource.resource, subResource: request.subResource })) {
    return { outcome: 'skipped', reason: 'not-pod-create', warnings: [] };
  }
  // The one place the review's object is checked to be a pod; from here on it is typed.
  const read = readPod(request.object);
  if (!read.ok) return { outcome: 'denied', reason: 'invalid-pod', message: read.message, warnings: [] };
  const pod = read.pod;
  const decideWith = (namespaceFacts: NamespaceFacts | undefined) =>
    decide({
      operation: request.operation,
      resource: request.resource.resource,
      subResource: request.subResource,
      namespace: request.namespace,
      pod,
      namespaceFacts,
      ranges: ports.ranges(),
      rangesProblem: ports.rangesProblem?.(),
      config: ports.config,
      reviewUid: request.uid,
      exitFacts: (gateway: string) => ports.exitFacts?.(gateway),
    });
  const cached = ports.namespaceFacts(request.namespace);
  let decision = decideWith(cached);
  const mayLag = cached === undefined || (decision.action === 'skip' && decision.reason === 'not-opted-in');
  if (mayLag && ports.fetchNamespaceFacts !== undefined) {
    // The API server's selectors are authoritative: it sent the pod because it saw the namespace (or
    // the pod) opted in. If the namespace cannot be read, decide as if opted in, never skip: the
    // kill-switch step then fails closed when the API is unreachable.
    const live = await ports.fetchNamespaceFacts(request.namespace);
    if (live === 'throttled') {
      // Over the live-read budget (a flood of reviews): neither skip (a real lag would let the pod
      // through unrouted) nor inject on a guess (which writes a policy). The API server retries.
      return {
        outcome: 'denied',
        reason: 'namespace-unverified',
        message: `podvpn has not seen namespace ${request.namespace} opt in and is over its budget of live namespace reads; retry shortly`,
        warnings: [],
      };
    }
    decision = decideWith(live);
  }
  if (decision.action === 'readmit') {
    // Already injected (reinvocation, or a manifest injected offline): its policy must exist too.
    const gateway = decision.gateway;
    const ensured = await ports.ensureKillSwitch(request.namespace, gateway, { dryRun: request.dryRun });
    if (!ensured.ok) return killSwitchDenial(ensured.message, []);
    const warnings = ensured.warning === undefined ? [] : [ensured.warning];
    const reorder = clientsFirstPatch(pod);
    if (reorder.length > 0) return { outcome: 'reordered', gateway, patch: reorder, warnings };
    return { outcome: 'skipped', reason: 'already-injected', warnings };
  }
  if (decision.action === 'skip') return { outcome: 'skipped', reason: decision.reason, warnings: [] };
  if (decision.action === 'deny') return { outcome: 'denied', reason: decision.reason, message: decision.message, warnings: [] };
  const ranges = decision.ranges;
  // A tunnel MTU the pod network cannot carry: the client's vxlan0 would be refused and its init
  // container crash-loop. Deny before any policy is written.
  const mtuProblem = gatewayMTUProblem(decision.gateway, ranges.podMTU);
  if (mtuProblem !== undefined) return { outcome: 'denied', reason: 'gateway-mtu-too-large', message: mtuProblem, warnings: [] };
  const injection = injectionPatch({
    pod,
    namespace: request.namespace,
    gateway: decision.gateway,
    settings: clientSettings(decision.gateway, ranges),
    dataPlane: decision.dataPlane,
    config: ports.config,
    exit: decision.exit,
  });
  const warnings = [...decision.warnings, ...injection.warnings];
  const ensured = await ports.ensureKillSwitch(request.namespace, decision.gateway.name, { dryRun: request.dryRun });
  if (!ensured.ok) return killSwitchDenial(ensured.message, warnings);
  if (ensured.warning !== undefined) warnings.push(ensured.warning);
  if (decision.exit !== undefined && !request.dryRun) {
    const meta = pod.metadata;
    const prefix = typeof meta?.name === 'string' && meta.name !== '' ? meta.name : typeof meta?.generateName === 'string' ? meta.generateName : '';
    ports.exitAssigned?.({ namespace: request.namespace, prefix, gateway: decision.gateway.name, exit: decision.exit });
  }
  return { outcome: 'injected', gateway: decision.gateway.name, patch: injection.patch, warnings, ...(decision.exit === undefined ? {} : { exit: decision.exit }) };
}

function killSwitchDenial(message: string, warnings: string[]): Outcome {
  return {
    outcome: 'denied',
    reason: 'killswitch-failed',
    message: `podvpn could not put the kill-switch NetworkPolicy in place, so the pod is not admitted: ${message}`,
    warnings,
  };
}

/**
 * Warnings reach users as HTTP Warning headers. The API server passes them whole while their total is
 * under 4,096 runes; beyond that it cuts each to 256 runes and drops what still does not fit
 * (k8s.io/apiserver/pkg/endpoints/filters/warning.go). Fit them the same way here, so what a user
 * sees is what podvpn logged.
 */
export const WARNINGS_TOTAL_RUNES = 4096;
export const WARNING_ITEM_RUNES = 256;

export function fitWarnings(warnings: string[]): string[] {
  const runes = (s: string) => [...s].length;
  if (warnings.reduce((n, w) => n + runes(w), 0) < WARNINGS_TOTAL_RUNES) return warnings;
  const out: string[] = [];
  let written = 0;
  for (const w of warnings) {
    const chars = [...w];
    const cut = chars.length > WARNING_ITEM_RUNES ? `${chars.slice(0, WARNING_ITEM_RUNES - 3).join('')}...` : w;
    if (written + runes(cut) >= WARNINGS_TOTAL_RUNES) break;
    out.push(cut);
    written += runes(cut);
  }
  return out;
}

export function buildResponse(review: Pick<AdmissionReview, 'apiVersion' | 'kind'>, uid: string, outcome: Outcome): object {
  const response: Record<string, unknown> = { uid, allowed: outcome.outcome !== 'denied' };
  if (outcome.outcome === 'injected' || outcome.outcome === 'reordered') {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(outcome.patch)).toString('base64');
  }
  if (outcome.outcome === 'denied') {
    response.status = { code: 403, reason: 'Forbidden', message: outcome.message };
  }
  if (outcome.warnings.length > 0) {
    response.warnings = fitWarnings(outcome.warnings);
  }
  return { apiVersion: review.apiVersion, kind: review.kind, response };
}

export function errorResponse(review: Pick<AdmissionReview, 'apiVersion' | 'kind'>, uid: string, message: string): object {
  return {
    apiVersion: review.apiVersion,
    kind: review.kind,
    response: { uid, allowed: false, status: { code: 500, reason: 'InternalError', message } },
  };
}
