/**
 * GPT-2's byte-to-character table, used by byte-level BPE: every byte 0..255 is shown as one
 * printable Unicode character, so a vocabulary of strings covers all byte sequences.
 * Same table as tokenizers' ByteLevel pre-tokenizer (and openai/gpt-2 `bytes_to_unicode`).
 */
export function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  return table;
}
