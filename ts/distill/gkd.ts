/**
 * Global knowledge distillation (METHOD.md section 7): the assembled child trained end to end to
 * imitate the parent. Loss = cosine weight x sum over layers of mean(1 - cos(child_l, parent_l))
 * + KL weight x mean KL(parent || child) of the next-token distributions + LM weight x the
 * child's cross-entropy on the text; a weight of 0 switches a term off (the paper's ablations).
 * AdamW with warm-up + cosine, validation KL tracked, checkpoints, exact resume after a kill.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import * as ops from '../core/ops.js';
import { AdamW, warmupCosine } from '../core/optim.js';
import { zeros, type Tensor } from '../core/tensor.js';
import { evaluateLm, type LmMetrics } from '../eval/lm.js';
import { loadModel, saveModel } from '../model/hf.js';
import type { LlamaModel } from '../model/llama.js';
import { BatchSchedule, type PackedSequences } from '../train/batches.js';
import { folderFingerprint } from '../library/build.js';
import { hasCheckpoint, loadCheckpointModel, readCheckpointState, restoreOptimizer, saveCheckpoint } from '../train/checkpoint.js';

export interface GkdLosses {
  /** weight of sum over layers of mean(1 - cos) between child and parent hidden states */
  cosine: number;
  /** weight of KL(parent || child) */
  kl: number;
  /** weight of the child's LM cross-entropy */
  lm: number;
}

export const DEFAULT_GKD_LOSSES: GkdLosses = { cosine: 1, kl: 1, lm: 0 };

export interface GkdOptions {
  parent: LlamaModel;
  /** the assembled child's HF folder (the starting point) */
  childDir: string;
  train: PackedSequences;
  validation?: PackedSequences;
  outDir: string;
  steps: number;
  batch: number;
  losses?: GkdLosses;
  lr?: number;
  warmup?: number;
  minLrFraction?: number;
  weightDecay?: number;
  clip?: number;
  seed?: number;
  evalEvery?: number;
  evalBatches?: number;
  checkpointEvery?: number;
  tokenizerDir?: string;
  onEvent?: (e: GkdEvent) => void;
}

export type GkdEvent =
  | { kind: 'start'; step: number; steps: number; resumed: boolean; params: number }
  | { kind: 'step'; step: number; steps: number; loss: number; cosine: number; kl: number; lm: number; lr: number; gradNorm: number; tokensPerSec: number }
  | { kind: 'eval'; step: number; metrics: LmMetrics }
  | { kind: 'checkpoint'; step: number; dir: string }
  | { kind: 'done'; dir: string; metrics?: LmMetrics };

export interface GkdResult {
  modelDir: string;
  steps: number;
  history: Array<{ step: number; loss: number; cosine: number; kl: number; lm: number; lr: number; val?: LmMetrics }>;
  /** validation metrics against the parent before the first step and after the last */
  before?: LmMetrics;
  final?: LmMetrics;
}

function fingerprint(o: GkdOptions, losses: GkdLosses): string {
  const keys = { child: folderFingerprint(o.childDir), steps: o.steps, batch: o.batch, losses, lr: o.lr, warmup: o.warmup, minLrFraction: o.minLrFraction,
    weightDecay: o.weightDecay, clip: o.clip, seed: o.seed, seqLen: o.train.seqLen, count: o.train.count, parent: o.parent.numParams(),
    // the precision, when not float32 (float32 checkpoints keep the fingerprints they were written with)
    ...(o.parent.dtype !== 'float32' ? { dtype: o.parent.dtype } : {}) };
  return createHash('sha256').update(JSON.stringify(keys)).digest('hex').slice(0, 16);
}

function valBatches(v: PackedSequences | undefined, n: number, batch: number): Tensor[] {
  if (!v) return [];
  const s = new BatchSchedule(v, Math.min(batch, v.count), 0);
  const count = Math.min(n, Math.floor(v.count / s.batch));
  return Array.from({ length: count }, (_, k) => s.inputAt(k));
}

/** One GKD micro-batch: losses computed and gradients accumulated into the child. */
export async function gkdBackward(parent: LlamaModel, child: LlamaModel, input: Tensor, targets: Tensor, w: GkdLosses, scale = 1): Promise<{ cosine: number; kl: number; lm: number; loss: number }> {
  const wantHidden = w.cosine > 0;
  const teacher = await parent.forward(input, { hidden: wantHidden });
  const student = await child.forward(input, { train: true, hidden: wantHidden });
  const N = student.logits.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const out = { cosine: 0, kl: 0, lm: 0, loss: 0 };
  const dlogits = zeros(student.logits.shape, 'float32', student.logits.device);
  const extra: Array<Tensor | null> = [];
  try {
    if (w.kl > 0) {
      const kl = await ops.klForward(teacher.logits, student.logits);
      out.kl = kl.loss;
      kl.losses.dispose();
      const d = await ops.klBackward(teacher.logits, student.logits, (w.kl * scale) / N);
      await ops.accumulate(dlogits, d);
      d.dispose();
    }
    if (w.lm > 0) {
      const ce = await ops.crossEntropyForward(student.logits, targets);
      out.lm = ce.loss;
      const d = await ops.crossEntropyBackward(student.logits, ce.lse, targets, (w.lm * scale) / Math.max(1, ce.count));
      await ops.accumulate(dlogits, d);
      [d, ce.losses, ce.lse].forEach((t) => t.dispose());
    }
    if (wantHidden) {
      for (let i = 0; i < student.hidden.length; i++) {
        const cos = await ops.cosineForward(student.hidden[i], teacher.hidden[i]);
        out.cosine += cos.loss;
        cos.losses.dispose();
        extra.push(await ops.cosineBackward(student.hidden[i], teacher.hidden[i], (w.cosine * scale) / N));
      }
    }
    out.loss = w.cosine * out.cosine + w.kl * out.kl + w.lm * out.lm;
    await child.backward(dlogits, extra);
  } finally {
    dlogits.dispose();
    extra.forEach((t) => t?.dispose());
    teacher.logits.dispose();
    student.logits.dispose();
    parent.release();
    child.release();
  }
  return out;
}

