/**
 * Engine speed against PyTorch on the same machine, in the same run.
 *   npx tsx benchmarks/engine.ts [--threads 1,2] [--repeats 9] [--json out.json] [--no-torch]
 * Prints tokens/s for a decoder block (hidden 512, 8 heads, 8 and 2 KV heads, FFN 1408,
 * batch 8 x 256) forward and forward+backward, a small whole-model training step (4 layers,
 * hidden 256, 4 heads, FFN 704, vocab 4096, batch 16 x 256, AdamW), and GFLOP/s of the block's
 * GEMM shapes. PyTorch runs at its best: OpenBLAS with OPENBLAS_CORETYPE unset, jemalloc
 * preloaded with decay disabled, OMP_WAIT_POLICY=PASSIVE, threads matched (set for that
 * subprocess only).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchBlock, benchLinear, benchTrainStep, type BlockBenchConfig, type ModelBenchConfig } from '../ts/bench/engine.js';
import { summarize, type Timing } from '../ts/bench/timing.js';
import { loadAddon } from '../ts/native/loader.js';

const argv = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const threadsList = opt('threads', '1,2').split(',').map(Number);
const repeats = Number(opt('repeats', '9'));
const jsonOut = argv.includes('--json') ? opt('json', '') : '';
const withTorch = !argv.includes('--no-torch');

const blocks: BlockBenchConfig[] = [
  { hidden: 512, heads: 8, kvHeads: 8, ffn: 1408, batch: 8, seq: 256 },
  { hidden: 512, heads: 8, kvHeads: 2, ffn: 1408, batch: 8, seq: 256 },
];
const step: ModelBenchConfig = { layers: 4, hidden: 256, heads: 4, kvHeads: 4, ffn: 704, vocab: 4096, batch: 16, seq: 256 };
const gemms: Array<[number, number, number]> = [[2048, 512, 512], [2048, 512, 1536], [2048, 512, 2816], [2048, 1408, 512]];

interface Row {
  name: string;
  threads: number;
  unit: string;
  ours: number;
  oursSpread: number;
  torch?: number;
  torchSpread?: number;
}
const rows: Row[] = [];

const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
function torchAnchor(threads: number): Record<string, unknown> | null {
  if (!withTorch) return null;
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MALLOC_CONF: 'dirty_decay_ms:-1,muzzy_decay_ms:-1' };
  delete env.OPENBLAS_CORETYPE;
  if (existsSync(JEMALLOC)) env.LD_PRELOAD = JEMALLOC;
  const script = fileURLToPath(new URL('./torch_anchor.py', import.meta.url));
  try {
    const out = execFileSync('/usr/bin/python3', [script, JSON.stringify({ threads, repeats, block: blocks, step, gemm: gemms })], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
    return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
  } catch (err) {
    console.error(`PyTorch anchor unavailable (${(err as Error).message.split('\n')[0]}); install python3-torch and libopenblas-dev to compare`);
    return null;
  }
}

const rate = (work: number, t: Timing) => work / (t.median / 1000);
const tsum = (samples: number[]) => summarize(samples);

const addon = loadAddon();
const info = addon.engineInfo();
for (const threads of threadsList) {
  addon.setThreads(threads);
  const anchor = torchAnchor(threads) as null | {
    torch: string;
    block: Array<{ forward: number[]; train: number[] }>;
    step: { step: number[] };
    gemm: Array<{ forward: number[]; backward: number[] }>;
  };
  for (const [i, cfg] of blocks.entries()) {
    const r = await benchBlock(cfg, repeats);
    const a = anchor?.block[i];
    const fwdT = a && tsum(a.forward);
    const trT = a && tsum(a.train);
    rows.push({ name: `block d512 kv${cfg.kvHeads} forward`, threads, unit: 'tok/s', ours: rate(r.tokens, r.forward), oursSpread: r.forward.spread, torch: fwdT ? rate(r.tokens, fwdT) : undefined, torchSpread: fwdT?.spread });
    rows.push({ name: `block d512 kv${cfg.kvHeads} fwd+bwd`, threads, unit: 'tok/s', ours: rate(r.tokens, r.train), oursSpread: r.train.spread, torch: trT ? rate(r.tokens, trT) : undefined, torchSpread: trT?.spread });
  }
  const s = await benchTrainStep(step, Math.max(3, Math.floor(repeats / 2)));
  const sa = anchor && tsum(anchor.step.step);
  rows.push({ name: 'train step 4L d256 V4096', threads, unit: 'tok/s', ours: rate(s.tokens, s.step), oursSpread: s.step.spread, torch: sa ? rate(s.tokens, sa) : undefined, torchSpread: sa?.spread });
  for (const [i, [N, C, OC]] of gemms.entries()) {
    const g = await benchLinear(N, C, OC, repeats);
    const ga = anchor?.gemm[i];
    const gf = ga && tsum(ga.forward);
    const gb = ga && tsum(ga.backward);
    rows.push({ name: `GEMM ${N}x${C}->${OC} fwd`, threads, unit: 'GFLOP/s', ours: g.flops / (g.forward.median * 1e6), oursSpread: g.forward.spread, torch: gf ? g.flops / (gf.median * 1e6) : undefined, torchSpread: gf?.spread });
    rows.push({ name: `GEMM ${N}x${C}->${OC} bwd`, threads, unit: 'GFLOP/s', ours: (2 * g.flops) / (g.backward.median * 1e6), oursSpread: g.backward.spread, torch: gb ? (2 * g.flops) / (gb.median * 1e6) : undefined, torchSpread: gb?.spread });
  }
}

const pct = (x?: number) => (x === undefined ? '' : `±${(100 * x).toFixed(1)}%`);
console.log(`puzzle engine vs PyTorch — ${new Date().toISOString()} — ${info.cpuModel}, ${info.isa}, GEMM ${info.gemmKernel}`);
console.log('medians over repeats; spread = (p90 - p10) / median');
console.log(`${'benchmark'.padEnd(28)} thr ${'ours'.padStart(10)} ${''.padEnd(7)} ${'pytorch'.padStart(10)} ${''.padEnd(7)} ${'ratio'.padStart(6)}  unit`);
for (const r of rows) {
  const ratio = r.torch ? (r.ours / r.torch).toFixed(2) + 'x' : '';
  console.log(`${r.name.padEnd(28)} ${String(r.threads).padStart(3)} ${r.ours.toFixed(0).padStart(10)} ${pct(r.oursSpread).padEnd(7)} ${(r.torch?.toFixed(0) ?? '-').padStart(10)} ${pct(r.torchSpread).padEnd(7)} ${ratio.padStart(6)}  ${r.unit}`);
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ date: new Date().toISOString(), engine: info, rows }, null, 2));
