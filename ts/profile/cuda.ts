/**
 * `puzzle profile --device cuda`: the same cost table as the CPU profiler, measured on the GPU by
 * the native tool puzzle_cuda_profile (built next to the addon wherever nvcc is found), which
 * runs each option as a stack of identical blocks in the scenario: prefill into a fresh KV
 * cache, then every decode step as a replayed CUDA graph, CUDA events, L2 flushed before each
 * repeat, the fastest repeat kept; plus the non-block part and the additivity check. The
 * scenario's dtype picks the blocks' precision (bfloat16: mixed precision, what a GPU serves).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import { defaultSpace, layerVariants, type SearchSpaceConfig } from '../library/space.js';
import type { SpeedComparison, Throughput } from '../distill/speedup.js';
import type { AttentionSpec, FfnSpec, LayerSpec, ModelConfig } from '../model/config.js';
import { addonPath } from '../native/loader.js';
import { cost, type AdditivityRow, type CostTable, type SubblockCost } from './profile.js';
import type { DeviceFingerprint, ProfileScenario } from './scenario.js';

export const cudaProfilerPath = () => process.env.PUZZLE_CUDA_PROFILER ?? join(dirname(addonPath), 'puzzle_cuda_profile');

interface ToolOutput {
  device: { kind: 'cuda'; model: string; sm: string; sms: number; driver: string; gemm: string };
  stack: number;
  dtype: 'float32' | 'bfloat16';
  empty: { prefill_ms: number; decode_ms: number };
  subblocks: Array<{ id: string; prefill_ms: number; decode_ms: number }>;
  head: { prefill_ms: number; decode_ms: number };
  additivity: Array<AdditivityRow & { layers: number }>;
}

function runTool(args: string[]): Promise<string> {
  const bin = cudaProfilerPath();
  if (!existsSync(bin)) throw new PuzzleError('ERR_PUZZLE_NO_GPU', `--device cuda needs ${bin}, which the build makes only where nvcc is found; rebuild on a machine with the CUDA toolkit (npm run build:native)`);
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', (e) => reject(new PuzzleError('ERR_PUZZLE_NO_GPU', `cannot run ${bin}: ${e.message}`)));
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new PuzzleError('ERR_PUZZLE_NO_GPU', `${bin} failed: ${err.trim() || `exit ${code}`}`))));
  });
}

const attnToken = (a: AttentionSpec) => (a.kind === 'gqa' ? `kv${a.kvHeads}` : a.kind);
const ffnToken = (f: FfnSpec) => (f.kind === 'swiglu' ? String(f.width) : f.kind);
/** A model's layers as the tool's layer list: "kv8+14336,kv2+noop,linear+7168" */
export const layerList = (layers: LayerSpec[]) => layers.map((l) => `${attnToken(l.attention)}+${ffnToken(l.ffn)}`).join(',');

function modelArgs(c: ModelConfig, s: ProfileScenario): string[] {
  return ['--hidden', String(c.hidden), '--heads', String(c.heads), '--head-dim', String(c.headDim), '--vocab', String(c.vocab), '--eps', String(c.eps),
    '--batch', String(s.batch), '--prompt', String(s.prompt), '--generate', String(s.generate), '--repeats', String(s.repeats), '--dtype', s.dtype === 'bfloat16' ? 'bf16' : 'f32'];
}

function parseTool<T extends { dtype: string }>(out: string, s: ProfileScenario): T {
  let t: T;
  try {
    t = JSON.parse(out) as T;
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_NO_GPU', `${cudaProfilerPath()} wrote no valid JSON (${(err as Error).message})`);
  }
  if (t.dtype !== s.dtype) throw new PuzzleError('ERR_PUZZLE_NO_GPU', `${cudaProfilerPath()} measured ${t.dtype}, asked for ${s.dtype} (an older build? rebuild with npm run build:native)`);
  return t;
}

/**
 * Parent against child on the GPU, end to end (every layer, the LM head added to both), measured
 * alternately `rounds` times, each model's fastest round: what `compareSpeed` is on the CPU.
 */
