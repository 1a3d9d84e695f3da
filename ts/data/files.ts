/**
 * The user's own data: `.txt` files (cut into ~4 KB documents at blank lines), `.jsonl` files
 * with one document per line (`{"text": ...}` or pre-tokenised `{"input_ids": [...]}`), and
 * folders of them (searched recursively, in sorted order so every run sees the same documents).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import type { Document } from './document.js';
import { chunkText, decodeText } from './text.js';

const EXPECTED = 'a .txt file, a .jsonl file, a folder of them, or builtin[:gutenberg|:brown]';

async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new PuzzleError('ERR_PUZZLE_FILE', `cannot read data file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export async function loadTextFile(path: string): Promise<Document[]> {
  const text = decodeText(await readBytes(path), path);
  return chunkText(text).map((piece, i) => ({ kind: 'text', source: `${path}#${i}`, text: piece }));
}

function lineError(path: string, line: number, msg: string): PuzzleError {
  return new PuzzleError('ERR_PUZZLE_DATA', `${path} line ${line}: ${msg}`);
}

const SHAPE = 'expected a JSON object with a "text" string or an "input_ids" array of non-negative integers';

/** One JSONL line to a document; `input_ids` wins when a line has both (the tokens are explicit). */
function parseLine(path: string, line: number, raw: string): Document | null {
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch (err) {
    throw lineError(path, line, `not valid JSON (${(err as Error).message}); ${SHAPE}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw lineError(path, line, SHAPE);
  const rec = obj as Record<string, unknown>;
  const source = `${path}:${line}`;
  if ('input_ids' in rec) {
    const ids = rec.input_ids;
    if (!Array.isArray(ids) || ids.length === 0) throw lineError(path, line, `"input_ids" must be a non-empty array; ${SHAPE}`);
    const out = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
        throw lineError(path, line, `"input_ids"[${i}] is ${JSON.stringify(v)}; ${SHAPE}`);
      }
      out[i] = v;
    }
    return { kind: 'ids', source, ids: out };
  }
  if (typeof rec.text === 'string') return rec.text.length > 0 ? { kind: 'text', source, text: rec.text } : null;
  const keys = Object.keys(rec).slice(0, 8).join(', ');
  throw lineError(path, line, `${SHAPE} (found keys: ${keys || 'none'})`);
}

export async function loadJsonl(path: string): Promise<Document[]> {
  const lines = decodeText(await readBytes(path), path).split('\n');
  const docs: Document[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim().length === 0) continue;
    const doc = parseLine(path, i + 1, lines[i]!);
    if (doc) docs.push(doc);
  }
  return docs;
}

/** .txt and .jsonl files under a folder, recursively, sorted; hidden entries skipped. */
async function listFolder(dir: string): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFolder(p)));
    else if (/\.(txt|jsonl)$/i.test(e.name)) out.push(p);
  }
  return out;
}

/** A path given by the user: a file by its extension, or a folder of such files. */
export async function loadPath(path: string): Promise<Document[]> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new PuzzleError('ERR_PUZZLE_FILE', `data path not found: ${path} (expected ${EXPECTED})`);
  }
  if (isDir) {
    const files = await listFolder(path);
    if (files.length === 0) throw new PuzzleError('ERR_PUZZLE_DATA', `${path}: folder holds no .txt or .jsonl files`);
    const docs: Document[] = [];
    for (const f of files) docs.push(...(await loadPath(f)));
    return docs;
  }
  if (/\.txt$/i.test(path)) return loadTextFile(path);
  if (/\.jsonl$/i.test(path)) return loadJsonl(path);
  throw new PuzzleError('ERR_PUZZLE_DATA', `${path}: unknown kind of data file (expected ${EXPECTED})`);
}
