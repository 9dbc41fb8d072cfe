/**
 * ptxed's text, differential: random programs and traces of them
 * (ptxed-random.ts), some mutated, printed by `ptscope flow` and by the
 * vectors' libipt ptxed (../shared/libipt-src, over its XED stand-in: so
 * `--no-inst`) under random option sets: either decoder, the event options
 * (`--event:ip`, `--event:time`, `--event:tick`, `--event:iflags`), the block
 * options, `--resync-on-error`, `--offset`, `--time`, `--raw-insn`,
 * `--check`, `--stat`, keeping the calibration over an overflow, timing
 * options, address filters and CPUs with errata. Every line must be equal.
 *
 *   node dist/tools/conformance/ptxed-differential.js [--count N] [--seed S] [--show] [--fixed-libipt]
 *
 * runs N cases (default 2,000) and prints how many differ, with the first
 * differences (`--show`: every one); exit 1 if any does. `--fixed-libipt`
 * compares with the vectors' libipt with two of its defects fixed
 * (test/oracle/build-libipt-fixed.sh).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../../bench/synthetic-trace.js';
import { runFlowCommand } from '../../src/cli/flow.js';
import { randomCase } from './ptxed-random.js';
import { mutate } from './mutate.js';
import { libiptTools, ROOT } from './ptt-vectors.js';
import { normalizeLines, runIn } from './run-in.js';
import { PacketDecoder } from '../../src/packets/decoder.js';
import { Packet } from '../../src/packets/packet.js';
import { PacketType } from '../../src/packets/packet-type.js';
import { ErrorCode } from '../../src/packets/errors.js';
import { ExecMode } from '../../src/packets/exec-mode.js';
import { ANY_ASID } from '../../src/flow/address-space.js';
import { Image } from '../../src/flow/image.js';
import { InstructionInfo } from '../../src/flow/instruction.js';
import { decodeInstruction } from '../../src/flow/instruction-decoder.js';

/** CPUs with and without errata workarounds (libipt's pt_cpu_errata). */
const CPUS = ['none', '6/61', '6/78', '6/85', '6/92', '6/106', '6/122', '6/134', '6/142', '6/150', '6/154', '6/156', '6/143', '6/183'];

/** A random ptxed option set for a trace of code at `base` of `size` bytes. */
export function randomOptions(rng: Rng, base: number, size: number): string[] {
  const o: string[] = [];
  const block = rng.chance(0.5);
  o.push(block ? '--block-decoder' : '--insn-decoder');
  const maybe = (p: number, ...args: string[]): void => {
    if (rng.chance(p)) o.push(...args);
  };
  if (block) {
    maybe(0.5, '--block:show-blocks');
    maybe(0.3, '--block:end-on-call');
    maybe(0.3, '--block:end-on-jump');
    maybe(0.2, '--block:keep-tcal-on-ovf');
  } else {
    maybe(0.2, '--insn:keep-tcal-on-ovf');
  }
  maybe(0.5, '--event:ip');
  maybe(0.4, '--event:time');
  maybe(0.3, '--event:tick');
  maybe(0.3, '--event:iflags');
  maybe(0.3, '--resync-on-error');
  maybe(0.3, '--offset');
  maybe(0.2, '--time');
  maybe(0.2, '--raw-insn');
  maybe(0.5, '--check');
  if (rng.chance(0.15)) o.push(...rng.pick(['--stat', '--stat:insn', '--stat:blocks', '--stat:insn --stat:blocks']).split(' '));
  if (rng.chance(0.5)) o.push('--cpu', rng.pick(CPUS));
  if (rng.chance(0.3)) o.push('--mtc-freq', String(rng.int(16)));
  if (rng.chance(0.2)) o.push('--nom-freq', String(1 + rng.int(40)));
  if (rng.chance(0.15)) o.push('--cpuid-0x15.eax', String(1 + rng.int(4)), '--cpuid-0x15.ebx', String(1 + rng.int(400)));
  if (rng.chance(0.1)) {
    // A filter over part of the code (or all of it): the decoders read it where an erratum needs it (SKL014).
    const a = base + rng.int(size);
    o.push('--filter:addr0_cfg', String(1 + rng.int(2)), '--filter:addr0_a', `0x${a.toString(16)}`, '--filter:addr0_b', `0x${(a + rng.int(size)).toString(16)}`);
  }
  return o;
}

export interface PtxedCase {
  seed: number;
  argv: string[];
  trace: Uint8Array;
  code: Uint8Array;
}

