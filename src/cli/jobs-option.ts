/**
 * `--jobs N`, shared by the commands that can decode a trace in pieces on
 * a worker pool (analyze, flow, coverage, dump).
 */
import { availableParallelism } from 'node:os';
import { CliError } from './output.js';

/**
 * `--jobs N`: 1 to 256; default one per core (the pool's defaultJobs; not
 * imported from it, since loading the pool's modules costs a serial `dump`
 * more than decoding a small trace).
 */
export function parseJobs(text: string | undefined): number {
  if (text === undefined) return Math.max(1, availableParallelism());
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new CliError(`--jobs: expected a whole number from 1 to 256, got '${text}'.`);
  return n;
}
