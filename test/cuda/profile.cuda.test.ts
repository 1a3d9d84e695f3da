// `puzzle profile --device cuda` runs the native puzzle_cuda_profile next to the addon. Without a
// GPU it must fail with ERR_PUZZLE_NO_GPU naming the tool and the reason; with one, its table
// must cover every option of the space and pass the additivity check within a loose bound.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../ts/native/loader.js';
import { cudaProfilerPath, profileSpaceCuda } from '../../ts/profile/cuda.js';
import { parseGpuDescription, requireSameDevice, scenario } from '../../ts/profile/scenario.js';
import { tinyConfig } from '../support/tiny-run.js';
import { emulatedProfiler } from '../support/cuda-module.js';
import { compareSpeedCuda } from '../../ts/profile/cuda.js';
import { defaultSpace, layerVariants } from '../../ts/library/space.js';

const cuda = loadAddon().cudaInfo();
const noGpu = cuda.devices === 0;

describe('puzzle profile --device cuda', () => {
  it('a GPU cost table is checked against the GPU here (name, sm, driver, GEMM path)', () => {
    const here = parseGpuDescription('NVIDIA H200 (sm_90, 139.8 GiB, driver 13.0, cublas)');
    expect(here).toEqual({ kind: 'cuda', model: 'NVIDIA H200', isa: 'sm_90', driver: '13.0', gemm: 'cublas', threads: 0 });
    expect(parseGpuDescription('no GPU: the driver reports no devices')).toBeNull();
    const table = { device: { kind: 'cuda' as const, model: 'NVIDIA H200', isa: 'sm_90', driver: '13.0', gemm: 'cublas', threads: 132 } };
    expect(() => requireSameDevice(table, 'the cost table', here)).not.toThrow();
    expect(() => requireSameDevice(table, 'the cost table', { ...here!, gemm: 'puzzle-wmma-bf16' })).toThrow(/measured on .*profile again here/);
    expect(() => requireSameDevice(table, 'the cost table', null)).toThrow(/measured on the GPU NVIDIA H200 \(sm_90\), and no GPU answers here/);
    if (noGpu) expect(() => requireSameDevice(table, 'costs.json')).toThrow(/costs.json was measured on the GPU NVIDIA H200.*no GPU answers here/);
  });

  it('profiles bfloat16 on the GPU only, and says why', () => {
    expect(scenario({ batch: 1, prompt: 8, generate: 2, device: 'cuda', dtype: 'bfloat16' }).dtype).toBe('bfloat16');
    expect(() => scenario({ batch: 1, prompt: 8, generate: 2, dtype: 'bfloat16' })).toThrow(/bfloat16 on the CPU.*--device cuda/);
    expect(() => scenario({ batch: 1, prompt: 8, generate: 2, device: 'cuda', dtype: 'float16' as 'bfloat16' })).toThrow(/float32 or bfloat16, got float16/);
  });

  it.runIf(noGpu)('names the tool and the reason when it cannot run', async () => {
    const s = scenario({ batch: 1, prompt: 8, generate: 2, repeats: 1 });
    const err = await profileSpaceCuda(tinyConfig(), s).then(() => null, (e) => e);
    expect(err).toMatchObject({ code: 'ERR_PUZZLE_NO_GPU' });
    if (existsSync(cudaProfilerPath())) expect(err.message).toMatch(/puzzle_cuda_profile failed: puzzle_cuda_profile: no GPU answers/);
    else expect(err.message).toMatch(/needs .*puzzle_cuda_profile, which the build makes only where nvcc is found/);
  });

  it.skipIf(noGpu)('measures every option and the stacks add up', async () => {
    const s = scenario({ batch: 2, prompt: 16, generate: 4, repeats: 3, device: 'cuda', dtype: 'bfloat16' });
    const { table, additivity } = await profileSpaceCuda(tinyConfig(), s, undefined, { children: 2, layers: 2 });
    expect(table.device.kind).toBe('cuda');
    expect(table.scenario.dtype).toBe('bfloat16');
    expect(table.subblocks.map((x) => x.id)).toContain('attn-kv2');
    for (const r of additivity) expect(Math.abs(r.predictedDecode - r.measuredDecode) / r.measuredDecode).toBeLessThan(0.5);
  });
});

