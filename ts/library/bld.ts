/**
 * Blockwise local distillation (METHOD.md section 3). For one parent layer, every untrained
 * variant is initialised training-free and then trained to imitate the parent layer: input the
 * parent's own activation x_{i-1}, target the parent layer's output x_i, loss normalised MSE.
 * The parent's activations are computed once per batch and shared by all variants of the layer.
 * Decoupled (default): an attention variant trains beside the parent's frozen FFN and an FFN
 * variant beside the parent's frozen attention. Coupled: attention x FFN pairs train together.
 */
import { Block } from '../core/block.js';
import * as ops from '../core/ops.js';
import { AdamW, warmupCosine, type ParamGroup } from '../core/optim.js';
import type { Tensor } from '../core/tensor.js';
import type { LayerSpec } from '../model/config.js';
import { blockShape, type LlamaModel } from '../model/llama.js';
import { BatchSchedule, type PackedSequences } from '../train/batches.js';
import { Calibration, initAttention, initFfn, type FfnInit, type LinearInit } from './init.js';
import type { Subblock } from './space.js';

export interface BldSettings {
  /** training sequences per step */
  batch: number;
  /** optimiser steps per variant (all variants of a layer share them) */
  steps: number;
  lr: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  clip: number;
  warmup: number;
  calibrationBatches: number;
  validationBatches: number;
  ffnInit: FfnInit;
  linearInit: LinearInit;
  seed: number;
}

export const DEFAULT_BLD: BldSettings = {
  batch: 8, steps: 100, lr: 1e-4, beta1: 0.9, beta2: 0.95, weightDecay: 0.1, clip: 1.0, warmup: 0.05,
  calibrationBatches: 4, validationBatches: 4, ffnInit: 'channel-contribution', linearInit: 'product', seed: 0,
};

/** A variant to train for one layer: decoupled (one subblock) or coupled (a pair). */
export interface VariantJob {
  id: string;
  layer: LayerSpec;
  /** which subblocks are new (trainable); the others are the parent's, frozen */
  trains: Array<'attention' | 'ffn'>;
}

export function decoupledJob(parent: LayerSpec, s: Subblock): VariantJob {
  return s.kind === 'attention'
    ? { id: s.id, layer: { attention: s.spec as LayerSpec['attention'], ffn: parent.ffn }, trains: ['attention'] }
    : { id: s.id, layer: { attention: parent.attention, ffn: s.spec as LayerSpec['ffn'] }, trains: ['ffn'] };
}

export function coupledJob(a: Subblock, f: Subblock): VariantJob {
  return { id: `${a.id}+${f.id}`, layer: { attention: a.spec as LayerSpec['attention'], ffn: f.spec as LayerSpec['ffn'] }, trains: ['attention', 'ffn'] };
}

const ATTN_PARAMS = (n: string) => n.startsWith('self_attn.') || n === 'input_layernorm.weight';

export interface TrainedVariant {
  job: VariantJob;
  block: Block;
  valNmseInit: number;
  valNmseFinal: number;
  tokens: number;
}

/**
 * Runs the parent up to layer `layer` on ids[B, T]: returns its input and output (caller
 * disposes), in float32 (a bfloat16 parent's exactly widened).
 */
export async function parentLayerIO(parent: LlamaModel, ids: Tensor, layer: number): Promise<{ x: Tensor; y: Tensor }> {
  const [B, T] = ids.shape;
  const rope = parent.ropeFor(T);
  const e = await ops.embeddingForward(ids, parent.embed);
  let h = await ops.cast(e, parent.dtype);  // into the blocks' dtype, as LlamaModel.forward does
  if (h !== e) e.dispose();
  for (let i = 0; i < layer; i++) {
    const next = await parent.blocks[i].forward(h, B, T, rope, false);
    h.dispose();
    h = next;
  }
  const y = await parent.blocks[layer].forward(h, B, T, rope, true);
  return { x: await wide(h), y: await wide(y) };
}

/** A block output in float32 for the losses (a bf16 output is widened and released). */
async function wide(out: Tensor): Promise<Tensor> {
  const w = await ops.cast(out, 'float32');
  if (w !== out) out.dispose();
  return w;
}

/**
 * Initialises and trains every job of one layer. `onProgress(step)` is called after each
 * optimiser step. Returns the trained blocks (the caller stores and disposes them).
 */