/** Case `index` of the run seeded `seed`: a random trace of a random program, mutated in one case of four. */
export function ptxedCase(seed: number, index: number): PtxedCase {
  const caseSeed = (seed * 1_000_003 + index) >>> 0;
  const rng = new Rng(caseSeed ^ 0x5bd1e995);
  const { program, trace } = randomCase(caseSeed, 40 + rng.int(300), rng.pick([0, 0.03, 0.08, 0.2]));
  const bytes = rng.chance(0.25) ? mutate(rng, trace) : trace;
  return { seed: caseSeed, argv: randomOptions(rng, program.base, program.code.length), trace: bytes, code: program.code };
}

/**
 * How a case compared. Apart from `equal` and `different`, each verdict is
 * a known difference, recognised by a precise rule (below) and counted:
 * - `libipt-queue-defect`: ptxed reports an internal error where ptscope
 *   goes on ({@link isLibiptQueueDefect}); the rest is not compared;
 * - `ptxed-loops`: ptxed never ends, printing the same error (and
 *   `[disabled]`) again and again; ptscope printed the same until the third
 *   time, then went on at the next PSB (src/cli/flow-decode.ts);
 * - `unknown-mode`: ptscope reports "unknown instruction" where ptxed
 *   decodes on, in a trace with a PSB+ that sets no execution mode before
 *   that point ({@link isUnknownModeStop});
 * - `invalid-encoding`: ptscope reports "unknown instruction" at bytes
 *   that are no valid 64-bit instruction, which libipt's length decoder
 *   measures all the same ({@link isInvalidEncodingStop});
 * - `libipt-undefined`: a SYSCALL or software-interrupt event whose IP is
 *   where the decoder already stands: libipt then postpones a pt_insn it
 *   never filled in (pt_blk_proceed_event), and goes on from whatever that
 *   holds; ptscope postpones nothing and decodes the instruction there
 *   (src/flow/block-decoder.ts). Recognised by such an event next to the
 *   first difference ({@link nearSyscallEvent});
 * - `check-stand-in`: `--check` finds a block whose class disagrees with its
 *   last instruction in both tools, and each says so its own way: ptxed
 *   asks XED, here a stand-in over libipt's own length decoder
 *   (test/oracle/xed-shim), and prints what that answers (`xed iclass:
 *   ICLASS`, "decoder out of sync"), ptscope asks iced-x86;
 * - `wide-address`: the first differing line holds an address above 2^53
 *   (a FUP or TIP with all 64 bits), which ptscope holds as a rounded
 *   double, so where it goes next may differ too;
 * - `libipt-fixed-equal`: different from the vectors' ptxed, but equal to
 *   ptxed with libipt's two defects fixed (test/oracle/libipt-fixes.mjs):
 *   one of them, where the rules above did not see it (`fixedBin` given).
 * Lines whose only difference is a 64-bit address above 2^53 that ptscope
 * prints rounded (its IPs are JavaScript numbers) count as equal
 * ({@link sameLine}); `rounded` says that happened.
 */
export type PtxedVerdict =
  | 'equal'
  | 'libipt-queue-defect'
  | 'libipt-undefined'
  | 'libipt-fixed-equal'
  | 'ptxed-loops'
  | 'unknown-mode'
  | 'invalid-encoding'
  | 'check-stand-in'
  | 'wide-address'
  | 'different';

export interface PtxedComparison {
  case: PtxedCase;
  ptscope: string[];
  ptxed: string[];
  /** The first line (0-based) that differs, or -1. */
  firstDiff: number;
  verdict: PtxedVerdict;
  /** Some line was equal only with ptxed's addresses above 2^53 rounded. */
  rounded: boolean;
}

/**
 * libipt's "internal error" at an asynchronous branch whose TIP-bound event
 * was queued behind an event bound to something else (a FUP): the event
 * decoder finds the async-branch entry (pt_evq_find), then dequeues the
 * first TIP-bound entry (pt_evq_dequeue), which moves the entries before it
 * down one slot, so the pointer it found now names the entry that moved
 * into that slot; the swap that follows puts that entry in the event, whose
 * type is then not an async branch (pt_event_decoder.c,
 * pt_evt_decode_tip_event). ptscope's queue hands out the async branch.
 * Where ptxed's line is an internal error and ptscope's is another, the
 * rest of ptxed's output is of a decoder in a state it cannot be in. (The
 * error is then kept as the decoder's status, so ptxed's resync after it
 * fails too: where ptscope got an internal error of its own on the same
 * line, a FUP and a TIP without IP, ptxed's next line is "resync error".)
 */
