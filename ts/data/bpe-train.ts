/**
 * Trains a byte-level BPE of an exact vocabulary size with the `tokenizers` package.
 *
 * Its Node binding exposes training only as `Tokenizer.train(files)` with the model's default
 * trainer (vocabulary 30,000, no way to pass options), so we train that once and keep the
 * shortest prefix of its merge list that yields the requested number of symbols, plus all 256
 * bytes and BOS/EOS (see bpe-json.ts for why a prefix is exact). The training runs in a child
 * process because the native trainer prints to the process's stdout (which would corrupt e.g.
 * `--json` output) and blocks the thread it runs on for seconds.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import { bpeTokenizerJson, type Merge } from './bpe-json.js';
import { Tokenizer } from './tokenizer.js';

export interface BpeTrainOptions {
  /** Total vocabulary: 256 bytes + merges + BOS + EOS. */
  vocabSize: number;
  /** Default `<|begin_of_text|>` (Llama 3's name, so loaders recognise it). */
  bos?: string;
  /** Default `<|end_of_text|>`. */
  eos?: string;
}

export const DEFAULT_BOS = '<|begin_of_text|>';
export const DEFAULT_EOS = '<|end_of_text|>';

/** Runs in the child: train the default byte-level BPE on one file and save the result. */
const CHILD = `
const [tkPath, corpus, out] = process.argv.slice(1);
const tk = require(tkPath);
const t = new tk.Tokenizer(tk.BPE.empty());
t.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
t.train([corpus]);
t.save(out, false);
`;

function fail(msg: string): never {
  throw new PuzzleError('ERR_PUZZLE_TOKENIZER', msg);
}

function runChild(corpus: string, out: string): Promise<void> {
  const tkPath = createRequire(import.meta.url).resolve('tokenizers');
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // plain CommonJS: no loaders (tsx, vitest) needed or wanted
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CHILD, tkPath, corpus, out], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => reject(new PuzzleError('ERR_PUZZLE_TOKENIZER', `cannot start BPE training: ${err.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new PuzzleError('ERR_PUZZLE_TOKENIZER', `BPE training failed (exit ${code}): ${stderr.trim().slice(-2000)}`)),
    );
  });
}

/** The merge list of a tokenizer.json written by tokenizers (pairs, or "a b" strings in older files). */
function readMerges(file: string): Merge[] {
  const model = (JSON.parse(readFileSync(file, 'utf8')) as { model?: { merges?: unknown } }).model;
  if (!model || !Array.isArray(model.merges)) fail(`BPE training wrote ${file} without a merge list`);
  return model.merges.map((m: unknown): Merge => {
    if (Array.isArray(m) && m.length === 2) return [String(m[0]), String(m[1])];
    if (typeof m === 'string' && m.indexOf(' ') > 0) return [m.slice(0, m.indexOf(' ')), m.slice(m.indexOf(' ') + 1)];
    return fail(`BPE training wrote an unexpected merge ${JSON.stringify(m)}`);
  });
}

/** The shortest prefix of `merges` that makes `symbols` new symbols, or null if they make fewer. */
export function mergePrefix(merges: readonly Merge[], symbols: number): Merge[] | null {
  const made = new Set<string>();
  let n = 0;
  while (made.size < symbols) {
    if (n === merges.length) return null;
    const [a, b] = merges[n++]!;
    // Single bytes are never made by a merge (they all exist already), so size counts new ids.
    made.add(a + b);
  }
  return merges.slice(0, n);
}

/**
 * Trains on `texts` (use the train split only, so validation/test stay unseen) and returns the
 * tokenizer; deterministic for the same texts. Save it with `tokenizer.save(path)`.
 */
export async function trainBpe(texts: Iterable<string>, opts: BpeTrainOptions): Promise<Tokenizer> {
  const bos = opts.bos ?? DEFAULT_BOS;
  const eos = opts.eos ?? DEFAULT_EOS;
  if (bos === eos) fail(`BOS and EOS must differ (both '${bos}')`);
  const wanted = opts.vocabSize - 256 - 2;
  if (!Number.isInteger(opts.vocabSize) || wanted < 0) fail(`vocabSize ${opts.vocabSize}: expected an integer >= 258 (256 bytes + BOS + EOS)`);

  const dir = mkdtempSync(join(tmpdir(), 'puzzle-bpe-'));
  try {
    const corpus = join(dir, 'corpus.txt');
    const fd = openSync(corpus, 'w');
    let chars = 0;
    try {
      for (const t of texts) {
        if (t.trim().length === 0) continue;
        chars += t.length;
        writeSync(fd, t.endsWith('\n') ? t : t + '\n');
      }
    } finally {
      closeSync(fd);
    }
    if (chars === 0) throw new PuzzleError('ERR_PUZZLE_DATA', 'BPE training: empty corpus (expected at least one non-empty text)');
    const out = join(dir, 'trained.json');
    await runChild(corpus, out);
    const all = readMerges(out);
    const merges = mergePrefix(all, wanted);
    if (!merges) {
      const most = new Set(all.map(([a, b]) => a + b)).size + 258;
      fail(`vocabSize ${opts.vocabSize}: the corpus (${chars} characters) yields at most ${most}; use a smaller vocabulary or more text`);
    }
    return Tokenizer.fromJson(bpeTokenizerJson(merges, bos, eos), null, { bos, eos });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
