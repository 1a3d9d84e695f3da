/** Bytes to text, and long texts to document-sized pieces. */
import { PuzzleError } from '../core/errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes UTF-8 (a BOM is dropped) and normalises line ends to `\n`.
 * `latin1Fallback` is for the built-in books, two of which are ISO-8859-1; user files must be
 * UTF-8, and a file that is not gets an error rather than silently garbled text.
 */
export function decodeText(bytes: Uint8Array, file: string, latin1Fallback = false): string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    if (!latin1Fallback) {
      throw new PuzzleError('ERR_PUZZLE_DATA', `${file}: not valid UTF-8 text (expected a UTF-8 encoded file)`);
    }
    text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text.replace(/\r\n?/g, '\n');
}

/** Target size of a document cut from a long text: small enough that a 5% test split of one book is many documents. */
export const CHUNK_CHARS = 4000;

/**
 * Cuts a long text into documents of about `target` characters, at a blank line once the piece
 * is long enough, or at any line end once it is twice that (texts with no blank lines).
 * A single line longer than that stays whole. Pieces are trimmed; empty ones are dropped.
 */
export function chunkText(text: string, target = CHUNK_CHARS): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  let cur: string[] = [];
  let len = 0;
  const flush = () => {
    const piece = cur.join('\n').trim();
    if (piece.length > 0) out.push(piece);
    cur = [];
    len = 0;
  };
  for (const line of lines) {
    const blank = line.trim().length === 0;
    if ((blank && len >= target) || len >= 2 * target) flush();
    cur.push(line);
    len += line.length + 1;
  }
  flush();
  return out;
}
