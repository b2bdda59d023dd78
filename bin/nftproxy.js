#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (make build).
import { main } from '../dist/src/cli/main.js';
// `nftproxy dump | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); else throw e; });
process.exitCode = await main(process.argv.slice(2));
