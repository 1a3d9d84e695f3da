// The document-level split is a pure function of content: deterministic, disjoint, order-free.
import { describe, expect, it } from 'vitest';
import { PuzzleError } from '../../ts/core/errors.js';
import { type Document, loadData, permutation, splitDocuments, splitOf } from '../../ts/data/index.js';

const docs: Document[] = Array.from({ length: 4000 }, (_, i) => ({ kind: 'text', source: `d${i}`, text: `document number ${i}` }));

describe('split', () => {
  it('is disjoint, covers everything, and keeps input order', () => {
    const s = splitDocuments(docs);
    expect(s.train.length + s.validation.length + s.test.length).toBe(docs.length);
    const ids = [...s.train, ...s.validation, ...s.test].map((d) => d.source);
    expect(new Set(ids).size).toBe(docs.length);
    for (const part of [s.train, s.validation, s.test]) {
      const idx = part.map((d) => Number(d.source.slice(1)));
      expect(idx).toEqual([...idx].sort((a, b) => a - b));
    }
  });

  it('gives about 90/5/5 and honours other ratios', () => {
    const s = splitDocuments(docs);
    expect(s.test.length / docs.length).toBeGreaterThan(0.035);
    expect(s.test.length / docs.length).toBeLessThan(0.065);
    expect(s.validation.length / docs.length).toBeGreaterThan(0.035);
    expect(s.validation.length / docs.length).toBeLessThan(0.065);
    const big = splitDocuments(docs, { validation: 0.1, test: 0.2 });
    expect(big.test.length / docs.length).toBeGreaterThan(0.17);
    expect(big.test.length / docs.length).toBeLessThan(0.23);
    // test takes the lowest hashes: a larger test fraction contains the smaller one
    const small = new Set(s.test.map((d) => d.source));
    const larger = new Set(big.test.map((d) => d.source));
    for (const id of small) expect(larger.has(id)).toBe(true);
  });

  it('depends on content only: same under reordering, same for duplicates under other names', () => {
    const shuffled = Array.from(permutation(docs.length, 7), (i) => docs[i]!);
    const a = splitDocuments(docs);
    const b = splitDocuments(shuffled);
    const key = (p: Document[]) => p.map((d) => d.source).sort();
    expect(key(b.test)).toEqual(key(a.test));
    expect(key(b.validation)).toEqual(key(a.validation));
    for (const d of docs.slice(0, 200)) expect(splitOf({ ...d, source: 'elsewhere' })).toBe(splitOf(d));
    const ids: Document = { kind: 'ids', source: 'x', ids: Int32Array.from([5, 6, 7]) };
    const view: Document = { kind: 'ids', source: 'y', ids: Int32Array.from([0, 5, 6, 7]).subarray(1) };
    expect(splitOf(view)).toBe(splitOf(ids));
  });

  it('splits the built-in corpus into non-empty parts', async () => {
    const s = splitDocuments(await loadData('builtin'));
    expect(s.test.length).toBeGreaterThan(100);
    expect(s.validation.length).toBeGreaterThan(100);
    expect(s.test.some((d) => d.source.startsWith('builtin:brown/'))).toBe(true);
    expect(s.test.some((d) => d.source.startsWith('builtin:gutenberg/'))).toBe(true);
  });

  it('rejects impossible ratios', () => {
    expect(() => splitDocuments(docs, { validation: 0.6, test: 0.5 })).toThrow(PuzzleError);
    expect(() => splitDocuments(docs, { validation: -0.1, test: 0.05 })).toThrow(/split ratios/);
  });
});
