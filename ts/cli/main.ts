/** The `puzzle` command line: one module per command, all thin layers over the library. */
import { Command } from 'commander';
import { PuzzleError } from '../core/errors.js';
import { registerSelfcheckCommand } from './selfcheck.js';
import { registerPretrainCommand } from './pretrain.js';
import { registerEvalCommands } from './eval.js';
import { registerLibraryCommands } from './library.js';
import { registerInspectCommand } from './inspect.js';
import { registerScoreCommand } from './score.js';
import { registerSearchCommand } from './search.js';
import { registerProfileCommand } from './profile.js';
import { registerDistillCommands } from './distill.js';
import { registerRunCommand } from './run.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('puzzle')
    .description('Puzzle: distillation-based neural architecture search for Llama-style models')
    .showHelpAfterError();
  registerSelfcheckCommand(program);
  registerPretrainCommand(program);
  registerEvalCommands(program);
  registerLibraryCommands(program);
  registerInspectCommand(program);
  registerScoreCommand(program);
  registerSearchCommand(program);
  registerProfileCommand(program);
  registerDistillCommands(program);
  registerRunCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof PuzzleError) {
      console.error(`puzzle: ${err.message} [${err.code}]`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}
