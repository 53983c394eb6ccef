// API errors from @kubernetes/client-node: test a status code, and say what went wrong in one line.
// The only copy: discovery, the kill switch, the namespace watch and the certificate Secret all use it.

import { ApiException } from '@kubernetes/client-node';

export function isStatus(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

/** The Status message of an API error (the body's `message`, else the raw body); undefined otherwise. */
export function apiMessage(err: unknown): string | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const body = err.body as unknown;
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return (body as { message?: string } | undefined)?.message;
}

/**
 * One line for any error from the API: `HTTP 403 Forbidden: secrets "x" is forbidden: ...` (code,
 * Status reason, Status message), or the connection failure (`Kubernetes API unreachable or failed:
 * ECONNREFUSED ...`).
 */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = err.body as unknown;
    let parsed: { reason?: string; message?: string } | undefined;
    if (typeof body === 'string') {
      try {
        parsed = JSON.parse(body) as { reason?: string; message?: string };
      } catch {
        parsed = { message: body };
      }
    } else parsed = body as { reason?: string; message?: string } | undefined;
    return `HTTP ${err.code}${parsed?.reason ? ` ${parsed.reason}` : ''}${parsed?.message ? `: ${parsed.message}` : ''}`;
  }
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return `Kubernetes API unreachable or failed: ${code !== undefined ? `${code} ` : ''}${err.message}`;
  }
  return String(err);
}
