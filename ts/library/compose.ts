/**
 * Decoupled subblocks composed into one decoder block, exactly as the search combines them:
 * the attention half from one library entry, the FFN half from another.
 */
import { Block } from '../core/block.js';
import type { DeviceName } from '../core/tensor.js';
import { PuzzleError } from '../core/errors.js';
import type { ModelConfig } from '../model/config.js';
import { blockShape, type ModelDType } from '../model/llama.js';
import { loadEntryWeights, type LibraryEntry } from './store.js';

export function composeBlock(c: ModelConfig, lib: string, attention: LibraryEntry, ffn: LibraryEntry, device: DeviceName = 'cpu', dtype: ModelDType = 'float32'): Block {
  if (attention.layer !== ffn.layer) throw new PuzzleError('ERR_PUZZLE_ARG', `composeBlock: entries of layers ${attention.layer} and ${ffn.layer}`);
  if (!attention.attention || !ffn.ffn) throw new PuzzleError('ERR_PUZZLE_LIBRARY', `composeBlock: ${attention.id} has no attention half or ${ffn.id} no FFN half`);
  const block = new Block({ ...blockShape(c, { attention: attention.attention, ffn: ffn.ffn }), device, dtype });
  try {
    // each entry file holds only its own half, so loading both fills the block
    loadEntryWeights(lib, attention, block);
    if (ffn !== attention) loadEntryWeights(lib, ffn, block);
  } catch (err) {
    block.dispose();
    throw err;
  }
  return block;
}
