// The GPU from Node on a lent GPU machine (benchmarks/gpu/check.sh runs it): device tensors, ops,
// fp32 and bf16 blocks at Llama head sizes (the tensor-core attention paths), and a model's
// training step and decode on 'cuda', each against the CPU engine in the same process. It is what
// test/cuda/device.cuda.test.ts checks on the CPU emulator with tiny shapes, at sizes the emulator
// cannot afford. A GPU machine has no npm: it needs dist/ (npm run build:ts) and
// build/Release/puzzle.node carried from the build machine, and PUZZLE_CUDA_MODULE pointing at
// the puzzle_cuda.so check.sh built there.
//   node benchmarks/gpu/node_device_check.mjs          prints one line per check; exit 1 on a failure
//   ... --tiny                                         emulator-sized shapes (a dry run of this script:
//   PUZZLE_CUDA_MODULE=build/cuda-emu/puzzle_cuda_emu.so, from native/dev/cuda-emu/module/build.sh)
import { loadAddon } from '../../dist/native/loader.js';
import * as ops from '../../dist/core/ops.js';
import { ids, tensor, to, zeros } from '../../dist/core/tensor.js';
import { Block } from '../../dist/core/block.js';
import { AdamW } from '../../dist/core/optim.js';
import { LlamaModel, normalInit } from '../../dist/model/llama.js';

const tiny = process.argv.includes('--tiny');
// sizes: [GPU run, --tiny]
const Z = (big, small) => (tiny ? small : big);
const info = loadAddon().cudaInfo();
if (info.devices === 0) {
  console.log(`node device checks skipped: ${info.description}`);
  process.exit(0);
}
console.log(`node device checks on ${info.description}`);

