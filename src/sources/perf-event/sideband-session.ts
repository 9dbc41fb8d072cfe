/**
 * perf_event sideband session: libipt's pt_sb_session with its pevent
 * decoders, for `ptscope dump` (ptdump) and `ptscope flow` (ptxed).
 *
 * A session holds one channel per `--pevent:primary/secondary` file. Each
 * channel has one record fetched ahead; channels are kept ordered by that
 * record's TSC (records without a time sample are due at TSC 0). Records
 * are printed (and, in flow, applied) once the trace's time reaches them.
 *
 * ─── How `ptscope dump` (ptdump) drives it ────────────────────────────────
 *   1. Parse argv with SidebandOptionParser('dump'). If `parser.active`,
 *      track time even without --time (ptdump forces track_time).
 *   2. `const sb = SidebandSession.create(parser.config, { out })` after
 *      the trace is loaded and before the first packet is printed. It may
 *      print `[file:offset sideband error: ...]` lines for unreadable first
 *      records. It throws PtError(BadFile) when a file cannot be loaded:
 *      print `ptscope: <message>` to stderr and exit non-zero.
 *   3. For every TSC, CBR, TMA, MTC and CYC packet (CYC only without
 *      --no-cyc), after updating the time tracker with that packet and
 *      BEFORE printing the packet's own line, call
 *        sb.printUntil(tsc)
 *      with the tracker's current TSC estimate (0n while no TSC is known;
 *      libipt's pt_time_query_tsc value, errors other than "no time" skip
 *      the call). This prints every record with time <= tsc.
 *   4. At the end of the trace (the dump loop ended without a fatal error),
 *      call `sb.flush()` to print the remaining records.
 *   The tracker reset on resync does not touch the session.
 *
 * ─── How `ptscope flow` (ptxed) drives it ─────────────────────────────────
 *   1. Parse argv with SidebandOptionParser('flow').
 *   2. `const sb = SidebandSession.create(parser.config, { out, host })`,
 *      after the image from --raw/--elf is set up and before decoding;
 *      `host` implements {@link SidebandImageHost} on the image layer.
 *      If `config.kcore` is non-empty, load those files into the host's
 *      kernel image first (every new process context starts as a copy of it).
 *   3. For EVERY event the instruction/block decoder reports (status
 *      updates included), right AFTER printing the event line (ptxed prints
 *      `[tick]`, `[disabled]`, ... first; status updates are not printed),
 *      call
 *        sb.onEvent(ev)
 *      with ev filled from the decoder event (see {@link SidebandTraceEvent};
 *      ev.tsc is the event's tsc, 0n without one). This prints and applies
 *      due records and performs postponed context switches through
 *      `host.switchTo(contextId)`; from then on decode with that context's
 *      image.
 *   4. Nothing at the end of the trace: ptxed does not flush remaining
 *      records.
 *
 * Output goes to `out` (stdout in the CLI) exactly as libipt prints it:
 * record text per --sb:* flags, `[context: pid-N]` with --sb:switch, and
 * `[<file>:<offset> sideband error|warning: <msg>]` (warnings only with
 * --sb:warn). Problems libipt passes over silently (a truncated last
 * record) go to `diag` (stderr) as one line with the file offset.
 */
import { readFileSync, openSync, readSync, closeSync } from 'node:fs';
import { ErrorCode, PtError, errorMessage } from '../../packets/errors.js';
import { formatSidebandDiagnostic, formatSidebandRecord } from './format.js';
import type { PeventFileConfig, SidebandConfig } from './options.js';
import {
  PERF_AUX_FLAG_TRUNCATED,
  PERF_RECORD_MISC_COMM_EXEC,
  PERF_RECORD_MISC_CPUMODE_MASK,
  PERF_RECORD_MISC_KERNEL,
  PERF_RECORD_MISC_SWITCH_OUT,
  PerfRecord,
  PerfRecordType,
  SampleField,
  readPerfRecord,
} from './record.js';
import { perfTimeToTsc } from './time-conversion.js';

