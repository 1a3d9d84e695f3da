// Byte-level BPE of an exact size, HF tokenizer.json in and out, and the errors bad files get.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from 'tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bpeTokenizerJson,
  encodeDocuments,
  loadBuiltin,
  loadData,
  mergePrefix,
  splitDocuments,
  textsOf,
  Tokenizer,
  trainBpe,
} from '../../ts/data/index.js';
import { expectError } from '../support/expect-error.js';


const dir = mkdtempSync(join(tmpdir(), 'puzzle-tok-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let corpus: string[];
let samples: string[];
let tok: Tokenizer;
beforeAll(async () => {
  const alice = (await loadBuiltin('gutenberg')).filter((d) => d.source.startsWith('builtin:gutenberg/carroll-alice'));
  corpus = textsOf(alice);
  samples = [
    ...corpus.slice(0, 5),
    'naïve café — 日本語 🙂 ok',
    '  leading and trailing spaces\t\n\n\n',
    'tokens <|end_of_text|> inside text',
    '',
  ];
  tok = await trainBpe(corpus, { vocabSize: 1000 });
});

describe('BPE training', () => {
  it('gives exactly the requested vocabulary: 256 bytes, the merges, BOS and EOS last', async () => {
    expect(tok.vocabSize).toBe(1000);
    expect([tok.bosToken, tok.bosId, tok.eosToken, tok.eosId]).toEqual(['<|begin_of_text|>', 998, '<|end_of_text|>', 999]);
    const json = JSON.parse(tok.json);
    expect(Object.keys(json.model.vocab).length).toBe(998);
    expect(json.model.merges.length).toBeGreaterThanOrEqual(998 - 256);
    for (const v of [258, 300, 2048]) {
      const t = await trainBpe(corpus, { vocabSize: v });
      expect(t.vocabSize).toBe(v);
      expect(t.eosId).toBe(v - 1);
    }
  });

  it('round-trips any text, bytes the corpus never had included', async () => {
    for (const s of samples) expect(await tok.decode(await tok.encode(s))).toBe(s);
    const ids = await tok.encode('Alice was', { bos: true, eos: true });
    expect(ids[0]).toBe(tok.bosId);
    expect(ids[ids.length - 1]).toBe(tok.eosId);
    expect(await tok.decode(ids, { skipSpecial: true })).toBe('Alice was');
    // a bigger vocabulary compresses the same text into fewer tokens
    const small = await trainBpe(corpus, { vocabSize: 300 });
    expect((await tok.encode(corpus[1]!)).length).toBeLessThan((await small.encode(corpus[1]!)).length);
  });

  it('is deterministic', async () => {
    const again = await trainBpe(corpus, { vocabSize: 1000 });
    expect(again.json).toBe(tok.json);
  });

  it('batch and single encoding agree', async () => {
    const batch = await tok.encodeBatch(samples);
    for (let i = 0; i < samples.length; i++) expect(Array.from(batch[i]!)).toEqual(Array.from(await tok.encode(samples[i]!)));
  });

  it('keeps the shortest merge prefix when a merge rebuilds an existing symbol', () => {
    const merges = [['a', 'b'], ['b', 'c'], ['ab', 'c'], ['a', 'bc'], ['c', 'c']] as const;
    expect(mergePrefix(merges, 3)).toEqual(merges.slice(0, 3));
    expect(mergePrefix(merges, 4)).toEqual(merges.slice(0, 5)); // the rebuild of 'abc' adds no symbol
    expect(mergePrefix(merges, 5)).toBeNull();
    const t = Tokenizer.fromJson(bpeTokenizerJson(merges.slice(0, 5), '<s>', '</s>'));
    expect(t.vocabSize).toBe(256 + 4 + 2);
  });

  it('rejects empty corpora, too small and too large vocabularies', async () => {
    await expectError(trainBpe(['', '  \n'], { vocabSize: 500 }), 'ERR_PUZZLE_DATA', 'empty corpus');
    await expectError(trainBpe(corpus, { vocabSize: 100 }), 'ERR_PUZZLE_TOKENIZER', '>= 258');
    await expectError(trainBpe(['tiny text here'], { vocabSize: 400 }), 'ERR_PUZZLE_TOKENIZER', 'yields at most');
  });
});

describe('tokenizer.json files', () => {
  it('saves atomically and reloads with identical encodings, also in the tokenizers library itself', async () => {
    const file = join(dir, 'tok.json');
    tok.save(file);
    const back = Tokenizer.load(file);
    expect(back.vocabSize).toBe(tok.vocabSize);
    expect([back.bosId, back.eosId]).toEqual([tok.bosId, tok.eosId]);
    const hf = HfTokenizer.fromFile(file);
    for (const s of samples) {
      const ids = Array.from(await tok.encode(s));
      expect(Array.from(await back.encode(s))).toEqual(ids);
      // the file's post-processor puts BOS in front, as Llama 3's does
      expect((await hf.encode(s)).getIds()).toEqual([tok.bosId, ...ids]);
      expect(await hf.decode(ids, false)).toBe(s);
    }
    expect(readFileSync(file, 'utf8')).toBe(tok.json);
  });

  it('a folder gets tokenizer.json and tokenizer_config.json naming BOS/EOS', () => {
    const folder = join(dir, 'model');
    tok.save(folder);
    const cfg = JSON.parse(readFileSync(join(folder, 'tokenizer_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>', tokenizer_class: 'PreTrainedTokenizerFast' });
    const back = Tokenizer.load(folder);
    expect([back.bosId, back.eosId]).toEqual([998, 999]);
  });

  it('finds BOS/EOS from tokenizer_config.json, the template, known names, or the caller', () => {
    const sub = join(dir, 'special');
    const json = bpeTokenizerJson([['a', 'b']], '<s>', '</s>');
    writeFileSync(join(dir, 'plain.json'), json);
    const plain = Tokenizer.load(join(dir, 'plain.json'));
    expect([plain.bosToken, plain.eosToken, plain.bosId, plain.eosId]).toEqual(['<s>', '</s>', 257, 258]);
    Tokenizer.fromJson(json).save(sub);
    writeFileSync(join(sub, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: '</s>' }, eos_token: '<s>' }));
    const swapped = Tokenizer.load(sub);
    expect([swapped.bosId, swapped.eosId]).toEqual([258, 257]);
    expect(Tokenizer.load(sub, { eos: 'ab' }).eosId).toBe(256);
    expect(() => Tokenizer.load(sub, { eos: '<nope>' })).toThrow(/EOS token '<nope>' is not in the vocabulary/);
    // no special tokens at all: encoding works, asking for EOS is a clear error
    const bare = JSON.parse(json);
    bare.added_tokens = [];
    bare.post_processor = null;
    const t = Tokenizer.fromJson(JSON.stringify(bare));
    expect(t.eosId).toBeNull();
    expect(() => t.requireEos()).toThrow(/no EOS token/);
  });

  it('bad files: unparsable, not a tokenizer, unloadable, missing', async () => {
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"model": {"type": "BPE", ');
    await expectError(() => Tokenizer.load(broken), 'ERR_PUZZLE_TOKENIZER', broken, 'not valid JSON');
    const notTok = join(dir, 'nottok.json');
    writeFileSync(notTok, '{"hello": 1}');
    await expectError(() => Tokenizer.load(notTok), 'ERR_PUZZLE_TOKENIZER', notTok, '"model"');
    const weird = join(dir, 'weird.json');
    writeFileSync(weird, JSON.stringify({ ...JSON.parse(tok.json), model: { type: 'Nonsense' } }));
    await expectError(() => Tokenizer.load(weird), 'ERR_PUZZLE_TOKENIZER', weird, 'library can load');
    await expectError(() => Tokenizer.load(join(dir, 'missing.json')), 'ERR_PUZZLE_FILE', 'missing.json');
    await expectError(() => Tokenizer.load(join(dir, 'no-such-dir')), 'ERR_PUZZLE_FILE', 'no-such-dir');
    await expectError(() => Tokenizer.load(dir), 'ERR_PUZZLE_FILE', 'tokenizer.json');
  });

  it('token ids beyond the vocabulary: in decode, and in a pre-tokenised JSONL naming file and line', async () => {
    await expectError(tok.decode([5, 1000]), 'ERR_PUZZLE_TOKENIZER', 'token id 1000', '0 <= id < 1000');
    await expectError(tok.decode([1.5]), 'ERR_PUZZLE_TOKENIZER', 'token id 1.5');
    const jsonl = join(dir, 'ids.jsonl');
    writeFileSync(jsonl, '{"input_ids": [1, 2, 3]}\n{"text": "Alice"}\n{"input_ids": [4, 5000]}\n');
    const docs = await loadData(jsonl);
    await expectError(encodeDocuments(tok, docs), 'ERR_PUZZLE_DATA', `${jsonl}:3`, 'token id 5000');
    const ok = await encodeDocuments(tok, docs.slice(0, 2));
    expect(Array.from(ok[0]!)).toEqual([1, 2, 3]);
    expect(await tok.decode(ok[1]!)).toBe('Alice');
  });
});

describe('the built-in corpus', () => {
  it('trains a 4096 BPE on the train split and encodes every document', async () => {
    const docs = await loadData('builtin');
    const t = await trainBpe(textsOf(splitDocuments(docs).train), { vocabSize: 4096 });
    expect(t.vocabSize).toBe(4096);
    const ids = await encodeDocuments(t, docs);
    expect(ids.length).toBe(docs.length);
    const total = ids.reduce((n, x) => n + x.length, 0);
    const chars = textsOf(docs).reduce((n, s) => n + s.length, 0);
    // English prose at 4096 merges: about 3-5 characters per token
    expect(chars / total).toBeGreaterThan(3);
    expect(chars / total).toBeLessThan(5);
    for (const i of [0, 100, docs.length - 1]) expect(await t.decode(ids[i]!)).toBe(textsOf([docs[i]!])[0]);
  });
});
