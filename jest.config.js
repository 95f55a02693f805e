/**
 * Two projects: `unit` (in-process, memory engine, parallel) and `integration` (real Redis,
 * spawned processes, run serially by the Makefile). Both use ts-jest on the TypeScript sources;
 * spawned processes run the compiled dist/ (make builds it first).
 */
const common = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
};
module.exports = {
  testTimeout: 60000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
    },
  ],
};
