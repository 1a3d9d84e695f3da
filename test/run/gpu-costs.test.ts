// The TypeScript side of measuring on the GPU (`profile.device: cuda`), on any machine: a stand-in
// for puzzle_cuda_profile (test/support/fake-cuda-profiler.mjs) answers with consistent made-up
// costs, so what is checked here is the plumbing: the arguments the tool gets, how its answers
// become a cost table and a speed comparison, and a whole `puzzle run` with GPU costs. The real
// tool is checked against the CPU engine by benchmarks/gpu/check.sh on a GPU.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compareSpeedCuda, layerList, profileSpaceCuda } from '../../ts/profile/cuda.js';
import { scenario } from '../../ts/profile/scenario.js';
import { resolveConfig } from '../../ts/run/config.js';
import { runPipeline } from '../../ts/run/pipeline.js';
import { tinyConfig } from '../support/tiny-run.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FAKE = fileURLToPath(new URL('../support/fake-cuda-profiler.mjs', import.meta.url));
let log = '';
const calls = (): string[][] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []);
const after = (args: string[], k: string) => args[args.indexOf(k) + 1];

beforeEach(() => {
  log = join(mkdtempSync(join(tmpdir(), 'puzzle-fakegpu-')), 'calls.jsonl');
  process.env.PUZZLE_CUDA_PROFILER = FAKE;
  process.env.FAKE_PROFILER_LOG = log;
});
afterEach(() => {
  delete process.env.PUZZLE_CUDA_PROFILER;
  delete process.env.FAKE_PROFILER_LOG;
  delete process.env.FAKE_PROFILER_DTYPE;
});

describe('GPU costs through puzzle_cuda_profile (stand-in)', () => {
  const s = scenario({ batch: 2, prompt: 16, generate: 4, repeats: 3, device: 'cuda', dtype: 'bfloat16' });

  it('a cost table: every option of the space, the dtype asked for, the device the tool reports', async () => {
    const { table } = await profileSpaceCuda(tinyConfig(), s);
    const [args] = calls();
    expect(after(args, '--dtype')).toBe('bf16');
    expect([after(args, '--hidden'), after(args, '--batch'), after(args, '--prompt'), after(args, '--generate')]).toEqual(['32', '2', '16', '4']);
    expect(table.device).toMatchObject({ kind: 'cuda', model: 'Fake GPU', isa: 'sm_90', threads: 132 });
    expect(table.scenario).toMatchObject({ device: 'cuda', dtype: 'bfloat16' });
    const kv2 = table.subblocks.find((x) => x.id === 'attn-kv2');
    expect(kv2?.decode_ms).toBeCloseTo(0.04, 9);
  });

  it('refuses an answer in another dtype than asked (an older tool)', async () => {
    process.env.FAKE_PROFILER_DTYPE = 'float32';
    await expect(profileSpaceCuda(tinyConfig(), s)).rejects.toMatchObject({ code: 'ERR_PUZZLE_NO_GPU', message: expect.stringMatching(/measured float32, asked for bfloat16/) });
  });

  it('parent against child: both layer lists, the rounds, and the speed-ups from the times', async () => {
    const parent = tinyConfig();
    const child = { ...parent, layers: [parent.layers[0], { attention: { kind: 'noop' as const }, ffn: { kind: 'linear' as const } }] };
    expect(layerList(child.layers)).toBe('kv2+48,noop+linear');
    const r = await compareSpeedCuda(parent, child, s, 4);
    const [args] = calls();
    expect(args.slice(args.indexOf('--compare'), args.indexOf('--compare') + 3)).toEqual(['--compare', 'kv2+48,kv2+48', 'kv2+48,noop+linear']);
    expect(after(args, '--rounds')).toBe('4');
    // fake: head 0.2 ms + per layer kv2 0.04 + w48 0.0096 (linear 0.01, noop 0)
    expect(r.parent.decode_ms).toBeCloseTo(0.2 + 2 * 0.0496, 9);
    expect(r.child.decode_ms).toBeCloseTo(0.2 + 0.0496 + 0.01, 9);
    expect(r.decode_speedup).toBeCloseTo(r.parent.decode_ms / r.child.decode_ms, 12);
    expect(r.scenario.device).toBe('cuda');
    await expect(compareSpeedCuda(parent, { ...child, hidden: 64 }, s)).rejects.toThrow(/differ in hidden \(32 against 64\)/);
  });
});

describe('puzzle run with profile.device: cuda', () => {
  it('validates the device and the dtype by name', () => {
    expect(() => resolveConfig({ profile: { device: 'tpu' } }, 'run.yaml')).toThrow(/run.yaml: "profile.device": expected cpu or cuda, got "tpu"/);
    expect(() => resolveConfig({ profile: { dtype: 'fp8' } }, 'run.yaml')).toThrow(/"profile.dtype": expected auto, float32 or bfloat16/);
    expect(() => resolveConfig({ profile: { dtype: 'bfloat16' } }, 'run.yaml')).toThrow(/bfloat16 is measured on the GPU only/);
  });

  it('costs and the final speed comparison come from the GPU tool; the search takes the GPU table', async () => {
    const run = mkdtempSync(join(tmpdir(), 'puzzle-run-gpu-'));
    const config = resolveConfig({
      parent: join(ROOT, 'models/default-parent'),
      library: { tokens: 1024, batch: 2, seq: 32 },
      score: { sequences: 2, seq: 32 },
      profile: { batch: 1, prompt: 8, generate: 2, repeats: 1, children: 0, device: 'cuda' },
      search: { decode_speedup: 1.5 },
      gkd: { steps: 2, batch: 2, seq: 32 },
      evaluate: { sequences: 2, seq: 32, task_items: 0, speed_rounds: 2 },
    }, 'test');
    // without the tool the profile stage fails with the reason and writes no cost table; the
    // stages before it are kept, and the run resumes once the tool is there
    process.env.PUZZLE_CUDA_PROFILER = join(run, 'no-such-tool');
    await expect(runPipeline(config, run)).rejects.toMatchObject({ code: 'ERR_PUZZLE_NO_GPU', message: expect.stringContaining('no-such-tool') });
    expect(existsSync(join(run, 'costs.json'))).toBe(false);
    expect(existsSync(join(run, 'library'))).toBe(true);
    process.env.PUZZLE_CUDA_PROFILER = FAKE;
    await runPipeline(config, run);
    const costs = JSON.parse(readFileSync(join(run, 'costs.json'), 'utf8'));
    expect(costs.device.kind).toBe('cuda');
    expect(costs.scenario).toMatchObject({ device: 'cuda', dtype: 'bfloat16' });
    const speed = JSON.parse(readFileSync(join(run, 'evaluate.json'), 'utf8')).speed;
    expect(speed.scenario.device).toBe('cuda');
    // the fake's costs add up exactly, so the measured speed-up meets the 1.5x decode budget
    expect(speed.decode_speedup).toBeGreaterThanOrEqual(1.5 - 1e-9);
    const c = calls();
    expect(c).toHaveLength(2);
    expect(c[1]).toContain('--compare');
    expect(c.every((a) => after(a, '--dtype') === 'bf16')).toBe(true);
    expect(readFileSync(join(run, 'summary.md'), 'utf8')).toMatch(/Fake GPU \(sm_90, 132 SMs\), bfloat16/);
  }, 240_000);
});
