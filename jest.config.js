/**
 * Two projects: `unit` (in-process, memory engine, parallel) and `integration` (real Redis,
 * spawned processes, run serially by the Makefile). Both use ts-jest on the TypeScript sources;
 * spawned processes run the compiled dist/ (make builds it first).
 *
 * jose and oauth2-mock-server ship ES modules only: Node 20's require loads them in the
 * processes, but Jest's own module loader does not, so ts-jest compiles them to CommonJS here.
 */
const esmOnly = ['jose', 'oauth2-mock-server', 'is-plain-obj'];
const common = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }],
    '^.+\\.m?js$': [
      'ts-jest',
      { tsconfig: { allowJs: true, module: 'commonjs', target: 'ES2022' }, isolatedModules: true },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
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
