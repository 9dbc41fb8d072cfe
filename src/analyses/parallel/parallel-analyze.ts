/**
 * `analyze --jobs N`: the trace is decoded in pieces on worker threads
 * (parallel-walk.ts) and the stitched control-flow stream is replayed, in
 * trace order, into the same detectors {@link analyzeTrace} runs, each
 * finding carrying the offset the serial decoder stood at. The result is
 * the serial one, field for field, except the timing.
 */
import { FlowLogPlayer } from '../../flow/parallel/flow-log.js';
import { createDetectors, type AnalyzeOptions, type AnalyzeResult } from '../analyze.js';
import type { TraceInput } from '../trace-input.js';
import type { PieceDecoder } from './piece-pool.js';
import { walkParallel, type ParallelPlan, type ProgressSink } from './parallel-walk.js';

export async function analyzeParallel(
  input: TraceInput,
  options: AnalyzeOptions,
  decoder: PieceDecoder,
  plan: ParallelPlan = {},
  progress?: ProgressSink,
): Promise<AnalyzeResult & { pieces: number }> {
  const started = process.hrtime.bigint();
  let player: FlowLogPlayer | null = null;
  const detectors = createDetectors(input, options, () => player?.at ?? 0);
  // FlowGuard reads packets itself (as in analyzeTrace); everything else gets the stitched stream.
  const standalone = detectors.filter((d) => (d as { standalone?: boolean }).standalone === true);
  const streaming = detectors.filter((d) => !standalone.includes(d));
  for (const d of standalone) (d as unknown as { runStandalone(): void }).runStandalone();
  let flow = { instructions: 0, transfers: 0, errors: 0, gaps: 0 };
  let pieces = 0;
  if (streaming.length > 0 || standalone.length === 0) {
    const walked = await walkParallel(input, decoder, plan, progress);
    player = new FlowLogPlayer(streaming);
    for (const log of walked.logs) player.play(log);
    player.end();
    flow = walked.stats;
    pieces = walked.pieces;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const findings = detectors.flatMap((d) => d.findings()).sort((a, b) => a.offset - b.offset);
  const unchecked = detectors.flatMap((d) => d.unchecked());
  if (flow.errors > 0) {
    unchecked.push({ detector: 'analyze', reason: `decode errors: ${flow.errors} stretches of the trace could not be decoded`, count: flow.errors, firstOffset: 0 });
  }
  return {
    input: input.name,
    pid: input.stream.pid,
    tid: input.stream.tid,
    detectors: detectors.map((d) => ({ name: d.name, parameters: d.parameters, stats: d.stats?.() ?? {} })),
    findings,
    unchecked,
    notes: input.notes,
    flow,
    seconds,
    instructionsPerSecond: seconds > 0 ? flow.instructions / seconds : 0,
    pieces,
  };
}
