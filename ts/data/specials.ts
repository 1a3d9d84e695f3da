/**
 * Which tokens are BOS and EOS. tokenizer.json has no field for this, so it is read, in order,
 * from: what the caller names; `tokenizer_config.json` beside the file (how transformers
 * records it); the post-processor template (`<bos> $A <eos>`); well-known special-token names.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface SpecialTokenNames {
  bos?: string;
  eos?: string;
}

const KNOWN_BOS = ['<|begin_of_text|>', '<s>', '<bos>', '<|endoftext|>'];
const KNOWN_EOS = ['<|end_of_text|>', '</s>', '<eos>', '<|endoftext|>'];

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `bos_token` / `eos_token` of a tokenizer_config.json: a string or `{content}`. */
function fromConfig(tokenizerJsonPath: string | null): SpecialTokenNames {
  if (!tokenizerJsonPath) return {};
  const file = join(dirname(tokenizerJsonPath), 'tokenizer_config.json');
  if (!existsSync(file)) return {};
  let cfg: unknown;
  try {
    cfg = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return {}; // a broken optional side file should not stop a valid tokenizer.json from loading
  }
  if (!isObj(cfg)) return {};
  const name = (v: unknown) => (typeof v === 'string' ? v : isObj(v) && typeof v.content === 'string' ? v.content : undefined);
  return { bos: name(cfg.bos_token), eos: name(cfg.eos_token) };
}

/** `<bos> $A <eos>` in a TemplateProcessing post-processor, also inside a Sequence. */
function fromTemplate(json: Json): SpecialTokenNames {
  const procs: unknown[] = [];
  const pp = json.post_processor;
  if (isObj(pp) && pp.type === 'Sequence' && Array.isArray(pp.processors)) procs.push(...pp.processors);
  else procs.push(pp);
  for (const p of procs) {
    if (!isObj(p) || p.type !== 'TemplateProcessing' || !Array.isArray(p.single)) continue;
    const single = p.single as unknown[];
    const special = (piece: unknown) => (isObj(piece) && isObj(piece.SpecialToken) && typeof piece.SpecialToken.id === 'string' ? piece.SpecialToken.id : undefined);
    const seqAt = single.findIndex((piece) => isObj(piece) && 'Sequence' in piece);
    return {
      bos: seqAt > 0 ? special(single[0]) : undefined,
      eos: seqAt >= 0 && seqAt < single.length - 1 ? special(single[single.length - 1]) : undefined,
    };
  }
  return {};
}

/** The special added tokens by well-known name. */
function fromNames(json: Json): SpecialTokenNames {
  const specials = new Set<string>();
  if (Array.isArray(json.added_tokens)) {
    for (const t of json.added_tokens) if (isObj(t) && t.special === true && typeof t.content === 'string') specials.add(t.content);
  }
  return { bos: KNOWN_BOS.find((t) => specials.has(t)), eos: KNOWN_EOS.find((t) => specials.has(t)) };
}

/** The BOS and EOS token strings (either may stay undefined: not every tokenizer has them). */
export function resolveSpecialTokens(json: Json, path: string | null, given: SpecialTokenNames = {}): SpecialTokenNames {
  const sources = [given, fromConfig(path), fromTemplate(json), fromNames(json)];
  return { bos: sources.find((s) => s.bos)?.bos, eos: sources.find((s) => s.eos)?.eos };
}
