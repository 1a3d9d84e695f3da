/**
 * Reading and writing block libraries on disk.
 *
 * `--library PATH` may be a directory or a JSON file, in either of two formats, told apart by
 * content:
 * - ours: `{"format": "puzzle-block-library", "version": 1, "scenario": {...}, "layers": [...]}`,
 *   exactly the {@link BlockLibrary} type (default file name `block_library.json`);
 * - NVIDIA's demo format (nvidia.ts), with `measurement_info.json` and `parent_block_stats.json`
 *   read from the same directory when present.
 * `--scenario FILE` replaces the scenario in both (NVIDIA's measurement_info.json keys work).
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SearchError } from './errors.js';
import type { BlockLibrary } from './library.js';
import { isRecord, validateLibrary, validateScenario } from './library.js';
import { fromNvidia, isNvidiaLibrary } from './nvidia.js';

/** The `format` tag of our own library files. */
export const LIBRARY_FORMAT = 'puzzle-block-library';
/** The file looked for when `--library` names a directory. */
export const LIBRARY_FILE = 'block_library.json';

export interface LoadOptions {
  /** A scenario file that replaces the library's own scenario. */
  readonly scenario?: string;
}

/** Loads a library from a directory or file in either supported format. */
export function loadLibrary(path: string, options: LoadOptions = {}): BlockLibrary {
  const file = isDirectory(path) ? join(path, LIBRARY_FILE) : path;
  const raw = readJson(file, '--library');
  let library: BlockLibrary;
  if (isRecord(raw) && raw['format'] === LIBRARY_FORMAT) {
    if (raw['version'] !== 1) {
      throw new SearchError('bad_library', `${file}: unsupported ${LIBRARY_FORMAT} version ${JSON.stringify(raw['version'])}; this build reads version 1`);
    }
    library = validateLibrary(raw, file);
  } else if (isNvidiaLibrary(raw)) {
    const dir = dirname(file);
    library = fromNvidia(
      {
        blockLibrary: raw,
        measurementInfo: readOptionalJson(join(dir, 'measurement_info.json')),
        parentBlockStats: readOptionalJson(join(dir, 'parent_block_stats.json')),
      },
      file,
    );
  } else {
    throw new SearchError(
      'bad_library',
      `${file}: not a block library; expected {"format": "${LIBRARY_FORMAT}", ...} or NVIDIA's {"layer_0": {...}, ...}`,
    );
  }
  if (options.scenario !== undefined) {
    const scenario = validateScenario(readJson(options.scenario, '--scenario'), options.scenario);
    library = { ...library, scenario };
  }
  return library;
}

/** Writes `library` in our own format (pretty JSON). */
export function saveLibrary(library: BlockLibrary, path: string): void {
  const { source: _source, ...body } = library;
  try {
    writeFileSync(path, `${JSON.stringify({ format: LIBRARY_FORMAT, version: 1, ...body }, null, 1)}\n`);
  } catch (cause) {
    throw new SearchError('io', `cannot write the library to ${path}: ${(cause as Error).message}`, { cause });
  }
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new SearchError('bad_library', `${what} ${path}: cannot read it (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new SearchError('bad_library', `${what} ${path}: not valid JSON (${(cause as Error).message})`, { cause });
  }
}

function readOptionalJson(path: string): unknown {
  try {
    statSync(path);
  } catch {
    return undefined;
  }
  return readJson(path, 'library file');
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