let passed = 0, failed = 0;
const rel = (a, b) => {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) num += (a[i] - b[i]) ** 2, den += b[i] ** 2;
  return Math.sqrt(num / Math.max(den, 1e-30));
};
function report(name, err, tol) {
  const ok = err <= tol;
  ok ? passed++ : failed++;
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${name.padEnd(58)} rel L2 ${err.toExponential(2)} (tol ${tol})`);
}
const check = (name, gpu, cpu, tol) => {
  if (gpu.device !== 'cuda') return report(`${name} (output not on cuda)`, Infinity, tol);
  report(name, rel(gpu.toArray(), cpu.toArray()), tol);
};
// CUDA against CPU: fp32 elementwise, tensor-core products (bf16 operands), bf16 storage
const TOL = { f32: 1e-5, mma: 1e-2, bf16: 2e-2 };
let seed = 1;
const rnd = (n, s = 1) => normalInit(n, s, seed++);
const gpu = (t) => to(t, 'cuda');
const timed = async (name, fn) => {
  const t0 = performance.now();
  try {
    await fn();
  } catch (e) {
    failed++;
    console.log(`  FAIL ${name}: ${e.code ?? ''} ${e.message}`);
  }
  console.log(`  (${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
};

await timed('ops', async () => {
  const N = Z(512, 16), C = Z(1024, 32), OC = Z(768, 24), V = Z(32000, 50), R = Z(256, 8);
  const x = tensor(rnd(N * C), [N, C]), w = tensor(rnd(C, 0.5), [C]), W = tensor(rnd(OC * C, 0.05), [OC, C]);
  check(`rmsnorm forward N${N} C${C}`, (await ops.rmsnormForward(gpu(x), gpu(w), 1e-5)).out, (await ops.rmsnormForward(x, w, 1e-5)).out, TOL.f32);
  check(`matmul forward ${N}x${C} -> ${OC}`, await ops.matmulForward(gpu(x), gpu(W)), await ops.matmulForward(x, W), TOL.mma);
  const dy = tensor(rnd(N * OC), [N, OC]);
  const bc = await ops.matmulBackward(dy, x, W), bg = await ops.matmulBackward(gpu(dy), gpu(x), gpu(W));
  check('matmul dinp', bg.dinp, bc.dinp, TOL.mma), check('matmul dweight', bg.dweight, bc.dweight, TOL.mma);
  const [B, T, NH, NKV, HS] = Z([1, 512, 8, 2, 128], [1, 9, 4, 2, 16]);
  const q = tensor(rnd(B * T * NH * HS), [B, T, NH, HS]), k = tensor(rnd(B * T * NKV * HS), [B, T, NKV, HS]), v = tensor(rnd(B * T * NKV * HS), [B, T, NKV, HS]);
  const ac = await ops.attentionForward(q, k, v), ag = await ops.attentionForward(gpu(q), gpu(k), gpu(v));
  check(`attention forward T${T} NH${NH} NKV${NKV} HS${HS}`, ag.out, ac.out, TOL.mma);
  const dq = tensor(rnd(q.numel), q.shape);
  const abc = await ops.attentionBackward(dq, q, k, v, ac.out, ac.lse), abg = await ops.attentionBackward(gpu(dq), gpu(q), gpu(k), gpu(v), ag.out, ag.lse);
  for (const n of ['dq', 'dk', 'dv']) check(`attention backward ${n}`, abg[n], abc[n], TOL.mma);
  const logits = tensor(rnd(R * V, 2), [R, V]), tgt = ids(Array.from({ length: R }, (_, i) => (i * 7919) % V));
  const cc = await ops.crossEntropyForward(logits, tgt), cg = await ops.crossEntropyForward(gpu(logits), tgt);
  report(`cross-entropy forward N${R} V${V} (loss)`, Math.abs(cg.loss / cc.loss - 1), 1e-5);
  check('cross-entropy backward', await ops.crossEntropyBackward(gpu(logits), cg.lse, tgt, 1 / R), await ops.crossEntropyBackward(logits, cc.lse, tgt, 1 / R), TOL.f32);
  try {
    await ops.add(x, gpu(x));
    report('mixed devices refused', Infinity, 0);
  } catch (e) {
    report(`mixed devices refused (${e.code})`, e.code === 'ERR_PUZZLE_DEVICE' ? 0 : Infinity, 0);
  }
});

for (const dtype of ['float32', 'bfloat16']) {
  await timed(`${dtype} block`, async () => {
    const shape = { ...Z({ hidden: 1024, heads: 8, headDim: 128, ffnWidth: 2816 }, { hidden: 32, heads: 4, headDim: 8, ffnWidth: 48 }),
      attention: 'gqa', kvHeads: 2, ffn: 'swiglu', dtype };
    const c = new Block(shape), g = new Block({ ...shape, device: 'cuda' });
    for (const p of c.params()) {
      const vals = p.shape.length === 1 ? new Float32Array(p.numel).fill(1) : rnd(p.numel, 0.03);
      c.param(p.name).copyFrom(vals), g.param(p.name).copyFrom(vals);
    }
    const B = 2, T = Z(256, 5), P = Z(512, 16), C = shape.hidden, half = shape.headDim / 2;
    const tol = dtype === 'float32' ? TOL.mma : TOL.bf16;
    const rope = { cos: tensor(rnd(P * half), [P, half]), sin: tensor(rnd(P * half), [P, half]) };
    const ropeG = { cos: gpu(rope.cos), sin: gpu(rope.sin) };
    const xv = rnd(B * T * C);
    const yc = await c.forward(tensor(xv, [B, T, C], dtype), B, T, rope, true);
    const yg = await g.forward(tensor(xv, [B, T, C], dtype, 'cuda'), B, T, ropeG, true);
    check(`${dtype} block forward B${B} T${T} hidden${C} HS${shape.headDim}`, yg, yc, tol);
    const dv = rnd(B * T * C);
    c.zeroGrad(), g.zeroGrad();
    check(`${dtype} block dx`, await g.backward(tensor(dv, [B, T, C], dtype, 'cuda'), true), await c.backward(tensor(dv, [B, T, C], dtype), true), tol);
    let worst = 0;
    for (const p of c.params()) worst = Math.max(worst, rel(g.grad(p.name).toArray(), c.grad(p.name).toArray()));
    report(`${dtype} block parameter gradients (worst)`, worst, tol);
    // prefill of T-1 tokens into a cache, then one decode step, against the full forward's last rows
    const cache = { k: zeros([B, P, 2, shape.headDim], dtype, 'cuda'), v: zeros([B, P, 2, shape.headDim], dtype, 'cuda') };
    const first = new Float32Array(B * (T - 1) * C), last = new Float32Array(B * C);
    for (let b = 0; b < B; b++) {
      first.set(xv.subarray(b * T * C, (b * T + T - 1) * C), b * (T - 1) * C);
      last.set(xv.subarray((b * T + T - 1) * C, (b + 1) * T * C), b * C);
    }
    await g.forwardCached(tensor(first, [B, T - 1, C], dtype, 'cuda'), B, T - 1, { ...ropeG, pos: ids(Array.from({ length: T - 1 }, (_, i) => i), [T - 1], 'cuda') }, cache, 0);
    const step = await g.forwardCached(tensor(last, [B, 1, C], dtype, 'cuda'), B, 1, { ...ropeG, pos: ids([T - 1], [1], 'cuda') }, cache, T - 1);
    const full = yc.toArray(), want = new Float32Array(B * C);
    for (let b = 0; b < B; b++) want.set(full.subarray((b * T + T - 1) * C, (b + 1) * T * C), b * C);
    report(`${dtype} decode step after a prefill of ${T - 1}`, rel(step.toArray(), want), tol);
    c.dispose(), g.dispose();
  });
}

for (const dtype of ['float32', 'bfloat16']) await timed(`${dtype} model`, async () => {
  const config = {
    ...Z({ vocab: 1000, hidden: 512, heads: 8, headDim: 64 }, { vocab: 40, hidden: 32, heads: 4, headDim: 8 }),
    eps: 1e-5, maxPositions: 1024, ropeTheta: 500000, ropeScaling: null,
    tieEmbeddings: false, bosTokenId: null, eosTokenId: null, dtype: 'float32',
    layers: [
      { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', width: Z(1408, 48) } },
      { attention: { kind: 'linear' }, ffn: { kind: 'swiglu', width: Z(512, 16) } },
      { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'noop' } },
    ],
  };
  // a bfloat16 model is mixed precision on both sides: the same roundings, other summation orders
  const mc = LlamaModel.random(config, 3, 0.02, 'cpu', dtype), mg = LlamaModel.random(config, 3, 0.02, 'cuda', dtype);
  const tol = dtype === 'bfloat16' ? TOL.bf16 : TOL.mma, tag = `${dtype} model`;
  const T = Z(128, 6), V = config.vocab, tokens = Array.from({ length: 2 * T }, (_, i) => (i * 37) % V);
  const input = ids(tokens, [2, T]), tgt = ids(tokens.map((t) => (t + 1) % V));
  // inference first (before the step below moves the weights apart by Adam's normalised updates)
  const cc = mc.newCache(2, T + 8), cg = mg.newCache(2, T + 8);
  check(`${tag} cached prefill logits`, await mg.forwardCached(input, cg), await mc.forwardCached(input, cc), tol);
  const step = ids([5, 9], [2, 1]);
  check(`${tag} decode-step logits`, await mg.forwardCached(step, cg), await mc.forwardCached(step, cc), tol);
  const lc = await mc.forward(input, { train: true }), lg = await mg.forward(input, { train: true });
  check(`${tag} logits B2 T${T} (3 layers)`, lg.logits, lc.logits, tol);
  const losses = [];
  for (const [m, l] of [[mc, lc], [mg, lg]]) {
    const ce = await ops.crossEntropyForward(l.logits, tgt);
    m.zeroGrad();
    await m.backward(await ops.crossEntropyBackward(l.logits, ce.lse, tgt, 1 / ce.count));
    losses.push([ce.loss, (await new AdamW(m.paramGroups(), { lr: 1e-3 }).step()).gradNorm]);
  }
  report(`${tag} loss`, Math.abs(losses[1][0] / losses[0][0] - 1), dtype === 'bfloat16' ? 1e-3 : 1e-4);
  report(`${tag} gradient norm`, Math.abs(losses[1][1] / losses[0][1] - 1), tol);
  let worst = 0;
  const pg = mg.namedParameters();
  for (const [i, [, p]] of mc.namedParameters().entries()) worst = Math.max(worst, rel(pg[i][1].toArray(), p.toArray()));
  // Adam divides by sqrt(v): where a gradient is near zero, the small GPU-CPU difference in it
  // becomes a difference of up to lr in the update, hence a looser bound than the products'
  report(`${tag} parameters after one AdamW step (worst)`, worst, 3e-2);
});

console.log(`node device checks: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
