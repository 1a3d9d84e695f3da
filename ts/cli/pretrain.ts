/** `puzzle pretrain`: a Llama-style model from scratch on --data, resumable. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PuzzleError } from '../core/errors.js';
import { loadSplits, packSplit } from '../data/prepare.js';
import { textsOf } from '../data/document.js';
import { Tokenizer } from '../data/tokenizer.js';
import { trainBpe } from '../data/bpe-train.js';
import type { ModelConfig } from '../model/config.js';
import { fromPacked } from '../train/batches.js';
import { pretrain, type PretrainResult } from '../train/pretrain.js';
import { createProgress } from './progress.js';
import { int, num } from './args.js';

export interface PretrainCliOptions {
  data: string;
  out: string;
  tokenizer?: string;
  vocab: number;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  seq: number;
  tie: boolean;
  ropeTheta: number;
  steps: number;
  batch: number;
  accumulate: number;
  lr: number;
  warmup: number;
  minLr: number;
  weightDecay: number;
  seed: number;
  evalEvery?: number;
  evalBatches: number;
  checkpointEvery?: number;
  json?: boolean;
}

/** The whole `pretrain` command as a library call (the CLI is a thin layer over it). */
export async function runPretrain(o: PretrainCliOptions): Promise<PretrainResult> {
  const progress = createProgress({ json: o.json });
  const data = await loadSplits(o.data);
  const tokDir = join(o.out, 'tokenizer');
  let tok: Tokenizer;
  if (o.tokenizer) tok = Tokenizer.load(o.tokenizer);
  else if (existsSync(join(tokDir, 'tokenizer.json'))) tok = Tokenizer.load(tokDir); // resuming: the same vocabulary
  else {
    progress.log(`puzzle pretrain: training a byte-level BPE tokenizer (vocab ${o.vocab}) on the train split`);
    tok = await trainBpe(textsOf(data.docs.train), { vocabSize: o.vocab });
    tok.save(tokDir);
  }
  if (!o.tokenizer && tok.vocabSize !== o.vocab)
    throw new PuzzleError('ERR_PUZZLE_ARG', `${tokDir} holds a ${tok.vocabSize}-token vocabulary but --vocab is ${o.vocab}; use another --out`);
  const train = fromPacked(await packSplit(data, 'train', tok, o.seq));
  const validation = fromPacked(await packSplit(data, 'validation', tok, o.seq));
  if (o.hidden % o.heads) throw new PuzzleError('ERR_PUZZLE_ARG', `--hidden ${o.hidden} must be a multiple of --heads ${o.heads}`);
  if (o.heads % o.kvHeads) throw new PuzzleError('ERR_PUZZLE_ARG', `--kv-heads ${o.kvHeads} must divide --heads ${o.heads}`);
  const model: ModelConfig = {
    hidden: o.hidden, heads: o.heads, headDim: o.hidden / o.heads, vocab: tok.vocabSize, eps: 1e-5, ropeTheta: o.ropeTheta, ropeScaling: null,
    maxPositions: Math.max(2048, o.seq), tieEmbeddings: o.tie, bosTokenId: tok.bosId, eosTokenId: tok.eosId, dtype: 'float32',
    layers: Array.from({ length: o.layers }, () => ({ attention: { kind: 'gqa' as const, kvHeads: o.kvHeads }, ffn: { kind: 'swiglu' as const, width: o.ffn } })),
  };
  progress.log(`puzzle pretrain: ${train.count} train / ${validation.count} validation sequences of ${o.seq} tokens`);
  const result = await pretrain({
    model, train, validation, outDir: o.out, steps: o.steps, batch: o.batch, accumulate: o.accumulate, lr: o.lr,
    warmup: o.warmup, minLrFraction: o.minLr, weightDecay: o.weightDecay, seed: o.seed, evalEvery: o.evalEvery,
    evalBatches: o.evalBatches, checkpointEvery: o.checkpointEvery, tokenizerDir: tokDir,
    onEvent: (e) => {
      progress.event(e as unknown as Record<string, unknown>);
      if (e.kind === 'start') {
        progress.log(`puzzle pretrain: ${(e.params / 1e6).toFixed(2)}M parameters, ${e.resumed ? `resuming at step ${e.step}` : 'from scratch'}`);
        progress.start('pretrain', e.steps);
        progress.update(e.step);
      } else if (e.kind === 'step') {
        progress.update(e.step, { loss: e.loss.toFixed(3), lr: e.lr.toExponential(1), 'tok/s': Math.round(e.tokensPerSec) });
      } else if (e.kind === 'eval') {
        progress.log(`puzzle pretrain: step ${e.step} validation loss ${e.metrics.loss.toFixed(4)} perplexity ${e.metrics.perplexity.toFixed(1)} top-1 ${(100 * e.metrics.top1).toFixed(1)}%`);
      } else if (e.kind === 'done') {
        progress.stop();
        progress.log(`puzzle pretrain: model written to ${e.dir}`);
      }
    },
  });
  return result;
}

export function registerPretrainCommand(program: Command): void {
  program
    .command('pretrain')
    .description('train a Llama-style model from scratch (resumable: run the same command again after an interruption)')
    .requiredOption('--out <dir>', 'output folder (checkpoint/, tokenizer/, model/)')
    .option('--data <src>', 'training text: builtin, builtin:gutenberg, builtin:brown, a path, or a comma-separated list', 'builtin:gutenberg')
    .option('--tokenizer <path>', 'an existing tokenizer.json (or folder); default: train a BPE on the data')
    .option('--vocab <n>', 'vocabulary size of the trained BPE', int('--vocab'), 4096)
    .option('--layers <n>', 'decoder layers', int('--layers'), 8)
    .option('--hidden <n>', 'hidden size', int('--hidden'), 256)
    .option('--heads <n>', 'query heads', int('--heads'), 8)
    .option('--kv-heads <n>', 'key/value heads', int('--kv-heads'), 4)
    .option('--ffn <n>', 'SwiGLU width', int('--ffn'), 768)
    .option('--seq <n>', 'sequence length', int('--seq'), 256)
    .option('--no-tie', 'untie the LM head from the embedding')
    .option('--rope-theta <x>', 'RoPE base', num('--rope-theta'), 10000)
    .option('--steps <n>', 'optimiser steps', int('--steps'), 2000)
    .option('--batch <n>', 'sequences per micro-batch', int('--batch'), 16)
    .option('--accumulate <n>', 'micro-batches per step', int('--accumulate'), 1)
    .option('--lr <x>', 'peak learning rate', num('--lr'), 2e-3)
    .option('--warmup <x>', 'warm-up fraction', num('--warmup'), 0.05)
    .option('--min-lr <x>', 'final learning rate as a fraction of the peak', num('--min-lr'), 0.1)
    .option('--weight-decay <x>', 'AdamW weight decay', num('--weight-decay'), 0.1)
    .option('--seed <n>', 'seed', int('--seed'), 0)
    .option('--eval-every <n>', 'validate every n steps', int('--eval-every'))
    .option('--eval-batches <n>', 'validation batches', int('--eval-batches'), 8)
    .option('--checkpoint-every <n>', 'checkpoint every n steps', int('--checkpoint-every'))
    .option('--json', 'one JSON event per line')
    .action(async (o: PretrainCliOptions) => {
      const r = await runPretrain(o);
      if (o.json) console.log(JSON.stringify({ event: 'result', ...r, history: undefined }));
    });
}
