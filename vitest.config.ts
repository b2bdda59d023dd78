import { defineConfig } from 'vitest/config';

// The bench smoke run (test/bench-smoke/) loads the CPU for half a minute: `make test` runs it
// alone, after the suite, so the real-traffic tests' timeouts never compete with it.
export default defineConfig({
  test: {
    exclude: ['**/node_modules/**', '**/dist/**', 'test/bench-smoke/**'],
  },
});
