/**
 * Pretraining a Llama-style model from scratch: AdamW, warm-up + cosine, gradient accumulation,
 * periodic validation, checkpoints, and exact resume (kill it at any moment, run it again with
 * the same arguments: it continues from the last checkpoint, and the result is the same as an
 * uninterrupted run).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import * as ops from '../core/ops.js';
import { AdamW, warmupCosine } from '../core/optim.js';
import { ids as idsTensor, type Tensor } from '../core/tensor.js';
import { saveModel } from '../model/hf.js';
import type { ModelConfig } from '../model/config.js';
import { LlamaModel } from '../model/llama.js';
import { evaluateLm, type LmMetrics } from '../eval/lm.js';
import { BatchSchedule, type PackedSequences } from './batches.js';
import { hasCheckpoint, loadCheckpointModel, readCheckpointState, restoreOptimizer, saveCheckpoint } from './checkpoint.js';

export interface PretrainOptions {
  model: ModelConfig;
  train: PackedSequences;
  validation?: PackedSequences;
  outDir: string;
  steps: number;
  batch: number;
  accumulate?: number;
  lr?: number;
  minLrFraction?: number;
  warmup?: number;
  weightDecay?: number;
  clip?: number;
  beta1?: number;
  beta2?: number;
  seed?: number;
  evalEvery?: number;
  evalBatches?: number;
  checkpointEvery?: number;
  /** copied next to the final model */
  tokenizerDir?: string;
  onEvent?: (e: PretrainEvent) => void;
}

export type PretrainEvent =
  | { kind: 'start'; step: number; steps: number; resumed: boolean; params: number }
  | { kind: 'step'; step: number; steps: number; loss: number; lr: number; gradNorm: number; tokens: number; tokensPerSec: number }
  | { kind: 'eval'; step: number; metrics: LmMetrics }
  | { kind: 'checkpoint'; step: number; dir: string }
  | { kind: 'done'; dir: string; metrics?: LmMetrics };

export interface PretrainResult {
  modelDir: string;
  steps: number;
  tokens: number;
  history: Array<{ step: number; loss: number; lr: number; val?: LmMetrics }>;
  final?: LmMetrics;
}

function fingerprint(o: PretrainOptions): string {
  const keys = { model: o.model, steps: o.steps, batch: o.batch, accumulate: o.accumulate, lr: o.lr, minLrFraction: o.minLrFraction, warmup: o.warmup,
    weightDecay: o.weightDecay, clip: o.clip, beta1: o.beta1, beta2: o.beta2, seed: o.seed, seqLen: o.train.seqLen, count: o.train.count };
  return createHash('sha256').update(JSON.stringify(keys)).digest('hex').slice(0, 16);
}

/** The first n validation sequences as [1, seqLen] batches. */
function validationBatches(v: PackedSequences | undefined, n: number, batch: number): Tensor[] {
  if (!v) return [];
  const out: Tensor[] = [];
  const total = Math.min(v.count, n * batch);
  for (let i = 0; i < total; i += batch) {
    const rows = Array.from({ length: Math.min(batch, total - i) }, (_, j) => v.get(i + j));
    const flat = new Int32Array(rows.length * v.seqLen);
    rows.forEach((r, j) => flat.set(r, j * v.seqLen));
    out.push(idsTensor(flat, [rows.length, v.seqLen]));
  }
  return out;
}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const accumulate = o.accumulate ?? 1;
  const lr = o.lr ?? 1e-3;
  const seed = o.seed ?? 0;
  const ckptDir = join(o.outDir, 'checkpoint');
  const fp = fingerprint(o);
  const emit = o.onEvent ?? (() => {});
  if (o.steps < 1 || !Number.isInteger(o.steps)) throw new PuzzleError('ERR_PUZZLE_ARG', `pretrain: steps must be a positive integer, got ${o.steps}`);
  if (o.train.seqLen < 2) throw new PuzzleError('ERR_PUZZLE_ARG', 'pretrain: sequences need at least 2 tokens');

  let model: LlamaModel;
  let step = 0;
  let tokens = 0;
  let history: PretrainResult['history'] = [];
  const resumed = hasCheckpoint(ckptDir);
  if (resumed) {
    const st = readCheckpointState(ckptDir);
    if (st.fingerprint !== fp)
      throw new PuzzleError('ERR_PUZZLE_CHECKPOINT', `${ckptDir} was written by a run with other settings (fingerprint ${st.fingerprint}, this run ${fp}); use another --out or delete the checkpoint`);
    model = loadCheckpointModel(ckptDir);
    step = st.step;
    tokens = st.tokens;
    history = st.history as PretrainResult['history'];
  } else {
    model = LlamaModel.random(o.model, seed);
  }
  const opt = new AdamW(model.paramGroups(), { lr, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.95, weightDecay: o.weightDecay ?? 0.1, clip: o.clip ?? 1.0 });
  if (resumed) restoreOptimizer(ckptDir, opt);
  const schedule = new BatchSchedule(o.train, o.batch, seed);
  const val = validationBatches(o.validation, o.evalBatches ?? 8, o.batch);
  emit({ kind: 'start', step, steps: o.steps, resumed, params: model.numParams() });

  const evalEvery = o.evalEvery ?? Math.max(1, Math.floor(o.steps / 10));
  const ckptEvery = o.checkpointEvery ?? Math.max(1, Math.floor(o.steps / 20));
  try {
    while (step < o.steps) {
      const t0 = performance.now();
      model.zeroGrad();
      let lossSum = 0;
      let stepTokens = 0;
      for (let a = 0; a < accumulate; a++) {
        const { input, targets, tokens: n } = schedule.batchAt(step * accumulate + a);
        const { logits } = await model.forward(input, { train: true });
        const ce = await ops.crossEntropyForward(logits, targets);
        const dlogits = await ops.crossEntropyBackward(logits, ce.lse, targets, 1 / (ce.count * accumulate));
        logits.dispose();
        await model.backward(dlogits);
        dlogits.dispose();
        ce.losses.dispose();
        ce.lse.dispose();
        model.release();
        input.dispose();
        targets.dispose();
        lossSum += ce.loss;
        stepTokens += n;
      }
      const stepLr = warmupCosine(step, o.steps, lr, o.warmup ?? 0.05, o.minLrFraction ?? 0.1);
      const { gradNorm } = await opt.step(stepLr);
      step++;
      tokens += stepTokens;
      const loss = lossSum / accumulate;
      const entry: PretrainResult['history'][number] = { step, loss, lr: stepLr };
      emit({ kind: 'step', step, steps: o.steps, loss, lr: stepLr, gradNorm, tokens, tokensPerSec: stepTokens / ((performance.now() - t0) / 1000) });
      if (val.length && (step % evalEvery === 0 || step === o.steps)) {
        entry.val = await evaluateLm(model, val);
        emit({ kind: 'eval', step, metrics: entry.val });
      }
      history.push(entry);
      if (step % ckptEvery === 0 || step === o.steps) {
        saveCheckpoint(ckptDir, model, opt, { step, tokens, fingerprint: fp, history });
        emit({ kind: 'checkpoint', step, dir: ckptDir });
      }
    }
    const modelDir = join(o.outDir, 'model');
    saveModel(model, modelDir, { tokenizerFrom: o.tokenizerDir });
    const final = val.length ? history[history.length - 1]?.val : undefined;
    emit({ kind: 'done', dir: modelDir, metrics: final });
    return { modelDir, steps: step, tokens, history, final };
  } finally {
    opt.dispose();
    model.dispose();
    val.forEach((t) => t.dispose());
  }
}