/** Where text goes; `process.stdout` and `process.stderr` qualify. */
export interface SidebandOutput {
  write(text: string): unknown;
}

// The image layer's interface and the event kinds are defined by the flow
// layer, which implements them (flow/sideband-image-host.ts).
export { SbEventKind, type SidebandImageHost, type SidebandTraceEvent } from '../../flow/sideband-image-host.js';
import { SbEventKind, type SidebandImageHost, type SidebandTraceEvent } from '../../flow/sideband-image-host.js';

/** libipt's pt_sb_error_code: positive codes are warnings. */
export enum SidebandWarning {
  Lost = 1,
  TraceLost = 2,
  SectionLost = 3,
}

const WARNING_TEXT: Record<SidebandWarning, string> = {
  [SidebandWarning.Lost]: 'sideband lost',
  [SidebandWarning.TraceLost]: 'trace lost',
  [SidebandWarning.SectionLost]: 'image section lost',
};

export interface SidebandSessionOptions {
  /** Records and libipt-style diagnostics (stdout). */
  out: SidebandOutput;
  /** ptscope-only diagnostics libipt does not print; default process.stderr. */
  diag?: SidebandOutput;
  /** The image layer (flow). Without it, records are tracked but change nothing. */
  host?: SidebandImageHost;
  /** Read a whole file; default fs.readFileSync. */
  readFile?: (path: string) => Uint8Array;
  /** First bytes of a mapped file, for the vdso ABI; default reads from disk. */
  readHead?: (path: string, size: number) => Uint8Array | undefined;
}

const UINT64_MAX = (1n << 64n) - 1n;
const INT64_SIGN = 1n << 63n;

/** libipt's pt_sb_pevent_loc: where the trace is, for placing context switches. */
enum Location {
  Unknown,
  InUser,
  InKernel,
  LikelyInUser,
  LikelyInKernel,
}

/** libipt's pt_sb_abi, from the ELF header of the first file mapped into a process. */
enum Abi {
  Unknown,
  X64,
  X32,
  Ia32,
}

interface Context {
  id: number;
  pid: number;
  name: string;
  refs: number;
  abi: Abi;
}

/** One sideband file: libipt's pt_sb_pevent_priv plus its pt_sb_decoder. */
class Channel {
  readonly rec = new PerfRecord();
  readonly view: DataView;
  /** Offset of the record in `rec`; -1 before the first fetch. */
  current = -1;
  next = 0;
  /** The last fetch hit the end: `rec` holds no unapplied record. */
  exhausted = false;
  /** When the fetched record is due (decoder->tsc). */
  dueTsc = 0n;
  context: Context | null = null;
  nextContext: Context | null = null;
  location = Location.Unknown;

  constructor(
    readonly cfg: PeventFileConfig,
    readonly bytes: Uint8Array,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get hasTime(): boolean {
    return (this.rec.samples & SampleField.Time) !== 0;
  }
}

export class SidebandSession {
  /** Channels with a record fetched, ordered by dueTsc. */
  private decoders: Channel[] = [];
  /** Channels at their end, still shown events to place a last context switch. */
  private retired: Channel[] = [];
  private contexts = new Map<number, Context>();
  private nextContextId = 1;
  private readonly out: SidebandOutput;
  private readonly diag: SidebandOutput;
  private readonly host: SidebandImageHost | undefined;
  private readonly readHead: (path: string, size: number) => Uint8Array | undefined;

  private constructor(
    private readonly config: SidebandConfig,
    opts: SidebandSessionOptions,
  ) {
    this.out = opts.out;
    this.diag = opts.diag ?? process.stderr;
    this.host = opts.host;
    this.readHead = opts.readHead ?? readFileHead;
  }

