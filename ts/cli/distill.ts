/** `puzzle assemble` (search solution -> child model) and `puzzle gkd` (global distillation). */
import type { Command } from 'commander';
import { PuzzleError } from '../core/errors.js';
import { loadSplits, packSplit } from '../data/prepare.js';
import { Tokenizer } from '../data/tokenizer.js';
import { assembleChild, readArchitecture } from '../distill/assemble.js';
import { gkd, type GkdResult } from '../distill/gkd.js';
import { readHeader } from '../library/store.js';
import { loadModel, saveModel } from '../model/hf.js';
import { fromPacked } from '../train/batches.js';
import { DEVICE_HELP, DTYPE_HELP, modelDType, resolveDType, device, type DTypeSetting, int, num } from './args.js';
import { createProgress } from './progress.js';

export interface AssembleOptions {
  library: string;
  solution?: string;
  layers?: string;
  index: number;
  out: string;
  parent?: string;
}

/** Writes the child of a solution as a DeciLM HF folder; returns its parameter count. */
export function runAssemble(o: AssembleOptions): { dir: string; params: number; layers: string[] } {
  if (!o.solution === !o.layers) throw new PuzzleError('ERR_PUZZLE_ARG', 'give exactly one of --solution FILE (puzzle search --json output) and --layers "A+F,A+F,..."');
  const arch = o.solution ? readArchitecture(o.solution, o.index) : o.layers!.split(',').map((s) => s.trim());
  const parentDir = o.parent ?? readHeader(o.library).parentDir;
  const child = assembleChild(o.library, arch, parentDir);
  try {
    saveModel(child, o.out, { tokenizerFrom: parentDir, forceDeci: true });
    return { dir: o.out, params: child.numParams(), layers: arch };
  } finally {
    child.dispose();
  }
}

export interface GkdCliOptions {
  parent: string;
  child: string;
  data: string;
  out: string;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  cosine: number;
  kl: number;
  lm: number;
  warmup: number;
  seed: number;
  evalEvery?: number;
  evalBatches: number;
  checkpointEvery?: number;
  device?: 'cpu' | 'cuda';
  dtype?: DTypeSetting;
  json?: boolean;
}

export async function runGkd(o: GkdCliOptions): Promise<GkdResult> {
  const progress = createProgress({ json: o.json });
  const tok = Tokenizer.load(o.parent);
  const data = await loadSplits(o.data);
  const train = fromPacked(await packSplit(data, 'train', tok, o.seq));
  const validation = fromPacked(await packSplit(data, 'validation', tok, o.seq));
  const parent = loadModel(o.parent, o.device, resolveDType(o.dtype, o.device));  // the child trains where and as the parent runs
  try {
    return await gkd({
      parent, childDir: o.child, train, validation, outDir: o.out, steps: o.steps, batch: o.batch, lr: o.lr, warmup: o.warmup, seed: o.seed,
      losses: { cosine: o.cosine, kl: o.kl, lm: o.lm }, evalEvery: o.evalEvery, evalBatches: o.evalBatches, checkpointEvery: o.checkpointEvery, tokenizerDir: o.parent,
      onEvent: (e) => {
        progress.event(e as unknown as Record<string, unknown>);
        if (e.kind === 'start') {
          progress.log(`puzzle gkd: child ${(e.params / 1e6).toFixed(2)}M parameters, ${e.resumed ? `resuming at step ${e.step}` : 'from the assembled child'}`);
          progress.start('gkd', e.steps);
          progress.update(e.step);
        } else if (e.kind === 'step') {
          progress.update(e.step, { loss: e.loss.toFixed(4), kl: e.kl.toFixed(4), lr: e.lr.toExponential(1), 'tok/s': Math.round(e.tokensPerSec) });
        } else if (e.kind === 'eval') {
          progress.log(`puzzle gkd: step ${e.step}: validation KL ${e.metrics.kl?.toFixed(4)}, agreement ${((e.metrics.agreement ?? 0) * 100).toFixed(1)}%, top-1 ${(e.metrics.top1 * 100).toFixed(1)}%, ppl ${e.metrics.perplexity.toFixed(2)}`);
        } else if (e.kind === 'done') {
          progress.stop();
          progress.log(`puzzle gkd: done, ${e.dir}`);
        }
      },
    });
  } finally {
    parent.dispose();
  }
}

export function registerDistillCommands(program: Command): void {
  program
    .command('assemble')
    .description('make a search solution into a child model (DeciLM HF folder) from the library')
    .requiredOption('--library <dir>', 'the block library the search ran on')
    .option('--solution <file>', 'puzzle search --json output')
    .option('--index <n>', 'which solution of a list', int('--index'), 0)
    .option('--layers <list>', 'or the architecture itself: comma-separated variants, e.g. attn-kv2+ffn-w384,...')
    .option('--parent <dir>', 'the parent (default: the one the library was built from)')
    .requiredOption('--out <dir>', 'child model folder')
    .action((o: AssembleOptions) => {
      const r = runAssemble(o);
      console.log(`puzzle assemble: ${r.dir}: ${(r.params / 1e6).toFixed(3)}M parameters, layers ${r.layers.join(', ')}`);
    });
  program
    .command('gkd')
    .description('global knowledge distillation of a child against its parent (resumable)')
    .requiredOption('--parent <dir>', 'the parent HF model folder (with tokenizer.json)')
    .requiredOption('--child <dir>', 'the assembled child (puzzle assemble)')
    .requiredOption('--out <dir>', 'output folder (checkpoint/ and model/)')
    .option('--data <src>', 'training text', 'builtin:gutenberg')
    .option('--steps <n>', 'optimiser steps', int('--steps'), 300)
    .option('--batch <n>', 'sequences per step', int('--batch'), 8)
    .option('--seq <n>', 'sequence length', int('--seq'), 256)
    .option('--lr <x>', 'peak learning rate', num('--lr'), 5e-4)
    .option('--cosine <w>', 'weight of the per-layer cosine loss (0 = off)', num('--cosine'), 1)
    .option('--kl <w>', 'weight of KL(parent || child) (0 = off)', num('--kl'), 1)
    .option('--lm <w>', 'weight of the LM cross-entropy (0 = off)', num('--lm'), 0)
    .option('--warmup <f>', 'warm-up fraction of the steps', num('--warmup'), 0.05)
    .option('--seed <n>', 'data order seed', int('--seed'), 0)
    .option('--eval-every <n>', 'validation every n steps', int('--eval-every'))
    .option('--eval-batches <n>', 'validation batches', int('--eval-batches'), 8)
    .option('--checkpoint-every <n>', 'checkpoint every n steps', int('--checkpoint-every'))
    .option('--device <d>', DEVICE_HELP, device('--device'), 'cpu')
    .option('--dtype <t>', DTYPE_HELP, modelDType('--dtype'), 'auto')
    .option('--json', 'one JSON event per line')
    .action(async (o: GkdCliOptions) => {
      await runGkd(o);
    });
}
