/** The one place that loads the native addon, with one actionable error when it cannot. */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { PuzzleError } from '../core/errors.js';
import type { NativeAddon } from './types.js';

// ts/native/loader.ts and dist/native/loader.js both sit two folders below the package root.
export const packageRoot = fileURLToPath(new URL('../../', import.meta.url));
export const addonPath = process.env.PUZZLE_ADDON ?? `${packageRoot}build/Release/puzzle.node`;

let cached: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  if (!existsSync(addonPath)) {
    throw new PuzzleError(
      'ERR_PUZZLE_ADDON_MISSING',
      `the native addon is not built: ${addonPath} does not exist. Run \`npm run build:native\` ` +
        '(needs CMake >= 3.18 and a C++17 compiler) or reinstall with `npm ci`.',
    );
  }
  try {
    cached = createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (err) {
    throw new PuzzleError(
      'ERR_PUZZLE_ADDON_BROKEN',
      `the native addon at ${addonPath} failed to load (${(err as Error).message}). ` +
        'Rebuild it for this Node version with `npm run build:native`.',
      { cause: err },
    );
  }
  const threads = process.env.PUZZLE_THREADS;
  if (threads) cached.setThreads(Number(threads));
  return cached;
}

/** What CMake reported when it built the addon (CPU paths, CUDA module and why). */
export function buildSummary(): string {
  const path = `${packageRoot}build/build-summary.txt`;
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : 'unknown (no build/build-summary.txt)';
}
