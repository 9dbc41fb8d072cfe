/**
 * `npm run bench -- edges`: the fuzzing loop. Each trace is decoded 1,000
 * times into one reused AFL bitmap, caches warm, as a fuzzer decodes the
 * trace of each execution; beside it, in the same run, libipt 2.0.5's
 * instruction decoder does the same in a C loop (test/oracle/ptedges.c:
 * each instruction's block start hashed into the same bitmap).
 *
 * Traces: the real kAFL fuzzing traces (mruby, unzip; ../shared/traces/real)
 * and emulated-recorder traces of a fuzzing-like target: corpus/fuzz/
 * json_check.c on the varied inputs of tools/fuzz-demo-target.ts, traced
 * inside its .text only (recorded on first use into build/bench/edges/).
 *
 * Printed per trace: warm traces/s and MB/s for both, the ratio, whether
 * the two bitmaps are equal byte for byte, the cold first decode (empty
 * block graph and step cache; median of 9, with its step-cache hit rate),
 * the step cache's hit rate over the warm runs, the memory of the graph and cache, and how many decodes fell back
 * to the exact decoder. Both sides repeat the decode for at least a second
 * per round (ptscope in batches of 1,000) and report the average; rounds
 * alternate between them (PTSCOPE_BENCH_ROUNDS, default 3) and the fastest
 * round of each is kept. PTSCOPE_BENCH_EDGE_RUNS changes the 1,000.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openTraceInput } from '../src/analyses/trace-input.js';
import type { DecoderConfig } from '../src/packets/config.js';
import { EdgeCoverage } from '../src/flow/edges/edge-coverage.js';
import { bitmapFnv1a64 } from '../src/flow/edges/edge-map.js';
import { ElfFile, loadElf } from '../src/flow/elf.js';
import { Image } from '../src/flow/image.js';
import { ByteSourceCache } from '../src/flow/section.js';
import { buildTarget, REPO_ROOT, SAMPLE_INPUTS } from '../tools/fuzz-demo-target.js';

interface Measurement {
  label: string;
  mbps: number;
  unit?: string;
  detail?: string;
}

const ROUNDS = Number(process.env.PTSCOPE_BENCH_ROUNDS ?? 3);
const RUNS = Number(process.env.PTSCOPE_BENCH_EDGE_RUNS ?? 1000);
/** Each side runs for at least this long per round (ptedges' BENCH_MIN_SECONDS). */
const MIN_SECONDS = 1;
/** Cold decodes per trace (each with a fresh image); the median is reported. */
const COLD_RUNS = 9;
const BENCH_DIR = join(REPO_ROOT, 'build', 'bench', 'edges');
const REAL = join(REPO_ROOT, '..', 'shared', 'traces', 'real');

/** One benchmark trace: how ptscope loads its image, and libipt's arguments for the same. */
interface EdgeTrace {
  name: string;
  trace: Uint8Array;
  /** A fresh image and config each call (for cold runs). */
  load(): { image: Image; config: DecoderConfig };
  oracleArgs: string[];
}

/** Build ptedges if needed; null (with a note) if libipt is missing. */
function ptedgesBinary(): string | null {
  const bin = join(REPO_ROOT, 'build', 'oracle', 'ptedges');
  const src = join(REPO_ROOT, 'test', 'oracle', 'ptedges.c');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    const res = spawnSync('bash', [join(REPO_ROOT, 'test', 'oracle', 'build-ptedges.sh')], { encoding: 'utf8' });
    if (res.status !== 0) {
      console.log(`  (libipt harness unavailable: ${(res.stderr || res.stdout || String(res.error)).trim()})`);
      return null;
    }
  }
  return bin;
}

function keyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out[k] = v;
  }
  return out;
}

function realTraces(): EdgeTrace[] {
  const out: EdgeTrace[] = [];
  for (const name of ['mruby', 'unzip']) {
    const dir = join(REAL, name);
    const tracePath = join(dir, 'trace.pt');
    if (!existsSync(tracePath)) {
      console.log(`  (no ${tracePath}: the shared folder must sit beside the repository)`);
      continue;
    }
    const raw = `${join(dir, 'seg_400000.bin')}:0x400000`;
    const load = () => {
      const input = openTraceInput(tracePath, { raw: [raw], cpu: '6/158' });
      return { image: input.image, config: input.config };
    };
    out.push({ name, trace: new Uint8Array(readFileSync(tracePath)), load, oracleArgs: ['--cpu', '6/158', '--raw', raw, tracePath] });
  }
  return out;
}

