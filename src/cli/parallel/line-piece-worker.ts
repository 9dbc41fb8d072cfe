/**
 * The worker side of `flow --jobs` and `dump --jobs` (a piscina worker):
 * decode one piece of the shared trace bytes into its lines and zoned
 * records (line-pieces.ts).
 */
import type { LinePiece } from '../../flow/parallel/zoned-lines.js';
import { dumpPieceTask } from './dump-pieces.js';
import { flowPieceTask } from './flow-pieces.js';
import type { LineTask } from './line-pieces.js';

export default function decodeLinePiece(task: LineTask): LinePiece {
  return task.command === 'flow' ? flowPieceTask(task) : dumpPieceTask(task);
}
