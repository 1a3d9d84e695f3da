// The built-in corpora come from their npm packages, as clean text.
import { describe, expect, it } from 'vitest';
import { detokenize, loadBuiltin, loadData, parseBrown } from '../../ts/data/index.js';

describe('built-in corpora', () => {
  it('Gutenberg: 18 books cut into ~4 KB documents, all text', async () => {
    const docs = await loadBuiltin('gutenberg');
    const books = new Set(docs.map((d) => d.source.replace(/#\d+$/, '')));
    expect(books.size).toBe(18);
    expect(books.has('builtin:gutenberg/austen-emma')).toBe(true);
    expect(docs.length).toBeGreaterThan(2500);
    const chars = docs.reduce((n, d) => n + d.text.length, 0);
    expect(chars).toBeGreaterThan(11_000_000);
    expect(docs.some((d) => d.text.includes('\r'))).toBe(false);
    // the two ISO-8859-1 books decode to real characters, not U+FFFD
    expect(docs.some((d) => d.text.includes('\ufffd'))).toBe(false);
  });

  it('Brown: 500 tagged files, detokenised with no tags left', async () => {
    const docs = await loadBuiltin('brown');
    expect(docs.length).toBe(500);
    expect(docs[0]!.source).toBe('builtin:brown/ca01');
    expect(docs[0]!.text.startsWith('The Fulton County Grand Jury said Friday an investigation of')).toBe(true);
    expect(docs[0]!.text).toContain('produced "no evidence" that any irregularities took place.');
    for (const d of docs) {
      expect(d.tagged!.length).toBeGreaterThan(10);
      expect(d.text).not.toMatch(/[a-z]\/(nn|nns|at|vbd|jj)\b/);
      expect(d.text).not.toMatch(/``|(?<!\d)''/); // quote tokens; inches (4' 10'') are text
      expect(d.text).not.toContain(';;');
    }
  });

  it('builtin is Gutenberg then Brown', async () => {
    const all = await loadData('builtin');
    const g = await loadBuiltin('gutenberg');
    expect(all.length).toBe(g.length + 500);
    expect(all[g.length]!.source).toBe('builtin:brown/ca01');
  });

  it('parses word/tag tokens and detokenises punctuation and quotes', () => {
    const s = parseBrown('\n\n\t``/`` Only/rb 1/2/cd ,/, he/pps said/vbd (/( ok/uh )/) ;/. ;/. so/rb ./. \'\'/\'\'\n', 'x')[0]!;
    expect(s[2]).toEqual({ word: '1/2', tag: 'cd' });
    expect(detokenize(s.map((w) => w.word))).toBe('"Only 1/2, he said (ok); so."');
  });
});
