/** Documents to token ids: text through the tokenizer (in batches), pre-tokenised ids checked against its vocabulary. */
import type { Document } from './document.js';
import type { Tokenizer } from './tokenizer.js';

/**
 * One Int32Array per document, in order. Ids documents are returned as given (not re-tokenised)
 * after checking every id is inside the tokenizer's vocabulary (an ERR_PUZZLE_DATA naming the
 * file and line otherwise). `bos` puts BOS in front of text documents only: pre-tokenised ones
 * already say exactly which tokens they hold.
 */
export async function encodeDocuments(tok: Tokenizer, docs: readonly Document[], opts: { bos?: boolean } = {}): Promise<Int32Array[]> {
  const out = new Array<Int32Array>(docs.length);
  const textAt: number[] = [];
  docs.forEach((d, i) => {
    if (d.kind === 'ids') {
      tok.checkIds(d.ids, d.source, 'ERR_PUZZLE_DATA');
      out[i] = d.ids;
    } else {
      textAt.push(i);
    }
  });
  const encoded = await tok.encodeBatch(textAt.map((i) => (docs[i] as { text: string }).text), { bos: opts.bos ?? false });
  textAt.forEach((docIndex, k) => (out[docIndex] = encoded[k]!));
  return out;
}