  /**
   * Load every file of `config` and fetch its first record. Throws
   * PtError(BadFile) with a one-line message when a file cannot be read.
   */
  static create(config: SidebandConfig, opts: SidebandSessionOptions): SidebandSession {
    const session = new SidebandSession(config, opts);
    const readFile = opts.readFile ?? ((p: string) => readFileSync(p));
    const channels = config.files.map((cfg) => new Channel(cfg, loadRange(cfg, readFile)));
    // libipt queues decoders LIFO and inserts each before equal times, so
    // among records of equal time the earlier file on the command line wins.
    for (let i = channels.length - 1; i >= 0; --i) {
      const ch = channels[i]!;
      if (session.fetch(ch) >= 0) session.insert(ch);
    }
    return session;
  }

  /** TSC of the next record due, or undefined when all files are done. */
  get nextTsc(): bigint | undefined {
    return this.decoders[0]?.dueTsc;
  }

  /** ptdump: print, in time order, every record due at or before `tsc` (pt_sb_dump). */
  printUntil(tsc: bigint): void {
    for (;;) {
      const ch = this.decoders[0];
      if (!ch || tsc < ch.dueTsc) break;
      this.decoders.shift();
      this.print(ch);
      if (this.fetch(ch) < 0) continue;
      this.insert(ch);
    }
  }

  /** ptdump at the end of the trace: print all remaining records. */
  flush(): void {
    this.printUntil(UINT64_MAX);
  }

  /** ptxed: present a decoder event (pt_sb_event). */
  onEvent(ev: SidebandTraceEvent): void {
    // First round: print and apply records due at the event's time, one at
    // a time in time order across channels.
    for (;;) {
      const ch = this.decoders[0];
      if (!ch || ev.tsc < ch.dueTsc) break;
      this.decoders.shift();
      this.print(ch);
      if (this.apply(ch, ev) < 0) continue;
      const status = this.fetch(ch);
      if (status < 0) {
        if (status === -ErrorCode.Eos) this.retired.push(ch);
        continue;
      }
      this.insert(ch);
    }
    // Second round: every channel sees the event, to track user/kernel
    // location and perform a postponed context switch at a good place.
    this.present(this.decoders, ev);
    this.present(this.retired, ev);
  }

  private present(list: Channel[], ev: SidebandTraceEvent): void {
    for (let i = 0; i < list.length; ) {
      if (this.apply(list[i]!, ev) < 0) list.splice(i, 1);
      else ++i;
    }
  }

  private insert(ch: Channel): void {
    let i = 0;
    while (i < this.decoders.length && ch.dueTsc > this.decoders[i]!.dueTsc) ++i;
    this.decoders.splice(i, 0, ch);
  }

  /** Read the next record (pt_sb_pevent_fetch). Returns 0 or a negated ErrorCode. */
  private fetch(ch: Channel): number {
    const pos = ch.next;
    ch.current = pos;
    const rec = ch.rec;
    const size = readPerfRecord(ch.view, ch.bytes, pos, ch.bytes.length, ch.cfg.sampleType, rec);
    if (size < 0) {
      if (size === -ErrorCode.Eos) {
        ch.exhausted = true;
        if (rec.problem) this.diag.write(formatSidebandDiagnostic(ch.cfg.filename, pos, 'error', rec.problem));
      } else {
        this.reportError(ch, size, rec.problem);
      }
      return size;
    }
    if (rec.samples & SampleField.Time && !ch.cfg.timeMult) {
      this.reportError(ch, -ErrorCode.BadConfig, 'time_mult is zero');
      return -ErrorCode.BadConfig;
    }
    ch.next = pos + size;
    ch.dueTsc = rec.samples & SampleField.Time ? applyTscOffset(perfTimeToTsc(rec.sampleTime, ch.cfg), ch.cfg.tscOffset) : 0n;
    return 0;
  }

  private print(ch: Channel): void {
    const flags = this.config.printFlags;
    if (!flags) return;
    this.out.write(formatSidebandRecord(ch.rec, ch.cfg.filename, ch.current, ch.dueTsc, flags));
  }

