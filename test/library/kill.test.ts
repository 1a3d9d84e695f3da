// Killing a library build at random points loses no finished entry, and the resumed build
// equals an uninterrupted one.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { pretrain } from '../../ts/train/pretrain.js';
import { checkLibrary, entryPaths } from '../../ts/library/store.js';
import { scorePath } from '../../ts/score/replace1.js';
import { tinyRun } from '../support/tiny-run.js';

const CHILD = fileURLToPath(new URL('../support/library-child.ts', import.meta.url));
const SCORE_CHILD = fileURLToPath(new URL('../support/score-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let parentDir = '';
let refLib = '';

beforeAll(async () => {
  const r = await pretrain({ ...tinyRun(), steps: 60, checkpointEvery: 60, outDir: mkdtempSync(join(tmpdir(), 'puzzle-kparent-')) });
  parentDir = r.modelDir;
}, 300_000);

/** Runs the child; kills it after `killAfterLines` progress lines (plus a few random ms). */
function run(lib: string, killAfterLines: number | null, child = CHILD): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, parentDir, lib], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PUZZLE_THREADS: '1' } });
    let out = '';
    let err = '';
    let killing = false;
    p.stdout.on('data', (d) => {
      out += d;
      if (killAfterLines !== null && !killing && out.split('\n').length > killAfterLines) {
        killing = true;
        setTimeout(() => p.kill('SIGKILL'), Math.floor(Math.random() * 10));
      }
    });
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(false) : code === 0 && out.includes('DONE') ? resolve(true) : reject(new Error(err))));
  });
}

/**
 * Kills `child` `kills` times at random points (`killPoint()` progress lines in), then lets it
 * finish; `check` runs after every run on the folder and the finished-file mtimes seen so far.
 * A run meant to be killed can still finish first when its kill point lies past the work it had
 * left; the folder is then complete after fewer kills, so the whole sequence starts again on a
 * fresh folder from `fresh()`.
 */
async function killRepeatedly(kills: number, killPoint: () => number, child: string, fresh: () => string, check: (dir: string, seen: Map<string, number>) => void): Promise<string> {
  for (let restart = 0; restart < 5; restart++) {
    const dir = fresh();
    const seen = new Map<string, number>(); // finished file -> mtime when first seen
    let k = 0;
    for (;;) {
      const done = await run(dir, k < kills ? killPoint() : null, child);
      check(dir, seen);
      if (done && k === kills) return dir;
      if (done) break;
      k++;
    }
  }
  throw new Error(`${child} finished before its kill landed five times over`);
}

/** Records a finished file's mtime the first time it is seen; fails if it changes later. */
function unchanged(seen: Map<string, number>, key: string, path: string): void {
  const t = statSync(path).mtimeMs;
  if (seen.has(key)) expect(t, `${key} was rewritten after it finished`).toBe(seen.get(key));
  else seen.set(key, t);
}

describe('library build under kill -9', () => {
  it('resumes without losing or changing a finished entry', async () => {
    const ref = mkdtempSync(join(tmpdir(), 'puzzle-kref-'));
    expect(await run(ref, null)).toBe(true);
    refLib = ref;
    const lib = await killRepeatedly(4, () => 2 + Math.floor(Math.random() * 20), CHILD, () => mkdtempSync(join(tmpdir(), 'puzzle-klib-')), (dir, seen) => {
      for (const e of checkLibrary(dir).entries) unchanged(seen, `${e.layer}/${e.id}`, entryPaths(dir, e.layer, e.id).json);
    });
    const r = checkLibrary(lib);
    expect(r.complete).toBe(true);
    for (const e of r.entries)
      expect(readFileSync(entryPaths(lib, e.layer, e.id).weights).equals(readFileSync(entryPaths(ref, e.layer, e.id).weights)), `${e.layer}/${e.id}`).toBe(true);
  }, 600_000);
});

describe('scoring under kill -9', () => {
  it('resumes without losing or changing a finished score, and equals an uninterrupted run', async () => {
    expect(refLib).not.toBe('');
    // an uninterrupted scoring of a copy is the reference
    const whole = mkdtempSync(join(tmpdir(), 'puzzle-kscore-ref-'));
    cpSync(refLib, whole, { recursive: true });
    expect(await run(whole, null, SCORE_CHILD)).toBe(true);
    const entries = checkLibrary(refLib).entries;
    const fresh = () => {
      const dir = mkdtempSync(join(tmpdir(), 'puzzle-kscore-'));
      cpSync(refLib, dir, { recursive: true });
      return dir;
    };
    const lib = await killRepeatedly(3, () => 2 + Math.floor(Math.random() * 4), SCORE_CHILD, fresh, (dir, seen) => {
      for (const e of entries) {
        const p = scorePath(dir, e.layer, e.id);
        if (!existsSync(p)) continue;
        JSON.parse(readFileSync(p, 'utf8')); // never a half-written file
        unchanged(seen, `${e.layer}/${e.id}`, p);
      }
    });
    for (const e of entries)
      expect(readFileSync(scorePath(lib, e.layer, e.id), 'utf8'), `${e.layer}/${e.id}`).toBe(readFileSync(scorePath(whole, e.layer, e.id), 'utf8'));
  }, 600_000);
});
