// Child process for the kill-and-resume test: a tiny pretraining run on synthetic sequences.
// Prints "STEP n" as it goes so the parent can kill it at chosen points.
import { pretrain } from '../../ts/train/pretrain.js';
import { tinyRun } from './tiny-run.js';

const out = process.argv[2];
await pretrain({ ...tinyRun(), outDir: out, onEvent: (e) => { if (e.kind === 'step') process.stdout.write(`STEP ${e.step}\n`); } });
console.log('DONE');
