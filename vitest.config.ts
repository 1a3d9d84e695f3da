import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native kernels own the machine's cores; test files run one at a time.
    fileParallelism: false,
    reporters: ['default', './test/support/count-reporter.ts'],
  },
});
