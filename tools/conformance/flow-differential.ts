/**
 * Flow-level differential: ptscope's instruction and block decoders against
 * libipt's, on real traces, recorder traces, libipt's vector traces and
 * mutants of them (byte flips, cuts, dropped PSBs, duplicated stretches).
 *
 * Both sides run ptxed's loop without --resync-on-error (drain events,
 * decode, and after an error report it and sync forward) and print the
 * same neutral lines (test/oracle/ptoracle.c): each instruction's IP (insn)
 * or each block (blk), each error with its trace offset and IP, each sync
 * point. The references are ptoracle built against the libipt of the
 * vectors (which ptscope must equal) and against Debian's libipt 2.0.5,
 * where a difference is accepted only if the vectors' libipt differs from
 * 2.0.5 the same way (the vectors win); such cases are counted by kind.
 *
 *   node dist/tools/conformance/flow-differential.js [--count N] [--seed S]
 *
 * runs N mutants (default 2,000) and prints the agreement; exit 1 if
 * ptscope differs from the vectors' libipt anywhere.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../../bench/synthetic-trace.js';
import { defaultConfig, type DecoderConfig } from '../../src/packets/config.js';
import { errataFor, parseCpu } from '../../src/packets/cpu.js';
import { ErrorCode, errorName } from '../../src/packets/errors.js';
import { formatIpShort } from '../../src/flow/address-space.js';
import { ANY_ASID } from '../../src/flow/address-space.js';
import { Block, BlockDecoder } from '../../src/flow/block-decoder.js';
import { Image } from '../../src/flow/image.js';
import { InsnDecoder } from '../../src/flow/insn-decoder.js';
import { InsnClass, InstructionInfo } from '../../src/flow/instruction.js';
import { parseRawArg, isImageArgError } from '../../src/flow/raw-image-arg.js';
import { ByteSourceCache } from '../../src/flow/section.js';
import { PtEvent } from '../../src/events/event.js';
import { Status } from '../../src/events/status.js';
import { mutate } from './mutate.js';
import { ROOT, libiptTools } from './ptt-vectors.js';

/** A trace to decode: where its files are, its `--raw` images and CPU. */
export interface FlowInput {
  name: string;
  dir: string;
  trace: string;
  raws: string[];
  cpu: string;
}

export type FlowMode = 'insn' | 'blk';

const SHARED = join(ROOT, '..', 'shared');

/** The real traces (../shared/traces/real), with the CPU their manifest gives. */
export function realTraceInputs(): FlowInput[] {
  const dir = join(SHARED, 'traces', 'real');
  const manifest = JSON.parse(readFileSync(join(dir, 'MANIFEST.json'), 'utf8')) as { name: string; pt: string; images: { file: string; address: string }[] }[];
  return manifest.map((c) => ({
    name: c.name,
    dir: join(dir, c.name),
    trace: c.pt,
    raws: c.images.map((i) => `${i.file}:${i.address}`),
    cpu: '6/158',
  }));
}

/** The traces of libipt's vectors that come with code (../shared/vectors/libipt). */
export function vectorTraceInputs(): FlowInput[] {
  const dir = join(SHARED, 'vectors', 'libipt');
  const manifest = JSON.parse(readFileSync(join(dir, 'MANIFEST.json'), 'utf8')) as {
    name: string;
    pt: string;
    images: { file: string; address: string }[];
    cpu: string | null;
    suite?: string;
  }[];
  // Sideband cases need their sideband to decode; they are left to the vector tests.
  return manifest
    .filter((c) => c.images.length > 0 && c.suite !== 'pevent' && c.images.every((i) => statSync(join(dir, c.name, i.file)).size > 0))
    .map((c) => ({ name: c.name, dir: join(dir, c.name), trace: c.pt, raws: c.images.map((i) => `${i.file}:${i.address}`), cpu: c.cpu ?? 'none' }));
}

/** A recorder bundle (its trace, its images at their addresses, as its manifest's ptxed arguments say). */
export function bundleInput(dir: string, name: string): FlowInput {
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { trace: { file: string }; decode: { ptxed: string[] } };
  const argv = m.decode.ptxed;
  const raws: string[] = [];
  let cpu = 'none';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--raw') raws.push(argv[i + 1]!);
    if (argv[i] === '--cpu') cpu = argv[i + 1]!;
  }
  return { name, dir, trace: m.trace.file, raws, cpu };
}

