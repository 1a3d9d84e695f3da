/**
 * The default parent's numbers for the README: held-out (test split) loss, perplexity and
 * top-1, and the downstream tasks, beside a unigram baseline and the same architecture
 * untrained.   npx tsx benchmarks/parent-report.ts [--model models/default-parent] [--sequences 128]
 */
import { loadSplits, packSplit } from '../ts/data/prepare.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { builtinTasks } from '../ts/data/tasks.js';
import { sequenceAt } from '../ts/data/pack.js';
import { ids as idsTensor } from '../ts/core/tensor.js';
import { loadModel } from '../ts/model/hf.js';
import { LlamaModel } from '../ts/model/llama.js';
import { evaluateLm } from '../ts/eval/lm.js';
import { evaluateChoices } from '../ts/eval/choice.js';
import { Unigram } from '../ts/eval/unigram.js';

const argv = process.argv.slice(2);
const opt = (n: string, d: string) => (argv.includes(`--${n}`) ? argv[argv.indexOf(`--${n}`) + 1] : d);
const dir = opt('model', 'models/default-parent');
const nseq = Number(opt('sequences', '128'));
const data = opt('data', 'builtin:gutenberg');

const tok = Tokenizer.load(dir);
const parent = loadModel(dir);
const T = 256;
const splits = await loadSplits(data);
const test = await packSplit(splits, 'test', tok, T);
const train = await packSplit(splits, 'train', tok, T);
const n = Math.min(nseq, test.count);
const batches = [];
for (let i = 0; i < n; i += 8) {
  const rows = Math.min(8, n - i);
  const flat = new Int32Array(rows * (T + 1));
  for (let j = 0; j < rows; j++) flat.set(sequenceAt(test, i + j), j * (T + 1));
  batches.push(idsTensor(flat, [rows, T + 1]));
}
const untrained = LlamaModel.random(parent.config, 1);
const uni = new Unigram(train, parent.config.vocab);
const tasks = await builtinTasks();
const rows: Array<[string, number, number, number, ...number[]]> = [];
for (const [name, m] of [['parent', parent], ['untrained', untrained]] as const) {
  const lm = await evaluateLm(m, batches);
  const acc = [];
  for (const t of tasks) acc.push((await evaluateChoices(m, tok, t.items)).accuracy);
  rows.push([name, lm.loss, lm.perplexity, lm.top1, ...acc]);
}
const u = uni.evaluate(test, n);
const uacc = [];
for (const t of tasks) {
  let correct = 0;
  for (const it of t.items) {
    const lp = [];
    for (const c of it.candidates) lp.push(uni.logProb(await tok.encode(c, { bos: true })));
    if (lp.indexOf(Math.max(...lp)) === it.answer) correct++;
  }
  uacc.push(correct / t.items.length);
}
rows.push(['unigram', u.loss, u.perplexity, u.top1, ...uacc]);
console.log(`default parent ${dir}: ${(parent.numParams() / 1e6).toFixed(2)}M parameters; test split of ${data}, ${n} x ${T} tokens; tasks from the Brown corpus (${tasks.map((t) => `${t.name} ${t.items.length} items, chance ${(100 * t.chance).toFixed(0)}%`).join('; ')})`);
console.log(`| model | loss | perplexity | top-1 | ${tasks.map((t) => t.name).join(' | ')} |`);
console.log(`|---|---|---|---|${tasks.map(() => '---').join('|')}|`);
for (const [name, loss, ppl, top1, ...acc] of rows)
  console.log(`| ${name} | ${loss.toFixed(3)} | ${ppl.toFixed(1)} | ${(100 * top1).toFixed(1)}% | ${acc.map((a) => (100 * a).toFixed(1) + '%').join(' | ')} |`);
