// Child process for the pipeline kill test: runs `puzzle run` on a config, one line per event.
import { loadRunConfig } from '../../ts/run/config.js';
import { runPipeline } from '../../ts/run/pipeline.js';

const [config, out] = process.argv.slice(2);
await runPipeline(loadRunConfig(config), out, { onEvent: (e) => process.stdout.write(`${e.kind} ${'stage' in e ? e.stage : ''}\n`) });
console.log('DONE');
