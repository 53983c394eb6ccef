import type { SecureContextOptions } from 'node:tls';

/** The webhook's TLS settings, whatever the certificate source. */
export const TLS_OPTIONS: SecureContextOptions = {
  // TLS 1.2 is the floor; Node negotiates 1.3 with every client that has it (the API server does).
  minVersion: 'TLSv1.2',
};
