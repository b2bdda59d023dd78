// `node --expose-gc bench/dist/bench/src/encoder-main.js [ELEMENTS] [RUNS]`: issue 13's encoder
// comparison on its own (encoder.ts), in a throwaway namespace for the kernel check (root).
// Prints the result as JSON; `make bench` runs the same as its encoder phase.
import { encoderBench } from './encoder.js';
import { Netns, cleanupAll } from './sys.js';

const [elements = 100_000, runs = 7] = process.argv.slice(2).map(Number);
const ns = process.getuid?.() === 0 ? await Netns.create('enc') : undefined;
try {
  const r = await encoderBench({ elements, runs, ...(ns ? { netns: `/run/netns/${ns.name}` } : {}) });
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
} finally {
  await cleanupAll();
}
