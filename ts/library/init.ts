/**
 * Training-free initialisation of subblock variants from the parent layer (METHOD.md section 2):
 *   FFN width   channel contribution |X_c| * ||W_down[:, c]|| averaged over calibration tokens
 *               (first-k and random as ablation baselines)
 *   KV heads    each new K/V head is the mean of the parent heads of its group
 *   linear attn W_o W_v with V heads repeated to the query count
 *   linear FFN  W_down W_up (gate ignored)
 *   least squares for both linear options, fitted on calibration activations
 * Norm weights are copied from the parent.
 */
import type { Block } from '../core/block.js';
import { PuzzleError } from '../core/errors.js';
import * as ops from '../core/ops.js';
import { tensor } from '../core/tensor.js';
import type { ModelConfig } from '../model/config.js';
import { solveSpd, transpose } from './linalg.js';
import { createRng } from '../data/prng.js';

export type FfnInit = 'channel-contribution' | 'first-k' | 'random';
export type LinearInit = 'product' | 'least-squares';

const f32 = (b: Block, name: string) => b.param(name).toArray() as Float32Array;

function copy(from: Block, to: Block, name: string) {
  to.param(name).copyFrom(f32(from, name));
}

/** Calibration statistics the initialisers need, gathered from parent forwards. */
export class Calibration {
  /** per FFN channel: sum over tokens of |h_c| */
  absHidden: Float64Array | null = null;
  tokens = 0;
  /** X^T X and X^T Y for the linear least-squares fits (float64) */
  attnXtX: Float64Array | null = null;
  attnXtY: Float64Array | null = null;
  ffnXtX: Float64Array | null = null;
  ffnXtY: Float64Array | null = null;

  /** Adds one batch: the parent block must just have run forward(x, save = true) on input x. */
  async add(parent: Block, x: Float32Array, C: number, out: Float32Array): Promise<void> {
    const h = parent.savedActivation('ffn_hidden');
    const ha = h.toArray() as Float32Array;
    const [N, F] = h.shape;
    h.dispose();
    if (!this.absHidden) this.absHidden = new Float64Array(F);
    for (let n = 0; n < N; n++) for (let f = 0; f < F; f++) this.absHidden[f] += Math.abs(ha[n * F + f]);
    this.tokens += N;
    // attention: X = RMSNorm(x), Y = x1 - x ; FFN: X = RMSNorm(x1), Y = out - x1
    const read = (name: 'attn_input' | 'x1' | 'ffn_input') => {
      const t = parent.savedActivation(name);
      const a = t.toArray() as Float32Array;
      t.dispose();
      return a;
    };
    const a = read('attn_input');
    const x1 = read('x1');
    const fi = read('ffn_input');
    const ya = x1.map((v, i) => v - x[i]);
    const yf = out.map((v, i) => v - x1[i]);
    [this.attnXtX, this.attnXtY] = await gram(a, ya, N, C, this.attnXtX, this.attnXtY);
    [this.ffnXtX, this.ffnXtY] = await gram(fi, yf, N, C, this.ffnXtX, this.ffnXtY);
  }
}

/** Accumulates X^T X and X^T Y ([C, C] each) with the engine's GEMM. */
async function gram(X: Float32Array, Y: Float32Array, N: number, C: number, xtx: Float64Array | null, xty: Float64Array | null): Promise<[Float64Array, Float64Array]> {
  const xt = tensor(X, [N, C]);
  const yt = tensor(Y, [N, C]);
  const w = tensor(new Float32Array(C * C), [C, C]);
  const a = await ops.matmulBackward(xt, xt, w);  // dweight = X^T X
  const b = await ops.matmulBackward(yt, xt, w);  // dweight = Y^T X
  const XtX = a.dweight.toArray() as Float32Array;
  const YtX = b.dweight.toArray() as Float32Array;
  for (const t of [xt, yt, w, a.dinp, a.dweight, b.dinp, b.dweight]) t.dispose();
  const outA = xtx ?? new Float64Array(C * C);
  const outB = xty ?? new Float64Array(C * C);
  for (let i = 0; i < C; i++)
    for (let j = 0; j < C; j++) {
      outA[i * C + j] += XtX[i * C + j];
      outB[i * C + j] += YtX[j * C + i];  // (Y^T X)^T = X^T Y
    }
  return [outA, outB];
}

/** Least-squares W [C, C] (HF layout, y = x W^T) from accumulated statistics. */
function lsWeight(xtx: Float64Array | null, xty: Float64Array | null, C: number): Float32Array {
  if (!xtx || !xty) throw new PuzzleError('ERR_PUZZLE_STATE', 'least-squares init needs calibration batches');
  const Wt = solveSpd(xtx, xty, C, C); // solves X^T X W^T = X^T Y
  return transpose(Float32Array.from(Wt), C, C);
}

