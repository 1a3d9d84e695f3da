// Pretraining learns, and a run killed at random moments resumes to exactly the same weights.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pretrain } from '../../ts/train/pretrain.js';
import { tinyRun } from '../support/tiny-run.js';

const CHILD = fileURLToPath(new URL('../support/pretrain-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Runs the child; kills it once it reports step >= killAtStep (plus a random few ms). */
function runChild(out: string, killAtStep: number | null): Promise<{ done: boolean; lastStep: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', CHILD, out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PUZZLE_THREADS: '1' } });
    let stdout = '';
    let stderr = '';
    let lastStep = 0;
    let killing = false;
    p.stdout.on('data', (d) => {
      stdout += d;
      const m = [...stdout.matchAll(/STEP (\d+)/g)];
      if (m.length) lastStep = Number(m[m.length - 1][1]);
      if (killAtStep !== null && lastStep >= killAtStep && !killing) {
        killing = true;
        setTimeout(() => p.kill('SIGKILL'), Math.floor(Math.random() * 15));
      }
    });
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ done: false, lastStep });
      else if (code === 0 && stdout.includes('DONE')) resolve({ done: true, lastStep });
      else reject(new Error(`child failed (${code}): ${stderr}`));
    });
  });
}

describe('pretraining', () => {
  it('lowers the validation loss well below uniform', async () => {
    const out = mkdtempSync(join(tmpdir(), 'puzzle-pt-'));
    const r = await pretrain({ ...tinyRun(), steps: 400, checkpointEvery: 400, evalEvery: 100, outDir: out });
    const first = r.history.find((h) => h.val)!.val!.loss;
    expect(r.final!.loss).toBeLessThan(Math.log(24) * 0.6);
    expect(r.final!.loss).toBeLessThan(first);
    expect(existsSync(join(out, 'model', 'config.json'))).toBe(true);
  });

  it('killed at random points, it resumes to bit-identical weights', async () => {
    const ref = mkdtempSync(join(tmpdir(), 'puzzle-ref-'));
    await runChild(ref, null);
    const out = mkdtempSync(join(tmpdir(), 'puzzle-kill-'));
    let kills = 0;
    let at = 0;
    // five kills at random steps, anywhere in a step or a checkpoint write, then run to the end
    for (let attempt = 0; attempt < 20; attempt++) {
      const target = kills < 5 ? at + 1 + Math.floor(Math.random() * 12) : null;
      const r = await runChild(out, target);
      if (r.done) break;
      kills++;
      at = r.lastStep;
    }
    expect(kills).toBe(5);
    const a = readFileSync(join(ref, 'model', 'model.safetensors'));
    const b = readFileSync(join(out, 'model', 'model.safetensors'));
    expect(b.equals(a)).toBe(true);
  });
});
