#!/usr/bin/env node
// Entry point of the `puzzle` command (compiled TypeScript in dist/, built by `npm ci`).
import { main } from '../dist/cli/main.js';

await main(process.argv);
