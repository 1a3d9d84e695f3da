/**
 * The one `--data` syntax used by every command:
 *   builtin                  both built-in corpora (Gutenberg books, then Brown)
 *   builtin:gutenberg        one of them (also builtin:brown)
 *   PATH                     a .txt file, a .jsonl file (`text` or `input_ids` per line), or a folder of them
 *   A,B,...                  a comma-separated list of the above, concatenated in order
 */
import { PuzzleError } from '../core/errors.js';
import { BUILTIN_CORPORA, type BuiltinCorpus, loadBuiltin } from './corpus.js';
import type { Document } from './document.js';
import { loadPath } from './files.js';

export type DataPart = { kind: 'builtin'; name: BuiltinCorpus } | { kind: 'path'; path: string };

/** Parses a `--data` value without touching the disk. */
export function parseDataSpec(spec: string): DataPart[] {
  const items = spec.split(',').map((s) => s.trim());
  if (spec.trim().length === 0 || items.some((s) => s.length === 0)) {
    throw new PuzzleError('ERR_PUZZLE_DATA', `--data '${spec}': expected builtin, builtin:NAME, a path, or a comma-separated list of them (empty item)`);
  }
  const parts: DataPart[] = [];
  for (const item of items) {
    if (item === 'builtin') {
      for (const name of BUILTIN_CORPORA) parts.push({ kind: 'builtin', name });
    } else if (item.startsWith('builtin:')) {
      const name = item.slice('builtin:'.length);
      if (!(BUILTIN_CORPORA as readonly string[]).includes(name)) {
        throw new PuzzleError('ERR_PUZZLE_DATA', `--data '${item}': unknown built-in corpus '${name}' (expected one of ${BUILTIN_CORPORA.join(', ')})`);
      }
      parts.push({ kind: 'builtin', name: name as BuiltinCorpus });
    } else {
      parts.push({ kind: 'path', path: item });
    }
  }
  return parts;
}

/** Loads every document a `--data` value names, in order; a part that yields nothing is an error. */
export async function loadData(spec: string): Promise<Document[]> {
  const docs: Document[] = [];
  for (const part of parseDataSpec(spec)) {
    const got = part.kind === 'builtin' ? await loadBuiltin(part.name) : await loadPath(part.path);
    if (got.length === 0) {
      const what = part.kind === 'builtin' ? `builtin:${part.name}` : part.path;
      throw new PuzzleError('ERR_PUZZLE_DATA', `${what}: empty corpus (no non-empty documents found)`);
    }
    docs.push(...got);
  }
  return docs;
}
