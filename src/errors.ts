// One catalogue of coded outcomes, shared by logs, replies and metrics. Codes are never reused.

// The reason codes of skips and denials, as replies, logs and the reason metric label carry them. Each
// is decided, and a denial's message written, in src/inject/decision.ts.
/** Skip reasons with the words offline `inject` prints beside them. */
export const SKIP_REASONS = {
  'not-pod-create': 'not a pod CREATE',
  'mirror-pod': 'mirror (static) pod: the kubelet owns it and ignores mutations',
  'already-injected': 'pod already carries podvpn.io/status',
  'opted-out': 'pod label podvpn.io/inject is "false"',
  'not-opted-in': 'neither the pod nor its namespace opted in',
  'excluded-namespace': 'system namespace: never routed',
} as const;
export type SkipReason = keyof typeof SKIP_REASONS;

export type DenyReason =
  | 'host-network'
  | 'unknown-gateway'
  | 'pod-security'
  | 'invalid-inject-label'
  | 'invalid-pod'
  | 'name-conflict'
  | 'cluster-ranges-unknown'
  | 'killswitch-failed'
  | 'incomplete-injection'
  | 'unsupported-os'
  | 'namespace-unverified'
  | 'existing-vpn'
  | 'dns-config-too-large'
  | 'invalid-data-plane'
  /** The gateway's tunnel MTU does not fit the pod network's MTU (src/cluster/pod-mtu.ts). */
  | 'gateway-mtu-too-large'
  /** podvpn.io/exit names no exit of the pod's gateway (src/exits/admission.ts). */
  | 'unknown-exit';

/** Errors answered with a non-200 status: the request itself is not a usable AdmissionReview. */
export const HTTP_ERRORS = {
  PODVPN_ERR_BODY_NOT_JSON: { status: 400, message: 'request body is not valid JSON' },
  PODVPN_ERR_NOT_ADMISSION_REVIEW: { status: 400, message: 'request body is not an AdmissionReview' },
  PODVPN_ERR_UNSUPPORTED_VERSION: { status: 400, message: 'only admission.k8s.io/v1 AdmissionReview is supported' },
  PODVPN_ERR_NO_REQUEST: { status: 400, message: 'AdmissionReview has no request' },
  PODVPN_ERR_NO_UID: { status: 400, message: 'AdmissionReview request has no uid' },
  PODVPN_ERR_BODY_TOO_LARGE: { status: 413, message: 'request body is larger than the webhook accepts' },
  PODVPN_ERR_CONTENT_TYPE: { status: 415, message: 'content type must be application/json' },
  PODVPN_ERR_NOT_FOUND: { status: 404, message: 'no such path' },
  PODVPN_ERR_INTERNAL: { status: 500, message: 'internal error' },
  PODVPN_ERR_BUSY: { status: 503, message: 'the webhook is holding as many request bodies as it may; retry' },
} as const;
export type HttpErrorCode = keyof typeof HTTP_ERRORS;

export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly code: HttpErrorCode,
    detail?: string,
  ) {
    super(detail === undefined ? HTTP_ERRORS[code].message : `${HTTP_ERRORS[code].message}: ${detail}`);
    this.status = HTTP_ERRORS[code].status;
  }
}