  /** pt_sb_pevent_apply: apply the record if due, else track location and switch contexts. */
  private apply(ch: Channel, ev: SidebandTraceEvent): number {
    if (!ch.exhausted && (!ch.hasTime || ch.dueTsc <= ev.tsc)) {
      const status = this.applyRecord(ch);
      if (status < 0 && status !== -ErrorCode.Eos) {
        this.reportError(ch, status);
        return 0;
      }
      return status;
    }

    const oldLocation = ch.location;
    ch.location = this.locationOf(ch, ev);
    if (!ch.nextContext) return ch.exhausted ? -ErrorCode.Eos : 0;

    // Switch inside the kernel; an unknown location also qualifies so that
    // the switch lands before a tracing-enabled event after a gap.
    if (!isUserLocation(oldLocation) || !isUserLocation(ch.location)) {
      const status = this.switchContexts(ch);
      if (status < 0) this.reportError(ch, status);
    }
    return 0;
  }

  private locationOf(ch: Channel, ev: SidebandTraceEvent): Location {
    const fromIp = (ip: bigint): Location => (ip < ch.cfg.kernelStart ? Location.InUser : Location.InKernel);
    switch (ev.kind) {
      case SbEventKind.Enabled:
      case SbEventKind.AsyncBranch:
      case SbEventKind.Tip:
        return fromIp(ev.ip);
      case SbEventKind.Disabled:
        return ev.ipSuppressed ? afterSuppressedIp(ch.location) : fromIp(ev.ip);
      case SbEventKind.AsyncDisabled:
        return ev.ipSuppressed ? afterSuppressedIp(fromIp(ev.at)) : fromIp(ev.ip);
      case SbEventKind.AsyncPaging:
        return ev.ipSuppressed ? Location.LikelyInKernel : fromIp(ev.ip);
      case SbEventKind.Paging:
        return Location.LikelyInKernel;
      case SbEventKind.IpEvent:
        return ev.ipSuppressed ? Location.Unknown : fromIp(ev.ip);
      default:
        return Location.Unknown;
    }
  }

  /** pt_sb_pevent_apply_event_record. Returns 0 or a negated ErrorCode to report. */
  private applyRecord(ch: Channel): number {
    const rec = ch.rec;
    const primary = ch.cfg.primary;
    switch (rec.type) {
      case PerfRecordType.ItraceStart:
        if (!primary) return 0;
        this.prepareSwitchToPid(ch, rec.pid);
        // Tracing just started: no need to wait for a kernel location.
        return ch.nextContext ? this.switchContexts(ch) : 0;

      case PerfRecordType.Fork:
        return this.fork(rec);

      case PerfRecordType.Comm:
        if (!(rec.misc & PERF_RECORD_MISC_COMM_EXEC)) return 0;
        return this.exec(ch, rec.pid);

      case PerfRecordType.Switch:
        if (!primary || rec.misc & PERF_RECORD_MISC_SWITCH_OUT) return 0;
        if (!(rec.samples & SampleField.Tid)) return -ErrorCode.BadConfig;
        this.prepareSwitchToPid(ch, rec.samplePid);
        return 0;

      case PerfRecordType.SwitchCpuWide:
        if (!primary) return 0;
        if (!(rec.misc & PERF_RECORD_MISC_SWITCH_OUT)) {
          // A switch-in without a pid sample is fine: the switch-out named the next pid.
          if (rec.samples & SampleField.Tid) this.prepareSwitchToPid(ch, rec.samplePid);
          return 0;
        }
        this.prepareSwitchToPid(ch, rec.nextPrevPid);
        return 0;

      case PerfRecordType.Mmap:
      case PerfRecordType.Mmap2:
        // Kernel code comes from kcore; on-disk kernel files are not what ran.
        if ((rec.misc & PERF_RECORD_MISC_CPUMODE_MASK) === PERF_RECORD_MISC_KERNEL) return 0;
        return this.map(ch, rec.pid, rec.filename, rec.pgoff, rec.len, rec.addr);

      case PerfRecordType.Lost:
        this.warn(ch, SidebandWarning.Lost);
        return 0;

      case PerfRecordType.Aux:
        if (primary && rec.auxFlags & PERF_AUX_FLAG_TRUNCATED) this.warn(ch, SidebandWarning.TraceLost);
        return 0;

      default:
        return 0;
    }
  }

