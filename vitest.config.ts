import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default is one worker fewer than the CPUs, which on a 2-core
    // machine runs the files one at a time. Most of the suite waits on
    // child processes (qemu, gcc, libipt's tools, redis), so two files at a
    // time took the suite from about 15 to about 11 minutes on 2 cores.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // Turns a test file whose event loop is blocked (which vitest's own
    // timeouts cannot end) into a failure that says where it stopped.
    setupFiles: ['test/helpers/stall-watchdog.ts'],
  },
});
