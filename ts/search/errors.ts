/**
 * The one error type the search throws. `code` is stable and machine-readable; the message names
 * the argument or file at fault and what was expected, so a CLI can print it as is.
 *
 * Codes in use:
 * - `bad_argument`: an option or API argument has the wrong shape or value.
 * - `bad_units`: a quantity such as "80GiB" or "2x" could not be parsed.
 * - `bad_library`: a block library (or scenario) file is missing, unreadable or malformed.
 * - `missing_stat`: a constraint or objective needs a stat or metric the library does not have.
 * - `no_parent`: a relative budget ("2x") needs the parent's variant, which the library does not mark.
 * - `no_scenario`: a throughput budget needs the scenario's batch size and sequence length.
 * - `solver_failed`: HiGHS ended with an error or an unexpected status.
 * - `verification_failed`: a returned solution failed the independent re-check (a bug, never shown as a result).
 * - `io`: an output file could not be written.
 */
export class SearchError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SearchError';
    this.code = code;
  }
}
