/**
 * Writes a byte-level BPE as a standard Hugging Face tokenizer.json (the layout tokenizers
 * itself saves, and that transformers' PreTrainedTokenizerFast loads): ids 0..255 are the bytes
 * in byte order, then one id per merge in merge order, then the special tokens.
 * Keeping only the first N merges of a longer training run is exact: each merge only joins
 * bytes or the results of earlier merges, so a prefix of the list is itself a complete BPE.
 */
import { PuzzleError } from '../core/errors.js';
import { byteToUnicode } from './bytelevel.js';

export type Merge = readonly [string, string];

const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };

/** tokenizer.json text for these merges, then BOS and EOS as the last two ids. */
export function bpeTokenizerJson(merges: readonly Merge[], bos: string, eos: string): string {
  const vocab: Record<string, number> = {};
  const table = byteToUnicode();
  table.forEach((ch, b) => (vocab[ch] = b));
  let next = 256;
  for (const [a, b] of merges) {
    if (!(a in vocab) || !(b in vocab)) {
      throw new PuzzleError('ERR_PUZZLE_TOKENIZER', `BPE merge '${a} ${b}' uses a symbol no earlier merge made`);
    }
    // A merge may rebuild a symbol an earlier merge made by another split (tokenizers' trainer
    // allows it): the merge stays, the symbol keeps its first id.
    if (!(a + b in vocab)) vocab[a + b] = next++;
  }
  const bosId = next;
  const eosId = next + 1;
  const added = (content: string, id: number) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const special = (type_id: number) => ({ SpecialToken: { id: bos, type_id } });
  const seq = (id: string, type_id: number) => ({ Sequence: { id, type_id } });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(bos, bosId), added(eos, eosId)],
    normalizer: null,
    pre_tokenizer: BYTE_LEVEL,
    // Llama 3's convention: BOS in front of every encoded text when special tokens are on.
    post_processor: {
      type: 'TemplateProcessing',
      single: [special(0), seq('A', 0)],
      pair: [special(0), seq('A', 0), special(1), seq('B', 1)],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    },
    decoder: { ...BYTE_LEVEL, add_prefix_space: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
  return JSON.stringify(json, null, 2) + '\n';
}
