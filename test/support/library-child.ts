// Child process for the library kill test: builds a tiny library, printing each stored entry.
import { buildLibrary } from '../../ts/library/build.js';
import { packedFromArrays } from '../../ts/train/batches.js';
import { synthetic } from './tiny-run.js';

const [parentDir, lib] = process.argv.slice(2);
// after each stored entry, a short pause: a layer's entries are stored in one burst, and without it
// the parent's SIGKILL can race a run that finishes before it arrives
const pause = new Int32Array(new SharedArrayBuffer(4));
await buildLibrary({
  parentDir, lib, train: packedFromArrays(synthetic(256, 17, 11)), validation: packedFromArrays(synthetic(32, 17, 12)), dataSpec: 'synthetic',
  space: { attention: [{ kvHeads: 1 }, 'linear', 'noop'], ffn: [{ fraction: 0.5 }, 'linear', 'noop'], ffnMultiple: 8 },
  settings: { batch: 8, steps: 25, lr: 3e-3, calibrationBatches: 2, validationBatches: 2 },
  onEvent: (e) => {
    if (e.kind !== 'entry' && e.kind !== 'step') return;
    process.stdout.write(`${e.kind.toUpperCase()} ${e.layer}\n`);
    if (e.kind === 'entry') Atomics.wait(pause, 0, 0, 40);
  },
});
console.log('DONE');
