/**
 * ptxed's decode loop (ptxed/src/ptxed.c: decode_insn, decode_block and
 * their helpers), once for both decoders: synchronize, drain events, decode
 * an instruction or a block, and after an error report it and resync (at
 * the next IP the trace gives with --resync-on-error, else at the next PSB).
 * What differs between the two decoders (decoding one step, printing it,
 * which IP an error is reported at) is a {@link FlowStep}.
 */
import { ErrorCode, errorMessage, errorName } from '../packets/errors.js';
import { hex64 } from '../reports/hex.js';
import { EventType, PtEvent } from '../events/event.js';
import { Status } from '../events/status.js';
import { formatIp } from '../flow/address-space.js';
import { Block, type BlockDecoder } from '../flow/block-decoder.js';
import type { InsnDecoder } from '../flow/insn-decoder.js';
import { checkBlock, checkInsn } from '../flow/insn-check.js';
import { InstructionDecoder, decodeInstruction } from '../flow/instruction-decoder.js';
import { Image } from '../flow/image.js';
import { InsnClass, InsnKind, InstructionInfo } from '../flow/instruction.js';
import { formatDiagnostic, formatEvent, type PtxedFormatOptions } from '../reports/ptxed-format.js';
import type { LineWriter } from './output.js';

/** What is printed, and how (ptxed's options). */
export interface FlowPrintOptions {
  fmt: PtxedFormatOptions;
  noInst: boolean;
  quiet: boolean;
  /** `--time`: the last event's time before each instruction. */
  time: boolean;
  /** `--raw-insn`: the instruction bytes before its text. */
  rawInsn: boolean;
  check: boolean;
  showBlocks: boolean;
  resync: boolean;
  /** JSON Lines instead of ptxed's text. */
  json: boolean;
  /** Statistics are printed (ptxed then numbers the blocks). */
  stat: boolean;
  /** `--att`: AT&T syntax instead of Intel. */
  att: boolean;
}

/** Counts (ptxed's ptxed_stats), and the diagnosed errors. */
export interface FlowCounts {
  insn: number;
  blocks: number;
  errors: number;
}

/** Called with each event after it is printed (the perf_event sideband). */
export type EventHook = (ev: PtEvent) => void;

/** What a step of the loop was, for {@link FlowPiece.record}. */
export const enum FlowStepKind {
  /** An instruction or a block. */
  Step = 1,
  Event = 2,
  /** `[end of trace]` or `[disabled]` after a resync. */
  Mark = 3,
  Error = 4,
}

/**
 * Decoding one piece of a larger trace (cli/parallel/flow-pieces.ts): the
 * decoder reads the piece's bytes, which start at trace offset `base`
 * (printed offsets are the whole trace's), and `record` is called after
 * every step with what it printed so far.
 */
export interface FlowPiece {
  base: number;
  /** `offset()`: the step's trace offset (a getter chain: asked only where the piece needs it). */
  record(kind: FlowStepKind, ip: number, offset: () => number, counts: FlowCounts): void;
  /**
   * Asked after an instruction or block step, before {@link record}: true
   * when the step is deep in the piece's body and printed nothing, so that
   * it needs no record at all (under --quiet, nearly every step). Under
   * --quiet an instruction step prints nothing and, within one block, the
   * trace position stays put, so the answer holds for the rest of the
   * block unless a record is made: it is asked once per block there.
   */
  readonly unrecorded?: () => boolean;
}

/** Formats instructions for output (iced-x86); created on first use. */
let formatter: InstructionDecoder | null = null;

function disassemble(insn: InstructionInfo, att: boolean): string {
  if (formatter === null) formatter = new InstructionDecoder(new Image());
  return formatter.disassemble(insn, att ? 'att' : 'intel');
}

/** Kinds whose encoding holds a near relative branch displacement (what XED reports one for). */
function hasRelativeDisplacement(kind: InsnKind): boolean {
  switch (kind) {
    case InsnKind.CallE8:
    case InsnKind.JmpE9:
    case InsnKind.JmpEB:
    case InsnKind.Jcc:
    case InsnKind.JrCXZ:
    case InsnKind.Loop:
    case InsnKind.LoopE:
    case InsnKind.LoopNE:
      return true;
    default:
      return false;
  }
}

