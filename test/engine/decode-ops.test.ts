// What one step of a block with a KV cache asks of the backend (decode_ops.cpp, built here against
// the engine library), for every kind of layer: 5 ops for GQA + SwiGLU, each one kernel on CUDA for
// a few rows, in fp32 and bf16 alike, and fewer for the cheaper kinds. The fused ops (each norm
// inside the product after it, each residual inside the product before it, SwiGLU inside the
// gate|up product, RoPE and the cache append inside the q|k|v product) are what keep GQA + SwiGLU
// at 5 and not 12; a change that brings back a separate pass shows up here as a count. Skipped,
// with the reason, where g++ or build/libpuzzle_core.a is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const core = join(root, 'build', 'libpuzzle_core.a');
const work = mkdtempSync(join(tmpdir(), 'puzzle-decode-ops-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });
const reason = gxx.status !== 0 ? 'g++ is not installed' : !existsSync(core) ? 'build/libpuzzle_core.a is not built' : null;
if (reason) console.log(`decode op-count tests skipped: ${reason}`);

describe.skipIf(reason !== null)('the ops of a cached block step', () => {
  it('are 5 for GQA + SwiGLU and fewer for every other kind of layer, for a prefill and a decode step, in fp32 and bf16, with no separate residual add, norm or rotation, in place as out of place', () => {
    const exe = join(work, 'decode_ops');
    const c = spawnSync('g++', ['-std=c++20', '-I', join(root, 'native', 'include'), join(import.meta.dirname, 'decode_ops.cpp'),
      core, '-o', exe, '-lpthread'], { encoding: 'utf8' });
    expect(c.status, c.stderr).toBe(0);
    const r = spawnSync(exe, [], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // per kind of layer, the ops of a step (the same for the prefill and the decode step)
    const ops: Record<string, string> = {
      'gqa+swiglu': 'attention_cached_forward=1 norm_linear_forward=2 norm_qkv_rope_cache_forward=1 norm_swiglu_forward=1 total=5',
      'gqa+linear': 'attention_cached_forward=1 norm_linear_forward=2 norm_qkv_rope_cache_forward=1 total=4',
      'gqa+noop': 'attention_cached_forward=1 norm_linear_forward=1 norm_qkv_rope_cache_forward=1 total=3',
      'linear+swiglu': 'norm_linear_forward=2 norm_swiglu_forward=1 total=3',
      'linear+linear': 'norm_linear_forward=2 total=2',
      'linear+noop': 'norm_linear_forward=1 total=1',
      'noop+swiglu': 'norm_linear_forward=1 norm_swiglu_forward=1 total=2',
      'noop+linear': 'norm_linear_forward=1 total=1',
      'noop+noop': 'copy_device=1 total=1',
    };
    const want = Object.entries(ops).flatMap(([kind, line]) => ['f32', 'bf16'].flatMap((dt) => [
      `${kind} ${dt} prefill: ${line}`,
      `${kind} ${dt} decode: ${line}`,
      `${kind} ${dt} in place: same`,  // the decode step again with out == x: bit for bit the same
    ]));
    expect(r.stdout.trim().split('\n')).toEqual(want);
  });
});