export async function gkd(o: GkdOptions): Promise<GkdResult> {
  const w = o.losses ?? DEFAULT_GKD_LOSSES;
  if (!(w.cosine >= 0 && w.kl >= 0 && w.lm >= 0) || w.cosine + w.kl + w.lm === 0)
    throw new PuzzleError('ERR_PUZZLE_ARG', `gkd: loss weights must be >= 0 and not all 0, got cosine ${w.cosine}, kl ${w.kl}, lm ${w.lm}`);
  if (o.steps < 1 || !Number.isInteger(o.steps)) throw new PuzzleError('ERR_PUZZLE_ARG', `gkd: steps must be a positive integer, got ${o.steps}`);
  const lr = o.lr ?? 5e-4;
  const seed = o.seed ?? 0;
  const ckptDir = join(o.outDir, 'checkpoint');
  const fp = fingerprint(o, w);
  const emit = o.onEvent ?? (() => {});
  let step = 0;
  let history: GkdResult['history'] = [];
  let before: LmMetrics | undefined;
  const resumed = hasCheckpoint(ckptDir);
  let child: LlamaModel;
  if (resumed) {
    const st = readCheckpointState(ckptDir);
    if (st.fingerprint !== fp)
      throw new PuzzleError('ERR_PUZZLE_CHECKPOINT', `${ckptDir} was written by a GKD run with other settings (fingerprint ${st.fingerprint}, this run ${fp}); use another --out or delete the checkpoint`);
    child = loadCheckpointModel(ckptDir, o.parent.device, o.parent.dtype);  // the child trains where and as the parent runs
    step = st.step;
    history = st.history as GkdResult['history'];
    before = st.before as LmMetrics | undefined;
  } else child = loadModel(o.childDir, o.parent.device, o.parent.dtype);
  if (child.config.layers.length !== o.parent.config.layers.length || child.config.hidden !== o.parent.config.hidden || child.config.vocab !== o.parent.config.vocab)
    throw new PuzzleError('ERR_PUZZLE_CONFIG', `gkd: the child (${child.config.layers.length} layers, hidden ${child.config.hidden}, vocab ${child.config.vocab}) does not match the parent (${o.parent.config.layers.length}, ${o.parent.config.hidden}, ${o.parent.config.vocab})`);
  const opt = new AdamW(child.paramGroups(), { lr, beta1: 0.9, beta2: 0.95, weightDecay: o.weightDecay ?? 0.0, clip: o.clip ?? 1.0 });
  if (resumed) restoreOptimizer(ckptDir, opt);
  const schedule = new BatchSchedule(o.train, o.batch, seed);
  const val = valBatches(o.validation, o.evalBatches ?? 8, o.batch);
  emit({ kind: 'start', step, steps: o.steps, resumed, params: child.numParams() });
  const evalEvery = o.evalEvery ?? Math.max(1, Math.floor(o.steps / 10));
  const ckptEvery = o.checkpointEvery ?? Math.max(1, Math.floor(o.steps / 20));
  try {
    if (!resumed && val.length) {
      before = await evaluateLm(child, val, o.parent);
      emit({ kind: 'eval', step: 0, metrics: before });
    }
    while (step < o.steps) {
      const t0 = performance.now();
      child.zeroGrad();
      const { input, targets, tokens } = schedule.batchAt(step);
      let r;
      try {
        r = await gkdBackward(o.parent, child, input, targets, w);
      } finally {
        input.dispose();
        targets.dispose();
      }
      const stepLr = warmupCosine(step, o.steps, lr, o.warmup ?? 0.05, o.minLrFraction ?? 0.1);
      const { gradNorm } = await opt.step(stepLr);
      if (!Number.isFinite(r.loss)) throw new PuzzleError('ERR_PUZZLE_NUMERIC', `gkd: the loss became ${r.loss} at step ${step + 1}; lower --lr`);
      step++;
      const entry: GkdResult['history'][number] = { step, loss: r.loss, cosine: r.cosine, kl: r.kl, lm: r.lm, lr: stepLr };
      emit({ kind: 'step', step, steps: o.steps, ...r, lr: stepLr, gradNorm, tokensPerSec: tokens / ((performance.now() - t0) / 1000) });
      if (val.length && (step % evalEvery === 0 || step === o.steps)) {
        entry.val = await evaluateLm(child, val, o.parent);
        emit({ kind: 'eval', step, metrics: entry.val });
      }
      history.push(entry);
      if (step % ckptEvery === 0 || step === o.steps) {
        saveCheckpoint(ckptDir, child, opt, { step, tokens: step * o.batch * (o.train.seqLen - 1), fingerprint: fp, history, before });
        emit({ kind: 'checkpoint', step, dir: ckptDir });
      }
    }
    const modelDir = join(o.outDir, 'model');
    saveModel(child, modelDir, { tokenizerFrom: o.tokenizerDir, forceDeci: true });
    const final = val.length ? history[history.length - 1]?.val : undefined;
    emit({ kind: 'done', dir: modelDir, metrics: final });
    return { modelDir, steps: step, history, before, final };
  } finally {
    opt.dispose();
    child.dispose();
    val.forEach((t) => t.dispose());
  }
}
