/**
 * ptscope benchmarks. Each benchmark is a named section; run all with
 * `npm run bench`, or some with `npm run bench -- packets ...`.
 *
 * Inputs are synthesized once and cached under build/bench/ (regenerated
 * when missing). Comparisons run libipt (Debian's 2.0.5) through our
 * oracle, test/oracle/ptoracle.c, in the same run.
 *
 * Environment: PTSCOPE_BENCH_MB sets the packet trace size (default 256),
 * PTSCOPE_BENCH_ROUNDS the number of alternating measurement rounds (3).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '../src/packets/errors.js';
import { Packet } from '../src/packets/packet.js';
import { PacketStream } from '../src/packets/packet-stream.js';
import { BufferSource, FileSource, type TraceSource } from '../src/packets/trace-source.js';
import { writeRealisticTrace } from './synthetic-trace.js';
import { runParallelBench } from './parallel.js';
import { runMemoryBench } from './memory-peaks.js';
import { repeatedMruby as repeatedMrubyIn } from './repeated-trace.js';
import { runParallelPairsBench } from './parallel-pairs.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { ControlFlowWalker, type FlowStats } from '../src/flow/control-flow.js';
import { benchAnalyze } from '../src/analyses/analyze.js';
import { openTraceInput } from '../src/analyses/trace-input.js';
import { edgesBench } from './edges.js';
import { countBelowFlow, countInstructions, type FlowCount } from './flow-count.js';
import { runRecordCostBench } from './record-cost.js';
import { runStartupBench } from './startup.js';
import { timedRun } from './process-timing.js';

/** Repository root: this file runs as dist/bench/run.js, or as bench/run.ts. */
const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();
const BENCH_DIR = join(ROOT, 'build', 'bench');

/** One measured result line. */
interface Measurement {
  label: string;
  /** The rate, in `unit`. */
  mbps: number;
  /** Default 'MB/s'. */
  unit?: string;
  detail?: string;
}

/** A benchmark section: prints its own details, returns its measurements. */
interface Bench {
  name: string;
  description: string;
  run(): Measurement[] | Promise<Measurement[]>;
}

// ---------------------------------------------------------------------------
// Shared helpers

/** Build the libipt oracle if needed (same steps as test/helpers/oracle.ts). */
function oracleBinary(): string | null {
  const bin = join(ROOT, 'build', 'oracle', 'ptoracle');
  const src = join(ROOT, 'test', 'oracle', 'ptoracle.c');
  if (!existsSync(bin) || (existsSync(src) && statSync(bin).mtimeMs < statSync(src).mtimeMs)) {
    const res = spawnSync('bash', [join(ROOT, 'test', 'oracle', 'build.sh')], { encoding: 'utf8' });
    if (res.status !== 0) {
      console.log(`  (libipt oracle unavailable: ${(res.stderr || res.stdout || String(res.error)).trim()})`);
      return null;
    }
  }
  return bin;
}

/** Parse the oracle's `key value` lines. */
function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}

/** Run `fn` `passes` times; returns the fastest pass in seconds and its result. */
function fastest<T>(passes: number, fn: () => T): { seconds: number; result: T } {
  let best = Infinity;
  let result!: T;
  for (let i = 0; i < passes; i++) {
    const t0 = process.hrtime.bigint();
    result = fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (s < best) best = s;
  }
  return { seconds: best, result };
}

/** The oracle's BENCH_MIN_SECONDS (test/oracle/ptoracle.c): how long one timed round repeats passes. */
const MIN_ROUND_SECONDS = 1.0;

/**
 * Run `fn` back to back until at least {@link MIN_ROUND_SECONDS} have passed;
 * returns the mean seconds per pass and the last result. This is the loop
 * the C oracle times libipt with (mode_bench_flow), so both sides are
 * measured the same way.
 */
function meanOverRound<T>(fn: () => T): { seconds: number; result: T } {
  let passes = 0;
  let result!: T;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    result = fn();
    passes++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (elapsed < MIN_ROUND_SECONDS);
  return { seconds: elapsed / passes, result };
}

// ---------------------------------------------------------------------------
// packets: raw packet decode throughput, ptscope vs libipt

const TRACE_MB = Number(process.env.PTSCOPE_BENCH_MB ?? 256);
/** Alternating measurement rounds; the fastest of each side is kept. */
const ROUNDS = Number(process.env.PTSCOPE_BENCH_ROUNDS ?? 3);

