/**
 * The paper's ablations on the default parent, from one finished `puzzle run` (its library,
 * scores and cost table are reused; nothing here is measured twice):
 *   1. GKD losses: cosine+KL vs KL only vs LM only vs LM+KL, on the same MIP child;
 *   2. scoring: children chosen by summed replace-1-block KL vs by summed LM-loss increase;
 *   3. search: MIP vs greedy vs max-params vs random, at the same budget, each followed by the
 *      same GKD;
 *   4. the sum of replace-1-block KLs against the true KL of 24 assembled random children
 *      (Spearman rho).
 * Every child is evaluated on the test split against the parent (KL, agreement, top-1).
 *
 *   npx tsx benchmarks/ablations.ts --run runs/demo [--steps 150] [--out benchmarks/results/ablations.md]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadSplits, packSplit } from '../ts/data/prepare.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { assembleChild } from '../ts/distill/assemble.js';
import { gkd, type GkdLosses } from '../ts/distill/gkd.js';
import { evaluateLm, type LmMetrics } from '../ts/eval/lm.js';
import { evalBatches } from '../ts/eval/run.js';
import { loadModel, saveModel } from '../ts/model/hf.js';
import { createRng } from '../ts/data/prng.js';
import { loadRunConfig } from '../ts/run/config.js';
import { runLibrary, searchOptions } from '../ts/run/pipeline.js';
import { search, type SearchOptions } from '../ts/search/index.js';
import { fromPacked } from '../ts/train/batches.js';
import { readFileSync } from 'node:fs';

const { values: a } = parseArgs({ options: { run: { type: 'string', default: 'runs/demo' }, steps: { type: 'string', default: '150' }, out: { type: 'string' }, children: { type: 'string', default: '24' } } });
const run = resolve(a.run!);
const steps = Number(a.steps);
const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
const config = loadRunConfig(undefined, []);
Object.assign(config, manifest.config);
const work = join(run, 'ablations');
mkdirSync(work, { recursive: true });
const lib = runLibrary(run);
const libDir = join(run, 'library');
const parent = loadModel(config.parent);
const tok = Tokenizer.load(config.parent);
const data = await loadSplits(config.data);
const train = fromPacked(await packSplit(data, 'train', tok, config.gkd.seq));
const validation = fromPacked(await packSplit(data, 'validation', tok, config.gkd.seq));
const { batches: test } = await evalBatches(config.data, () => tok, parent.config.vocab, 'test', 256, 8, 32);
const t0 = performance.now();
const log = (s: string) => console.log(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${s}`);

async function quality(dir: string): Promise<LmMetrics> {
  const m = loadModel(dir);
  try {
    return await evaluateLm(m, test, parent);
  } finally {
    m.dispose();
  }
}

/** Assembles `layers`, evaluates it, runs GKD with `losses`, evaluates again. */
async function childAfterGkd(name: string, layers: string[], losses: GkdLosses): Promise<{ before: LmMetrics; after: LmMetrics }> {
  const dir = join(work, name);
  const child = assembleChild(libDir, layers, config.parent);
  saveModel(child, join(dir, 'child'), { forceDeci: true });
  child.dispose();
  const before = await quality(join(dir, 'child'));
  const r = await gkd({ parent, childDir: join(dir, 'child'), train, validation, outDir: join(dir, 'gkd'), steps, batch: config.gkd.batch, lr: config.gkd.lr, losses, evalBatches: 0, seed: config.seed });
  const after = await quality(r.modelDir);
  log(`${name}: KL ${before.kl!.toFixed(4)} -> ${after.kl!.toFixed(4)}, top-1 ${(100 * after.top1).toFixed(1)}%`);
  return { before, after };
}

const parentQ = await evaluateLm(parent, test);
const base = searchOptions(config, lib);
const [mip] = await search(lib, base);
const mipLayers = mip.layers.map((l) => l.variant);
const rows: string[] = [];
const row = (group: string, what: string, q: { before: LmMetrics; after: LmMetrics }, extra = '') =>
  rows.push(`| ${group} | ${what} | ${q.before.kl!.toFixed(4)} | ${q.after.kl!.toFixed(4)} | ${(100 * q.after.agreement!).toFixed(1)}% | ${(100 * q.after.top1).toFixed(1)}% | ${(100 * q.after.top1 / parentQ.top1).toFixed(1)}% | ${extra} |`);

