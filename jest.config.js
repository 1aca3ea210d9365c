/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }],
  },
  // Native ops run on 2 cores: run suites one after another so timings and RSS checks are not
  // disturbed by a parallel worker, and libtorch does not oversubscribe the machine.
  maxWorkers: 1,
  testTimeout: 120000,
};