/** The synthetic packet trace of a mix (realistic, or TNT-heavy), generated on first use. */
function packetTrace(mix: 'realistic' | 'tnt' = 'realistic'): string {
  const bytes = TRACE_MB * 2 ** 20;
  const file = join(BENCH_DIR, mix === 'realistic' ? `packets-${TRACE_MB}m.pt` : `packets-${mix}-${TRACE_MB}m.pt`);
  if (existsSync(file) && statSync(file).size >= bytes) return file;
  mkdirSync(BENCH_DIR, { recursive: true });
  console.log(`  generating ${file} (${TRACE_MB} MiB, ${mix} mix, cached for later runs)...`);
  const t0 = performance.now();
  const tmp = `${file}.tmp${process.pid}`;
  const packets = writeRealisticTrace(tmp, bytes, 1, mix);
  renameSync(tmp, file);
  console.log(`  ${packets} packets in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return file;
}

/**
 * Decode every packet, resyncing after errors: the loop of `ptscope dump
 * --stat`, with one reused Packet. Returns the packet count.
 */
export function decodeAllPackets(source: TraceSource): number {
  const stream = new PacketStream(source);
  const pkt = new Packet();
  let packets = 0;
  let err = stream.syncForward();
  while (err >= 0) {
    for (;;) {
      err = stream.next(pkt);
      if (err < 0) break;
      packets++;
    }
    if (err === -ErrorCode.Eos) break;
    err = stream.syncForward();
  }
  return packets;
}

const packetsBench: Bench = {
  name: 'packets',
  description: 'packet decode throughput on a realistic synthetic trace (ptscope vs libipt 2.0.5)',
  run() {
    const file = packetTrace();
    const size = statSync(file).size;
    const mb = size / 1e6;
    console.log(`  trace: ${file} (${mb.toFixed(1)} MB)`);
    const results: Measurement[] = [];

    // The machine may be shared: alternate ptscope and libipt passes and
    // keep the fastest of each, so that both see the same conditions.
    const inMemory = new Uint8Array(readFileSync(file));
    const oracle = oracleBinary();
    decodeAllPackets(new FileSource(file)); // warm-up: JIT and page cache
    let fileBest = { seconds: Infinity, result: 0 };
    let memBest = { seconds: Infinity, result: 0 };
    let libipt: Record<string, number> | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      const f = fastest(1, () => decodeAllPackets(new FileSource(file)));
      if (f.seconds < fileBest.seconds) fileBest = f;
      const m = fastest(1, () => decodeAllPackets(new BufferSource(inMemory)));
      if (m.seconds < memBest.seconds) memBest = m;
      if (oracle) {
        // The oracle loads the file into memory, then times whole passes.
        const res = spawnSync(oracle, ['bench-packets', file], { encoding: 'utf8', maxBuffer: 1 << 20 });
        if (res.status !== 0) throw new Error(`ptoracle bench-packets failed: ${res.stderr}`);
        const kv = parseKeyValues(res.stdout);
        if (!libipt || kv.mbps > libipt.mbps) libipt = kv;
      }
    }
    results.push({ label: 'ptscope (PacketStream over FileSource, as dump --stat)', mbps: mb / fileBest.seconds, detail: `${fileBest.result} packets` });
    results.push({ label: 'ptscope (PacketStream over an in-memory buffer)', mbps: mb / memBest.seconds, detail: `${memBest.result} packets` });
    if (libipt) {
      results.push({ label: 'libipt 2.0.5 (pt_pkt_next over an in-memory buffer)', mbps: libipt.mbps, detail: `${libipt.packets} packets` });
      if (libipt.packets !== fileBest.result) {
        console.log(`  WARNING: packet counts differ: ptscope ${fileBest.result}, libipt ${libipt.packets}`);
      }
      console.log(`  ratio ptscope/libipt: ${(results[0].mbps / libipt.mbps).toFixed(2)}x (file), ` +
        `${(results[1].mbps / libipt.mbps).toFixed(2)}x (memory); goal >= 1.00x`);
    }
    return results;
  },
};

// ---------------------------------------------------------------------------
// flow: instruction-flow reconstruction on the real mruby trace, ptscope's
// instruction and block decoders vs libipt's instruction decoder

const REAL = join(ROOT, '..', 'shared', 'traces', 'real');

const flowBench: Bench = {
  name: 'flow',
  description: 'instruction-flow decode on the real mruby trace, in process (ptscope insn/block decoders vs libipt insn/block decoders)',
  run() {
    const dir = join(REAL, 'mruby');
    const tracePath = join(dir, 'trace.pt');
    if (!existsSync(tracePath)) {
      console.log(`  (skipped: ${tracePath} not found; the shared folder must sit beside the repository)`);
      return [];
    }
    const trace = new Uint8Array(readFileSync(tracePath));
    const images = [{ file: join(dir, 'seg_400000.bin'), address: 0x400000 }];
    const oracle = oracleBinary();
    const results: Measurement[] = [];
    const none: FlowCount = { insn: 0, blocks: 0 };
    let insnBest = { seconds: Infinity, result: none };
    let blockBest = { seconds: Infinity, result: none };
    let libipt: Record<string, number> | undefined;
    let libiptBlk: Record<string, number> | undefined;
    // Every pass starts with a new image, so its instruction and block
    // caches start empty, like libipt's (the oracle allocates a decoder per
    // pass, and libipt frees a section's block cache with its last mapping).
    // Each side repeats passes for a second per round and reports the mean
    // pass, the oracle's loop. First a second of each for the JIT: V8 needs
    // several passes to optimize the decoders, which a C library is spared;
    // the `process` section measures whole runs, start-up and JIT included.
    meanOverRound(() => countInstructions('insn', trace, images, '6/158'));
    meanOverRound(() => countInstructions('block', trace, images, '6/158'));
    // The layers the flow decoders stand on, timed alone the same way: what
    // a pass costs before a single block is walked.
    meanOverRound(() => countBelowFlow('events', trace, '6/158'));
    let packetsBest = { seconds: Infinity, result: 0 };
    let eventsBest = { seconds: Infinity, result: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const p = meanOverRound(() => countBelowFlow('packets', trace, '6/158'));
      if (p.seconds < packetsBest.seconds) packetsBest = p;
      const e = meanOverRound(() => countBelowFlow('events', trace, '6/158'));
      if (e.seconds < eventsBest.seconds) eventsBest = e;
      const a = meanOverRound(() => countInstructions('insn', trace, images, '6/158'));
      if (a.seconds < insnBest.seconds) insnBest = a;
      const b = meanOverRound(() => countInstructions('block', trace, images, '6/158'));
      if (b.seconds < blockBest.seconds) blockBest = b;
      if (oracle) {
        const res = spawnSync(oracle, ['bench-insn', '--cpu', '6/158', '--raw', `${images[0].file}:0x400000`, tracePath], { encoding: 'utf8' });
        if (res.status !== 0) throw new Error(`ptoracle bench-insn failed: ${res.stderr}`);
        const kv = parseKeyValues(res.stdout);
        if (!libipt || kv.ips > libipt.ips) libipt = kv;
        const resBlk = spawnSync(oracle, ['bench-blk', '--cpu', '6/158', '--raw', `${images[0].file}:0x400000`, tracePath], { encoding: 'utf8' });
        if (resBlk.status !== 0) throw new Error(`ptoracle bench-blk failed: ${resBlk.stderr}`);
        const kvBlk = parseKeyValues(resBlk.stdout);
        if (!libiptBlk || kvBlk.ips > libiptBlk.ips) libiptBlk = kvBlk;
      }
    }
    const blk = blockBest.result;
    console.log(`  block decoder: ${blk.blocks} blocks, ${(blk.insn / blk.blocks).toFixed(1)} insn/block`);
    results.push({ label: 'ptscope instruction decoder', mbps: insnBest.result.insn / insnBest.seconds / 1e6, unit: 'M insn/s', detail: `${insnBest.result.insn} insn` });
    results.push({ label: 'ptscope block decoder', mbps: blk.insn / blockBest.seconds / 1e6, unit: 'M insn/s', detail: `${blk.insn} insn` });
    if (blk.insn !== insnBest.result.insn) console.log(`  WARNING: instruction counts differ: insn ${insnBest.result.insn}, block ${blk.insn}`);
    if (libipt && libiptBlk) {
      results.push({ label: 'libipt 2.0.5 instruction decoder (pt_insn_next)', mbps: libipt.ips / 1e6, unit: 'M insn/s', detail: `${libipt.insn} insn` });
      results.push({ label: 'libipt 2.0.5 block decoder (pt_blk_next)', mbps: libiptBlk.ips / 1e6, unit: 'M insn/s', detail: `${libiptBlk.insn} insn` });
      if (libipt.insn !== insnBest.result.insn) console.log(`  WARNING: instruction counts differ: ptscope ${insnBest.result.insn}, libipt ${libipt.insn}`);
      if (libiptBlk.insn !== blk.insn) console.log(`  WARNING: block-decoder instruction counts differ: ptscope ${blk.insn}, libipt ${libiptBlk.insn}`);
      console.log(`  ratio ptscope/libipt, like for like: ${(results[0].mbps / results[2].mbps).toFixed(2)}x (insn vs pt_insn_next), ` +
        `${(results[1].mbps / results[3].mbps).toFixed(2)}x (block vs pt_blk_next); goal >= 2.00x`);
      const ms = (seconds: number): string => `${(seconds * 1e3).toFixed(1)} ms`;
      const blkSeconds = libiptBlk.insn / libiptBlk.ips;
      console.log(`  per pass: packets alone ${ms(packetsBest.seconds)} (${packetsBest.result} packets), events alone ${ms(eventsBest.seconds)} ` +
        `(${eventsBest.result} events); ptscope's block decoder ${ms(blockBest.seconds)}, pt_blk_next ${ms(blkSeconds)}, ` +
        `so 2x pt_blk_next leaves ${ms(blkSeconds / 2)} a pass, ${ms(blkSeconds / 2 - eventsBest.seconds)} of it past the events ` +
        `(${((blkSeconds / 2 - eventsBest.seconds) / blk.blocks * 1e9).toFixed(1)} ns a block)`);
      // The instruction decoder hands out the instructions of the blocks its block decoder walks.
      const insnSeconds = libipt.insn / libipt.ips;
      const handOut = insnSeconds / 2 - blockBest.seconds;
      console.log(`  per pass: ptscope's instruction decoder ${ms(insnBest.seconds)}, pt_insn_next ${ms(insnSeconds)}, so 2x pt_insn_next leaves ` +
        `${ms(insnSeconds / 2)} a pass, ${ms(handOut)} of it past ptscope's block decoder (${(handOut / blk.insn * 1e9).toFixed(1)} ns an instruction)`);
    }
    return results;
  },
};