/** ptxed's xed_next_ip: after the instruction, plus its displacement if it has one. */
function nextIpOf(insn: InstructionInfo): number {
  return insn.ip + insn.size + (hasRelativeDisplacement(insn.kind) ? insn.displacement : 0);
}

const INSN_CLASS_NAMES: readonly string[] = ['unknown', 'other', 'call', 'return', 'jump', 'cond-jump', 'far-call', 'far-return', 'far-jump', 'ptwrite', 'indirect'];
const MODE_BITS: readonly number[] = [0, 16, 32, 64];

function jsonIp(ip: number): string {
  return '0x' + formatIp(ip).replace(/^0+(?=.)/, '');
}

/** What the loop asks of both decoders alike (libipt's decoders share this shape). */
interface SyncingDecoder {
  readonly offset: number;
  syncForward(): number;
  resync(): number;
  event(ev: PtEvent): number;
}

/** One step of one decoder: what {@link decodeFlow} needs beyond the decoder calls. */
interface FlowStep {
  readonly dec: SyncingDecoder;
  /** Before synchronizing: forget the last step (its IP is what a sync error reports). */
  clear(): void;
  /** Decode and print one instruction or block (ptxed's decode_one_*). */
  decodeOne(): number;
  /** The IP an error is reported at (ptxed's diagnose_*). */
  errorIp(status: number): number;
  /** The IP of the last instruction or block. */
  readonly ip: number;
}

/** Prints the lines of ptxed, or JSON Lines; shared by both steps. */
class FlowPrinter {
  /** The time of the last event (ptxed's `time`), for --time. */
  timeHi = 0;
  timeLo = 0;

  constructor(
    readonly opts: FlowPrintOptions,
    readonly out: LineWriter,
    readonly counts: FlowCounts,
    /** Trace offset of the decoder's first byte. */
    readonly base = 0,
  ) {}

  insn(insn: InstructionInfo, offset: number): void {
    const opts = this.opts;
    if (opts.json) {
      const o: Record<string, unknown> = { ip: jsonIp(insn.ip), size: insn.size, class: INSN_CLASS_NAMES[insn.iclass] ?? 'unknown', bits: MODE_BITS[insn.mode] ?? 0 };
      if (opts.fmt.offset) o.offset = offset;
      if (insn.speculative) o.speculative = true;
      if (!opts.noInst) o.insn = disassemble(insn, opts.att);
      this.out.line(JSON.stringify(o));
      return;
    }
    let s = this.prefix(offset, insn.speculative) + formatIp(insn.ip);
    if (!opts.noInst) s += this.text(insn);
    this.out.line(s);
  }

  /** Offset, time and the speculative mark that start an instruction line. */
  private prefix(offset: number, speculative: boolean): string {
    let s = '';
    if (this.opts.fmt.offset) s += offset.toString(16).padStart(16, '0') + '  ';
    if (this.opts.time) s += hex64(this.timeHi, this.timeLo).padStart(16, '0') + '  ';
    if (speculative) s += '? ';
    return s;
  }

  /** The instruction's text (and bytes with --raw-insn), as ptxed's xed_print_insn. */
  private text(insn: InstructionInfo): string {
    let s = '';
    if (this.opts.rawInsn) {
      for (let i = 0; i < 15; i++) s += i < insn.size ? ' ' + insn.byte(i).toString(16).padStart(2, '0') : '   ';
    }
    return s + '  ' + disassemble(insn, this.opts.att);
  }

