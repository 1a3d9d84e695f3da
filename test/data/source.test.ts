// The --data syntax, user files, and the errors bad files get.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chunkText, loadData, parseDataSpec } from '../../ts/data/index.js';
import { expectError } from '../support/expect-error.js';


const dir = mkdtempSync(join(tmpdir(), 'puzzle-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string | Uint8Array) => {
  const p = join(dir, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
};

describe('--data syntax', () => {
  it('parses builtin names, paths and lists', () => {
    expect(parseDataSpec('builtin')).toEqual([
      { kind: 'builtin', name: 'gutenberg' },
      { kind: 'builtin', name: 'brown' },
    ]);
    expect(parseDataSpec('builtin:brown, a.txt')).toEqual([
      { kind: 'builtin', name: 'brown' },
      { kind: 'path', path: 'a.txt' },
    ]);
  });

  it('rejects unknown corpora, empty items and unknown file kinds', async () => {
    await expectError(() => parseDataSpec('builtin:wiki'), 'ERR_PUZZLE_DATA', "'wiki'", 'gutenberg, brown');
    await expectError(() => parseDataSpec('a.txt,,b.txt'), 'ERR_PUZZLE_DATA', 'empty item');
    await expectError(() => parseDataSpec(''), 'ERR_PUZZLE_DATA');
    await expectError(loadData(file('x.csv', 'a,b')), 'ERR_PUZZLE_DATA', 'x.csv', 'expected a .txt file');
  });
});

describe('user files', () => {
  it('loads .txt, .jsonl text and input_ids, folders in sorted order, and lists', async () => {
    const txt = file('one.txt', 'Hello there.\r\n\r\nSecond paragraph.\n');
    const jsonl = file('two.jsonl', '{"text": "first doc"}\n\n{"input_ids": [1, 2, 3], "text": "ignored"}\n{"text": "third", "meta": 1}\n');
    const docs = await loadData(`${txt},${jsonl}`);
    expect(docs.map((d) => d.source)).toEqual([`${txt}#0`, `${jsonl}:1`, `${jsonl}:3`, `${jsonl}:4`]);
    expect(docs[0]).toMatchObject({ kind: 'text', text: 'Hello there.\n\nSecond paragraph.' });
    expect(docs[2]!.kind).toBe('ids');
    expect(Array.from((docs[2] as { ids: Int32Array }).ids)).toEqual([1, 2, 3]);

    file('folder/b/z.txt', 'zed');
    file('folder/a.jsonl', '{"text": "ay"}');
    file('folder/.hidden.txt', 'no');
    file('folder/notes.md', 'no');
    const folder = await loadData(join(dir, 'folder'));
    expect(folder.map((d) => (d.kind === 'text' ? d.text : ''))).toEqual(['ay', 'zed']);
  });

  it('cuts long texts into documents at blank lines, and at line ends when there are none', () => {
    const para = 'word '.repeat(100).trim(); // 499 chars
    const text = Array.from({ length: 30 }, () => para).join('\n\n');
    const pieces = chunkText(text, 2000);
    expect(pieces.length).toBeGreaterThan(5);
    for (const p of pieces) expect(p.length).toBeLessThan(4000);
    expect(pieces.join('\n\n')).toBe(text);
    const lines = Array.from({ length: 100 }, () => para).join('\n');
    expect(chunkText(lines, 2000).length).toBeGreaterThan(10);
  });

  it('names the file and line of a bad JSONL line', async () => {
    const bad = file('bad.jsonl', '{"text": "ok"}\n{"txt": "typo"}\n');
    await expectError(loadData(bad), 'ERR_PUZZLE_DATA', bad, 'line 2', '"text" string', '"input_ids"', 'txt');
    const notJson = file('notjson.jsonl', '{"text": "ok"}\n\n{text: 1}\n');
    await expectError(loadData(notJson), 'ERR_PUZZLE_DATA', notJson, 'line 3', 'not valid JSON');
    const badIds = file('badids.jsonl', '{"input_ids": [1, -2]}\n');
    await expectError(loadData(badIds), 'ERR_PUZZLE_DATA', badIds, 'line 1', '"input_ids"[1] is -2');
    const arr = file('arr.jsonl', '[1,2]\n');
    await expectError(loadData(arr), 'ERR_PUZZLE_DATA', 'line 1', 'JSON object');
  });

  it('missing paths, empty corpora and non-UTF-8 files are errors naming the file', async () => {
    await expectError(loadData(join(dir, 'nope.txt')), 'ERR_PUZZLE_FILE', 'nope.txt', 'not found');
    const empty = file('empty.txt', '\n  \n');
    await expectError(loadData(empty), 'ERR_PUZZLE_DATA', empty, 'empty corpus');
    const emptyJsonl = file('empty.jsonl', '{"text": ""}\n');
    await expectError(loadData(emptyJsonl), 'ERR_PUZZLE_DATA', 'empty corpus');
    mkdirSync(join(dir, 'nothing'));
    await expectError(loadData(join(dir, 'nothing')), 'ERR_PUZZLE_DATA', 'no .txt or .jsonl');
    const latin = file('latin.txt', Uint8Array.from([0x63, 0x61, 0x66, 0xe9]));
    await expectError(loadData(latin), 'ERR_PUZZLE_DATA', latin, 'UTF-8');
  });
});