/** Record json_check on each sample input once (cached in build/bench/edges). */
function recorderTraces(): EdgeTrace[] {
  mkdirSync(BENCH_DIR, { recursive: true });
  const target = buildTarget(BENCH_DIR);
  const elf = ElfFile.parse(readFileSync(target.binary), target.binary);
  const raws = elf.loadSegments().map((s) => `${target.binary}:0x${s.offset.toString(16)}-0x${(s.offset + s.filesz).toString(16)}:0x${s.vaddr.toString(16)}`);
  const load = () => {
    const image = new Image(target.binary);
    loadElf(image, new ByteSourceCache(), target.binary);
    return { image, config: target.config };
  };
  const out: EdgeTrace[] = [];
  const filter = `0x${target.textFrom.toString(16)}-0x${target.textTo.toString(16)}`;
  SAMPLE_INPUTS.forEach((text, i) => {
    const tracePath = join(BENCH_DIR, `json_check-${i}.pt`);
    if (!existsSync(tracePath) || statSync(tracePath).mtimeMs < statSync(target.binary).mtimeMs) {
      const input = join(BENCH_DIR, `input-${i}.json`);
      writeFileSync(input, text);
      const bundle = join(BENCH_DIR, `run-${i}.ptscope`);
      const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'ptscope.js'), 'record', '--emulate', '--force', '--stdin', input,
        '--filter', filter, '-o', bundle, '--', target.binary], { encoding: 'utf8' });
      // Exit status 1: the target itself failed (an invalid document); the trace is there.
      if (res.status !== 0 && res.status !== 1) throw new Error(`recording json_check failed: ${(res.stderr || String(res.error)).trim()}`);
      writeFileSync(tracePath, openTraceInput(bundle).trace);
      rmSync(bundle, { recursive: true, force: true });
    }
    const oracleArgs = [...raws.flatMap((r) => ['--raw', r]), tracePath];
    out.push({ name: `json_check #${i}`, trace: new Uint8Array(readFileSync(tracePath)), load, oracleArgs });
  });
  return out;
}

interface TraceResult {
  name: string;
  bytes: number;
  /** Seconds per warm decode, ptscope and libipt. */
  warm: number;
  libipt: number;
  cold: number;
  /** Step-cache hit rate of the cold decode, in %. */
  coldHitRate: number;
  hits: number;
  misses: number;
  memory: number;
  exact: number;
  equal: boolean | null;
  edges: number;
}