export function isLibiptQueueDefect(ptxedLine: string | undefined, ptscopeLine: string | undefined): boolean {
  return ptxedLine !== undefined && ptxedLine !== ptscopeLine && /: internal error\]$/.test(ptxedLine);
}

/** A hexadecimal token of ptxed's that ptscope prints as `mine`: equal, or above 2^53 and equal as far as a double holds it. */
function sameToken(theirs: string, mine: string): boolean {
  if (theirs === mine) return true;
  if (!/^[0-9a-f]{14,16}[\],:]?$/.test(theirs) || theirs.length !== mine.length) return false;
  const tail = /[\],:]$/.test(theirs) ? theirs.slice(-1) : '';
  if (!mine.endsWith(tail)) return false;
  const v = BigInt(`0x${theirs.slice(0, theirs.length - tail.length)}`);
  if (v <= 2n ** 53n || !/^[0-9a-f]+$/.test(mine.slice(0, mine.length - tail.length))) return false;
  // Within a double's precision there (two roundings: ptscope builds
  // the number from the packet's two 32-bit halves).
  const w = BigInt(`0x${mine.slice(0, mine.length - tail.length)}`);
  const d = w > v ? w - v : v - w;
  return d * 2n ** 51n <= v;
}

/** Equal lines, or equal once ptxed's addresses above 2^53 are rounded as ptscope holds them ('rounded'). */
export function sameLine(ptxedLine: string | undefined, ptscopeLine: string | undefined): boolean | 'rounded' {
  if (ptxedLine === ptscopeLine) return true;
  if (ptxedLine === undefined || ptscopeLine === undefined) return false;
  const a = ptxedLine.split(' ');
  const b = ptscopeLine.split(' ');
  if (a.length !== b.length) return false;
  return a.every((t, i) => sameToken(t, b[i]!)) ? 'rounded' : false;
}

/**
 * ptxed's output from `from - period` on repeats with `period` (1 or 2
 * lines) to its end: the resync loop ptxed never leaves. ptscope's output
 * up to `from` was compared already.
 */
function loopsFrom(ptxed: readonly string[], from: number, period: number): boolean {
  if (from < 2 * period) return false;
  // `[block N]` (--block:show-blocks with --stat) counts on round the loop.
  const plain = (l: string): string => l.replace(/^\[block [0-9a-f]+\]$/, '[block]');
  for (let i = from - period; i < ptxed.length; i++) if (plain(ptxed[i]!) !== plain(ptxed[i - period]!)) return false;
  return /error: /.test(ptxed[from - 1]!) || /error: /.test(ptxed[from - 2] ?? '');
}

/** ptscope's "unknown instruction" error line: its trace offset and IP. */
const UNKNOWN_INSTRUCTION = /^\[([0-9a-f]+), ([0-9a-f]+): error: unknown instruction\]$/;

/**
 * ptscope stopped with "unknown instruction" where ptxed decoded on, and
 * before that offset the trace has a PSB+ without MODE.EXEC or a MODE.EXEC
 * with both CS.L and CS.D set: from there the execution mode is unknown
 * until a MODE.EXEC gives one, and libipt's length decoder then decodes
 * anyway, with defaults that are no real mode's (16-bit operands, no ModRM
 * displacement: pt_ild.c), while ptscope reports pte_bad_insn
 * (src/flow/instruction-decoder.ts).
 */
export function isUnknownModeStop(ptscopeLine: string | undefined, ptxedLine: string | undefined, trace: Uint8Array): boolean {
  const m = UNKNOWN_INSTRUCTION.exec(ptscopeLine ?? '');
  if (m === null || ptxedLine === ptscopeLine) return false;
  const offset = parseInt(m[1]!, 16);
  const packets = new PacketDecoder(trace);
  const p = new Packet();
  let inPsb = false;
  let mode = false;
  for (let status = packets.syncForward(); ; ) {
    if (status < 0) {
      status = packets.syncForward();
      if (status < 0) return false;
      continue;
    }
    const at = packets.offset;
    if (at > offset) return false;
    status = packets.next(p);
    if (status < 0) continue;
    if (p.type === PacketType.Psb) {
      inPsb = true;
      mode = false;
    } else if (p.type === PacketType.ModeExec) {
      // CS.L with CS.D is reserved: no mode (libipt's pt_get_exec_mode).
      if (p.csl && p.csd) return true;
      mode = true;
    } else if (p.type === PacketType.PsbEnd && inPsb) {
      if (!mode) return true;
      inPsb = false;
    }
  }
}