/** The emulated recorder's bundles shipped in demo/. */
export function recorderTraceInputs(): FlowInput[] {
  return ['rop_stack.benign', 'rop_stack.exploit'].map((name) => bundleInput(join(ROOT, 'demo', name), name));
}

function configFor(cpu: string): DecoderConfig {
  const config = defaultConfig();
  const c = parseCpu(cpu);
  if (c === null) throw new Error(`bad cpu ${cpu}`);
  config.cpu = c;
  if (c.vendor === 'intel') {
    const errata = errataFor(c);
    if (typeof errata !== 'number') config.errata = errata;
  }
  return config;
}

function imageFor(input: FlowInput): Image {
  const image = new Image();
  const files = new ByteSourceCache();
  let isid = 1;
  for (const spec of input.raws) {
    const raw = parseRawArg(join(input.dir, spec));
    if (isImageArgError(raw)) throw new Error(`${input.name}: ${raw.error}`);
    const size = raw.size === null ? Infinity : Number(raw.size);
    const err = image.addFile(files, raw.file, Number(raw.offset), size, Number(BigInt.asIntN(64, raw.base)), ANY_ASID, isid++);
    if (err < 0) throw new Error(`${input.name}: cannot map ${spec}`);
  }
  return image;
}

/** How an error line reads: the offset (or ?), the IP, libipt's error name. */
function errorLine(offset: number, ip: number, status: number): string {
  return `error ${offset < 0 ? '?' : offset.toString(16)} ${formatIpShort(ip)} ${errorName(status)}`;
}

