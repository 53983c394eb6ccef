import { defineConfig } from 'vitest/config';

// Unit, golden and integration tests. The data-plane lab (root, network namespaces) has its own
// runner: `npm run test:dataplane`.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'test/dataplane/**'],
    setupFiles: ['test/vitest.setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