  private fork(rec: PerfRecord): number {
    // A new thread of an existing process changes nothing.
    if (rec.ppid === rec.pid) return 0;
    // A new process: its first thread has the process's id.
    if (rec.pid !== rec.tid) return -ErrorCode.Internal;
    // Exit records arrive while the process still runs in the kernel, so
    // a stale context for this pid is only dropped here.
    this.removeContext(rec.pid);
    const child = this.contextFor(rec.pid);
    const parent = this.contexts.get(rec.ppid);
    if (!parent) return 0;
    return this.host ? this.host.copyContext(child.id, parent.id) : 0;
  }

  private exec(ch: Channel, pid: number): number {
    // A fresh context replaces the old one; the old image stays in use
    // until the switch, which waits for the kernel (we have not exec'ed yet
    // in the trace).
    this.removeContext(pid);
    const ctx = this.contextFor(pid);
    if (!ch.cfg.primary) return 0;
    this.prepareSwitch(ch, ctx);
    return 0;
  }

  private map(ch: Channel, pid: number, name: string, pgoff: bigint, len: bigint, addr: bigint): number {
    const ctx = this.contextFor(pid);
    let filename = name;
    if (filename.startsWith('[')) {
      if (filename !== '[vdso]') {
        this.warn(ch, SidebandWarning.SectionLost);
        return 0;
      }
      const vdso = vdsoFor(ctx.abi, ch.cfg);
      if (!vdso) {
        this.reportError(ch, -ErrorCode.BadConfig);
        return 0;
      }
      filename = vdso;
    } else if (filename === '//anon' || filename.includes(' (deleted)')) {
      // JIT code and deleted files cannot be read; decode will likely hit -nomap.
      this.warn(ch, SidebandWarning.SectionLost);
      return 0;
    } else if (ch.cfg.sysroot) {
      filename = ch.cfg.sysroot + filename;
    }
    if (ctx.abi === Abi.Unknown) ctx.abi = elfAbi(this.readHead(filename, ELF32_EHDR_SIZE));
    return this.host ? this.host.mmap(ctx.id, filename, pgoff, len, addr) : 0;
  }

  private contextFor(pid: number): Context {
    let ctx = this.contexts.get(pid);
    if (ctx) return ctx;
    ctx = { id: this.nextContextId++, pid, name: `pid-${pid.toString(16)}`, refs: 1, abi: Abi.Unknown };
    this.contexts.set(pid, ctx);
    this.host?.createContext(ctx.id, pid, ctx.name);
    return ctx;
  }

  private removeContext(pid: number): void {
    const ctx = this.contexts.get(pid);
    if (!ctx) return;
    this.contexts.delete(pid);
    this.put(ctx);
  }

  private put(ctx: Context): void {
    if (--ctx.refs === 0) this.host?.releaseContext(ctx.id);
  }

  private prepareSwitchToPid(ch: Channel, pid: number): void {
    this.prepareSwitch(ch, this.contextFor(pid));
  }

  private prepareSwitch(ch: Channel, ctx: Context): void {
    // Already pending (e.g. a cpu-wide switch-out followed by its switch-in).
    if (ch.nextContext === ctx) return;
    // A newer switch overrides a pending one (imprecise timing, resync).
    if (ch.nextContext) {
      this.put(ch.nextContext);
      ch.nextContext = null;
    }
    if (ch.context === ctx) return;
    ctx.refs += 1;
    ch.nextContext = ctx;
  }

  private switchContexts(ch: Channel): number {
    const next = ch.nextContext;
    if (!next) return -ErrorCode.Internal;
    if (this.config.printSwitch) this.out.write(`[context: ${next.name}]\n`);
    const status = this.host ? this.host.switchTo(next.id) : 0;
    if (status < 0) return status;
    const prev = ch.context;
    ch.nextContext = null;
    ch.context = next;
    if (prev) this.put(prev);
    return 0;
  }

