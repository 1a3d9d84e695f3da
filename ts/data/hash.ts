/** Stable hashes (SHA-256 based): the same on every machine, Node version and run. */
import { createHash } from 'node:crypto';

/** A number in [0, 1) from the first 48 bits of SHA-256 of the parts (joined unambiguously). */
export function stableHash(...parts: (string | Uint8Array)[]): number {
  const h = createHash('sha256');
  for (const p of parts) {
    h.update(typeof p === 'string' ? Buffer.from(p, 'utf8') : p);
    h.update('\0');
  }
  return h.digest().readUIntBE(0, 6) / 2 ** 48;
}

/** A 32-bit seed from a string (for seeding a PRNG per item). */
export function seedOf(text: string): number {
  return Math.floor(stableHash('seed', text) * 2 ** 32) >>> 0;
}