/** The code at `ip` is not a valid 64-bit instruction for ptscope's decoder (iced-x86). */
export function isInvalidEncodingStop(ptscopeLine: string | undefined, ptxedLine: string | undefined, code: Uint8Array): boolean {
  const m = UNKNOWN_INSTRUCTION.exec(ptscopeLine ?? '');
  if (m === null || ptxedLine === ptscopeLine) return false;
  const image = new Image();
  image.addMemory('code', code, 0x1000);
  return decodeInstruction(image, ANY_ASID, parseInt(m[2]!, 16), ExecMode.Bit64, new InstructionInfo()) === -ErrorCode.BadInsn;
}

/**
 * A SYSCALL or software-interrupt event on the first differing line of
 * either output, or on one of the three lines before it (a `[block]` line
 * and the instruction before may come between).
 */
export function nearSyscallEvent(ptxed: readonly string[], ptscope: readonly string[], at: number): boolean {
  const event = /^\[([0-9a-f]+ ){0,2}(syscall|swintr)\b/;
  return [ptxed[at - 3], ptxed[at - 2], ptxed[at - 1], ptxed[at], ptscope[at]].some((l) => l !== undefined && event.test(l));
}

/**
 * The vectors' libipt with its two defects above fixed
 * (test/oracle/build-libipt-fixed.sh): against it, a case may not be
 * `libipt-queue-defect` or `libipt-undefined`.
 */
export function libiptFixedTools(): string {
  const res = spawnSync('bash', [join(ROOT, 'test', 'oracle', 'build-libipt-fixed.sh')], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`build-libipt-fixed.sh failed: ${(res.stderr || res.stdout || String(res.error)).trim()}`);
  return res.stdout.trim().split('\n').pop()!;
}

/** Some hexadecimal number of 14 or more digits in `line` is above 2^53. */
function hasWideAddress(line: string | undefined): boolean {
  for (const m of (line ?? '').matchAll(/\b[0-9a-f]{14,16}\b/g)) if (BigInt(`0x${m[0]}`) > 2n ** 53n) return true;
  return false;
}

/**
 * Print `c` with both tools in `dir` (written there as code.bin and
 * trace.pt) and compare; where they differ by no rule, compare with the
 * ptxed in the folder `fixedBin` gives too, if given (called only then).
 */
export function comparePtxed(c: PtxedCase, dir: string, bin: string, fixedBin: (() => string) | null = null): PtxedComparison {
  writeFileSync(join(dir, 'code.bin'), c.code);
  writeFileSync(join(dir, 'trace.pt'), c.trace);
  const argv = ['--no-inst', ...c.argv, '--raw', 'code.bin:0x1000', '--pt', 'trace.pt'];
  const ref = spawnSync(join(bin, 'ptxed'), argv, { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 60_000 });
  // ptxed going round for ever fills the buffer (or times out).
  const code = (ref.error as NodeJS.ErrnoException | undefined)?.code;
  const runaway = code === 'ENOBUFS' || code === 'ETIMEDOUT';
  if (ref.error && !runaway) throw new Error(`ptxed on case seed ${c.seed}: ${ref.error.message}`);
  const ptxed = normalizeLines(ref.stdout ?? '');
  if (runaway) ptxed.pop(); // the last line may be cut
  // ptscope refuses a trace without any PSB with a line on stderr (not a
  // trace at all), where ptxed prints nothing, or its statistics.
  const ptscope = normalizeLines(runIn(runFlowCommand, argv, dir, false));
  let firstDiff = -1;
  let rounded = false;
  for (let i = 0; i < Math.max(ptxed.length, ptscope.length); i++) {
    const same = sameLine(ptxed[i], ptscope[i]);
    if (same === 'rounded') rounded = true;
    else if (!same) {
      firstDiff = i;
      break;
    }
  }
  let verdict: PtxedVerdict = 'equal';
  if (firstDiff >= 0) {
    if (runaway && (loopsFrom(ptxed, firstDiff, 1) || loopsFrom(ptxed, firstDiff, 2))) verdict = 'ptxed-loops';
    else if (isLibiptQueueDefect(ptxed[firstDiff], ptscope[firstDiff])) verdict = 'libipt-queue-defect';
    else if (isUnknownModeStop(ptscope[firstDiff], ptxed[firstDiff], c.trace)) verdict = 'unknown-mode';
    else if (isInvalidEncodingStop(ptscope[firstDiff], ptxed[firstDiff], c.code)) verdict = 'invalid-encoding';
    else if (nearSyscallEvent(ptxed, ptscope, firstDiff)) verdict = 'libipt-undefined';
    else if (/: (reconstruct error|iclass error|error: did not reach end)/.test(ptxed[firstDiff] ?? '') && /: iclass error: /.test(ptscope[firstDiff] ?? '')) verdict = 'check-stand-in';
    else if (hasWideAddress(ptxed[firstDiff]) || hasWideAddress(ptscope[firstDiff])) verdict = 'wide-address';
    else if (runaway || ptscope.length > 0 || !/^(insn|blocks): /.test(ptxed[0] ?? '')) verdict = 'different';
    // ptscope refused the input (nothing on stdout); ptxed printed only its statistics.
    else verdict = ptxed.every((l) => /^(insn|blocks): /.test(l)) ? 'equal' : 'different';
  } else if (runaway) {
    verdict = 'different';
  }
  if (verdict === 'different' && fixedBin !== null && comparePtxed(c, dir, fixedBin()).verdict === 'equal') verdict = 'libipt-fixed-equal';
  return { case: c, ptscope, ptxed, firstDiff, verdict, rounded };
}

/** Counts of a run's comparisons, and its one-line summary. */
export class PtxedTally {
  readonly verdicts = new Map<PtxedVerdict, number>();
  cases = 0;
  rounded = 0;
  lines = 0;

  add(r: PtxedComparison): void {
    this.cases++;
    this.verdicts.set(r.verdict, this.count(r.verdict) + 1);
    if (r.rounded) this.rounded++;
    this.lines += r.ptscope.length;
  }

  count(v: PtxedVerdict): number {
    return this.verdicts.get(v) ?? 0;
  }

  summary(seed: number, reference = "the vectors' ptxed"): string {
    return summaryLine(this.cases, this.verdicts, this.rounded, this.lines, seed, reference);
  }
}

/** The run's one-line summary. */
function summaryLine(count: number, tally: ReadonlyMap<PtxedVerdict, number>, rounded: number, lineCount: number, seed: number, reference: string): string {
  const n = (v: PtxedVerdict): number => tally.get(v) ?? 0;
  return (
    `ptxed differential, seed ${seed}: ${n('equal')}/${count} random traces printed exactly as ${reference} ` +
    `(${lineCount} lines; ${rounded} with an address above 2^53 rounded); known differences: ` +
    `${n('libipt-queue-defect')} libipt event-queue internal errors, ${n('ptxed-loops')} where ptxed resyncs for ever, ` +
    `${n('unknown-mode')} decodes in an unknown execution mode, ${n('invalid-encoding')} of invalid instructions, ` +
    `${n('libipt-undefined')} after a SYSCALL or INT event where libipt's result is undefined, ` +
    `${n('check-stand-in')} --check reports worded by ptxed's XED stand-in, ${n('wide-address')} at an address above 2^53, ` +
    `${n('libipt-fixed-equal')} equal once libipt's two defects are fixed; ${n('different')} different`
  );
}

/** A difference, shown with a few lines of context. */
export function describeDiff(d: PtxedComparison): string {
  const from = Math.max(0, d.firstDiff - 3);
  const show = (ls: string[]): string => ls.slice(from, d.firstDiff + 3).map((l) => `    ${l}`).join('\n');
  return `case seed ${d.case.seed}: ptxed ${d.case.argv.join(' ')} (line ${d.firstDiff + 1})\n  ptxed:\n${show(d.ptxed)}\n  ptscope:\n${show(d.ptscope)}`;
}

async function main(argv: string[]): Promise<number> {
  const arg = (name: string, dflt: number): number => {
    const i = argv.indexOf(name);
    if (i < 0) return dflt;
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name} takes a non-negative integer`);
    return v;
  };
  const count = arg('--count', 2000);
  const seed = arg('--seed', 1);
  const showAll = argv.includes('--show');
  const fixed = argv.includes('--fixed-libipt');
  const bin = fixed ? libiptFixedTools() : libiptTools();
  let fixedDir: string | null = null;
  // Built on first need: a case that differs by no rule.
  const fixedBin = (): string => (fixedDir ??= libiptFixedTools());
  const dir = mkdtempSync(join(tmpdir(), 'ptscope-ptxed-diff-'));
  const tally = new PtxedTally();
  try {
    for (let i = 0; i < count; i++) {
      const r = comparePtxed(ptxedCase(seed, i), dir, bin, fixed ? null : fixedBin);
      tally.add(r);
      if (r.verdict === 'different' && (showAll || tally.count('different') <= 5)) console.log(describeDiff(r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(tally.summary(seed, fixed ? "the vectors' ptxed with libipt's two defects fixed" : undefined));
  return tally.count('different') === 0 ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`ptxed-differential: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(2);
    },
  );
}
