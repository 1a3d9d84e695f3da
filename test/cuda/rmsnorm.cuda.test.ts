// CUDA against CPU. Skipped, with the reason printed, where no GPU answers; the module itself
// is always built where nvcc exists, so its sources compile in CI.
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../ts/native/loader.js';
import * as ops from '../../ts/core/ops.js';
import { tensor, zeros } from '../../ts/core/tensor.js';
import { randn } from '../../ts/bench/engine.js';
import { expectClose } from '../support/golden.js';
import { TOL } from '../support/tolerances.js';

const cuda = loadAddon().cudaInfo();
const noGpu = cuda.devices === 0;
if (noGpu) console.log(`CUDA tests skipped: ${cuda.moduleBuilt ? cuda.description : 'the CUDA module was not built (no nvcc)'}`);

describe('CUDA module', () => {
  it('reports why it is or is not usable', () => {
    expect(typeof cuda.description).toBe('string');
    expect(cuda.description.length).toBeGreaterThan(0);
    if (!cuda.moduleLoaded) expect(cuda.devices).toBe(0);
  });

  it('rejects GPU work with ERR_PUZZLE_NO_GPU when no GPU answers', async () => {
    if (!noGpu) return;
    const x = zeros([2, 4]);
    await expect(loadAddon().cudaRmsnormForward(zeros([2, 4]), x, zeros([4]), 2, 4, 1e-5)).rejects.toMatchObject({ code: 'ERR_PUZZLE_NO_GPU' });
  });

  it.skipIf(noGpu)('rmsnorm forward matches the CPU engine', async () => {
    const N = 37, C = 1000;
    const x = tensor(randn(N * C, 1, 1), [N, C]);
    const w = tensor(randn(C, 0.5, 2), [C]);
    const cpu = await ops.rmsnormForward(x, w, 1e-5);
    const gpu = zeros([N, C]);
    await loadAddon().cudaRmsnormForward(gpu, x, w, N, C, 1e-5);
    expectClose(gpu.toArray(), cpu.out.toArray(), TOL.cudaF32, 'cuda rmsnorm');
  });
});
