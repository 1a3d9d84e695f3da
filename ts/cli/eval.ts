/** `puzzle eval` and `puzzle generate`. */
import type { Command } from 'commander';
import { Tokenizer } from '../data/tokenizer.js';
import { loadModel } from '../model/hf.js';
import { generate } from '../model/generate.js';
import { runEval, type EvalReport } from '../eval/run.js';
import { DEVICE_HELP, DTYPE_HELP, modelDType, resolveDType, device, type DTypeSetting, int, num } from './args.js';

function printReport(r: EvalReport): void {
  console.log(`model        ${r.model}`);
  console.log(`data         ${r.data} (${r.split}), ${r.tokens} tokens scored`);
  console.log(`loss         ${r.loss.toFixed(4)}   perplexity ${r.perplexity.toFixed(2)}   top-1 ${(100 * r.top1).toFixed(2)}%`);
  if (r.kl !== undefined) console.log(`vs teacher   KL ${r.kl.toFixed(4)}   top-1 agreement ${(100 * r.agreement!).toFixed(2)}%`);
  for (const [name, t] of Object.entries(r.tasks ?? {}))
    console.log(`task         ${name.padEnd(12)} ${(100 * t.accuracy).toFixed(1)}% of ${t.items} (chance ${(100 * t.chance).toFixed(0)}%)`);
}

export function registerEvalCommands(program: Command): void {
  program
    .command('eval')
    .description('language-model quality on held-out text: loss, perplexity, top-1, KL and agreement against a teacher, downstream tasks')
    .requiredOption('--model <dir>', 'HF model folder (Llama or DeciLM) with tokenizer.json')
    .option('--data <src>', 'text or pre-tokenised JSONL (input_ids): builtin, builtin:gutenberg, a path, a list', 'builtin:gutenberg')
    .option('--teacher <dir>', 'a reference model: adds KL(teacher || model) and top-1 agreement')
    .option('--split <name>', 'which split of text data: train, validation, test', 'test')
    .option('--seq <n>', 'sequence length for text data', int('--seq'), 256)
    .option('--batch <n>', 'sequences per batch', int('--batch'), 8)
    .option('--max-sequences <n>', 'at most this many sequences of text data', int('--max-sequences'), 64)
    .option('--tasks', 'also run the built-in downstream tasks (agreement minimal pairs, last-word cloze)')
    .option('--task-items <n>', 'at most this many items per task', int('--task-items'))
    .option('--device <d>', DEVICE_HELP, device('--device'), 'cpu')
    .option('--dtype <t>', DTYPE_HELP, modelDType('--dtype'), 'auto')
    .option('--json', 'print one JSON object')
    .action(async (o: { model: string; data: string; teacher?: string; split: 'train' | 'validation' | 'test'; seq: number; batch: number; maxSequences: number; tasks?: boolean; taskItems?: number; device: 'cpu' | 'cuda'; dtype: DTypeSetting; json?: boolean }) => {
      const r = await runEval({ ...o, dtype: resolveDType(o.dtype, o.device) });
      if (o.json) console.log(JSON.stringify(r));
      else printReport(r);
    });

  program
    .command('generate')
    .description('continue a prompt with a model (KV-cache inference; greedy or sampled)')
    .requiredOption('--model <dir>', 'HF model folder with tokenizer.json')
    .requiredOption('--prompt <text>', 'the text to continue')
    .option('--max-tokens <n>', 'new tokens', int('--max-tokens'), 64)
    .option('--temperature <x>', '0 = greedy', num('--temperature'), 0)
    .option('--top-k <n>', 'sample among the k most likely tokens (0 = all)', int('--top-k'), 0)
    .option('--seed <n>', 'sampling seed', int('--seed'), 0)
    .option('--device <d>', DEVICE_HELP, device('--device'), 'cpu')
    .option('--dtype <t>', DTYPE_HELP, modelDType('--dtype'), 'auto')
    .option('--json', 'print one JSON object')
    .action(async (o: { model: string; prompt: string; maxTokens: number; temperature: number; topK: number; seed: number; device: 'cpu' | 'cuda'; dtype: DTypeSetting; json?: boolean }) => {
      const model = loadModel(o.model, o.device, resolveDType(o.dtype, o.device)).forInference();
      try {
        const tok = Tokenizer.load(o.model);
        const prompt = Array.from(await tok.encode(o.prompt, { bos: tok.bosId !== null }));
        const r = await generate(model, prompt, { maxNewTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, seed: o.seed, stopTokens: tok.eosId === null ? [] : [tok.eosId] });
        const text = await tok.decode(Int32Array.from(r.tokens), { skipSpecial: true });
        const decodeTps = r.tokens.length > 1 ? (r.tokens.length - 1) / (r.decodeMs / 1000) : 0;
        if (o.json) console.log(JSON.stringify({ prompt: o.prompt, text, tokens: r.tokens, prefill_ms: r.prefillMs, decode_tokens_per_s: decodeTps }));
        else {
          console.log(o.prompt + text);
          console.error(`(${prompt.length} prompt tokens in ${r.prefillMs.toFixed(0)} ms, ${r.tokens.length} new at ${decodeTps.toFixed(1)} tokens/s)`);
        }
      } finally {
        model.dispose();
      }
    });
}
