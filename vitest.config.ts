import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites each start their own nats-server and real guests; two cores do not
    // gain from more parallel files than this.
    maxWorkers: 2,
    fileParallelism: true,
  },
});
