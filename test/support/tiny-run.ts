// A tiny, fast pretraining setup shared by tests: a 2-layer GQA model on a learnable synthetic
// language (each token is a deterministic function of the two before it, plus noise).
import type { ModelConfig } from '../../ts/model/config.js';
import { packedFromArrays } from '../../ts/train/batches.js';
import { createRng } from '../../ts/data/prng.js';
import type { PretrainOptions } from '../../ts/train/pretrain.js';

export function tinyConfig(): ModelConfig {
  return {
    hidden: 32, heads: 4, headDim: 8, vocab: 24, eps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositions: 64,
    tieEmbeddings: false, bosTokenId: null, eosTokenId: null, dtype: 'float32',
    layers: [0, 1].map(() => ({ attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', width: 48 } })),
  };
}

export function synthetic(count: number, seqLen: number, seed: number): Int32Array[] {
  const g = createRng(seed);
  const r = () => g.float();
  return Array.from({ length: count }, () => {
    const s = new Int32Array(seqLen);
    s[0] = Math.floor(r() * 24);
    s[1] = Math.floor(r() * 24);
    for (let i = 2; i < seqLen; i++) s[i] = r() < 0.1 ? Math.floor(r() * 24) : (s[i - 1] * 7 + s[i - 2] * 3 + 1) % 24;
    return s;
  });
}

export function tinyRun(): Omit<PretrainOptions, 'outDir'> {
  return {
    model: tinyConfig(), train: packedFromArrays(synthetic(2048, 17, 1)), validation: packedFromArrays(synthetic(8, 17, 2)),
    steps: 80, batch: 4, accumulate: 2, lr: 1e-2, seed: 5, evalEvery: 8, evalBatches: 2, checkpointEvery: 1,
  };
}
