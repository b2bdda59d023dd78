import { defineConfig } from 'vitest/config';

// The bench smoke run (test/bench-smoke/) loads the CPU for half a minute: `make test` runs it
// alone, after the suite, so the real-traffic tests' timeouts never compete with it.
export default defineConfig({
  test: {
    exclude: ['**/node_modules/**', '**/dist/**', 'test/bench-smoke/**'],
    // Hooks build and tear down labs (namespaces, agents, daemons): seconds each on a loaded
    // two-CPU machine, where the default 10 s cut a teardown short and left namespaces behind.
    hookTimeout: 60_000,
    // removes the namespaces of test workers that died before their cleanup ran (test/lab/orphans.ts)
    globalSetup: ['test/lab/global-setup.ts'],
  },
});