  /** ptxed's print_block, from the block's instruction addresses. */
  block(block: Block, offset: number, fetch: (ip: number) => InstructionInfo | null): void {
    const opts = this.opts;
    if (opts.json) {
      this.out.line(JSON.stringify({ block: jsonIp(block.ip), end: jsonIp(block.endIp), ninsn: block.ninsn, class: INSN_CLASS_NAMES[block.iclass] ?? 'unknown', bits: MODE_BITS[block.mode] ?? 0 }));
      return;
    }
    if (opts.showBlocks) this.out.line(opts.stat ? `[block ${this.counts.blocks.toString(16)}]` : '[block]');
    const ips = block.ips;
    for (let k = 0; k < block.ninsn; k++) {
      let s = this.prefix(offset, block.speculative) + formatIp(ips[k]!);
      if (!opts.noInst) {
        const insn = fetch(ips[k]!);
        if (insn === null) {
          this.out.line(s + ' [fetch error: no memory mapped at this address]');
          return;
        }
        s += this.text(insn);
      }
      this.out.line(s);
    }
  }

  event(ev: PtEvent, offset: number): void {
    if (this.opts.json) {
      const o: Record<string, unknown> = { event: (EventType[ev.type] ?? 'unknown').toLowerCase() };
      if (!ev.ipSuppressed) o.ip = jsonIp(ev.ip);
      if (ev.type === EventType.AsyncBranch || ev.type === EventType.AsyncDisabled) o.from = jsonIp(ev.at);
      if (ev.hasTsc) o.tsc = '0x' + hex64(ev.tscHi, ev.tscLo);
      if (offset) o.offset = offset;
      this.out.line(JSON.stringify(o));
      return;
    }
    this.out.line(formatEvent(ev, this.opts.fmt, offset));
  }

  line(text: string, json: string): void {
    this.out.line(this.opts.json ? json : text);
  }

  diagnose(offset: number, ip: number, what: string, status: number): void {
    if (this.opts.json) {
      this.out.line(JSON.stringify({ error: errorName(status), message: `${what}: ${errorMessage(status)}`, offset: offset < 0 ? null : offset, ip: jsonIp(ip) }));
      return;
    }
    for (const l of formatDiagnostic(offset, ip, what, status).split('\n')) this.out.line(l);
  }

  checks(lines: string[]): void {
    for (const l of lines) this.out.line(l);
  }
}

class InsnStep implements FlowStep {
  private readonly insn = new InstructionInfo();

  constructor(
    readonly dec: InsnDecoder,
    private readonly print: FlowPrinter,
  ) {}

  get ip(): number {
    return this.insn.ip;
  }

  clear(): void {
    this.insn.ip = 0;
    this.insn.iclass = InsnClass.Unknown;
  }

  decodeOne(): number {
    const opts = this.print.opts;
    const insn = this.insn;
    const offset = opts.fmt.offset || opts.check ? this.dec.offset + this.print.base : 0;
    const status = this.dec.next(insn);
    if (status < 0) {
      // An event that could not be indicated up front.
      if (status === -ErrorCode.EventIgnored) return Status.EventPending;
      // Even with an error, the instruction may have been decoded.
      if (insn.iclass === InsnClass.Unknown) return status;
    }
    if (!opts.quiet) this.print.insn(insn, offset);
    this.print.counts.insn++;
    if (opts.check) {
      const lines: string[] = [];
      checkInsn(insn, offset, lines);
      this.print.checks(lines);
    }
    return status;
  }

  /**
   * The rest of the current block's instructions, for a quiet piece whose
   * steps there need no record: what {@link decodeOne} does for each with
   * --quiet and no --check (count it), in a loop of its own. Stops after
   * an error, a status flag, or the block's last instruction.
   */
  quietRest(): number {
    const dec = this.dec;
    const insn = this.insn;
    const counts = this.print.counts;
    let status = 0;
    while (dec.leftInBlock > 0) {
      status = dec.next(insn);
      if (status < 0) {
        if (status === -ErrorCode.EventIgnored) return Status.EventPending;
        if (insn.iclass === InsnClass.Unknown) return status;
        counts.insn++;
        return status;
      }
      counts.insn++;
      if (status !== 0) return status;
    }
    return status;
  }