/** ptscope's side of the neutral output (see test/oracle/ptoracle.c run_flow). */
export function oursNeutral(input: FlowInput, trace: Uint8Array, mode: FlowMode): string {
  const config = configFor(input.cpu);
  const image = imageFor(input);
  const lines: string[] = [];
  const ev = new PtEvent();
  const insn = new InstructionInfo();
  const block = new Block();
  const dec = mode === 'insn' ? new InsnDecoder(trace, config, image) : new BlockDecoder(trace, config, image);
  let lastSync = 0;
  for (;;) {
    insn.ip = 0;
    block.ip = 0;
    block.ninsn = 0;
    let status = dec.syncForward();
    if (status < 0) {
      if (status === -ErrorCode.Eos) break;
      lines.push(errorLine(dec.offset, 0, status));
      const next = dec.offset;
      if (next < 0 || next <= lastSync) break;
      lastSync = next;
      continue;
    }
    lines.push(`sync ${dec.syncOffset.toString(16)}`);
    for (;;) {
      while (status >= 0 && status & Status.EventPending) status = dec.event(ev);
      if (status < 0) break;
      if (status & Status.Eos) {
        status = -ErrorCode.Eos;
        break;
      }
      if (dec instanceof BlockDecoder) {
        status = dec.next(block);
        if (block.ninsn) lines.push(`block ${formatIpShort(block.ip)} ${formatIpShort(block.endIp)} ${block.ninsn}`);
        if (status < 0) break;
        continue;
      }
      status = dec.next(insn);
      if (status < 0) {
        if (status === -ErrorCode.EventIgnored) {
          status = Status.EventPending;
          continue;
        }
        if (insn.iclass !== InsnClass.Unknown) lines.push(formatIpShort(insn.ip));
        break;
      }
      lines.push(formatIpShort(insn.ip));
    }
    if (status === -ErrorCode.Eos) break;
    const ip = mode === 'blk' ? (block.ninsn ? block.endIp : block.ip) : insn.ip;
    lines.push(errorLine(dec.offset, ip, status));
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/** libipt's side: ptoracle (`binary`) on the trace file. */
export function oracleNeutral(binary: string, input: FlowInput, traceFile: string, mode: FlowMode): string {
  const args = [mode, '--cpu', input.cpu, ...input.raws.flatMap((r) => ['--raw', r]), traceFile, '--syncs'];
  const res = spawnSync(binary, args, { cwd: input.dir, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 60_000 });
  if (res.error) throw new Error(`${binary} ${args.join(' ')}: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`${binary} ${args.join(' ')}: exit ${res.status}: ${res.stderr}`);
  return res.stdout;
}

/** The two references: ptoracle over the vectors' libipt, and over Debian's 2.0.5. */
export function oracleBinaries(): { head: string; v205: string } {
  const head = join(libiptTools(), 'ptoracle');
  const v205 = join(ROOT, 'build', 'oracle', 'ptoracle');
  const src = join(ROOT, 'test', 'oracle', 'ptoracle.c');
  if (!existsSync(v205) || statSync(v205).mtimeMs < statSync(src).mtimeMs) {
    const res = spawnSync('bash', [join(ROOT, 'test', 'oracle', 'build.sh')], { encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`ptoracle build failed: ${res.stderr || res.stdout}`);
  }
  return { head, v205 };
}

/** One comparison's outcome. */
export interface FlowComparison {
  name: string;
  mode: FlowMode;
  /** ptscope equals the vectors' libipt. */
  matchesHead: boolean;
  /** ptscope equals libipt 2.0.5. */
  matches205: boolean;
  /** The vectors' libipt equals 2.0.5 (if not, a difference to 2.0.5 is theirs). */
  headMatches205: boolean;
  /** The first differing line against the vectors' libipt, for a report. */
  firstDifference?: string;
}

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  const i = x.findIndex((l, k) => l !== y[k]);
  const at = i < 0 ? Math.min(x.length, y.length) : i;
  return `line ${at + 1}: libipt ${JSON.stringify(y[at])}, ptscope ${JSON.stringify(x[at])}`;
}

/** Decode `trace` (the input's own, or a mutant) both ways and with both references. */
export function compareFlow(input: FlowInput, trace: Uint8Array, traceFile: string, mode: FlowMode, bins: { head: string; v205: string }): FlowComparison {
  const ours = oursNeutral(input, trace, mode);
  const head = oracleNeutral(bins.head, input, traceFile, mode);
  const v205 = oracleNeutral(bins.v205, input, traceFile, mode);
  const c: FlowComparison = { name: input.name, mode, matchesHead: ours === head, matches205: ours === v205, headMatches205: head === v205 };
  if (!c.matchesHead) c.firstDifference = firstDifference(ours, head);
  return c;
}

/** `count` mutants of the inputs, round robin, compared in both modes. */
export function* mutantComparisons(inputs: FlowInput[], count: number, seed: number, work: string): Generator<FlowComparison> {
  const bins = oracleBinaries();
  const rng = new Rng(seed);
  for (let n = 0; n < count; n++) {
    const input = inputs[n % inputs.length]!;
    const original = new Uint8Array(readFileSync(join(input.dir, input.trace)));
    const bytes = mutate(rng, original);
    const file = join(work, `mutant-${n}.pt`);
    writeFileSync(file, bytes);
    for (const mode of ['insn', 'blk'] as const) {
      const c = compareFlow(input, bytes, file, mode, bins);
      c.name = `${input.name} mutant ${n}`;
      yield c;
    }
    rmSync(file, { force: true });
  }
}

/** Counts over comparisons. */
export interface FlowTally {
  total: number;
  matchesHead: number;
  matches205: number;
  /** Differences to 2.0.5 where the vectors' libipt differs from 2.0.5 too. */
  versionDifferences: number;
  failures: FlowComparison[];
}

export function tally(comparisons: Iterable<FlowComparison>): FlowTally {
  const t: FlowTally = { total: 0, matchesHead: 0, matches205: 0, versionDifferences: 0, failures: [] };
  for (const c of comparisons) {
    t.total++;
    if (c.matchesHead) t.matchesHead++;
    else t.failures.push(c);
    if (c.matches205) t.matches205++;
    else if (!c.headMatches205) t.versionDifferences++;
  }
  return t;
}

function main(argv: string[]): number {
  let count = 2000;
  let seed = 1;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--count') count = Number(argv[++i]);
    else if (argv[i] === '--seed') seed = Number(argv[++i]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  const work = mkdtempSync(join(tmpdir(), 'ptscope-flow-diff-'));
  try {
    const inputs = [...realTraceInputs().filter((i) => i.name !== 'mruby'), ...recorderTraceInputs(), ...vectorTraceInputs()];
    const started = Date.now();
    const t = tally(mutantComparisons(inputs, count, seed, work));
    const secs = ((Date.now() - started) / 1000).toFixed(0);
    console.log(`flow differential: ${count} mutants x 2 decoders = ${t.total} decodes in ${secs} s`);
    console.log(`  equal to the vectors' libipt: ${t.matchesHead}/${t.total}`);
    console.log(`  equal to libipt 2.0.5:        ${t.matches205}/${t.total} (${t.versionDifferences} differences are 2.0.5's own, the vectors' libipt differs from it too)`);
    for (const f of t.failures.slice(0, 20)) console.log(`  DIFFERS: ${f.name} (${f.mode}): ${f.firstDifference}`);
    return t.failures.length ? 1 : 0;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exitCode = main(process.argv.slice(2));
