/**
 * `npm run bench -- parallel`: one large trace decoded on a worker pool
 * (src/analyses/parallel) against the serial decode, for `flow` (the
 * control-flow stream, counted) and `analyze` (default detectors, run in
 * the workers and merged from segment summaries). The
 * trace is the real mruby trace concatenated PTSCOPE_BENCH_PARALLEL_COPIES
 * times (default 12; each copy starts at a PSB, and all share one image).
 * First the cost of the pieces themselves, in one thread (pieceCost).
 * Then prints the time and speed-up for 1, 2 and 4 workers, each on a pool
 * started for the run and again on the started pool, the CPU time the
 * whole process used (all threads: what the parallel run costs beyond the
 * serial one) and the load average (the machine may be shared); every
 * parallel result is checked against the serial one.
 *
 * Then `flow` as the command runs it, ptxed's text and all, written to
 * /dev/null: `--jobs 1` (serial) against `--jobs 2` and `--jobs 4`, each
 * starting its own pool, on the mruby trace concatenated
 * PTSCOPE_BENCH_PARALLEL_TEXT_COPIES times (default 2: its text is some
 * 440 MB). The instruction count (`--stat`) is checked against serial.
 */
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { repeatedMruby } from './repeated-trace.js';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { analyzeTrace } from '../src/analyses/analyze.js';
import { analyzeParallel, flowStatsParallel } from '../src/analyses/parallel/parallel-analyze.js';
import { inThreadDecoder, poolDecoder, type PieceDecoder } from '../src/analyses/parallel/piece-pool.js';
import { insnDecoderFor, openTraceInput, type TraceInput } from '../src/analyses/trace-input.js';
import { ControlFlowWalker, type FlowStats } from '../src/flow/control-flow.js';
import { runFlowCommand } from '../src/cli/flow.js';
import { LineWriter } from '../src/cli/output.js';

export interface ParallelMeasurement {
  label: string;
  mbps: number;
  unit: string;
  detail?: string;
}

