import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Turns a test file whose event loop is blocked (which vitest's own
    // timeouts cannot end) into a failure that says where it stopped.
    setupFiles: ['test/helpers/stall-watchdog.ts'],
  },
});
