/**
 * A Hugging Face tokenizer.json, run by the `tokenizers` package (Rust, native binary shipped in
 * its npm tarball). This wrapper adds what the rest of puzzle relies on: BOS/EOS ids resolved
 * once, Int32Array ids, checked ids on the way back, typed errors naming the file, atomic saves.
 * Encoding never lets the file's post-processor add tokens: callers say whether they want BOS/EOS.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from 'tokenizers';
import { PuzzleError } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';
import { resolveSpecialTokens, type SpecialTokenNames } from './specials.js';

export type { SpecialTokenNames } from './specials.js';

/** How many texts go to the native side per batch call (it parallelises inside a batch). */
const BATCH = 1024;

function fail(msg: string): never {
  throw new PuzzleError('ERR_PUZZLE_TOKENIZER', msg);
}

export class Tokenizer {
  /** One more than the largest id, added tokens included: ids must be below this. */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;

  private constructor(
    private readonly hf: HfTokenizer,
    /** The tokenizer.json text, kept verbatim so save() writes back exactly what was loaded. */
    readonly json: string,
    /** Where it came from, for messages. */
    readonly source: string,
    special: SpecialTokenNames,
  ) {
    let max = -1;
    for (const id of Object.values(hf.getVocab(true))) if (id > max) max = id;
    this.vocabSize = max + 1;
    const id = (tok: string | undefined, what: string): number | null => {
      if (tok === undefined) return null;
      const v = hf.tokenToId(tok);
      if (v === null || v === undefined) fail(`${source}: ${what} token '${tok}' is not in the vocabulary`);
      return v;
    };
    this.bosId = id(special.bos, 'BOS');
    this.eosId = id(special.eos, 'EOS');
    this.bosToken = special.bos ?? null;
    this.eosToken = special.eos ?? null;
  }

  /**
   * A tokenizer from tokenizer.json text. `path` (when it came from a file) is used in messages and
   * to find a tokenizer_config.json beside it; `special` overrides the BOS/EOS found in the files.
   */
  static fromJson(json: string, path: string | null = null, special: SpecialTokenNames = {}): Tokenizer {
    const source = path ?? '<tokenizer.json text>';
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch (err) {
      fail(`${source}: not valid JSON (${(err as Error).message}); expected a Hugging Face tokenizer.json`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || typeof (parsed as { model?: unknown }).model !== 'object') {
      fail(`${source}: expected a Hugging Face tokenizer.json (a JSON object with a "model" object)`);
    }
    let hf: HfTokenizer;
    try {
      hf = HfTokenizer.fromString(json);
    } catch (err) {
      fail(`${source}: not a tokenizer.json the tokenizers library can load: ${(err as Error).message}`);
    }
    return new Tokenizer(hf, json, source, resolveSpecialTokens(parsed as Record<string, unknown>, path, special));
  }

  /** Loads a tokenizer.json file, or the tokenizer.json inside a model folder. */
  static load(path: string, special: SpecialTokenNames = {}): Tokenizer {
    let file = path;
    try {
      if (statSync(path).isDirectory()) file = join(path, 'tokenizer.json');
    } catch {
      throw new PuzzleError('ERR_PUZZLE_FILE', `tokenizer not found: ${path} (expected a tokenizer.json file or a folder holding one)`);
    }
    if (!existsSync(file)) throw new PuzzleError('ERR_PUZZLE_FILE', `tokenizer not found: ${file} (expected a Hugging Face tokenizer.json)`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new PuzzleError('ERR_PUZZLE_FILE', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    return Tokenizer.fromJson(text, file, special);
  }

  /** Token ids of `text`, with BOS in front and/or EOS at the end when asked (and the tokenizer has them). */
  async encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): Promise<Int32Array> {
    const enc = await this.hf.encode(text, null, { addSpecialTokens: false });
    return this.wrap(enc.getIds(), opts);
  }

  /** encode() over many texts; much faster than one call each (the native side runs them in parallel). */
  async encodeBatch(texts: readonly string[], opts: { bos?: boolean; eos?: boolean } = {}): Promise<Int32Array[]> {
    const out: Int32Array[] = [];
    for (let i = 0; i < texts.length; i += BATCH) {
      const encs = await this.hf.encodeBatch(texts.slice(i, i + BATCH), { addSpecialTokens: false });
      for (const e of encs) out.push(this.wrap(e.getIds(), opts));
    }
    return out;
  }

  private wrap(ids: number[], opts: { bos?: boolean; eos?: boolean }): Int32Array {
    const bos = opts.bos ? this.requireBos() : null;
    const eos = opts.eos ? this.requireEos() : null;
    const out = new Int32Array(ids.length + (bos === null ? 0 : 1) + (eos === null ? 0 : 1));
    let k = 0;
    if (bos !== null) out[k++] = bos;
    out.set(ids, k);
    if (eos !== null) out[out.length - 1] = eos;
    return out;
  }

  requireBos(): number {
    if (this.bosId === null) fail(`${this.source}: this tokenizer has no BOS token (name one with the bos option or in tokenizer_config.json)`);
    return this.bosId;
  }

  requireEos(): number {
    if (this.eosId === null) fail(`${this.source}: this tokenizer has no EOS token (name one with the eos option or in tokenizer_config.json)`);
    return this.eosId;
  }

  /**
   * Throws unless every id is an integer in [0, vocabSize); `where` names the ids' origin (file and
   * line), `code` is the error's code (ERR_PUZZLE_DATA when the ids came from a data file).
   */
  checkIds(ids: ArrayLike<number>, where: string, code = 'ERR_PUZZLE_TOKENIZER'): void {
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= this.vocabSize) {
        throw new PuzzleError(code, `${where}: token id ${v} at position ${i} is outside the vocabulary of ${this.source} (expected 0 <= id < ${this.vocabSize})`);
      }
    }
  }

  async decode(ids: ArrayLike<number>, opts: { skipSpecial?: boolean } = {}): Promise<string> {
    this.checkIds(ids, 'decode');
    return this.hf.decode(Array.from(ids), opts.skipSpecial ?? false);
  }

  tokenToId(token: string): number | null {
    return this.hf.tokenToId(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.hf.idToToken(id) ?? null;
  }

  /**
   * Saves atomically. A path ending in .json gets the tokenizer.json alone; any other path is a
   * folder that gets tokenizer.json and a tokenizer_config.json naming BOS/EOS, which is what
   * transformers' AutoTokenizer reads.
   */
  save(path: string): void {
    if (path.toLowerCase().endsWith('.json')) {
      writeFileAtomic(path, this.json);
      return;
    }
    writeFileAtomic(join(path, 'tokenizer.json'), this.json);
    const cfg: Record<string, unknown> = { tokenizer_class: 'PreTrainedTokenizerFast', clean_up_tokenization_spaces: false };
    if (this.bosToken !== null) cfg.bos_token = this.bosToken;
    if (this.eosToken !== null) cfg.eos_token = this.eosToken;
    writeFileAtomic(join(path, 'tokenizer_config.json'), JSON.stringify(cfg, null, 2) + '\n');
  }
}