/** Initialises the attention subblock of `target` from the parent block. */
export function initAttention(c: ModelConfig, parent: Block, target: Block, method: LinearInit, cal?: Calibration): void {
  const shape = target.shape;
  if (shape.attention === 'noop') return;
  copy(parent, target, 'input_layernorm.weight');
  const ps = parent.shape;
  if (ps.attention !== 'gqa') throw new PuzzleError('ERR_PUZZLE_ARG', 'initAttention: the parent layer must have GQA attention');
  const HS = c.headDim;
  const NH = c.heads;
  const kvP = ps.kvHeads!;
  if (shape.attention === 'gqa') {
    copy(parent, target, 'self_attn.q_proj.weight');
    copy(parent, target, 'self_attn.o_proj.weight');
    const k = shape.kvHeads!;
    if (kvP % k) throw new PuzzleError('ERR_PUZZLE_ARG', `initAttention: ${k} KV heads do not divide the parent's ${kvP}`);
    const g = kvP / k;
    for (const name of ['self_attn.k_proj.weight', 'self_attn.v_proj.weight']) {
      const w = f32(parent, name);  // [kvP * HS, C]
      const out = new Float32Array(k * HS * c.hidden);
      const row = HS * c.hidden;
      for (let j = 0; j < k; j++)
        for (let m = 0; m < g; m++) {
          const src = (j * g + m) * row;
          for (let i = 0; i < row; i++) out[j * row + i] += w[src + i] / g;
        }
      target.param(name).copyFrom(out);
    }
    return;
  }
  // linear
  if (method === 'least-squares') {
    target.param('self_attn.linear_attn.weight').copyFrom(lsWeight(cal?.attnXtX ?? null, cal?.attnXtY ?? null, c.hidden));
    return;
  }
  const C = c.hidden;
  const wv = f32(parent, 'self_attn.v_proj.weight');  // [kvP*HS, C]
  const wo = f32(parent, 'self_attn.o_proj.weight');  // [C, NH*HS]
  const rep = NH / kvP;
  const W = new Float32Array(C * C);
  // W = W_o @ W_v_rep, W_v_rep row (h*HS + d) = wv row ((h / rep) * HS + d)
  for (let r = 0; r < C; r++)
    for (let hd = 0; hd < NH * HS; hd++) {
      const o = wo[r * NH * HS + hd];
      if (o === 0) continue;
      const vrow = (Math.floor(hd / HS / rep) * HS + (hd % HS)) * C;
      for (let col = 0; col < C; col++) W[r * C + col] += o * wv[vrow + col];
    }
  target.param('self_attn.linear_attn.weight').copyFrom(W);
}

/** Channels to keep for a narrower FFN, ascending. */
export function chooseChannels(width: number, F: number, method: FfnInit, parent: Block, cal: Calibration | undefined, seed: number): number[] {
  if (width > F) throw new PuzzleError('ERR_PUZZLE_ARG', `FFN width ${width} exceeds the parent's ${F}`);
  let keep: number[];
  if (method === 'first-k') keep = Array.from({ length: width }, (_, i) => i);
  else if (method === 'random') {
    const r = createRng(seed);
    const idx = Array.from({ length: F }, (_, i) => i);
    for (let i = F - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    keep = idx.slice(0, width);
  } else {
    if (!cal?.absHidden || !cal.tokens) throw new PuzzleError('ERR_PUZZLE_STATE', 'channel-contribution init needs calibration batches');
    const down = f32(parent, 'mlp.down_proj.weight');  // [C, F]
    const C = down.length / F;
    const score = new Float64Array(F);
    for (let f = 0; f < F; f++) {
      let n2 = 0;
      for (let r = 0; r < C; r++) n2 += down[r * F + f] ** 2;
      score[f] = (cal.absHidden[f] / cal.tokens) * Math.sqrt(n2);
    }
    keep = Array.from({ length: F }, (_, i) => i).sort((a, b) => score[b] - score[a] || a - b).slice(0, width);
  }
  return keep.sort((a, b) => a - b);
}

/** Initialises the FFN subblock of `target` from the parent block. */
export function initFfn(c: ModelConfig, parent: Block, target: Block, ffnMethod: FfnInit, linearMethod: LinearInit, cal?: Calibration, seed = 0): void {
  const shape = target.shape;
  if (shape.ffn === 'noop') return;
  copy(parent, target, 'post_attention_layernorm.weight');
  const F = parent.shape.ffnWidth!;
  const C = c.hidden;
  if (shape.ffn === 'swiglu') {
    const keep = chooseChannels(shape.ffnWidth!, F, ffnMethod, parent, cal, seed);
    const gate = f32(parent, 'mlp.gate_proj.weight');
    const up = f32(parent, 'mlp.up_proj.weight');
    const down = f32(parent, 'mlp.down_proj.weight');
    const w = keep.length;
    const g2 = new Float32Array(w * C);
    const u2 = new Float32Array(w * C);
    const d2 = new Float32Array(C * w);
    keep.forEach((ch, j) => {
      g2.set(gate.subarray(ch * C, (ch + 1) * C), j * C);
      u2.set(up.subarray(ch * C, (ch + 1) * C), j * C);
      for (let r = 0; r < C; r++) d2[r * w + j] = down[r * F + ch];
    });
    target.param('mlp.gate_proj.weight').copyFrom(g2);
    target.param('mlp.up_proj.weight').copyFrom(u2);
    target.param('mlp.down_proj.weight').copyFrom(d2);
    return;
  }
  if (linearMethod === 'least-squares') {
    target.param('mlp.linear_mlp.weight').copyFrom(lsWeight(cal?.ffnXtX ?? null, cal?.ffnXtY ?? null, C));
    return;
  }
  const up = f32(parent, 'mlp.up_proj.weight');  // [F, C]
  const down = f32(parent, 'mlp.down_proj.weight');  // [C, F]
  const W = new Float32Array(C * C);
  for (let r = 0; r < C; r++)
    for (let f = 0; f < F; f++) {
      const d = down[r * F + f];
      for (let col = 0; col < C; col++) W[r * C + col] += d * up[f * C + col];
    }
  target.param('mlp.linear_mlp.weight').copyFrom(W);
}
