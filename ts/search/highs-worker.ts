/**
 * The source of a HiGHS worker thread, as plain JavaScript text started with `eval: true`.
 *
 * Why text: Node 20 cannot start a worker from a .ts file, and tsx/vitest only transform the main
 * thread, so a worker file under ts/ would run nowhere but in the compiled dist/. Keeping the
 * worker to a dumb transport (model in, solution out; every decision stays in typed main-thread
 * code) keeps this text small. It loads `highs` from the path the main thread resolved, so it
 * uses the same package copy, and it disposes every model it creates (Wasm memory is not
 * garbage-collected).
 *
 * Protocol: in `{ id, job: HighsJob }`, out `{ id, answer: HighsAnswer }` or `{ id, error, fatal }`;
 * `fatal` means the WebAssembly runtime aborted, after which it is unusable and the worker must go.
 */
export const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const ready = require(workerData.highsPath)();

function info(model, name) {
  try {
    const value = Number(model.info.get(name));
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

function solve(highs, job) {
  const model = highs.createModel(job.model);
  try {
    model.options.set(job.options);
    if (job.start) model.setSolution({ colValue: job.start });
    const run = model.run();
    const feasible = info(model, 'primal_solution_status') === 2;
    const solution = feasible ? model.getSolution() : null;
    const integer = job.model.integrality !== undefined;
    const dualOk = !integer && info(model, 'dual_solution_status') === 2;
    const objective = feasible ? model.getObjectiveValue() : null;
    return {
      modelStatus: run.modelStatus,
      feasible,
      objective: objective !== null && Number.isFinite(objective) ? objective : null,
      bound: integer ? info(model, 'mip_dual_bound') : null,
      gap: integer ? info(model, 'mip_gap') : null,
      nodes: integer ? (info(model, 'mip_node_count') ?? 0) : 0,
      colValue: solution ? solution.colValue : null,
      rowDual: solution && dualOk ? solution.rowDual : null,
      seconds: model.getRunTime(),
    };
  } finally {
    model.dispose();
  }
}

parentPort.on('message', async ({ id, job }) => {
  let highs;
  try {
    highs = await ready;
  } catch (error) {
    parentPort.postMessage({ id, error: 'cannot load HiGHS: ' + (error && error.message) });
    return;
  }
  try {
    const answer = solve(highs, job);
    const transfer = [answer.colValue, answer.rowDual].filter(Boolean).map((a) => a.buffer);
    parentPort.postMessage({ id, answer }, transfer);
  } catch (error) {
    const fatal = error instanceof WebAssembly.RuntimeError;
    parentPort.postMessage({ id, error: String((error && error.stack) || error), fatal });
  }
});
`;