  /** ptxed's diagnose_insn: the next IP if the instruction decoded (not for -BadQuery). */
  errorIp(status: number): number {
    const insn = this.insn;
    if (status === -ErrorCode.BadQuery || insn.iclass === InsnClass.Unknown) return insn.ip;
    return nextIpOf(insn);
  }
}

class BlockStep implements FlowStep {
  private readonly block = new Block();
  private readonly scratch = new InstructionInfo();
  private readonly fetch = (ip: number): InstructionInfo | null =>
    decodeInstruction(this.dec.image, this.dec.asid, ip, this.block.mode, this.scratch) < 0 ? null : this.scratch;

  constructor(
    readonly dec: BlockDecoder,
    private readonly print: FlowPrinter,
  ) {}

  get ip(): number {
    return this.block.ip;
  }

  clear(): void {
    this.block.ip = 0;
    this.block.ninsn = 0;
  }

  decodeOne(): number {
    const opts = this.print.opts;
    const block = this.block;
    const offset = opts.fmt.offset || opts.check ? this.dec.offset + this.print.base : 0;
    const status = this.dec.next(block);
    // Even with an error, some instructions may have been decoded.
    this.print.counts.insn += block.ninsn;
    this.print.counts.blocks++;
    if (!opts.quiet) {
      this.print.block(block, offset, this.fetch);
      // The block's instructions, followed from its start, must end at its
      // end (ptxed's print_block says so when they do not).
      if (!opts.json && block.ninsn > 0 && block.ips[block.ninsn - 1] !== block.endIp) {
        this.print.diagnose(this.dec.offset + this.print.base, block.ips[block.ninsn - 1]!, 'reconstruct error', -ErrorCode.NoSync);
      }
    }
    if (opts.check) {
      const lines: string[] = [];
      checkBlock(block, offset, this.fetch, lines);
      this.print.checks(lines);
    }
    return status;
  }

  /** ptxed's diagnose_block: after the last instruction if it decodes (not for -BadQuery). */
  errorIp(status: number): number {
    const block = this.block;
    if (!block.ninsn) return block.ip;
    if (status === -ErrorCode.BadQuery) return block.endIp;
    const insn = this.fetch(block.endIp);
    return insn === null ? block.endIp : nextIpOf(insn);
  }
}

/**
 * Decode a whole trace with `decoder` and print what ptxed prints. Returns
 * the counts; `onEvent` sees every event after it is printed.
 */
