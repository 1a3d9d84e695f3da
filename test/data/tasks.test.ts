// Downstream tasks: from the test split only, deterministic, and each item a true minimal contrast.
import { beforeAll, describe, expect, it } from 'vitest';
import { PuzzleError } from '../../ts/core/errors.js';
import {
  agreementPair,
  buildTasks,
  builtinTasks,
  detokenize,
  loadBuiltin,
  parseBrown,
  splitOf,
  type Task,
  type TextDocument,
  verbSwaps,
} from '../../ts/data/index.js';

let brown: TextDocument[];
let tasks: Task[];
beforeAll(async () => {
  brown = await loadBuiltin('brown');
  tasks = await builtinTasks();
});
const task = (name: string) => tasks.find((t) => t.name === name)!;
/** The Brown document and sentence an item id points at (`name:builtin:brown/ca01:12`). */
function origin(id: string) {
  const m = /^[a-z]+:(builtin:brown\/c[a-r]\d\d):(\d+)$/.exec(id)!;
  const doc = brown.find((d) => d.source === m[1])!;
  return { doc, sentence: doc.tagged![Number(m[2])]! };
}

describe('downstream tasks', () => {
  it('makes hundreds of items per task, from test-split documents only', () => {
    expect(tasks.map((t) => t.name)).toEqual(['agreement', 'cloze']);
    for (const t of tasks) {
      expect(t.items.length).toBeGreaterThanOrEqual(300);
      expect(t.items.length).toBeLessThanOrEqual(500);
      expect(new Set(t.items.map((it) => it.id)).size).toBe(t.items.length);
      for (const it of t.items) expect(splitOf(origin(it.id).doc)).toBe('test');
    }
  });

  it('is deterministic', async () => {
    expect(JSON.stringify(await builtinTasks())).toBe(JSON.stringify(tasks));
  });

  it('agreement pairs differ in exactly the verb, swapped between singular and plural forms', () => {
    const { items } = task('agreement');
    const forms = new Map([['is', 'are'], ['was', 'were'], ['has', 'have'], ['does', 'do'], ["isn't", "aren't"], ["wasn't", "weren't"], ["hasn't", "haven't"], ["doesn't", "don't"]]);
    for (const it of items) {
      expect(it.candidates.length).toBe(2);
      const { sentence } = origin(it.id);
      const good = detokenize(sentence.map((w) => w.word));
      expect(it.candidates[it.answer]).toBe(good);
      const a = good.split(' ');
      const b = it.candidates[1 - it.answer]!.split(' ');
      expect(b.length).toBe(a.length);
      const diff = a.map((w, i) => i).filter((i) => a[i] !== b[i]);
      expect(diff.length).toBe(1);
      const [g, x] = [a[diff[0]!]!.replace(/[.,;:?!"]+$/, ''), b[diff[0]!]!.replace(/[.,;:?!"]+$/, '')];
      const [sg, pl] = g.length > x.length ? [g, x] : [x, g];
      const ok = forms.get(sg) === pl || forms.get(pl) === sg || [pl + 's', pl + 'es', pl.slice(0, -1) + 'ies'].includes(sg);
      expect(ok, `${g} / ${x}`).toBe(true);
    }
    // the right answer is spread over both positions
    const first = items.filter((it) => it.answer === 0).length / items.length;
    expect(first).toBeGreaterThan(0.4);
    expect(first).toBeLessThan(0.6);
  });

  it('cloze items share the sentence and differ only in the last word, of the same tag', () => {
    const { items, chance } = task('cloze');
    expect(chance).toBe(0.2);
    const counts = [0, 0, 0, 0, 0];
    for (const it of items) {
      expect(it.candidates.length).toBe(5);
      expect(new Set(it.candidates).size).toBe(5);
      counts[it.answer]!++;
      const { sentence } = origin(it.id);
      expect(it.candidates[it.answer]).toBe(detokenize(sentence.map((w) => w.word)));
      const prefix = detokenize(sentence.slice(0, -2).map((w) => w.word)) + ' ';
      for (const c of it.candidates) {
        expect(c.startsWith(prefix)).toBe(true);
        expect(c.slice(prefix.length)).toMatch(/^[a-z]{3,}\.$/);
      }
    }
    for (const n of counts) expect(n).toBeGreaterThan(items.length / 10);
  });

  it('builds the agreement twin from verb forms the corpus has', () => {
    const swaps = verbSwaps(brown.flatMap((d) => d.tagged!));
    expect(swaps.get('says|vbz')).toEqual({ number: 'sg', twin: 'say' });
    expect(swaps.get('try|vb')).toEqual({ number: 'pl', twin: 'tries' });
    expect(swaps.get('were|bed')).toEqual({ number: 'pl', twin: 'was' });
    const [s] = parseBrown('The/at dogs/nns seem/vb happy/jj ./.\n', 't');
    expect(agreementPair(s!, swaps)).toEqual({ good: 'The dogs seem happy.', bad: 'The dogs seems happy.', verbAt: 2 });
    // a verb that does not agree with the adjacent noun (attraction) yields nothing
    const [t] = parseBrown('The/at list/nn of/in items/nns is/bez long/jj ./.\n', 't');
    expect(agreementPair(t!, swaps)).toBeNull();
    // `was` -> `were` after `if` could be a grammatical subjunctive: no pair
    const [u] = parseBrown('If/cs the/at price/nn was/bedz lower/jjr ,/, we/ppss would/md buy/vb ./.\n', 't');
    expect(agreementPair(u!, swaps)).toBeNull();
    const [v] = parseBrown('The/at price/nn was/bedz lower/jjr than/cs before/rb ./.\n', 't');
    expect(agreementPair(v!, swaps)?.bad).toBe('The price were lower than before.');
  });

  it('needs tagged documents', () => {
    expect(() => buildTasks([{ kind: 'text', source: 'x', text: 'no tags' }])).toThrow(PuzzleError);
    expect(() => buildTasks([{ kind: 'text', source: 'x', text: 'no tags' }])).toThrow(/builtin:brown/);
  });

  it('honours maxItems and distractors', () => {
    const small = buildTasks(brown, { maxItems: 50, distractors: 2 });
    expect(small[0]!.items.length).toBe(50);
    expect(small[1]!.items.length).toBe(50);
    expect(small[1]!.items.every((it) => it.candidates.length === 3)).toBe(true);
  });
});
