import { defineConfig } from 'vitest/config';

// The data-plane lab (root, network namespaces): `npm run test:dataplane`. One file at a time, in
// order, because the lab files share the kernel; the summary reporter prints `N passed, N failed`.
export default defineConfig({
  test: {
    include: ['test/dataplane/**/*.test.ts'],
    // The exit-group lab (exits.test.ts) runs only with LAB_EXITS=1 for now: at 30 pods per mode on a
    // two-core machine it runs in about 10 minutes, but its drain check (X7) does not pass yet and it
    // has not been clean twice in a row (README "Exit groups"), so it is not part of the CI run, and
    // nothing of it is counted there.
    exclude: process.env.LAB_EXITS === '1' ? [] : ['test/dataplane/exits.test.ts'],
    fileParallelism: false,
    sequence: { concurrent: false },
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default', './test/dataplane/summary-reporter.ts'],
  },
});