export function decodeFlow(
  decoder: { kind: 'insn'; dec: InsnDecoder } | { kind: 'block'; dec: BlockDecoder },
  opts: FlowPrintOptions,
  out: LineWriter,
  onEvent: EventHook | null,
  piece: FlowPiece | null = null,
): FlowCounts {
  const counts: FlowCounts = { insn: 0, blocks: 0, errors: 0 };
  const base = piece?.base ?? 0;
  const print = new FlowPrinter(opts, out, counts, base);
  const step: FlowStep = decoder.kind === 'insn' ? new InsnStep(decoder.dec, print) : new BlockStep(decoder.dec, print);
  const dec = step.dec;
  const ev = new PtEvent();
  const offsetNow = (): number => dec.offset + base;
  const record =
    piece === null
      ? null
      : (kind: FlowStepKind, ip: number): void => {
          quietBlock = -1;
          piece.record(kind, ip, offsetNow, counts);
        };
  const unrecorded = piece?.unrecorded ?? null;
  // The block (InsnDecoder.blocksFetched) whose steps are known to need no record (-1: none).
  const insnDec = decoder.kind === 'insn' && opts.quiet ? decoder.dec : null;
  // Such a block's other steps, when a step prints and checks nothing, go in a loop of their own.
  const quietSteps = insnDec !== null && !opts.check && step instanceof InsnStep ? step : null;
  let quietBlock = -1;

  // Events taken so far: with the instruction count, whether a resync got anywhere.
  let eventsTaken = 0;
  const handleOneEvent = (): number => {
    const offset = opts.fmt.offset ? dec.offset + base : 0;
    const status = dec.event(ev);
    if (status < 0) return status;
    eventsTaken++;
    print.timeHi = ev.tscHi;
    print.timeLo = ev.tscLo;
    if (!opts.quiet && !ev.statusUpdate) print.event(ev, offset);
    onEvent?.(ev);
    record?.(FlowStepKind.Event, ev.ip);
    return status;
  };

  const drainEvents = (status: number): number => {
    while (status & Status.EventPending) {
      status = handleOneEvent();
      if (status < 0) break;
    }
    return status;
  };

  const resync = (): number => {
    let status: number;
    for (;;) {
      status = dec.resync();
      if (status >= 0) break;
      if (status !== -ErrorCode.EventIgnored) return status;
      status = handleOneEvent();
      if (status < 0) return status;
    }
    if (status & Status.IpSuppressed && !opts.quiet) print.line('[disabled]', '{"event":"disabled"}');
    record?.(FlowStepKind.Mark, 0);
    return status;
  };

  const diagnose = (what: string, status: number): void => {
    counts.errors++;
    const ip = step.errorIp(status);
    print.diagnose(dec.offset < 0 ? dec.offset : dec.offset + base, ip, what, status);
    record?.(FlowStepKind.Error, ip);
  };

  let sync = 0;
  // Where the last error that was resynced after was, and the counts then.
  const lastError = { offset: -1, status: 0, insn: -1, events: -1, repeats: 0 };
  for (;;) {
    step.clear();
    let status = dec.syncForward();
    if (status < 0) {
      if (status === -ErrorCode.Eos) break;
      diagnose('sync error', status);
      // Without progress we never will: stop.
      const next = dec.offset;
      if (next < 0 || next <= sync) break;
      sync = next;
      continue;
    }
    for (;;) {
      for (;;) {
        status = drainEvents(status);
        if (status < 0) break;
        if (status & Status.Eos) {
          if (!(status & Status.IpSuppressed) && !opts.quiet) print.line('[end of trace]', '{"event":"end of trace"}');
          record?.(FlowStepKind.Mark, 0);
          status = -ErrorCode.Eos;
          break;
        }
        status = step.decodeOne();
        if (record !== null) {
          if (insnDec !== null && insnDec.blocksFetched === quietBlock) {
            // A step of a block already known to need no record.
          } else if (unrecorded !== null && unrecorded()) {
            if (insnDec !== null) quietBlock = insnDec.blocksFetched;
          } else record(FlowStepKind.Step, step.ip);
          if (quietSteps !== null && status === 0 && insnDec!.blocksFetched === quietBlock) status = quietSteps.quietRest();
        } else if (quietSteps !== null && status === 0) {
          // Serially nothing is recorded: the block's other quiet steps go in their loop too.
          status = quietSteps.quietRest();
        }
        if (status < 0) break;
      }
      if (status === -ErrorCode.Eos) return counts;
      diagnose('error', status);
      if (!opts.resync) break;
      // The same error at the same place a third time, with no instruction
      // or event taken in between: the resync got nowhere twice, and would
      // go round for ever (ptxed does, e.g. at a TIP.PGE without an IP, whose
      // enable event the resync puts back every time). Go on at the next PSB.
      const at = dec.offset;
      if (at === lastError.offset && status === lastError.status && counts.insn === lastError.insn && eventsTaken === lastError.events) {
        if (++lastError.repeats >= 2) break;
      } else {
        lastError.offset = at;
        lastError.status = status;
        lastError.insn = counts.insn;
        lastError.events = eventsTaken;
        lastError.repeats = 0;
      }
      status = resync();
      if (status < 0) {
        diagnose('resync error', status);
        break;
      }
    }
  }
  return counts;
}

/** 0; 1 if errors were reported; 2 if no instruction could be decoded at all. */
export function exitStatus(counts: FlowCounts, errors: (message: string) => void): number {
  if (counts.insn === 0) {
    errors(counts.errors ? `flow: no instruction could be decoded (${counts.errors} decode errors)` : 'flow: the trace holds no instructions (tracing never enabled in mapped code)');
    return 2;
  }
  return counts.errors ? 1 : 0;
}