  private warn(ch: Channel, code: SidebandWarning): void {
    if (!this.config.warn) return;
    this.out.write(formatSidebandDiagnostic(ch.cfg.filename, this.errorOffset(ch), 'warning', WARNING_TEXT[code]));
  }

  private reportError(ch: Channel, code: number, detail?: string): void {
    this.out.write(formatSidebandDiagnostic(ch.cfg.filename, this.errorOffset(ch), 'error', errorMessage(code)));
    if (detail) this.diag.write(formatSidebandDiagnostic(ch.cfg.filename, this.errorOffset(ch), 'error', detail));
  }

  private errorOffset(ch: Channel): number {
    return ch.current >= 0 ? ch.current : ch.next;
  }
}

function isUserLocation(loc: Location): boolean {
  return loc === Location.InUser || loc === Location.LikelyInUser;
}

/** A suppressed IP on disable means we crossed into the other ring. */
function afterSuppressedIp(from: Location): Location {
  switch (from) {
    case Location.InKernel:
    case Location.LikelyInKernel:
      return Location.LikelyInUser;
    case Location.InUser:
    case Location.LikelyInUser:
      return Location.LikelyInKernel;
    default:
      return Location.Unknown;
  }
}

/** --pevent:tsc-offset: apply records earlier (or later for a negative offset) without wrapping. */
function applyTscOffset(tsc: bigint, offset: bigint): bigint {
  if (offset <= tsc) return tsc - offset;
  if (!(offset & INT64_SIGN)) return 0n;
  const later = tsc + ((1n << 64n) - offset);
  return later > UINT64_MAX ? UINT64_MAX : later;
}

function vdsoFor(abi: Abi, cfg: PeventFileConfig): string | undefined {
  switch (abi) {
    case Abi.X64:
      return cfg.vdsoX64;
    case Abi.X32:
      return cfg.vdsoX32;
    case Abi.Ia32:
      return cfg.vdsoIa32;
    default:
      return undefined;
  }
}

const ELF32_EHDR_SIZE = 52;

/** The ABI from an ELF header (e_ident class; e_machine for 32-bit), as libipt's elf_get_abi. */
function elfAbi(head: Uint8Array | undefined): Abi {
  if (!head || head.length < 20) return Abi.Unknown;
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return Abi.Unknown;
  if (head[6] !== 1) return Abi.Unknown; // EI_VERSION must be EV_CURRENT
  if (head[4] === 2) return Abi.X64; // ELFCLASS64
  if (head[4] !== 1 || head.length < ELF32_EHDR_SIZE) return Abi.Unknown;
  const machine = head[18]! | (head[19]! << 8);
  if (machine === 3) return Abi.Ia32; // EM_386
  if (machine === 62) return Abi.X32; // EM_X86_64 in a 32-bit ELF
  return Abi.Unknown;
}

function readFileHead(path: string, size: number): Uint8Array | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const buf = new Uint8Array(size);
    const n = readSync(fd, buf, 0, size, 0);
    return buf.subarray(0, n);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Load [begin, end) of a sideband file (pt_sb_file_load). */
function loadRange(cfg: PeventFileConfig, readFile: (path: string) => Uint8Array): Uint8Array {
  let all: Uint8Array;
  try {
    all = readFile(cfg.filename);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new PtError(ErrorCode.BadFile, 0, `${cfg.filename}:${'0'.repeat(16)}: cannot load sideband file: ${reason}`);
  }
  const end = cfg.end && cfg.end < all.length ? cfg.end : all.length;
  if (cfg.begin > end) {
    throw new PtError(
      ErrorCode.BadFile,
      cfg.begin,
      `${cfg.filename}:${cfg.begin.toString(16).padStart(16, '0')}: offset beyond the end of the sideband file`,
    );
  }
  return all.subarray(cfg.begin, end);
}
