// A model's decode step driven from Node two ways, side by side in one process: every layer its
// own native call (Block.forwardCached, one round trip to JS and one device synchronisation per
// layer: what LlamaModel.forwardCached did) against all layers in one call
// (Block.forwardCachedStack: one task, one wait). Rounds alternate the two; each prints the median
// time of a step over the rounds, its spread, and the ratio. Random weights, batch 1.
//
//   node benchmarks/decode-stack.mjs [--device cpu|cuda] [--dtype float32|bfloat16] [--hidden 512]
//        [--heads 8] [--kv 2] [--ffn 1408] [--layers 8] [--past 256] [--steps 32] [--rounds 7]
// (needs the build: npm run build)
import { parseArgs } from 'node:util';
import { Block, ids, tensor, zeros, ropeTables } from '../dist/index.js';
import { summarize } from '../dist/bench/timing.js';

const { values: a } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' }, dtype: { type: 'string', default: 'float32' },
    hidden: { type: 'string', default: '512' }, heads: { type: 'string', default: '8' }, kv: { type: 'string', default: '2' },
    ffn: { type: 'string', default: '1408' }, layers: { type: 'string', default: '8' }, past: { type: 'string', default: '256' },
    steps: { type: 'string', default: '32' }, rounds: { type: 'string', default: '7' },
  },
});
const [C, NH, NKV, F, L, past0, steps, rounds] = ['hidden', 'heads', 'kv', 'ffn', 'layers', 'past', 'steps', 'rounds'].map((k) => Number(a[k]));
const { device, dtype } = a;
const HS = C / NH, P = past0 + steps;

const blocks = Array.from({ length: L }, () => {
  const b = new Block({ hidden: C, attention: 'gqa', heads: NH, headDim: HS, kvHeads: NKV, ffn: 'swiglu', ffnWidth: F, dtype, device });
  for (const p of b.params()) b.param(p.name).fill(p.shape.length === 1 ? 1 : 0.02);
  if (dtype === 'bfloat16') b.dropMasterWeights();  // as a serving model does (LlamaModel.forInference)
  return b;
});
const { cos, sin } = ropeTables(HS, P, 10000);
const rope = (t) => ({ cos: tensor(cos, [P, HS / 2], 'float32', device), sin: tensor(sin, [P, HS / 2], 'float32', device), pos: ids([t], [1], device) });
const caches = blocks.map(() => ({ k: zeros([1, P, NKV, HS], dtype, device), v: zeros([1, P, NKV, HS], dtype, device) }));
const x = tensor(Float32Array.from({ length: C }, (_, i) => Math.sin(i)), [1, 1, C], dtype, device);
const ropes = Array.from({ length: steps }, (_, s) => rope(past0 + s));

const modes = {
  'one call per layer': async (s) => {
    let h = x;
    for (const [i, b] of blocks.entries()) {
      const next = await b.forwardCached(h, 1, 1, ropes[s], caches[i], past0 + s);
      if (h !== x) h.dispose();
      h = next;
    }
    h.dispose();
  },
  'one call for all layers': async (s) => (await Block.forwardCachedStack(blocks, x, 1, 1, ropes[s], caches, past0 + s)).dispose(),
};
const times = Object.fromEntries(Object.keys(modes).map((m) => [m, []]));
for (let r = 0; r <= rounds; r++) {
  const order = r % 2 ? Object.keys(modes).reverse() : Object.keys(modes);
  for (const m of order) {
    const t0 = process.hrtime.bigint();
    for (let s = 0; s < steps; s++) await modes[m](s);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6 / steps;
    if (r > 0) times[m].push(ms);  // round 0 warms up
  }
}
console.log(`decode step, ${L} layers of hidden ${C} (${NH} heads, ${NKV} KV heads, FFN ${F}), past ${past0}, ${dtype} on ${device}, ${rounds} rounds of ${steps} steps`);
const base = summarize(times['one call per layer']).median;
for (const [m, t] of Object.entries(times)) {
  const s = summarize(t);
  console.log(`  ${m.padEnd(24)} ${s.median.toFixed(4)} ms/step (spread ${(100 * s.spread).toFixed(1)}%, min ${s.min.toFixed(4)})  x${(base / s.median).toFixed(2)}`);
}