function measure(t: EdgeTrace, oracle: string | null): TraceResult {
  // Cold: a fresh image, so the block graph, step cache and instruction
  // cache start empty; the median of a few, as one is at the mercy of GC.
  const colds: number[] = [];
  let bitmap = new Uint8Array(0);
  let coldHits = 0;
  let coldMisses = 0;
  for (let i = 0; i < COLD_RUNS; i++) {
    const cold = t.load();
    const coldCov = new EdgeCoverage(cold.image, cold.config);
    bitmap = new Uint8Array(coldCov.mapSize);
    const c0 = process.hrtime.bigint();
    coldCov.decode(t.trace, bitmap);
    colds.push(Number(process.hrtime.bigint() - c0) / 1e9);
    coldHits = coldCov.stats.cacheHits;
    coldMisses = coldCov.stats.cacheMisses;
  }
  colds.sort((a, b) => a - b);
  const coldSeconds = colds[colds.length >> 1]!;

  const { image, config } = t.load();
  const cov = new EdgeCoverage(image, config);
  const edges = cov.decode(t.trace, bitmap); // fills the caches
  const before = cov.stats;
  let warm = Infinity;
  let libipt = Infinity;
  let libiptHash = '';
  for (let round = 0; round < ROUNDS; round++) {
    // Like the C loop: whole batches until a second has passed, averaged.
    const t0 = process.hrtime.bigint();
    let done = 0;
    let seconds = 0;
    do {
      for (let i = 0; i < RUNS; i++) cov.decode(t.trace, bitmap);
      done += RUNS;
      seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    } while (seconds < MIN_SECONDS);
    warm = Math.min(warm, seconds / done);
    if (oracle) {
      const res = spawnSync(oracle, ['bench', '--runs', '3', ...t.oracleArgs], { encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`ptedges bench failed: ${res.stderr}`);
      const kv = keyValues(res.stdout);
      libipt = Math.min(libipt, Number(kv.seconds));
      libiptHash = kv.bitmap_fnv1a64;
    }
  }
  const after = cov.stats;
  return {
    name: t.name,
    bytes: t.trace.length,
    warm,
    libipt,
    cold: coldSeconds,
    coldHitRate: (100 * coldHits) / Math.max(1, coldHits + coldMisses),
    hits: after.cacheHits - before.cacheHits,
    misses: after.cacheMisses - before.cacheMisses,
    memory: after.memoryBytes,
    exact: after.exact,
    equal: oracle ? libiptHash === bitmapFnv1a64(bitmap) : null,
    edges,
  };
}

const f1 = (x: number): string => x.toFixed(1);

function report(label: string, results: TraceResult[]): Measurement[] {
  console.log(`  ${label}:`);
  console.log('    trace            bytes   edges  ptscope tr/s    MB/s  libipt tr/s    MB/s   ratio  bitmap  cold ms (hits)  warm hits  cache KiB  exact');
  for (const r of results) {
    console.log(
      `    ${r.name.padEnd(14)} ${String(r.bytes).padStart(7)} ${String(r.edges).padStart(7)} ${f1(1 / r.warm).padStart(12)} ${f1(r.bytes / r.warm / 1e6).padStart(7)}` +
        ` ${f1(1 / r.libipt).padStart(12)} ${f1(r.bytes / r.libipt / 1e6).padStart(7)} ${(r.libipt / r.warm).toFixed(1).padStart(6)}x` +
        ` ${r.equal === null ? '   n/a' : r.equal ? ' equal' : 'DIFFER'} ${(r.cold * 1e3).toFixed(2).padStart(8)} (${r.coldHitRate.toFixed(0).padStart(2)}%)` +
        ` ${((100 * r.hits) / Math.max(1, r.hits + r.misses)).toFixed(2).padStart(9)}% ${(r.memory / 1024).toFixed(0).padStart(10)} ${String(r.exact).padStart(6)}`,
    );
  }
  const bytes = results.reduce((s, r) => s + r.bytes, 0);
  const warm = results.reduce((s, r) => s + r.warm, 0);
  const libipt = results.reduce((s, r) => s + r.libipt, 0);
  const cold = results.reduce((s, r) => s + r.cold, 0);
  const n = results.length;
  if (n > 1) {
    console.log(`    all ${n} traces: ptscope ${f1(n / warm)} traces/s, ${f1(bytes / warm / 1e6)} MB/s; libipt ${f1(n / libipt)} traces/s, ${f1(bytes / libipt / 1e6)} MB/s; ratio ${(libipt / warm).toFixed(1)}x; cold ${f1((libipt / cold) * 1)}x libipt`);
  }
  const out: Measurement[] = [
    { label: `${label}: ptscope edge decoder, warm`, mbps: bytes / warm / 1e6, detail: `${f1(n / warm)} traces/s` },
    { label: `${label}: ptscope edge decoder, cold first run`, mbps: bytes / cold / 1e6, detail: `${f1(n / cold)} traces/s` },
  ];
  if (Number.isFinite(libipt)) {
    out.push({ label: `${label}: libipt 2.0.5 instruction decoder + bitmap`, mbps: bytes / libipt / 1e6, detail: `${f1(n / libipt)} traces/s` });
    out.push({ label: `${label}: ratio ptscope/libipt, warm (goal >= 15)`, mbps: libipt / warm, unit: 'x' });
    out.push({ label: `${label}: ratio ptscope/libipt, cold first run`, mbps: libipt / cold, unit: 'x' });
  }
  return out;
}

export const edgesBench = {
  name: 'edges',
  description: `edge-coverage fuzzing loop: each trace decoded ${RUNS} times into a reused AFL bitmap (ptscope vs libipt 2.0.5)`,
  run(): Measurement[] {
    const oracle = ptedgesBinary();
    const real = realTraces();
    const recorded = recorderTraces();
    // JIT warm-up on a throwaway image, so the cold runs measure empty caches, not the compiler.
    for (const t of [...real, ...recorded]) {
      const w = t.load();
      const cov = new EdgeCoverage(w.image, w.config);
      const map = new Uint8Array(cov.mapSize);
      for (let i = 0; i < 20; i++) cov.decode(t.trace, map);
    }
    const out: Measurement[] = [];
    for (const t of real) out.push(...report(`real ${t.name}`, [measure(t, oracle)]));
    out.push(...report('json_check (recorder)', recorded.map((t) => measure(t, oracle))));
    return out;
  },
};
