/**
 * How long work reports itself: a progress bar with ETA on a terminal, plain grep-able lines
 * otherwise, or one JSON object per event with --json.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  start(label: string, total: number): void;
  update(value: number, fields?: Record<string, string | number>): void;
  stop(): void;
  /** a line of text (never interleaved with the bar) */
  log(line: string): void;
  event(e: Record<string, unknown>): void;
}

export function createProgress(opts: { json?: boolean; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.json) {
    return {
      start: (label, total) => console.log(JSON.stringify({ event: 'start', label, total })),
      update: () => {},
      stop: () => {},
      log: () => {},
      event: (e) => console.log(JSON.stringify(e)),
    };
  }
  if (stream.isTTY) {
    let bar: cliProgress.SingleBar | null = null;
    return {
      start(label, total) {
        bar?.stop();
        bar = new cliProgress.SingleBar({
          stream, format: `${label} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted} | {info}`,
          hideCursor: true, etaBuffer: 20,
        }, cliProgress.Presets.shades_classic);
        bar.start(total, 0, { info: '' });
      },
      update(value, fields) {
        bar?.update(value, { info: fields ? Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' ') : '' });
      },
      stop() {
        bar?.stop();
        bar = null;
      },
      log(line) {
        if (bar) stream.write('\r\x1b[K');
        console.log(line);
      },
      event: () => {},
    };
  }
  // not a terminal: a plain line now and then (every ~5% of the work)
  let label = '';
  let total = 0;
  let last = -1;
  return {
    start(l, t) {
      label = l;
      total = t;
      last = -1;
    },
    update(value, fields) {
      const pct = total ? Math.floor((100 * value) / total) : 100;
      if (pct >= last + 5 || value === total) {
        last = pct;
        console.log(`${label} ${value}/${total} (${pct}%)${fields ? ' ' + Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' ') : ''}`);
      }
    },
    stop() {},
    log: (line) => console.log(line),
    event: () => {},
  };
}