// ---------------------------------------------------------------------------
// analyze: the control-flow stream and the detectors on the real mruby trace

/** One walk of the control-flow stream with a consumer that only counts transfers. */
function walkTrace(mode: 'insn' | 'block', trace: Uint8Array, file: string): FlowStats {
  const input = openTraceInput(join(REAL, 'mruby', 'trace.pt'), { raw: [`${file}:0x400000`], cpu: '6/158' });
  const packets = new PacketDecoder(trace, { skd007: input.config.errata.skd007 });
  const dec = new InsnDecoder(packets, input.config, input.image);
  let transfers = 0;
  return new ControlFlowWalker(dec, [{ onTransfer: () => void transfers++ }]).run(mode);
}

const analyzeBench: Bench = {
  name: 'analyze',
  description: 'control-flow walker (instructions vs blocks) and `ptscope analyze` (default detectors) on the real mruby trace',
  run() {
    const dir = join(REAL, 'mruby');
    const tracePath = join(dir, 'trace.pt');
    if (!existsSync(tracePath)) {
      console.log(`  (skipped: ${tracePath} not found)`);
      return [];
    }
    const trace = new Uint8Array(readFileSync(tracePath));
    const file = join(dir, 'seg_400000.bin');
    walkTrace('insn', trace, file); // warm-up
    walkTrace('block', trace, file);
    let insnBest = Infinity;
    let blockBest = Infinity;
    let stats: FlowStats | undefined;
    let analyze: ReturnType<typeof benchAnalyze> | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      const a = fastest(1, () => walkTrace('insn', trace, file));
      insnBest = Math.min(insnBest, a.seconds);
      const b = fastest(1, () => walkTrace('block', trace, file));
      blockBest = Math.min(blockBest, b.seconds);
      if (a.result.transfers !== b.result.transfers || a.result.instructions !== b.result.instructions) {
        console.log(`  WARNING: walker modes differ: ${JSON.stringify(a.result)} vs ${JSON.stringify(b.result)}`);
      }
      stats = b.result;
      const input = openTraceInput(tracePath, { raw: [`${file}:0x400000`], cpu: '6/158' });
      const r = benchAnalyze(input);
      if (!analyze || r.instructionsPerSecond > analyze.instructionsPerSecond) analyze = r;
    }
    const n = stats!.instructions;
    console.log(`  ${n} instructions, ${stats!.transfers} transfers, ${stats!.gaps} gaps, ${stats!.errors} errors`);
    return [
      { label: 'ControlFlowWalker, instruction by instruction', mbps: n / insnBest / 1e6, unit: 'M insn/s' },
      { label: 'ControlFlowWalker, by blocks (no onInstruction consumer)', mbps: n / blockBest / 1e6, unit: 'M insn/s' },
      {
        label: 'ptscope analyze (default detectors, decode included)',
        mbps: analyze!.instructionsPerSecond / 1e6,
        unit: 'M insn/s',
        detail: `${analyze!.instructions} insn, ${analyze!.findings} findings`,
      },
    ];
  },
};

