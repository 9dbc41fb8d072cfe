/**
 * `npm run bench -- parallel`: one large trace decoded on a worker pool
 * (src/analyses/parallel) against the serial decode, for `flow` (the
 * control-flow stream, counted) and `analyze` (default detectors, run in
 * the workers and merged from segment summaries). The
 * trace is the real mruby trace concatenated PTSCOPE_BENCH_PARALLEL_COPIES
 * times (default 12; each copy starts at a PSB, and all share one image).
 * Prints the time and speed-up for 1, 2 and 4 workers, each on a pool
 * started for the run and again on the started pool, the CPU time the
 * whole process used (all threads: what the parallel run costs beyond the
 * serial one) and the load average (the machine may be shared); every
 * parallel result is checked against the serial one.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { analyzeTrace } from '../src/analyses/analyze.js';
import { analyzeParallel, flowStatsParallel } from '../src/analyses/parallel/parallel-analyze.js';
import { poolDecoder } from '../src/analyses/parallel/piece-pool.js';
import { insnDecoderFor, openTraceInput } from '../src/analyses/trace-input.js';
import { ControlFlowWalker, type FlowStats } from '../src/flow/control-flow.js';

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

export async function runParallelBench(realDir: string, benchDir: string): Promise<ParallelMeasurement[]> {
  const dir = join(realDir, 'mruby');
  if (!existsSync(join(dir, 'trace.pt'))) {
    console.log(`  (skipped: ${dir}/trace.pt not found)`);
    return [];
  }
  const copies = Math.max(1, Number(process.env.PTSCOPE_BENCH_PARALLEL_COPIES ?? 12));
  mkdirSync(benchDir, { recursive: true });
  const path = join(benchDir, `mruby-x${copies}.pt`);
  const one = readFileSync(join(dir, 'trace.pt'));
  if (!existsSync(path)) writeFileSync(path, Buffer.concat(Array.from({ length: copies }, () => one)));
  const options = { raw: [`${join(dir, 'seg_400000.bin')}:0x400000`], cpu: '6/158' };
  const open = () => openTraceInput(path, options);
  console.log(`  trace: mruby x${copies}, ${(one.length * copies / 1e6).toFixed(1)} MB; ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)} at start`);

  const out: ParallelMeasurement[] = [];
  for (const what of ['flow', 'analyze'] as const) {
    // Serial: what --jobs 1 runs.
    let t = process.hrtime.bigint();
    let cpu = process.cpuUsage();
    let serialStats: FlowStats;
    let serialFindings = 0;
    if (what === 'flow') {
      const input = open();
      serialStats = new ControlFlowWalker(insnDecoderFor(input), [{ onTransfer: () => {} }]).run();
    } else {
      const r = analyzeTrace(open());
      serialStats = r.flow;
      serialFindings = r.findings.length;
    }
    const serial = seconds(t);
    const serialCpu = cpuSeconds(cpu);
    const n = serialStats.instructions;
    out.push({ label: `${what}: serial (--jobs 1)`, mbps: n / serial / 1e6, unit: 'M insn/s', detail: `${serial.toFixed(2)} s, ${serialCpu.toFixed(2)} s CPU, ${n} insn, load average ${loadavg()[0]!.toFixed(1)}` });
    for (const workers of WORKERS) {
      const input = open();
      const decoder = poolDecoder(input, { path, options }, workers);
      try {
        // Cold: the pool starts with this run; warm: the same run again on the started pool (a long run's steady state).
        for (const warm of [false, true]) {
          t = process.hrtime.bigint();
          cpu = process.cpuUsage();
          let stats: FlowStats;
          let findings = 0;
          let pieces = 0;
          let replayed = '';
          if (what === 'flow') {
            const { pieces: n, ...w } = await flowStatsParallel(input, decoder);
            stats = w;
            pieces = n;
          } else {
            const r = await analyzeParallel(input, {}, decoder);
            stats = r.flow;
            findings = r.findings.length;
            pieces = r.pieces;
            replayed = `, ${r.replayedBodies} bodies replayed`;
          }
          const s = seconds(t);
          const used = cpuSeconds(cpu);
          if (JSON.stringify(stats) !== JSON.stringify(serialStats) || findings !== serialFindings) {
            console.log(`  WARNING: ${what} on ${workers} workers differs from serial: ${JSON.stringify(stats)} vs ${JSON.stringify(serialStats)}`);
          }
          out.push({
            label: `${what}: ${workers} worker${workers > 1 ? 's' : ''}${warm ? ', warm' : ''}`,
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
  const speedup = (what: string, w: number) => {
    const s = out.find((m) => m.label === `${what}: serial (--jobs 1)`)!;
    const p = out.find((m) => m.label === `${what}: ${w} worker${w > 1 ? 's' : ''}`)!;
    return (p.mbps / s.mbps).toFixed(2);
  };
  console.log(`  speed-up of 2 workers over serial: flow ${speedup('flow', 2)}x, analyze ${speedup('analyze', 2)}x (goal >= 1.8x); 4 workers: flow ${speedup('flow', 4)}x, analyze ${speedup('analyze', 4)}x`);
  const warm = (what: string, w: number) => (out.find((m) => m.label === `${what}: ${w} worker${w > 1 ? 's' : ''}, warm`)!.mbps / out.find((m) => m.label === `${what}: serial (--jobs 1)`)!.mbps).toFixed(2);
  console.log(`  on a started pool: 2 workers flow ${warm('flow', 2)}x, analyze ${warm('analyze', 2)}x; 4 workers flow ${warm('flow', 4)}x, analyze ${warm('analyze', 4)}x`);
  return out;
}