export async function trainLayer(opts: {
  parent: LlamaModel;
  layer: number;
  jobs: VariantJob[];
  train: PackedSequences;
  validation: PackedSequences;
  settings: BldSettings;
  onProgress?: (step: number, steps: number) => void;
}): Promise<TrainedVariant[]> {
  const { parent, layer, jobs, settings: s } = opts;
  const c = parent.config;
  const pBlock = parent.blocks[layer];
  const trainSched = new BatchSchedule(opts.train, s.batch, s.seed * 7919 + layer);
  const valSched = new BatchSchedule(opts.validation, s.batch, 12345);
  const [B, T] = [s.batch, opts.train.seqLen - 1];

  // calibration statistics of the parent layer (channel contribution, least squares)
  const cal = new Calibration();
  for (let k = 0; k < s.calibrationBatches; k++) {
    const ids = trainSched.inputAt(1_000_000 + k);
    const { x, y } = await parentLayerIO(parent, ids, layer);
    await cal.add(pBlock, x.toArray() as Float32Array, c.hidden, y.toArray() as Float32Array);
    x.dispose(), y.dispose(), ids.dispose();
  }

  // variants, initialised training-free; frozen = the parent's subblock beside the new one
  const variants = jobs.map((job) => {
    // in the parent's precision: a bfloat16 parent trains bf16 variants (float32 master weights)
    const block = new Block({ ...blockShape(c, job.layer), device: parent.device, dtype: parent.dtype });
    for (const p of block.params()) {
      const isAttn = ATTN_PARAMS(p.name);
      const trainable = job.trains.includes(isAttn ? 'attention' : 'ffn');
      if (!trainable) block.param(p.name).copyFrom(pBlock.param(p.name).toArray() as Float32Array);
      block.setTrainable(p.name, trainable);
    }
    if (job.trains.includes('attention')) initAttention(c, pBlock, block, s.linearInit, cal);
    if (job.trains.includes('ffn')) initFfn(c, pBlock, block, s.ffnInit, s.linearInit, cal, s.seed + layer);
    const groups: ParamGroup[] = block.params().filter((p) => p.trainable).map((p) => ({
      param: block.param(p.name), grad: block.grad(p.name), weightDecay: p.shape.length === 1 ? 0 : undefined,
    }));
    const opt = groups.length ? new AdamW(groups, { lr: s.lr, beta1: s.beta1, beta2: s.beta2, weightDecay: s.weightDecay, clip: s.clip }) : null;
    return { job, block, opt };
  });

  const validate = async (): Promise<number[]> => {
    const num = new Float64Array(variants.length);
    let count = 0;
    for (let k = 0; k < s.validationBatches; k++) {
      const ids = valSched.inputAt(k);
      const { x, y } = await parentLayerIO(parent, ids, layer);
      const rope = parent.ropeFor(T);
      const xb = await ops.cast(x, parent.dtype);
      for (const [i, v] of variants.entries()) {
        const out = await wide(await v.block.forward(xb, B, T, rope, false));
        num[i] += await ops.nmseForward(out, y);
        out.dispose();
      }
      count++;
      if (xb !== x) xb.dispose();
      x.dispose(), y.dispose(), ids.dispose();
    }
    return Array.from(num, (v) => v / Math.max(1, count));
  };

  const init = await validate();
  const rope = parent.ropeFor(T);
  for (let step = 0; step < s.steps; step++) {
    const ids = trainSched.inputAt(step);
    const { x, y } = await parentLayerIO(parent, ids, layer);
    const lr = warmupCosine(step, s.steps, s.lr, s.warmup, 0);
    const xb = await ops.cast(x, parent.dtype);
    for (const v of variants) {
      if (!v.opt) continue;
      v.block.zeroGrad();
      const out = await wide(await v.block.forward(xb, B, T, rope, true));
      const d = await ops.nmseBackward(out, y, 1);
      const db = await ops.cast(d, parent.dtype);
      await v.block.backward(db, false);
      await v.opt.step(lr);
      out.dispose(), d.dispose();
      if (db !== d) db.dispose();
    }
    if (xb !== x) xb.dispose();
    x.dispose(), y.dispose(), ids.dispose();
    opts.onProgress?.(step + 1, s.steps);
  }
  const final = await validate();
  for (const v of variants) v.opt?.dispose();
  // a variant with nothing to train (a no-op beside the frozen parent) saw no tokens
  return variants.map((v, i) => ({ job: v.job, block: v.block, valNmseInit: init[i], valNmseFinal: final[i], tokens: v.opt ? s.steps * B * T : 0 }));
}