// ---------------------------------------------------------------------------
// process: whole-process runs, what a user sees: `ptscope dump --stat` and
// `ptscope flow --quiet --stat` against small C programs with the same
// loops over libipt (bench/c/ptstat.c), each started as a process and timed
// from here, alternating, fastest of the rounds kept.

/** Build bench/c/ptstat.c (libipt's loops, counting only) if needed. */
function ptstatBinary(): string | null {
  const bin = join(BENCH_DIR, 'ptstat');
  const src = join(ROOT, 'bench', 'c', 'ptstat.c');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(BENCH_DIR, { recursive: true });
    const res = spawnSync('gcc', ['-O2', '-o', bin, src, '-lipt'], { encoding: 'utf8' });
    if (res.status !== 0) {
      console.log(`  (bench/c/ptstat.c does not build: ${(res.stderr || String(res.error)).trim()})`);
      return null;
    }
  }
  return bin;
}

/** The real mruby trace repeated `copies` times (a longer run of the same program), cached. */
function repeatedMruby(copies: number): string {
  return repeatedMrubyIn(REAL, BENCH_DIR, copies);
}

const FLOW_COPIES = 10;

const processBench: Bench = {
  name: 'process',
  description: 'whole-process runs: ptscope dump --stat and flow --quiet --stat vs C programs with the same libipt loops',
  run() {
    const ptstat = ptstatBinary();
    if (!ptstat) return [];
    const cli = join(ROOT, 'bin', 'ptscope.js');
    const node = process.execPath;
    const results: Measurement[] = [];
    const compare = (what: string, unit: string, amount: number, ours: string[], theirs: string[], count: (out: string) => number): void => {
      let best = { ours: Infinity, theirs: Infinity, oursCount: 0, theirsCount: 0 };
      timedRun(node, ours); // warm-up: page cache
      for (let round = 0; round < ROUNDS; round++) {
        const a = timedRun(node, ours);
        const b = timedRun(ptstat, theirs);
        if (a.seconds < best.ours) best = { ...best, ours: a.seconds, oursCount: count(a.stdout) };
        if (b.seconds < best.theirs) best = { ...best, theirs: b.seconds, theirsCount: Number(/^\S+ (\d+)/.exec(b.stdout)?.[1]) };
      }
      results.push({ label: `ptscope ${what}`, mbps: amount / best.ours, unit, detail: `${best.ours.toFixed(2)} s, ${best.oursCount} counted` });
      results.push({ label: `libipt 2.0.5, same loop (ptstat ${theirs[0]})`, mbps: amount / best.theirs, unit, detail: `${best.theirs.toFixed(2)} s, ${best.theirsCount} counted` });
      if (best.oursCount !== best.theirsCount) console.log(`  WARNING: ${what}: counts differ: ptscope ${best.oursCount}, libipt ${best.theirsCount}`);
      console.log(`  ratio ptscope/libipt (${what}): ${(best.theirs / best.ours).toFixed(2)}x`);
    };
    for (const mix of ['realistic', 'tnt'] as const) {
      const file = packetTrace(mix);
      const mb = statSync(file).size / 1e6;
      const total = (out: string) => Number(/^total\s+(\d+)/m.exec(out)?.[1]);
      compare(`dump --stat, ${mix} mix (${mb.toFixed(0)} MB)`, 'MB/s', mb, [cli, 'dump', '--stat', file], ['packets', file], total);
    }
    const dir = join(REAL, 'mruby');
    if (!existsSync(join(dir, 'trace.pt'))) {
      console.log('  (flow runs skipped: the shared real traces are not beside the repository)');
      return results;
    }
    const trace = repeatedMruby(FLOW_COPIES);
    const raw = `${join(dir, 'seg_400000.bin')}:0x400000`;
    const insnOf = (out: string) => Number(/^insn: (\d+)\./m.exec(out)?.[1]);
    const first = timedRun(ptstat, ['insn', '--cpu', '6/158', '--raw', raw, trace]);
    const insn = Number(/^insn (\d+)/m.exec(first.stdout)?.[1]) / 1e6;
    const label = `mruby trace x${FLOW_COPIES}`;
    compare(`flow --quiet --stat (insn decoder, ${label})`, 'M insn/s', insn, [cli, 'flow', '--quiet', '--stat', '--cpu', '6/158', '--raw', raw, '--pt', trace], ['insn', '--cpu', '6/158', '--raw', raw, trace], insnOf);
    compare(`flow --quiet --stat --block-decoder (${label})`, 'M insn/s', insn, [cli, 'flow', '--quiet', '--stat', '--block-decoder', '--cpu', '6/158', '--raw', raw, '--pt', trace], ['blk', '--cpu', '6/158', '--raw', raw, trace], insnOf);
    console.log('  goals: dump --stat >= 1.00x on both mixes');
    return results;
  },
};