export async function compareSpeedCuda(parent: ModelConfig, child: ModelConfig, s: ProfileScenario, rounds = 3): Promise<SpeedComparison> {
  for (const k of ['hidden', 'heads', 'headDim', 'vocab'] as const)
    if (parent[k] !== child[k]) throw new PuzzleError('ERR_PUZZLE_ARG', `compareSpeedCuda: parent and child differ in ${k} (${parent[k]} against ${child[k]})`);
  const out = await runTool([...modelArgs(parent, s), '--compare', layerList(parent.layers), layerList(child.layers), '--rounds', String(rounds)]);
  const t = parseTool<{ dtype: string; parent: { prefill_ms: number; decode_ms: number }; child: { prefill_ms: number; decode_ms: number } }>(out, s);
  const tp = (x: { prefill_ms: number; decode_ms: number }): Throughput => ({
    prefill_ms: x.prefill_ms, decode_ms: x.decode_ms, prefill_tok_s: (s.batch * s.prompt) / (x.prefill_ms / 1000), decode_tok_s: (s.batch * s.generate) / (x.decode_ms / 1000),
  });
  const P = tp(t.parent), C = tp(t.child);
  return {
    scenario: { ...s, device: 'cuda' }, parent: P, child: C,
    prefill_speedup: P.prefill_ms / C.prefill_ms, decode_speedup: P.decode_ms / C.decode_ms,
    total_speedup: (P.prefill_ms + P.decode_ms) / (C.prefill_ms + C.decode_ms),
  };
}

/** The CUDA cost table and its additivity rows (whole stacks of `layers` layers). */
export async function profileSpaceCuda(c: ModelConfig, s: ProfileScenario, space?: SearchSpaceConfig, opts: { children?: number; layers?: number; stack?: number } = {}): Promise<{ table: CostTable; additivity: AdditivityRow[] }> {
  const sp = space ?? defaultSpace(c);
  const v = layerVariants(c, 0, sp);
  const attnArg = v.attention.map((a) => attnToken(a.spec as AttentionSpec));
  const ffnArg = v.ffn.map((f) => ffnToken(f.spec as FfnSpec));
  const out = await runTool([
    ...modelArgs(c, s), '--attention', attnArg.join(','), '--ffn', ffnArg.join(','),
    '--children', String(opts.children ?? 2), '--additivity-layers', String(opts.layers ?? Math.min(4, c.layers.length)), '--stack', String(opts.stack ?? 2),
  ]);
  const t = parseTool<ToolOutput>(out, s);
  const sub = new Map(t.subblocks.map((x) => [x.id, x]));
  const m = (id: string) => {
    const x = sub.get(id);
    if (!x) throw new PuzzleError('ERR_PUZZLE_NO_GPU', `the CUDA profiler did not measure ${id}`);
    return { prefill: { median: x.prefill_ms, min: x.prefill_ms, max: x.prefill_ms, spread: 0, samples: [] }, decodeMs: x.decode_ms };
  };
  const cs = { ...s, device: 'cuda' as const };
  const subblocks: SubblockCost[] = [
    ...v.attention.map((a) => cost(a.id, 'attention', a.spec, c, cs, m(a.id))),
    ...v.ffn.map((f) => cost(f.id, 'ffn', f.spec, c, cs, m(f.id))),
  ];
  const device: DeviceFingerprint = { kind: 'cuda', model: t.device.model, isa: `sm_${t.device.sm}`, gemm: t.device.gemm, threads: t.device.sms, driver: t.device.driver };
  const table: CostTable = {
    version: 1, scenario: cs, device, date: new Date().toISOString(), stackDepth: t.stack,
    model: { hidden: c.hidden, heads: c.heads, headDim: c.headDim, vocab: c.vocab, layers: c.layers.length },
    head: { prefill_ms: t.head.prefill_ms, decode_ms: t.head.decode_ms, runtime_ms: t.head.prefill_ms + t.head.decode_ms, num_params: c.vocab * c.hidden * (c.tieEmbeddings ? 1 : 2) + c.hidden },
    empty: cost('empty', 'empty', null, c, cs, { prefill: { median: t.empty.prefill_ms, min: t.empty.prefill_ms, max: t.empty.prefill_ms, spread: 0, samples: [] }, decodeMs: t.empty.decode_ms }),
    subblocks,
  };
  // the tool's sums leave out the head (its stacks have none), so its rows compare like with like
  return { table, additivity: t.additivity };
}
