/** Brown tag helpers shared by the downstream tasks. */
import type { TaggedSentence } from './document.js';

/**
 * A tag without Brown's title (-tl), headline (-hl) and cited-word (-nc) marks: `nn-tl` -> `nn`.
 * Foreign words (`fw-...`) and contractions (`pps+bez`) keep their form, so they match no plain tag.
 */
export function baseTag(tag: string): string {
  return tag.replace(/(-(tl|hl|nc))+$/, '');
}

/** Headlines are fragments, not sentences; the tasks skip them. */
export function isHeadline(s: TaggedSentence): boolean {
  return s.some((w) => /-hl/.test(w.tag));
}
