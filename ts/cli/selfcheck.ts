/**
 * `puzzle selfcheck`: what the engine found on this machine, a numerical check of a whole
 * decoder block against finite differences, and a short benchmark.
 */
import type { Command } from 'commander';
import { Block } from '../core/block.js';
import { tensor } from '../core/tensor.js';
import { benchBlock, benchLinear, randn, ropeFor } from '../bench/engine.js';
import { buildSummary, loadAddon } from '../native/loader.js';

export interface SelfcheckReport {
  engine: ReturnType<ReturnType<typeof loadAddon>['engineInfo']>;
  cuda: ReturnType<ReturnType<typeof loadAddon>['cudaInfo']>;
  build: string;
  gradientCheck: { relativeError: number; ok: boolean };
  benchmark: Array<{ name: string; value: number; unit: string; spread: number }>;
}

/** Directional finite difference of sum(out * R) through a whole GQA+SwiGLU block. */
async function gradientCheck(): Promise<{ relativeError: number; ok: boolean }> {
  const B = 2, T = 9, C = 32;
  const block = new Block({ hidden: C, heads: 4, headDim: 8, attention: 'gqa', kvHeads: 2, ffn: 'swiglu', ffnWidth: 48 });
  let seed = 1;
  for (const p of block.params()) block.param(p.name).copyFrom(p.shape.length === 1 ? new Float32Array(p.numel).fill(1) : randn(p.numel, 0.2, seed++));
  const rope = ropeFor(8, T);
  const x0 = randn(B * T * C, 1, 99);
  const dir = randn(B * T * C, 1, 98);
  const R = randn(B * T * C, 1, 97);
  const loss = async (xs: Float32Array) => {
    const x = tensor(xs, [B, T, C]);
    const out = await block.forward(x, B, T, rope, false);
    const o = out.toArray();
    let s = 0;
    for (let i = 0; i < o.length; i++) s += o[i] * R[i];
    x.dispose(), out.dispose();
    return s;
  };
  const h = 1e-2;
  const plus = await loss(x0.map((v, i) => v + h * dir[i]));
  const minus = await loss(x0.map((v, i) => v - h * dir[i]));
  const fd = (plus - minus) / (2 * h);
  const x = tensor(x0, [B, T, C]);
  (await block.forward(x, B, T, rope, true)).dispose();
  const dx = (await block.backward(tensor(R, [B, T, C]), true))!;
  const g = dx.toArray();
  let an = 0;
  for (let i = 0; i < g.length; i++) an += g[i] * dir[i];
  block.dispose(), x.dispose(), dx.dispose(), rope.cos.dispose(), rope.sin.dispose();
  const relativeError = Math.abs(fd - an) / Math.max(1e-6, Math.abs(an));
  return { relativeError, ok: relativeError < 2e-2 };
}

export async function selfcheck(opts: { quick?: boolean } = {}): Promise<SelfcheckReport> {
  const addon = loadAddon();
  const report: SelfcheckReport = {
    engine: addon.engineInfo(), cuda: addon.cudaInfo(), build: buildSummary(),
    gradientCheck: await gradientCheck(), benchmark: [],
  };
  const repeats = opts.quick ? 3 : 7;
  for (const kv of [8, 2]) {
    const r = await benchBlock({ hidden: 512, heads: 8, kvHeads: kv, ffn: 1408, batch: 8, seq: 256 }, repeats);
    report.benchmark.push({ name: `block d512 kv${kv} forward`, value: r.tokens / (r.forward.median / 1000), unit: 'tokens/s', spread: r.forward.spread });
    report.benchmark.push({ name: `block d512 kv${kv} forward+backward`, value: r.tokens / (r.train.median / 1000), unit: 'tokens/s', spread: r.train.spread });
  }
  const lin = await benchLinear(2048, 512, 2816, repeats);
  report.benchmark.push({ name: 'GEMM 2048x512 -> 2816 forward', value: lin.flops / (lin.forward.median * 1e6), unit: 'GFLOP/s', spread: lin.forward.spread });
  report.benchmark.push({ name: 'GEMM 2048x512 -> 2816 backward', value: (2 * lin.flops) / (lin.backward.median * 1e6), unit: 'GFLOP/s', spread: lin.backward.spread });
  return report;
}

export function registerSelfcheckCommand(program: Command): void {
  program
    .command('selfcheck')
    .description('show what the engine found on this machine, check gradients, run a short benchmark')
    .option('--quick', 'fewer benchmark repeats')
    .option('--json', 'print one JSON object')
    .action(async (opts: { quick?: boolean; json?: boolean }) => {
      const r = await selfcheck(opts);
      if (opts.json) {
        console.log(JSON.stringify(r, null, 2));
      } else {
        console.log(`cpu        ${r.engine.cpuModel}, ${r.engine.threads} threads, features: ${r.engine.features.join(' ')}`);
        console.log(`kernels    ${r.engine.isa} path, GEMM ${r.engine.gemmKernel}`);
        console.log(`cuda       ${r.cuda.moduleBuilt ? (r.cuda.moduleLoaded ? 'module loaded' : 'module present, not loaded') : 'module not built'}; ${r.cuda.description}`);
        console.log(`build      ${r.build.replace(/\n/g, '; ')}`);
        console.log(`gradients  block backward vs finite difference: relative error ${r.gradientCheck.relativeError.toExponential(2)} ${r.gradientCheck.ok ? 'ok' : 'FAILED'}`);
        console.log('benchmark  (median, spread = (p90 - p10) / median)');
        for (const b of r.benchmark) console.log(`  ${b.name.padEnd(36)} ${b.value.toFixed(0).padStart(8)} ${b.unit.padEnd(9)} ±${(100 * b.spread).toFixed(1)}%`);
      }
      if (!r.gradientCheck.ok) process.exitCode = 1;
    });
}
