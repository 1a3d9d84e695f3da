// Child process for the scoring kill test: scores a built library, printing each stored score.
import { loadModel } from '../../ts/model/hf.js';
import { batchTensor } from '../../ts/model/llama.js';
import { scoreLibrary } from '../../ts/score/replace1.js';
import { packedFromArrays } from '../../ts/train/batches.js';
import { synthetic } from './tiny-run.js';

const [parentDir, lib] = process.argv.slice(2);
const validation = packedFromArrays(synthetic(32, 17, 12));
const parent = loadModel(parentDir);
const batches = [0, 1, 2, 3, 4, 5, 6, 7].map((k) => batchTensor(Array.from({ length: 4 }, (_, j) => Array.from(validation.get(k * 4 + j)))));
// after each stored score, a short pause: the parent's SIGKILL then lands between entries instead
// of racing a run that finishes before it arrives
const pause = new Int32Array(new SharedArrayBuffer(4));
await scoreLibrary(parent, lib, batches, (e) => {
  if (e.skipped) return;
  process.stdout.write(`SCORE ${e.score.layer} ${e.score.id}\n`);
  Atomics.wait(pause, 0, 0, 40);
});
console.log('DONE');
