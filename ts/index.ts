/**
 * puzzle as a library: the same functions the CLI uses.
 *
 *   import { loadModel, runEval, buildLibrary, search } from 'puzzle';
 *   const report = await runEval({ model: 'models/default-parent', data: 'builtin:gutenberg', tasks: true });
 */
export { PuzzleError } from './core/errors.js';
export { tensor, zeros, ids, to, disposeAll, type Tensor, type DeviceName } from './core/tensor.js';
export * as ops from './core/ops.js';
export { Block, type BlockShape, type RopeInputs } from './core/block.js';
export { AdamW, warmupCosine, type AdamWConfig, type ParamGroup } from './core/optim.js';
export { loadAddon } from './native/loader.js';

export { parseConfig, toHfConfig, modelParams, type ModelConfig, type LayerSpec, type AttentionSpec, type FfnSpec } from './model/config.js';
export { widthFromFfnMult, ffnMultForWidth, layerToBlockConfig, blockConfigToLayer, type DeciBlockConfig } from './model/decilm.js';
export { openModelFolder, loadModel, saveModel, type SaveOptions } from './model/hf.js';
export { LlamaModel, batchTensor, type KvCache, type ModelDType } from './model/llama.js';
export { generate, type GenerateOptions } from './model/generate.js';
export { openSafetensors, readFloat32, readInt32, writeSafetensors } from './model/safetensors.js';
export { ropeTables, inverseFrequencies } from './model/rope.js';

export * as data from './data/index.js';
export { loadSplits, packSplit } from './data/prepare.js';

export { evaluateLm, type LmMetrics } from './eval/lm.js';
export { evaluateChoices } from './eval/choice.js';
export { runEval, type EvalOptions, type EvalReport } from './eval/run.js';

export { pretrain, type PretrainOptions, type PretrainResult } from './train/pretrain.js';
export { runPretrain } from './cli/pretrain.js';

export { buildLibrary, type BuildOptions } from './library/build.js';
export { defaultSpace, layerVariants, type SearchSpaceConfig } from './library/space.js';
export { checkLibrary, mergeLibrary, readEntry, type LibraryEntry } from './library/store.js';
export { composeBlock } from './library/compose.js';
export { scoreLibrary, type ReplaceScore } from './score/replace1.js';

export * as search from './search/index.js';

export { profileSpace, additivityCheck, predict, type CostTable, type SubblockCost } from './profile/profile.js';
export { measureModel } from './profile/measure.js';
export { scenario, deviceFingerprint, gpuFingerprint, requireSameDevice, type ProfileScenario } from './profile/scenario.js';
export { profileSpaceCuda, compareSpeedCuda, layerList } from './profile/cuda.js';
export { buildSearchInput, readCostTable } from './library/search-input.js';

export { assembleChild, childConfig, readArchitecture, type Architecture } from './distill/assemble.js';
export { gkd, gkdBackward, DEFAULT_GKD_LOSSES, type GkdOptions, type GkdLosses, type GkdResult } from './distill/gkd.js';
export { compareSpeed, type SpeedComparison } from './distill/speedup.js';

/**
 * The whole pipeline, as `puzzle run` does it:
 *
 *   import { loadRunConfig, runPipeline } from 'puzzle';
 *   const config = loadRunConfig(undefined, ['gkd.steps=100']); // the demo, with an override
 *   const { report } = await runPipeline(config, 'runs/demo', { onEvent: (e) => console.log(e) });
 */
export { loadRunConfig, resolveConfig, applySets, DEMO_CONFIG, STAGES, type RunConfig, type StageName } from './run/config.js';
export { runPipeline, runLibrary, searchOptions, type RunEvent, type RunOptions, type RunResult } from './run/pipeline.js';
export { writeReport, resultTable } from './run/report.js';
