import { defineConfig } from 'vitest/config';

// `make test`'s second run: the bench smoke check alone (see vitest.config.ts).
export default defineConfig({ test: { include: ['test/bench-smoke/**/*.test.ts'] } });
