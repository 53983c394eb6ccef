// How much one client can hold of a replica. The webhook answers with failurePolicy Fail, so a
// replica that stalls or is OOM-killed stops pod creation in every routed namespace. Every figure
// here is sized against the Deployment's memory limit (manifests/base/deployment.yaml: 384Mi; about
// 145-175 MiB in use at ready and under load in a cluster, npm run bench), with the worst case
// written out (measured with bench/hostile.mjs on the standalone server, 84 MiB at ready):
//
//   connections  an open TLS connection holding headers and 48 KiB of a body costs ~145 KiB
//                (1024 such: +148 MiB); webhook cap 512 -> ~74 MiB, admin cap 64 -> ~9 MiB
//   bodies       at most maxBufferedBodyBytes of request bodies held at once, across connections;
//                a parsed review costs about twice its size: 24 MiB -> ~50 MiB
//
// so the worst case stays near 175 + 74 + 9 + 50 = 308 MiB < 384 MiB. Timeouts bound how long a
// client can hold any of it: the API server gives a webhook at most 30 s (ours: 5 s), so a request
// still incomplete after 10 s is one nobody waits for.

export interface ServerLimits {
  /** The whole request, headers and body, must arrive within this (Node's requestTimeout). */
  requestTimeoutMs: number;
  /** The headers must arrive within this (Node's headersTimeout; at most requestTimeoutMs). */
  headersTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (longer than the client's reuse window is pointless). */
  keepAliveTimeoutMs: number;
  /** The TLS handshake must finish within this (Node's default is 120 s). */
  handshakeTimeoutMs: number;
  /** How often Node checks the two request timeouts (its default, 30 s, would stretch them). */
  checkIntervalMs: number;
  /** Connections beyond this are closed as soon as they are accepted. */
  maxConnections: number;
  /** Request bodies buffered at once across all connections; beyond it a request gets 503. */
  maxBufferedBodyBytes: number;
}

export const WEBHOOK_LIMITS: ServerLimits = {
  requestTimeoutMs: 10_000,
  headersTimeoutMs: 5_000,
  // The API server's client (Go net/http) keeps idle connections up to 90 s; a shorter server-side
  // timeout only costs a new handshake now and then.
  keepAliveTimeoutMs: 65_000,
  handshakeTimeoutMs: 5_000,
  checkIntervalMs: 1_000,
  maxConnections: 512,
  maxBufferedBodyBytes: 24 * 1024 * 1024,
};

export const ADMIN_LIMITS: ServerLimits = {
  requestTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  keepAliveTimeoutMs: 10_000,
  handshakeTimeoutMs: 5_000, // plain HTTP: unused
  checkIntervalMs: 1_000,
  maxConnections: 64,
  maxBufferedBodyBytes: 64 * 1024,
};

/** After the drain delay the listener closes; connections accepted just before get this long to send their request. */
export const SHUTDOWN_SETTLE_MS = 500;
/** After the drain delay, requests already in flight get this long to finish before their connections are closed. */
export const SHUTDOWN_IN_FLIGHT_MS = 5_000;

/** After a 413, read and discard at most this much more of the body, for this long, so the client can read the reply. */
export const LINGER_BYTES = 8 * 1024 * 1024;
export const LINGER_MS = 2_000;
