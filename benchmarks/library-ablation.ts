/**
 * Library ablations on the default parent (METHOD.md claims 2 and 3):
 *   FFN init: channel contribution vs first-k vs random channels at equal width,
 *             validation NMSE at init and after the same BLD;
 *   decoupled vs coupled BLD: the composed block [attention variant, FFN variant] built from
 *             two decoupled entries vs the pair trained together, same tokens.
 *   npx tsx benchmarks/library-ablation.ts [--parent models/default-parent] [--layers 1,6] [--tokens 100000]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ops from '../ts/core/ops.js';
import { loadSplits, packSplit } from '../ts/data/prepare.js';
import { Tokenizer } from '../ts/data/tokenizer.js';
import { loadModel } from '../ts/model/hf.js';
import { fromPacked, BatchSchedule } from '../ts/train/batches.js';
import { buildLibrary } from '../ts/library/build.js';
import { parentLayerIO } from '../ts/library/bld.js';
import { composeBlock } from '../ts/library/compose.js';
import { readEntry } from '../ts/library/store.js';
import { attentionId, ffnId } from '../ts/library/space.js';

const argv = process.argv.slice(2);
const opt = (n: string, d: string) => (argv.includes(`--${n}`) ? argv[argv.indexOf(`--${n}`) + 1] : d);
const parentDir = opt('parent', 'models/default-parent');
const layers = opt('layers', '1,6').split(',').map(Number);
const tokens = Number(opt('tokens', '100000'));
const T = 256, batch = 8;
const steps = Math.round(tokens / (batch * T));
const tok = Tokenizer.load(parentDir);
const data = await loadSplits('builtin:gutenberg');
const train = fromPacked(await packSplit(data, 'train', tok, T));
const validation = fromPacked(await packSplit(data, 'validation', tok, T));
const settings = { batch, steps, lr: 1e-3, validationBatches: 4 };
const t0 = Date.now();

console.log(`library ablations on ${parentDir}, layers ${layers.join(', ')}, ${steps} BLD steps x ${batch} x ${T} tokens per variant — ${new Date().toISOString()}`);
console.log('\nFFN init at equal width (validation NMSE, lower is better)');
console.log('| layer | width | init | NMSE at init | NMSE after BLD |');
console.log('|---|---|---|---|---|');
for (const init of ['channel-contribution', 'first-k', 'random'] as const) {
  const lib = mkdtempSync(join(tmpdir(), `abl-${init}-`));
  const r = await buildLibrary({ parentDir, lib, train, validation, dataSpec: 'builtin:gutenberg', layers,
    space: { attention: [], ffn: [{ fraction: 0.5 }, { fraction: 0.25 }], ffnMultiple: 32 }, settings: { ...settings, ffnInit: init } });
  for (const e of r.entries.filter((x) => x.kind === 'ffn' && x.init !== 'parent'))
    console.log(`| ${e.layer} | ${e.ffn?.kind === 'swiglu' ? e.ffn.width : ''} | ${init} | ${e.valNmseInit.toFixed(4)} | ${e.valNmseBld.toFixed(4)} |`);
}

console.log('\nDecoupled vs coupled BLD (validation NMSE of the composed block)');
console.log('| layer | pair | decoupled (composed) | coupled |');
console.log('|---|---|---|---|');
const space = { attention: [{ kvHeads: 1 }, 'linear' as const], ffn: [{ fraction: 0.25 }], ffnMultiple: 32 };
const dec = mkdtempSync(join(tmpdir(), 'abl-dec-'));
await buildLibrary({ parentDir, lib: dec, train, validation, dataSpec: 'builtin:gutenberg', layers, space, settings });
const cou = mkdtempSync(join(tmpdir(), 'abl-cou-'));
const rc = await buildLibrary({ parentDir, lib: cou, train, validation, dataSpec: 'builtin:gutenberg', layers, space, settings, coupled: true });
const parent = loadModel(parentDir);
const val = new BatchSchedule(validation, batch, 12345);

for (const e of rc.entries) {
  const [aId, fId] = e.id.split('+');
  const p = parent.config.layers[e.layer];
  if (aId === attentionId(p.attention) || fId === ffnId(p.ffn)) continue; // both halves must be new
  const block = composeBlock(parent.config, dec, readEntry(dec, e.layer, aId), readEntry(dec, e.layer, fId));
  let nm = 0;
  for (let k = 0; k < 4; k++) {
    const input = val.inputAt(k);
    const { x, y } = await parentLayerIO(parent, input, e.layer);
    const out = await block.forward(x, batch, T, parent.ropeFor(T), false);
    nm += (await ops.nmseForward(out, y)) / 4;
    [x, y, out, input].forEach((t) => t.dispose());
  }
  block.dispose();
  console.log(`| ${e.layer} | ${e.id} | ${nm.toFixed(4)} | ${e.valNmseBld.toFixed(4)} |`);
}
console.log(`\n(${((Date.now() - t0) / 1000).toFixed(0)} s on ${(await import('node:os')).cpus()[0].model}, ${(await import('node:os')).cpus().length} cores)`);
