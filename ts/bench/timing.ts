/** Timing helpers for benchmarks: warm-up, repeats, median and spread. */
export interface Timing {
  median: number;
  min: number;
  max: number;
  /** (p90 - p10) / median, a robust spread */
  spread: number;
  samples: number[];
}

export function summarize(samples: number[]): Timing {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median, min: s[0], max: s[s.length - 1], spread: median ? (q(0.9) - q(0.1)) / median : 0, samples };
}

/** Runs fn `warmup` times untimed, then `repeats` times timed (milliseconds each). */
export async function timeIt(fn: () => Promise<void> | void, repeats: number, warmup = 1): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return summarize(samples);
}
