/**
 * Parent against child on the same engine and scenario: prefill and decode throughput measured
 * end to end (the search's prediction is a sum of per-subblock costs; this is the truth).
 * The two models are measured alternately, `rounds` times each, so drifting machine load hits
 * both alike; each model's time is its fastest repeat (contention only ever slows a run down).
 */
import type { ModelConfig } from '../model/config.js';
import { measureModel } from '../profile/measure.js';
import type { ProfileScenario } from '../profile/scenario.js';

export interface Throughput {
  prefill_ms: number;
  decode_ms: number;
  /** prompt tokens per second over the batch */
  prefill_tok_s: number;
  /** generated tokens per second over the batch */
  decode_tok_s: number;
}

export interface SpeedComparison {
  scenario: ProfileScenario;
  parent: Throughput;
  child: Throughput;
  prefill_speedup: number;
  decode_speedup: number;
  /** (prefill + decode) time ratio: the search's runtime-based throughput */
  total_speedup: number;
}

const fastest = (xs: number[]) => Math.min(...xs);

export async function compareSpeed(parent: ModelConfig, child: ModelConfig, s: ProfileScenario, rounds = 3): Promise<SpeedComparison> {
  const p = { prefill: [] as number[], decode: [] as number[] };
  const c = { prefill: [] as number[], decode: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    const mp = await measureModel(parent, s);
    const mc = await measureModel(child, s);
    p.prefill.push(mp.prefill.min), p.decode.push(mp.decode.min);
    c.prefill.push(mc.prefill.min), c.decode.push(mc.decode.min);
  }
  const tp = (x: typeof p): Throughput => {
    const prefill_ms = fastest(x.prefill), decode_ms = fastest(x.decode);
    return { prefill_ms, decode_ms, prefill_tok_s: (s.batch * s.prompt) / (prefill_ms / 1000), decode_tok_s: (s.batch * s.generate) / (decode_ms / 1000) };
  };
  const P = tp(p), C = tp(c);
  return {
    scenario: s, parent: P, child: C,
    prefill_speedup: P.prefill_ms / C.prefill_ms,
    decode_speedup: P.decode_ms / C.decode_ms,
    total_speedup: (P.prefill_ms + P.decode_ms) / (C.prefill_ms + C.decode_ms),
  };
}