// 1. GKD losses on the MIP child
for (const [what, losses] of [['cosine + KL', { cosine: 1, kl: 1, lm: 0 }], ['KL only', { cosine: 0, kl: 1, lm: 0 }], ['LM only', { cosine: 0, kl: 0, lm: 1 }], ['LM + KL', { cosine: 0, kl: 1, lm: 1 }]] as const)
  row('GKD loss', what, await childAfterGkd(`gkd-${what.replace(/\W+/g, '-')}`, mipLayers, losses));

// 2. scoring metric
const [byLm] = await search(lib, { ...base, objective: 'lm_loss_increase' } as SearchOptions);
row('scoring', 'replace-1 KL (MIP child above, cosine + KL)', await childAfterGkd('score-kl', mipLayers, { cosine: 1, kl: 1, lm: 0 }), `summed KL ${mip.objective?.toFixed(4)}`);
row('scoring', 'replace-1 LM-loss increase', await childAfterGkd('score-lm', byLm.layers.map((l) => l.variant), { cosine: 1, kl: 1, lm: 0 }), `summed KL ${byLm.layers.reduce((s, l) => s + lib.layers[l.layer].variants.find((v) => v.name === l.variant)!.metrics['kl_div'], 0).toFixed(4)}`);

// 3. search method at the same budget
for (const method of ['greedy', 'max-params', 'random'] as const) {
  const [r] = await search(lib, { ...base, method, seed: 1 });
  if (!r.layers.length) {
    rows.push(`| search | ${method} | - | - | - | - | - | ${r.status} |`);
    continue;
  }
  row('search', method, await childAfterGkd(`search-${method}`, r.layers.map((l) => l.variant), { cosine: 1, kl: 1, lm: 0 }), `summed KL ${r.objective?.toFixed(4)}`);
}

// 4. predicted (summed replace-1 KL) against true KL of random assembled children
const rng = createRng(7);
const pairs: Array<[number, number]> = [];
for (let k = 0; k < Number(a.children); k++) {
  const layers = lib.layers.map((l) => l.variants[rng.int(l.variants.length)].name);
  const predicted = layers.reduce((s, v, i) => s + lib.layers[i].variants.find((x) => x.name === v)!.metrics['kl_div'], 0);
  const child = assembleChild(libDir, layers, config.parent);
  const q = await evaluateLm(child, test, parent);
  child.dispose();
  pairs.push([predicted, q.kl!]);
}
const rank = (xs: number[]) => {
  const idx = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
  const r = new Array<number>(xs.length);
  idx.forEach(([, i], k) => (r[i] = k));
  return r;
};
const rp = rank(pairs.map((p) => p[0])), rt = rank(pairs.map((p) => p[1]));
const n = pairs.length;
const rho = 1 - (6 * rp.reduce((s, r, i) => s + (r - rt[i]) ** 2, 0)) / (n * (n * n - 1));
log(`Spearman rho over ${n} random children: ${rho.toFixed(3)}`);

const md = [
  `# Ablations on the default parent (${new Date().toISOString().slice(0, 10)})`,
  '',
  `Machine: ${cpus()[0]?.model} (${cpus().length} cores). From the run \`${a.run}\` (its library, scores and costs); budget as the run's search (${JSON.stringify(base)}); every GKD ${steps} steps of batch ${config.gkd.batch} x ${config.gkd.seq} tokens at lr ${config.gkd.lr}; quality on 32 x 256 test-split tokens against the parent (parent top-1 ${(100 * parentQ.top1).toFixed(1)}%). Command: \`npx tsx benchmarks/ablations.ts --run ${a.run} --steps ${steps}\`.`,
  '',
  '| ablation | child | KL before GKD | KL after GKD | agreement | top-1 | top-1 retained | note |',
  '|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
  `Summed replace-1-block KL against the true KL(parent || child) of ${n} random assembled children (no GKD): Spearman rho = ${rho.toFixed(3)}.`,
  '',
  '| child | summed replace-1 KL | true KL |', '|---|---|---|',
  ...pairs.map((p, i) => `| ${i + 1} | ${p[0].toFixed(4)} | ${p[1].toFixed(4)} |`),
  '',
];
const out = a.out ?? join(work, 'ablations.md');
writeFileSync(out, md.join('\n'));
log(`wrote ${out}`);
parent.dispose();
