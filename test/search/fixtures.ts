// Fixtures for the search tests: small random libraries made here (never NVIDIA's licensed data)
// and a brute-force reference that enumerates every architecture with plain loops.
import type { BlockLibrary, Variant } from '../../ts/search/index.js';

/** Deterministic PRNG for fixtures (independent of the code under test). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export interface RandomLibraryOptions {
  readonly layers: number;
  readonly variants: number;
  readonly seed: number;
  /** Small integer costs and scores, so exact ties are common. */
  readonly ties?: boolean;
}

/**
 * A library with stats memory_mib, runtime_ms, num_params and metrics kl_div, lm_loss. Variant 0
 * of every layer is the parent. Scenario: batch 4, sequence 10 (40 tokens per run).
 */
export function randomLibrary(options: RandomLibraryOptions): BlockLibrary {
  const random = rng(options.seed);
  const value = (scale: number) => (options.ties ? Math.floor(random() * 4) * scale : Math.round(random() * scale * 1000) / 1000);
  const layers = Array.from({ length: options.layers }, () => {
    const variants: Variant[] = Array.from({ length: options.variants }, (_, j) => ({
      name: `v${j}`,
      stats: { memory_mib: 10 + value(10), runtime_ms: 5 + value(5), num_params: 1000 + value(500) },
      metrics: { kl_div: j === 0 ? 0 : value(1), lm_loss: 2 + value(0.1) },
    }));
    return { variants, parent: 'v0' };
  });
  return { layers, scenario: { batch_size: 4, sequence_length: 10 }, source: `random(seed ${options.seed})` };
}

/** Limits on summed stats, as brute force checks them (a type alias, so it passes as `max`). */
export type Limits = {
  readonly memory_mib?: number;
  readonly runtime_ms?: number;
  readonly num_params?: number;
};

/** Every choice of one variant per layer. */
export function* allChoices(library: BlockLibrary): Generator<number[]> {
  const sizes = library.layers.map((layer) => layer.variants.length);
  const choice = sizes.map(() => 0);
  for (;;) {
    yield choice.slice();
    let i = 0;
    while (i < sizes.length && ++choice[i]! === sizes[i]) choice[i++] = 0;
    if (i === sizes.length) return;
  }
}

export function total(library: BlockLibrary, choice: readonly number[], name: string): number {
  let sum = 0;
  choice.forEach((j, i) => {
    const v = library.layers[i]!.variants[j]!;
    sum += v.stats[name] ?? v.metrics[name] ?? Number.NaN;
  });
  return sum;
}

/** The search's feasibility rule (2e-9 relative slack) applied by hand. */
export function fits(library: BlockLibrary, choice: readonly number[], limits: Limits): boolean {
  return Object.entries(limits).every(([name, limit]) => total(library, choice, name) <= limit + 2e-9 * Math.max(Math.abs(limit), 100));
}

/** The best objective over all feasible choices, or undefined when none is feasible. */
export function bruteForce(
  library: BlockLibrary,
  limits: Limits,
  objective = 'kl_div',
  sense: 'min' | 'max' = 'min',
  extra: (choice: number[]) => boolean = () => true,
): { value: number; choices: number[][] } | undefined {
  let best: { value: number; choices: number[][] } | undefined;
  for (const choice of allChoices(library)) {
    if (!fits(library, choice, limits) || !extra(choice)) continue;
    const value = total(library, choice, objective);
    const better = !best || (sense === 'min' ? value < best.value - 1e-12 : value > best.value + 1e-12);
    if (better) best = { value, choices: [choice] };
    else if (best && Math.abs(value - best.value) <= 1e-12) best.choices.push(choice);
  }
  return best;
}

/** Smallest value of `name` summed over choices meeting the other limits. */
export function smallestFeasible(library: BlockLibrary, name: keyof Limits, limits: Limits): number | undefined {
  const others = { ...limits };
  delete others[name];
  let least: number | undefined;
  for (const choice of allChoices(library)) {
    if (!fits(library, choice, others)) continue;
    const v = total(library, choice, name);
    if (least === undefined || v < least) least = v;
  }
  return least;
}

/** Choices as variant indices from a search result's layers. */
export function indices(result: { layers: readonly { index: number }[] }): number[] {
  return result.layers.map((l) => l.index);
}