// ---------------------------------------------------------------------------
// Registry: add further sections here.

const parallelBench: Bench = {
  name: 'parallel',
  description: 'flow and analyze of one large trace (real mruby, concatenated) on 1, 2 and 4 worker threads vs serial',
  run: () => runParallelBench(REAL, BENCH_DIR),
};

const parallelCliBench: Bench = {
  name: 'parallel-cli',
  description: 'analyze and flow --quiet --stat as whole processes, --jobs 1 against --jobs 2 in alternating pairs, with the machine\'s own 2-process ceiling (two --jobs 1 runs at once) in each pair (mruby x100)',
  run: () => runParallelPairsBench(ROOT, REAL, BENCH_DIR),
};

const memoryBench: Bench = {
  name: 'memory',
  description: 'peak RSS of each whole-trace command as a process, over mruby x1, x100 and x200 (flat in trace size?)',
  run: () => runMemoryBench(ROOT, REAL, BENCH_DIR),
};

const recordBench: Bench = {
  name: 'record',
  description: 'the emulated recorder on ordinary programs, one-thread, threaded and forking: trace density and slowdown vs native',
  run: () => runRecordCostBench(ROOT),
};

const startupBench: Bench = {
  name: 'startup',
  description: 'what a process pays besides its decode: node, iced-x86 (require vs import), zod, flow\'s modules, and flow --quiet --stat over mruby x1 and x10 vs libipt (fixed cost and cost per copy)',
  run: () => runStartupBench(ROOT, REAL, ptstatBinary(), repeatedMruby, Math.max(ROUNDS, 5)),
};

const BENCHES: readonly Bench[] = [packetsBench, flowBench, processBench, startupBench, analyzeBench, edgesBench, parallelBench, parallelCliBench, memoryBench, recordBench];

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  if (wanted.includes('--help') || wanted.includes('-h')) {
    console.log('usage: npm run bench [-- <name>...]\n\nbenchmarks:');
    for (const b of BENCHES) console.log(`  ${b.name.padEnd(10)} ${b.description}`);
    return;
  }
  const unknown = wanted.filter((w) => !BENCHES.some((b) => b.name === w));
  if (unknown.length) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${BENCHES.map((b) => b.name).join(', ')}`);
    process.exit(2);
  }
  const selected = wanted.length ? BENCHES.filter((b) => wanted.includes(b.name)) : BENCHES;
  console.log(`node ${process.version}, ${process.arch}`);
  for (const b of selected) {
    console.log(`\n## ${b.name}: ${b.description}`);
    for (const m of await b.run()) {
      console.log(`  ${m.label.padEnd(56)} ${m.mbps.toFixed(1).padStart(8)} ${m.unit ?? 'MB/s'}${m.detail ? `  (${m.detail})` : ''}`);
    }
  }
}

await main();
