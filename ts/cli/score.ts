/** `puzzle score`: replace-1-block quality of every library entry. */
import type { Command } from 'commander';
import { Tokenizer } from '../data/tokenizer.js';
import { loadModel } from '../model/hf.js';
import { evalBatches } from '../eval/run.js';
import { scoreLibrary } from '../score/replace1.js';
import { builtinTasks } from '../data/tasks.js';
import { DEVICE_HELP, DTYPE_HELP, modelDType, resolveDType, device, type DTypeSetting, int } from './args.js';
import { createProgress } from './progress.js';

export function registerScoreCommand(program: Command): void {
  program
    .command('score')
    .description('replace-1-block scores of every library entry: KL(parent || child), LM loss, top-1 agreement (resumable)')
    .requiredOption('--parent <dir>', 'the parent HF model folder')
    .requiredOption('--library <dir>', 'a complete block library')
    .option('--data <src>', 'held-out text', 'builtin:gutenberg')
    .option('--split <name>', 'which split (no training stage reads validation or test)', 'validation')
    .option('--sequences <n>', 'sequences to score on', int('--sequences'), 32)
    .option('--seq <n>', 'sequence length', int('--seq'), 256)
    .option('--task-items <n>', 'also score downstream-task accuracy on this many items per built-in task (0 = off)', int('--task-items'), 0)
    .option('--device <d>', DEVICE_HELP, device('--device'), 'cpu')
    .option('--dtype <t>', DTYPE_HELP, modelDType('--dtype'), 'auto')
    .option('--json', 'one JSON event per line')
    .action(async (o: { parent: string; library: string; data: string; split: 'validation' | 'test' | 'train'; sequences: number; seq: number; taskItems: number; device: 'cpu' | 'cuda'; dtype: DTypeSetting; json?: boolean }) => {
      const progress = createProgress({ json: o.json });
      const parent = loadModel(o.parent, o.device, resolveDType(o.dtype, o.device));
      try {
        const tok = Tokenizer.load(o.parent);
        const { batches } = await evalBatches(o.data, () => tok, parent.config.vocab, o.split, o.seq, 8, o.sequences);
        const tasks = o.taskItems > 0
          ? { tokenizer: tok, tasks: (await builtinTasks()).map((t) => ({ name: t.name, items: t.items.slice(0, o.taskItems) })) }
          : undefined;
        let started = false;
        const scores = await scoreLibrary(parent, o.library, batches, (e) => {
          progress.event(e as unknown as Record<string, unknown>);
          if (!started) progress.start('score', e.total), (started = true);
          progress.update(e.done, { last: `${e.score.layer}/${e.score.id}` });
        }, tasks);
        progress.stop();
        batches.forEach((b) => b.dispose());
        if (o.json) console.log(JSON.stringify({ event: 'result', scores }));
        else {
          console.log(`${'layer'.padEnd(6)} ${'variant'.padEnd(18)} ${'KL'.padStart(9)} ${'LM loss'.padStart(9)} ${'top-1 agr'.padStart(10)}`);
          for (const s of scores)
            console.log(`${String(s.layer).padEnd(6)} ${s.id.padEnd(18)} ${s.kl_div.toFixed(5).padStart(9)} ${s.lm_loss.toFixed(4).padStart(9)} ${(100 * s.top1_agreement).toFixed(1).padStart(9)}%${s.tasks ? '  ' + Object.entries(s.tasks).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join('  ') : ''}`);
        }
      } finally {
        parent.dispose();
      }
    });
}