// Where no GPU answers, the same native tool built against the CPU emulator (its CUDA events,
// stream capture and graph replays emulated): the contract between it and `puzzle profile`,
// never its timings, which are the CPU's.
describe.runIf(noGpu)('puzzle profile --device cuda on the emulated GPU', () => {
  const tool = emulatedProfiler();
  const withTool = async <R>(fn: () => Promise<R>): Promise<R> => {
    if ('skip' in tool) expect.fail(tool.skip);
    const before = process.env.PUZZLE_CUDA_PROFILER;
    process.env.PUZZLE_CUDA_PROFILER = tool.path;
    try {
      return await fn();
    } finally {
      if (before === undefined) delete process.env.PUZZLE_CUDA_PROFILER;
      else process.env.PUZZLE_CUDA_PROFILER = before;
    }
  };

  it('measures every option of the space, in bfloat16, with decode steps replayed from captured graphs, and the stacks', async () => {
    const c = tinyConfig();
    const s = scenario({ batch: 2, prompt: 8, generate: 3, repeats: 2, device: 'cuda', dtype: 'bfloat16' });
    const { table, additivity } = await withTool(() => profileSpaceCuda(c, s, undefined, { children: 2, layers: 2 }));
    expect(table.device).toMatchObject({ kind: 'cuda', model: 'CUDA emulator (CPU)', isa: 'sm_90' });
    expect(table.scenario).toMatchObject({ device: 'cuda', dtype: 'bfloat16', batch: 2, prompt: 8, generate: 3 });
    const v = layerVariants(c, 0, defaultSpace(c));
    expect(table.subblocks.map((x) => x.id).sort()).toEqual([...v.attention, ...v.ffn].map((x) => x.id).sort());
    // (a no-op option costs its layer's empty block, which the tool subtracts, and the empty
    // block's own time is about nothing: either may come out a hair below zero)
    for (const x of table.subblocks.filter((y) => !y.id.endsWith('-noop'))) {
      expect(x.prefill_ms, x.id).toBeGreaterThan(0);
      expect(x.decode_ms, x.id).toBeGreaterThan(0);
    }
    // the kernels ran: attention over a KV cache costs thousands of times an empty block's call
    const kv2 = table.subblocks.find((x) => x.id === 'attn-kv2')!;
    // (the emulator runs them on the CPU: some milliseconds against some microseconds, so a
    // decode graph that replayed nothing would fail this by orders of magnitude, not by noise)
    expect(kv2.prefill_ms).toBeGreaterThan(100 * Math.abs(table.empty.prefill_ms));
    expect(kv2.decode_ms).toBeGreaterThan(100 * Math.abs(table.empty.decode_ms));
    expect(additivity.map((r) => r.name)).toEqual(['parent', 'child 1', 'child 2']);
    for (const r of additivity) for (const k of ['predictedPrefill', 'measuredPrefill', 'predictedDecode', 'measuredDecode'] as const) expect(r[k], `${r.name} ${k}`).toBeGreaterThan(0);
  });

  it('compares two whole models, as the evaluate stage of a run does', async () => {
    const parent = tinyConfig();
    const child = { ...parent, layers: [parent.layers[0], { attention: { kind: 'linear' as const }, ffn: { kind: 'noop' as const } }] };
    const s = scenario({ batch: 1, prompt: 8, generate: 2, repeats: 1, device: 'cuda', dtype: 'bfloat16' });
    const r = await withTool(() => compareSpeedCuda(parent, child, s, 2));
    expect(r.parent.decode_tok_s).toBeGreaterThan(0);
    expect(r.child.decode_tok_s).toBeGreaterThan(0);
    expect(Number.isFinite(r.decode_speedup) && Number.isFinite(r.prefill_speedup)).toBe(true);
  });
});