const WORKERS = [1, 2, 4];

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** CPU seconds of every thread of this process since `start`. */
function cpuSeconds(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

/** A row's label: `--jobs 1`, or a pool of `workers` (started before the run when `warm`). */
function rowLabel(what: string, workers: number | 'serial', warm = false): string {
  if (workers === 'serial') return `${what}: serial (--jobs 1)`;
  return `${what}: ${workers} worker${workers > 1 ? 's' : ''}${warm ? ', warm' : ''}`;
}

export async function runParallelBench(realDir: string, benchDir: string): Promise<ParallelMeasurement[]> {
  const dir = join(realDir, 'mruby');
  if (!existsSync(join(dir, 'trace.pt'))) {
    console.log(`  (skipped: ${dir}/trace.pt not found)`);
    return [];
  }
  const copies = Math.max(1, Number(process.env.PTSCOPE_BENCH_PARALLEL_COPIES ?? 12));
  const path = repeatedMruby(realDir, benchDir, copies);
  const one = readFileSync(join(dir, 'trace.pt'));
  const options = { raw: [`${join(dir, 'seg_400000.bin')}:0x400000`], cpu: '6/158' };
  const open = () => openTraceInput(path, options);
  console.log(`  trace: mruby x${copies}, ${(one.length * copies / 1e6).toFixed(1)} MB; ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)} at start`);

  const out: ParallelMeasurement[] = [];
  /** CPU seconds of each pool run, by its row's label. */
  const cpuOf = new Map<string, number>();
  out.push(...(await pieceCost(open)));
  for (const what of ['flow', 'analyze'] as const) {
    // Serial: what --jobs 1 runs.
    let t = process.hrtime.bigint();
    let cpu = process.cpuUsage();
    const { stats: serialStats, findings: serialFindings } = decodeSerial(what, open());
    const serial = seconds(t);
    const serialCpu = cpuSeconds(cpu);
    const n = serialStats.instructions;
    out.push({ label: rowLabel(what, 'serial'), mbps: n / serial / 1e6, unit: 'M insn/s', detail: `${serial.toFixed(2)} s, ${serialCpu.toFixed(2)} s CPU, ${n} insn, load average ${loadavg()[0]!.toFixed(1)}` });
    for (const workers of WORKERS) {
      const input = open();
      const decoder = poolDecoder(input, { path, options }, workers);
      try {
        // Cold: the pool starts with this run; warm: the same run again on the started pool (a long run's steady state).
        for (const warm of [false, true]) {
          t = process.hrtime.bigint();
          cpu = process.cpuUsage();
          const { stats, findings, pieces, replayedBodies } = await decodeInPieces(what, input, decoder);
          const replayed = replayedBodies === null ? '' : `, ${replayedBodies} bodies replayed`;
          const s = seconds(t);
          const used = cpuSeconds(cpu);
          if (JSON.stringify(stats) !== JSON.stringify(serialStats) || findings !== serialFindings) {
            console.log(`  WARNING: ${what} on ${workers} workers differs from serial: ${JSON.stringify(stats)} vs ${JSON.stringify(serialStats)}`);
          }
          const label = rowLabel(what, workers, warm);
          cpuOf.set(label, used);
          out.push({
            label,
            mbps: n / s / 1e6,
            unit: 'M insn/s',
            detail: `${s.toFixed(2)} s, ${(serial / s).toFixed(2)}x serial, ${used.toFixed(2)} s CPU (${(used / serialCpu).toFixed(2)}x serial), ${pieces} pieces${replayed}, ${warm ? 'pool started before' : 'pool start-up included'}, load average ${loadavg()[0]!.toFixed(1)}`,
          });
        }
      } finally {
        await decoder.close();
      }
    }
  }
  const mbpsOf = (label: string) => out.find((m) => m.label === label)!.mbps;
  const speedup = (what: string, w: number) => (mbpsOf(rowLabel(what, w)) / mbpsOf(rowLabel(what, 'serial'))).toFixed(2);
  console.log(`  speed-up of 2 workers over serial: flow ${speedup('flow', 2)}x, analyze ${speedup('analyze', 2)}x (goal >= 1.8x); 4 workers: flow ${speedup('flow', 4)}x, analyze ${speedup('analyze', 4)}x`);
  const warm = (what: string, w: number) => (mbpsOf(rowLabel(what, w, true)) / mbpsOf(rowLabel(what, 'serial'))).toFixed(2);
  console.log(`  on a started pool: 2 workers flow ${warm('flow', 2)}x, analyze ${warm('analyze', 2)}x; 4 workers flow ${warm('flow', 4)}x, analyze ${warm('analyze', 4)}x`);
  // What starting the pool costs: each worker loads its modules, opens the recording and warms up its own JIT.
  const startCpu = (what: string, w: number) => (cpuOf.get(rowLabel(what, w))! - cpuOf.get(rowLabel(what, w, true))!).toFixed(2);
  console.log(
    `  CPU of a cold pool's run over the same run on the started pool: 1 worker flow ${startCpu('flow', 1)} s, analyze ${startCpu('analyze', 1)} s; ` +
      `2 workers flow ${startCpu('flow', 2)} s, analyze ${startCpu('analyze', 2)} s`,
  );
  out.push(...(await flowTextBench(one, realDir, benchDir)));
  return out;
}

/** What one decode of the trace gave: its counts, findings and pieces (null for a serial decode, or flow's replays). */
interface Decoded {
  stats: FlowStats;
  findings: number;
  pieces: number;
  replayedBodies: number | null;
}

/** What --jobs 1 runs: flow's control-flow stream, counted, or analyze with the default detectors. */
function decodeSerial(what: 'flow' | 'analyze', input: TraceInput): Decoded {
  if (what === 'flow') return { stats: new ControlFlowWalker(insnDecoderFor(input), [{ onTransfer: () => {} }]).run(), findings: 0, pieces: 0, replayedBodies: null };
  const r = analyzeTrace(input);
  return { stats: r.flow, findings: r.findings.length, pieces: 0, replayedBodies: null };
}

/** The same, cut into pieces decoded by `decoder` and merged. */
async function decodeInPieces(what: 'flow' | 'analyze', input: TraceInput, decoder: PieceDecoder): Promise<Decoded> {
  if (what === 'flow') {
    const { pieces, ...stats } = await flowStatsParallel(input, decoder);
    return { stats, findings: 0, pieces, replayedBodies: null };
  }
  const r = await analyzeParallel(input, {}, decoder);
  return { stats: r.flow, findings: r.findings.length, pieces: r.pieces, replayedBodies: r.replayedBodies };
}

/**
 * What cutting into pieces costs, apart from the machine: \`analyze\` and
 * \`flow\` serially and as their pieces decoded one after the other in this
 * thread (the workers' code, no pool), alternating, after a pass of each
 * for the JIT; the fastest CPU time of each. On one thread no second core
 * takes part, so the ratio is the parallel decode's own extra work, and
 * 2 / ratio bounds its 2-worker speed-up on any machine.
 */
async function pieceCost(open: () => TraceInput): Promise<ParallelMeasurement[]> {
  const rounds = Math.max(1, Number(process.env.PTSCOPE_BENCH_PIECE_ROUNDS ?? 2));
  const out: ParallelMeasurement[] = [];
  for (const what of ['flow', 'analyze'] as const) {
    const serial = (): Decoded => decodeSerial(what, open());
    const pieces = (): Promise<Decoded> => {
      const input = open();
      return decodeInPieces(what, input, inThreadDecoder(input));
    };
    const n = serial().stats.instructions;
    if ((await pieces()).stats.instructions !== n) console.log(`  WARNING: ${what}: pieces in one thread counted other instructions than serial`);
    const best = { serial: Infinity, pieces: Infinity };
    for (let r = 0; r < rounds; r++) {
      let cpu = process.cpuUsage();
      serial();
      best.serial = Math.min(best.serial, cpuSeconds(cpu));
      cpu = process.cpuUsage();
      await pieces();
      best.pieces = Math.min(best.pieces, cpuSeconds(cpu));
    }
    const ratio = best.pieces / best.serial;
    out.push({
      label: `${what}: pieces in one thread over serial, CPU`,
      mbps: ratio,
      unit: 'x',
      detail: `${best.pieces.toFixed(2)} s against ${best.serial.toFixed(2)} s, fastest of ${rounds}; bounds 2 workers at ${(2 / ratio).toFixed(2)}x`,
    });
  }
  return out;
}

/** Output to /dev/null that keeps the `insn: N.` line of --stat. */
class NullWriter extends LineWriter {
  insn = '';

  override line(text: string): void {
    if (text.startsWith('insn: ')) this.insn = text;
    super.line(text);
  }
}

/** `flow --stat` with its text, as the command runs it, for --jobs 1, 2 and 4. */
async function flowTextBench(one: Buffer, realDir: string, benchDir: string): Promise<ParallelMeasurement[]> {
  const copies = Math.max(1, Number(process.env.PTSCOPE_BENCH_PARALLEL_TEXT_COPIES ?? 2));
  const dir = join(realDir, 'mruby');
  const path = repeatedMruby(realDir, benchDir, copies);
  const argv = ['--cpu', '6/158', '--raw', `${join(dir, 'seg_400000.bin')}:0x400000`, '--stat', '--pt', path];
  console.log(`  flow with its text to /dev/null: mruby x${copies}, ${(one.length * copies / 1e6).toFixed(1)} MB; load average ${loadavg()[0]!.toFixed(1)} at start`);
  const out: ParallelMeasurement[] = [];
  let serial = 0;
  let serialCpu = 0;
  let serialInsn = '';
  for (const jobs of [1, 2, 4]) {
    const fd = openSync('/dev/null', 'w');
    const writer = new NullWriter(fd);
    const t = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    let status: number;
    try {
      status = await runFlowCommand([...argv, '--jobs', String(jobs)], writer, (m) => console.log(`  flow: ${m}`));
      writer.flush();
    } finally {
      closeSync(fd);
    }
    const s = seconds(t);
    const used = cpuSeconds(cpu);
    const n = Number(/^insn: (\d+)\.$/.exec(writer.insn)?.[1] ?? NaN);
    if (jobs === 1) {
      serial = s;
      serialCpu = used;
      serialInsn = writer.insn;
    } else if (writer.insn !== serialInsn || status !== 0) {
      console.log(`  WARNING: flow --jobs ${jobs} differs from --jobs 1: ${writer.insn} (status ${status}) vs ${serialInsn}`);
    }
    out.push({
      label: `flow with text: --jobs ${jobs}`,
      mbps: n / s / 1e6,
      unit: 'M insn/s',
      detail: `${s.toFixed(2)} s, ${(serial / s).toFixed(2)}x serial, ${used.toFixed(2)} s CPU (${(used / serialCpu).toFixed(2)}x serial), pool start-up included, load average ${loadavg()[0]!.toFixed(1)}`,
    });
  }
  return out;
}
