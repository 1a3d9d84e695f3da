/**
 * A pool of worker threads that run HiGHS solves. HiGHS-in-WebAssembly blocks the thread that
 * calls it, so every solve runs off the main thread: a single search keeps the event loop free,
 * and a Pareto sweep spreads its points over `size` workers. Workers start on first use, are
 * unref'd while idle (a forgotten pool never keeps the process alive), and `close()` ends them.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { SearchError } from './errors.js';
import type { HighsAnswer, HighsJob } from './highs-job.js';
import { WORKER_SOURCE } from './highs-worker.js';

export interface HighsPool {
  /** Number of worker threads the pool may run at once. */
  readonly size: number;
  /** Solves one model on the next free worker. */
  solve(job: HighsJob): Promise<HighsAnswer>;
  /** Ends every worker; pending solves are rejected. Idempotent. */
  close(): Promise<void>;
}

interface Pending {
  readonly id: number;
  readonly job: HighsJob;
  readonly resolve: (answer: HighsAnswer) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  readonly worker: Worker;
  current: Pending | undefined;
}

type Reply = { id: number; answer: HighsAnswer; error?: undefined } | { id: number; error: string; fatal: boolean };

/**
 * The job's typed-array buffers. Jobs are built fresh for each solve and not read afterwards, so
 * their buffers are moved to the worker instead of copied.
 */
function transferables(job: HighsJob): ArrayBuffer[] {
  const { model } = job;
  const arrays = [model.colCost, model.colLower, model.colUpper, model.rowLower, model.rowUpper, model.matrix.starts, model.matrix.indices, model.matrix.values, model.integrality, job.start];
  const buffers = new Set<ArrayBuffer>();
  for (const array of arrays) if (array && array.buffer instanceof ArrayBuffer) buffers.add(array.buffer);
  return [...buffers];
}

/** Creates a pool of `size` HiGHS worker threads (at least 1). */
export function createHighsPool(size = 1): HighsPool {
  if (!Number.isInteger(size) || size < 1) throw new SearchError('bad_argument', `threads must be a positive integer, got ${size}`);
  const highsPath = createRequire(import.meta.url).resolve('highs');
  const slots: Slot[] = [];
  const queue: Pending[] = [];
  let nextId = 0;
  let closed = false;

  const fail = (slot: Slot, error: Error) => {
    const index = slots.indexOf(slot);
    if (index >= 0) slots.splice(index, 1);
    slot.current?.reject(error);
    slot.current = undefined;
    void slot.worker.terminate();
    dispatch();
  };

  const spawn = (): Slot => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { highsPath } });
    const slot: Slot = { worker, current: undefined };
    worker.on('message', (reply: Reply) => {
      const pending = slot.current;
      if (!pending || pending.id !== reply.id) return;
      if (reply.error !== undefined && reply.fatal) {
        // An aborted WebAssembly runtime stays broken: retire the worker, later jobs get a fresh one.
        fail(slot, new SearchError('solver_failed', `HiGHS aborted: ${reply.error}`));
        return;
      }
      slot.current = undefined;
      if (reply.error !== undefined) pending.reject(new SearchError('solver_failed', `HiGHS failed: ${reply.error}`));
      else pending.resolve(reply.answer);
      dispatch();
    });
    worker.on('error', (error) => fail(slot, new SearchError('solver_failed', `HiGHS worker crashed: ${error.message}`, { cause: error })));
    worker.on('exit', (code) => {
      if (!closed && slots.includes(slot)) fail(slot, new SearchError('solver_failed', `HiGHS worker exited with code ${code}`));
    });
    slots.push(slot);
    return slot;
  };

  const dispatch = () => {
    while (!closed && queue.length > 0) {
      let slot = slots.find((s) => s.current === undefined);
      if (!slot && slots.length < size) slot = spawn();
      if (!slot) break;
      const pending = queue.shift() as Pending;
      slot.current = pending;
      slot.worker.ref();
      slot.worker.postMessage({ id: pending.id, job: pending.job }, transferables(pending.job));
    }
    for (const slot of slots) if (slot.current === undefined) slot.worker.unref();
  };

  return {
    size,
    solve(job) {
      if (closed) return Promise.reject(new SearchError('bad_argument', 'the HiGHS pool is closed'));
      return new Promise<HighsAnswer>((resolve, reject) => {
        queue.push({ id: nextId++, job, resolve, reject });
        dispatch();
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      const error = new SearchError('solver_failed', 'the HiGHS pool was closed before the solve finished');
      for (const pending of queue.splice(0)) pending.reject(error);
      for (const slot of slots) slot.current?.reject(error);
      await Promise.all(slots.splice(0).map((slot) => slot.worker.terminate()));
    },
  };
}
