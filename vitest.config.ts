import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    exclude: ['node_modules/**', 'dist/**', 'packages/*/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites share one machine's network stack: some create guests' taps and bridges in the root
    // namespace while another checks that nothing of its own leaked there. One file at a time keeps
    // those checks exact; the suites start their own nats-servers and qemu processes anyway, which
    // leaves little for a second worker on two cores.
    fileParallelism: false,
  },
});
