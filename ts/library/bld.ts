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
 * Runs the parent up to layer `layer` on ids[B, T]: returns its input, in the blocks' dtype (what
 * the variants take), and its output in float32 (what the losses take); the caller disposes both.
 */
export async function parentLayerIO(parent: LlamaModel, ids: Tensor, layer: number): Promise<{ x: Tensor; y: Tensor }> {
  const [B, T] = ids.shape;
  const rope = parent.ropeFor(T);
  // into the blocks' dtype, as LlamaModel.forward does
  let h = await ops.castOwned(await ops.embeddingForward(ids, parent.embed), parent.dtype);
  for (let i = 0; i < layer; i++) {
    const next = await parent.blocks[i].forward(h, B, T, rope, false);
    h.dispose();
    h = next;
  }
  const y = await parent.blocks[layer].forward(h, B, T, rope, true);
  return { x: h, y: await ops.castOwned(y, 'float32') };
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
      for (const [i, v] of variants.entries()) {
        const out = await ops.castOwned(await v.block.forward(x, B, T, rope, false), 'float32');
        num[i] += await ops.nmseForward(out, y);
        out.dispose();
      }
      count++;
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
    for (const v of variants) {
      if (!v.opt) continue;
      v.block.zeroGrad();
      const out = await ops.castOwned(await v.block.forward(x, B, T, rope, true), 'float32');
      const d = await ops.castOwned(await ops.nmseBackward(out, y, 1), parent.dtype);
      await v.block.backward(d, false);
      await v.opt.step(lr);
      out.dispose(), d.dispose();
    }
    x.dispose(), y.dispose(), ids.dispose();
    opts.onProgress?.(step + 1, s.steps);
  }
  const final = await validate();
  for (const v of variants) v.opt?.dispose();
  // a variant with nothing to train (a no-op beside the frozen parent) saw no tokens
  return variants.map((v, i) => ({ job: v.job, block: v.block, valNmseInit: init[i], valNmseFinal: final[i], tokens: v.opt ? s.steps * B * T : 0 }));
}
