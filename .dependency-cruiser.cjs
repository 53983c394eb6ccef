// The import graph's rules, checked by `npm run lint` (dependency-cruiser). Type-only imports count:
// a circle of types is one value import away from a real ESM evaluation-order bug, and it means two
// modules cannot be read or replaced alone.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles, type-only imports included: move shared types to the module that consumes them.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-not-from-test',
      severity: 'error',
      comment: 'Product code never imports test code (unit tests beside it may use the golden harness).',
      from: { path: '^src/', pathNot: '\\.test\\.ts$' },
      to: { path: '^test/' },
    },
    {
      name: 'unit-tests-stay-pure',
      severity: 'error',
      comment: 'src/**/*.test.ts is the unit project: no sockets or processes (those tests live in test/).',
      from: { path: '^src/.+\\.test\\.ts$' },
      to: { dependencyTypes: ['core'], path: '^(node:)?(child_process|net|http|https|http2|tls|dgram|cluster|worker_threads)$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Keep type-only imports (erased by tsc) in the graph.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
