/**
 * Rebuilds the exact executed instruction sequence from qemu's TB log and
 * feeds it to the trace unit ({@link PtEncoderSession}).
 *
 * A TB execution is only committed once the next event shows how it ended:
 * - the next TB starts: the TB ran to its end, and its last instruction
 *   (the only one that can branch) went to that TB's pc;
 * - a synchronous fault signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE raised by
 *   the CPU): the TB stopped at the faulting instruction, which did not
 *   complete. Its address is si_addr when that is an instruction of the TB
 *   (SIGILL, SIGFPE, fetch faults), else the crash's RIP from qemu's core
 *   dump; otherwise the last instruction is assumed (`inexactFaults`);
 * - an asynchronous signal: qemu delivers it between TBs, so the TB
 *   completed. When its successor is not known from the code (conditional
 *   or indirect branch), events are held back until the handler's
 *   rt_sigreturn shows where the interrupted code resumes.
 *
 * qemu runs each iteration of a rep-prefixed string instruction as a TB
 * execution of its own; a decoder sees one instruction, so a TB that starts
 * at the rep instruction that just executed continues it.
 *
 * The log may have been altered by the program (qemu-log.ts), so what the
 * code itself fixes is checked, and a contradiction is a
 * {@link RecordingTampered}:
 * - a TB executes only under the pointer of its translation, at its pc;
 * - a translation's bytes are the bytes of the file mapped there, unless
 *   that range was writable at some point (code modified at run time, kept
 *   with the code no file maps as run-time code: runtime-code.ts);
 * - execution continues where the last instruction leads: the next
 *   instruction after a non-branch, the target of a direct jump or call,
 *   one of the two sides of a conditional branch, and after a syscall the
 *   next instruction or the syscall itself (restarted), anywhere only after
 *   rt_sigreturn (or a delivered signal, which resets the chain);
 * - one path is one thread: with one log for the whole program there is
 *   one vCPU (the recording stops at clone); with one log per thread
 *   (task-tracer.ts) each thread's log feeds its own path, and the threads
 *   of a process share its translations ({@link TranslationCache}).
 * The state kept is bounded (translations by bytes, held-back events by
 * count); reaching a bound stops the recording with its reason.
 */
import { BranchKind, decodeBlock, locateDataFault, type BlockEnd } from './branch-kind.js';
import { entryVerdict, syscallVerdict, type ChannelVerdict } from './log-channel.js';
import { THREAD_LOG_FDS } from './thread-fifos.js';
import type { MemoryMap } from './memory-map.js';
import type { PtEncoderSession } from './pt-encoder-session.js';
import { RecordingTampered, type QemuLogSink, type TranslatedBlock } from './qemu-log.js';

/** A translated block with what its end does. */
interface Block {
  readonly ips: Float64Array;
  readonly sizes: Uint8Array;
  /** The code bytes (to locate faults). */
  readonly bytes: Uint8Array;
  readonly end: BlockEnd;
  readonly firstIsRep: boolean;
  /** Every instruction is inside the IP filter (no per-instruction checks). */
  readonly covered: boolean;
  /** No file holds these bytes: captured as run-time code when the block first runs. */
  runtime: boolean;
  /** Neither a file nor captured run-time code holds it (a bound was reached). */
  unmapped: boolean;
  /** Run-time code: the version that holds it (RuntimeCode.add), once it ran; else -1. */
  version: number;
}

/** Signals the CPU raises at the faulting instruction. */
const FAULT_SIGNALS = new Set(['SIGSEGV', 'SIGBUS', 'SIGILL', 'SIGFPE']);
/** Signal names kept in the statistics (the rest are counted). */
const MAX_SIGNALS_LISTED = 1000;
/** Events held back while an interrupted branch's successor is unknown. */
const MAX_DEFERRED_EVENTS = 1 << 20;
/** Bookkeeping bytes of one translation besides its arrays. */
const BLOCK_OVERHEAD = 160;
/** The log's descriptors in the emulator: 3 (handed in) and the one qemu opens from it. */
export const LOG_DESCRIPTORS: readonly number[] = [3, 4];
/**
 * With the log shim preloaded: only qemu's own, moved up to the shim's
 * LOG_FD_FLOOR (the handed-in 3 is closed once qemu has opened it).
 */
export const SHIMMED_LOG_DESCRIPTORS: readonly number[] = [700];

/** Why the recorder stopped the program before it ended. */
export type StopReason = 'budget' | 'exec' | 'clone' | 'log-closed' | 'trace-size' | 'recorder-memory';

/**
 * The translations of one process, by host pointer: qemu's code buffer is
 * shared by the threads of a process, so a TB translated (and logged) by
 * one thread may be executed by another. A forked child starts with a copy.
 */
export class TranslationCache {
  readonly blocks: Map<number, Block>;
  /**
   * Translations logged by a thread that was killed (another thread's exec)
   * before it ran them, by guest pc. qemu names a TB's host address only
   * when a thread runs it, and the threads share their TBs: a sibling may
   * have run it already, and its log names only the host address.
   */
  readonly unbound = new Map<number, Block>();
  bytes = 0;

  constructor(from?: TranslationCache) {
    this.blocks = new Map(from?.blocks ?? []);
    this.bytes = from?.bytes ?? 0;
  }
}

export interface PathLimits {
  /** Instruction budget. */
  maxInsns: number;
  /** Bytes of translations held (the recorder's own memory). */
  maxBlockBytes: number;
  /** Another limit reached (the trace's size), checked before each TB. */
  overLimit: () => StopReason | null;
  /** Called once when this path stops (the recorder stops the target, unless only this thread ends: an exec). */
  onStop: (reason: StopReason) => void;
  /**
   * One log per thread (task-tracer.ts): a thread's clone does not stop the
   * path, and the log's descriptors are the handed-in ones (thread-fifos.ts).
   */
  perThreadLogs?: boolean;
  /** One log: its descriptors in the emulator (default {@link LOG_DESCRIPTORS}); the last is qemu's own. */
  logFds?: readonly number[];
  /** With per-thread logs: a forked child writes its own log (native/qemu-log-shim.c), so fork does not stop the path. */
  followForks?: boolean;
  /** The exec follower runs: an exec's new program has a log of its own after a marker (task-tracer.ts), so exec does not end the path at its entry. */
  followExecs?: boolean;
}

type Deferred =
  | { t: 'exec'; block: Block; pc: number }
  | { t: 'signal'; name: string; code: number; addr: number | null }
  | { t: 'stopped'; ptr: number; pc: number }
  | { t: 'syscall'; line: string };

export interface PathStats {
  /** TB executions seen. */
  tbExecutions: number;
  translations: number;
  /** Instructions executed (the emulator's count). */
  instructions: number;
  signals: string[];
  /** Faults whose instruction could not be located exactly. */
  inexactFaults: number;
  /** Executed TBs at addresses no image maps. */
  unmappedTbs: number;
}

export class PathReconstruction implements QemuLogSink {
  private justTranslated: Block | null = null;
  /** The last syscall since the last TB (after rt_sigreturn, execution may continue anywhere). */
  private lastSyscall: string | null = null;
  private signalsDropped = 0;
  private codeModified = 0;
  /** Why the recording stopped, in the program's terms (for the warnings). */
  stopDetail: string | null = null;
  /** Warnings for the bundle. */
  readonly warnings: string[] = [];
  private pending: Block | null = null;
  private lastIp = NaN;
  /** A fault signal seen for {@link pending}; resolved by the next event. */
  private pendingFault: { name: string; addr: number | null } | null = null;
  /** Held-back events while an interrupted branch's successor is unknown. */
  private deferred: { block: Block; events: Deferred[]; depth: number; sigreturnSeen: boolean } | null = null;
  private replaying = false;
  stopped = false;
  stopReason: StopReason | null = null;
  /** Instructions this path executed (the stats may be shared by the threads of a recording). */
  instructions = 0;

  constructor(
    private readonly session: PtEncoderSession,
    private readonly memory: MemoryMap,
    private readonly limits: PathLimits,
    private readonly cache: TranslationCache = new TranslationCache(),
    readonly stats: PathStats = newPathStats(),
  ) {
    this.epochFrom = memory.runtime.images.length;
    session.beginEpochs(this.epochFrom);
  }

  /**
   * The run-time images that existed when this thread's current image epoch
   * began: the epoch's image holds them and what was made after them up to
   * the next rewrite (pt-encoder-session.ts, image epochs).
   */
  private epochFrom: number;

  private get blocks(): Map<number, Block> {
    return this.cache.blocks;
  }

  /**
   * True when a TB execution at (`ptr`, `pc`) can be followed now: it was
   * just translated by this thread, or its translation is known. With one
   * log per thread, another thread's translation may not have been read yet.
   */
  canExecute(ptr: number, pc: number): boolean {
    if (this.stopped || this.justTranslated !== null) return true;
    return this.blocks.get(ptr)?.ips[0] === pc || this.cache.unbound.has(pc);
  }

  /**
   * This thread was killed where it stands (its process executed a program
   * from another thread): a TB it translated and did not run may have been
   * run by a sibling, which finds it by pc ({@link TranslationCache.unbound}).
   */
  abandon(): void {
    if (this.justTranslated === null) return;
    this.cache.unbound.set(this.justTranslated.ips[0], this.justTranslated);
    this.justTranslated = null;
  }

  private blockSize(b: Block): number {
    return b.ips.length * 9 + b.bytes.length + BLOCK_OVERHEAD;
  }

  translated(tb: TranslatedBlock): void {
    if (this.stopped) return;
    const d = decodeBlock(tb.pc, tb.bytes);
    if (d === null) throw new Error(`qemu log: cannot decode the TB at 0x${tb.pc.toString(16)}`);
    const n = d.ips.length;
    this.justTranslated = {
      ips: d.ips,
      sizes: d.sizes,
      bytes: tb.bytes,
      end: d.end,
      firstIsRep: d.firstIsRep,
      covered: this.session.coveredByFilter(d.ips[0], d.ips[n - 1]),
      runtime: false,
      unmapped: false,
      version: -1,
    };
    this.stats.translations++;
  }

  executed(cpu: number, ptr: number, pc: number): void {
    if (this.stopped) return;
    if (cpu !== 0 && this.limits.perThreadLogs !== true) throw new RecordingTampered(`a TB of vCPU ${cpu} in the emulator's log, but the program has one thread`);
    let block: Block | undefined;
    let fresh: Block | undefined;
    if (this.justTranslated !== null) {
      fresh = this.justTranslated;
      this.justTranslated = null;
      if (fresh.ips[0] !== pc) throw new RecordingTampered(`the emulator's log is inconsistent: a TB translated at 0x${fresh.ips[0].toString(16)} executes at 0x${pc.toString(16)}`);
    } else {
      block = this.blocks.get(ptr);
      if (block?.ips[0] !== pc) {
        fresh = this.cache.unbound.get(pc);
        this.cache.unbound.delete(pc);
      }
    }
    if (fresh !== undefined) {
      block = fresh;
      block.runtime = this.checkCode(block);
      const old = this.blocks.get(ptr);
      if (old !== undefined) this.cache.bytes -= this.blockSize(old);
      this.blocks.set(ptr, block);
      this.cache.bytes += this.blockSize(block);
      if (this.cache.bytes > this.limits.maxBlockBytes) {
        // The block before ran up to here: it counts, and the trace stops before this one.
        if (this.pending !== null && this.deferred === null) this.commit(this.pending, pc);
        return this.stop(pc, 'recorder-memory');
      }
    }
    if (block === undefined || block.ips[0] !== pc) {
      throw new RecordingTampered(`the emulator's log is inconsistent: the TB at 0x${pc.toString(16)} (host 0x${ptr.toString(16)}) executes but was never translated there`);
    }
    if (this.deferred !== null && !this.replaying) {
      this.deferred.events.push({ t: 'exec', block, pc });
      if (this.deferred.sigreturnSeen && this.deferred.depth === 0) this.resolveDeferred(pc);
      else if (this.deferred.events.length >= MAX_DEFERRED_EVENTS) this.forceResolveDeferred();
      return;
    }
    this.stats.tbExecutions++;
    if (this.pending !== null) this.commit(this.pending, pc);
    this.captureRuntime(block);
    this.lastSyscall = null;
    if (this.stats.instructions >= this.limits.maxInsns) return this.stop(pc, 'budget');
    const over = this.limits.overLimit();
    if (over !== null) return this.stop(pc, over);
    this.pending = block;
  }

  /**
   * True if no file holds the translation's bytes: nothing is mapped at its
   * pc, it runs past the file, or the code was modified. Where a file is
   * mapped, the bytes must be the file's unless the range was writable: a
   * difference there means a forged translation.
   */
  private checkCode(block: Block): boolean {
    const pc = block.ips[0];
    const m = this.memory.mappingAt(pc);
    if (m === null) return true;
    const file = this.memory.fileBytes(m.path);
    if (file === null) return false;
    const off = m.offset + (pc - m.address);
    const n = Math.min(block.bytes.length, m.address + m.size - pc, file.length - off);
    for (let k = 0; k < n; k++) {
      if (block.bytes[k] === file[off + k]) continue;
      const at = pc + k;
      if (this.memory.wasWritable(at, at + (n - k))) {
        this.codeModified++;
        return true;
      }
      throw new RecordingTampered(`translated code at 0x${at.toString(16)} does not match ${m.path} (a forged log, or the file changed during the recording)`);
    }
    return n < block.bytes.length;
  }

  /**
   * A block no file holds runs for the first time (its predecessor is
   * committed, so the count is the position where it starts): its bytes
   * become run-time code. A block of neither kind is unmapped.
   */
  private captureRuntime(block: Block): void {
    if (block.runtime) {
      block.runtime = false;
      block.version = this.memory.runtime.add(block.ips[0], block.bytes, this.stats.instructions);
      block.unmapped = block.version < 0;
    }
    if (block.unmapped) this.stats.unmappedTbs++;
    // Code rewritten since this thread's epoch began (by any thread) runs here:
    // the image up to then cannot show it, so a new epoch starts at this block.
    const v = block.version;
    if (v >= this.epochFrom && v >= this.memory.runtime.firstRewriteFrom(this.epochFrom)) {
      this.epochFrom = this.memory.runtime.images.length;
      this.session.requestEpoch(this.epochFrom);
    }
  }

  /**
   * The TB just logged did not start (qemu noticed an exit request, such as
   * a signal, at its entry): execution is interrupted at its pc.
   */
  notExecuted(ptr: number, pc: number): void {
    if (this.stopped) return;
    if (this.deferred !== null && !this.replaying) {
      this.deferred.events.push({ t: 'stopped', ptr, pc });
      if (this.deferred.events.length >= MAX_DEFERRED_EVENTS) this.forceResolveDeferred();
      return;
    }
    const p = this.pending;
    if (p !== null && p.ips[0] !== pc && this.blocks.get(ptr)?.ips[0] === pc) {
      // qemu went on from the last TB into this known one without logging
      // it (seen in a forked child when a signal arrived under load): the
      // last TB ran whole, and only if its code leads here (commit checks).
      this.pending = null;
      this.commit(p, pc);
      this.session.interrupt(pc);
      return;
    }
    if (p === null || p.ips[0] !== pc || this.blocks.get(ptr) !== p) {
      throw new RecordingTampered(`the emulator's log is inconsistent: a TB at 0x${pc.toString(16)} that was not the last to start is said not to have started`);
    }
    this.pending = null;
    this.stats.tbExecutions--;
    this.session.interrupt(pc);
  }

  signal(name: string, code: number, addr: number | null): void {
    if (this.stopped) return;
    if (this.deferred !== null && !this.replaying) {
      this.deferred.events.push({ t: 'signal', name, code, addr });
      if (!FAULT_SIGNALS.has(name) || code <= 0) this.deferred.depth++;
      if (this.deferred.events.length >= MAX_DEFERRED_EVENTS) this.forceResolveDeferred();
      return;
    }
    if (this.stats.signals.length < MAX_SIGNALS_LISTED) this.stats.signals.push(name);
    else this.signalsDropped++;
    const p = this.pending;
    if (p === null) return;
    if (FAULT_SIGNALS.has(name) && code > 0) {
      // Decided at the next event: a handler runs, or the program dies.
      this.pendingFault = { name, addr };
      return;
    }
    // Asynchronous: delivered after the TB completed.
    this.pending = null;
    const next = knownSuccessor(p);
    if (p.end.kind === BranchKind.ToKernel) {
      // Already left user space at the syscall: the handler starts with TIP.PGE.
      this.commitFully(p, 0);
    } else if (!Number.isNaN(next)) {
      this.commitFully(p, next);
      this.session.interrupt(next);
    } else {
      this.deferred = { block: p, events: [], depth: 0, sigreturnSeen: false };
    }
  }

  /** A syscall's strace entry: the recording stops at exec and clone (log-channel.ts). */
  syscallEntry(name: string, text: string): void {
    if (this.stopped) return;
    if (this.limits.perThreadLogs === true) {
      // Threads and processes have logs of their own; exec still ends this
      // thread's trace (qemu-user does not follow it: the new program runs natively).
      // qemu's own descriptor for this thread's log is not known (NaN never
      // matches): closing it is seen as the log ending early.
      const v = entryVerdict(name, text, NaN);
      // A failed exec goes on in this log; a successful one ends it at the follower's marker.
      if (v !== null && 'stop' in v && v.stop === 'exec' && this.limits.followExecs === true) return;
      if (v !== null && 'stop' in v && v.stop === 'clone') {
        if ((name === 'clone' || name === 'clone3') && /CLONE_THREAD/.test(text)) return;
        if (this.limits.followForks === true) return;
        // A forked child inherits its parent's per-thread log (qemu 7.2 does
        // not reopen it), so its lines would mix with the parent's: stop here.
        return this.halt('clone', `the program starts a process (${text.slice(0, 60).replace(/[^\x20-\x7e]/g, '?')}...), which is followed only with the emulator's log shim (built with gcc: see the warning above)`);
      }
      return this.apply(v);
    }
    // The shim keeps a guarded log open through close, close_range, dup2 and dup3: none of them ends it.
    const fds = this.limits.logFds ?? LOG_DESCRIPTORS;
    this.apply(entryVerdict(name, text, fds === SHIMMED_LOG_DESCRIPTORS ? NaN : fds[fds.length - 1]!));
  }

  syscall(line: string): void {
    if (this.stopped) return;
    this.memory.syscall(line);
    this.apply(syscallVerdict(line, this.limits.perThreadLogs === true ? THREAD_LOG_FDS : this.limits.logFds ?? LOG_DESCRIPTORS));
    if (this.stopped) return;
    const paren = line.indexOf('(');
    this.lastSyscall = paren > 0 ? line.slice(0, paren) : null;
    if (this.deferred !== null && !this.replaying) {
      if (line.startsWith('rt_sigreturn(') || line.startsWith('sigreturn(')) {
        if (this.deferred.depth > 0) this.deferred.depth--;
        else this.deferred.sigreturnSeen = true;
      }
      this.deferred.events.push({ t: 'syscall', line });
      if (this.deferred.events.length >= MAX_DEFERRED_EVENTS) this.forceResolveDeferred();
    }
  }

  private apply(v: ChannelVerdict): void {
    if (v === null) return;
    if ('tampered' in v) throw new RecordingTampered(v.tampered);
    this.halt(v.stop, v.why);
  }

  /**
   * Stop at a syscall the recording cannot go past: the TB that made it
   * completes (its syscall leaves user space), and nothing after it is read.
   */
  halt(reason: StopReason, why: string): void {
    if (this.stopped) return;
    this.forceResolveDeferred();
    const p = this.pending;
    this.pending = null;
    if (p !== null) {
      if (this.pendingFault !== null) this.commitFault(p, null);
      else this.commitFully(p, NaN);
    }
    this.stopped = true;
    this.stopReason = reason;
    this.stopDetail = why;
    this.limits.onStop(reason);
  }

  /** Resolve held-back events with the fall-through guess (the handler never returned, or too many events). */
  private forceResolveDeferred(): void {
    if (this.deferred === null) return;
    const d = this.deferred;
    this.deferred = null;
    this.stats.inexactFaults++;
    const last = d.block.ips.length - 1;
    const guess = d.block.ips[last] + d.block.sizes[last];
    this.commitFully(d.block, guess);
    this.session.interrupt(guess);
    this.replay(d.events);
  }

  layout(name: string, value: number): void {
    this.memory.layout(name, value);
  }

  /**
   * The log ended. `crashIp` is the faulting RIP from qemu's core dump when
   * the program died of a fault signal; `killed` is true when the recorder
   * killed the emulator (timeout), so the last logged TB may not have run:
   * the trace then stops before it.
   */
  finish(crashIp: number | null, killed = false): void {
    // A handler that never returned: assume the branch fell through.
    if (!this.stopped) this.forceResolveDeferred();
    const p = this.pending;
    this.pending = null;
    if (p !== null && !this.stopped && killed) {
      this.session.interrupt(p.ips[0]);
    } else if (p !== null && !this.stopped) {
      if (this.pendingFault !== null) {
        this.commitFault(p, crashIp);
      } else {
        // Ended without a fault (exit_group is the TB's syscall).
        this.commitFully(p, NaN);
      }
    }
    this.session.finish();
    if (this.codeModified > 0) this.warnings.push(`${this.codeModified} translation(s) of code modified at run time differ from their image files: kept as run-time images`);
    if (this.signalsDropped > 0) this.warnings.push(`${this.signalsDropped} more signals than the ${MAX_SIGNALS_LISTED} listed in stats.signals`);
    if (this.stopDetail !== null) this.warnings.push(`recording stopped: ${this.stopDetail}; the trace up to there is kept`);
  }

  // --- committing -----------------------------------------------------------

  /** The TB ran and execution continued at `next` (the next TB's pc). */
  private commit(block: Block, next: number): void {
    if (this.pendingFault !== null) {
      // A handler is running: it starts at `next`.
      this.commitFault(block, null);
      return;
    }
    if (this.continues(block, next)) return this.commitFully(block, next);
    // qemu stops a TB early when the code under it is written (self-modifying
    // code): execution resumes at a later instruction of the same block.
    const at = block.ips.indexOf(next);
    const last = block.ips.length - 1;
    if (at > 0 && this.memory.wasWritable(block.ips[0], block.ips[last] + block.sizes[last])) {
      this.run(block, at, NaN);
      return;
    }
    const ip = block.ips[last];
    throw new RecordingTampered(`the emulator's log is inconsistent: after the instruction at 0x${ip.toString(16)} (${BranchKind[block.end.kind]}), execution continues at 0x${next.toString(16)}`);
  }

  /** True if the code allows execution to go from `block`'s last instruction to `next`. */
  private continues(block: Block, next: number): boolean {
    const last = block.ips.length - 1;
    const ip = block.ips[last];
    const fall = ip + block.sizes[last];
    const end = block.end;
    switch (end.kind) {
      case BranchKind.None:
        return next === fall || (end.repString && next === ip);
      case BranchKind.CondJump:
        return next === fall || next === end.target;
      case BranchKind.DirectJump:
      case BranchKind.DirectCall:
        return next === end.target;
      case BranchKind.ToKernel:
        // The next instruction, the syscall itself when restarted, anywhere after sigreturn.
        return next === fall || next === ip || this.lastSyscall === 'rt_sigreturn' || this.lastSyscall === 'sigreturn';
      default:
        return true;
    }
  }

  private commitFault(block: Block, crashIp: number | null): void {
    const fault = this.pendingFault!;
    this.pendingFault = null;
    let at = crashIp !== null ? block.ips.indexOf(crashIp) : -1;
    if (at < 0 && fault.addr !== null) at = block.ips.indexOf(fault.addr);
    if (at < 0 && crashIp !== null) {
      // The block completed and the fault is at its successor (a fetch fault).
      this.commitFully(block, crashIp);
      this.session.interrupt(crashIp);
      return;
    }
    if (at < 0 && fault.addr !== null && (fault.name === 'SIGSEGV' || fault.name === 'SIGBUS')) {
      const guess = locateDataFault(block.ips[0], block.bytes, fault.addr);
      if (guess.index >= 0) {
        at = guess.index;
        if (!guess.exact) this.stats.inexactFaults++;
      }
    }
    if (at < 0) {
      this.stats.inexactFaults++;
      at = block.ips.length - 1;
    }
    this.run(block, at, NaN);
    this.session.interrupt(block.ips[at]);
  }

  private commitFully(block: Block, next: number): void {
    this.run(block, block.ips.length, next);
  }

  /** Execute instructions [start, upto) of `block`; if upto is the end, its last goes to `next`. */
  private run(block: Block, upto: number, next: number): void {
    const ips = block.ips;
    const n = ips.length;
    const s = this.session;
    // A TB starting at the rep instruction that just executed is its next iteration.
    const start = block.firstIsRep && ips[0] === this.lastIp ? 1 : 0;
    const covered = block.covered;
    const linearEnd = upto === n ? n - 1 : upto;
    for (let i = start; i < linearEnd; i++) {
      if (i === 0 || !covered) s.boundary(ips[i]);
      s.insn(ips[i]);
    }
    if (linearEnd > start) {
      this.stats.instructions += linearEnd - start;
      this.instructions += linearEnd - start;
    }
    if (upto === n && start <= n - 1) {
      const i = n - 1;
      if (i === 0 || !covered) s.boundary(ips[i]);
      s.branch(ips[i], block.sizes[i], block.end, next);
      this.stats.instructions++;
      this.instructions++;
      this.lastIp = ips[i];
    } else if (upto > start) {
      this.lastIp = ips[upto - 1];
    }
  }

  private resolveDeferred(resumeIp: number): void {
    const d = this.deferred!;
    this.deferred = null;
    this.commitFully(d.block, resumeIp);
    this.session.interrupt(resumeIp);
    this.replay(d.events);
  }

  private replay(events: Deferred[]): void {
    for (let k = 0; k < events.length; k++) {
      const e = events[k];
      if (this.deferred !== null) {
        // A new deferral began during the replay: hold the rest again.
        this.deferred.events.push(e);
        if (e.t === 'signal' && (!FAULT_SIGNALS.has(e.name) || e.code <= 0)) this.deferred.depth++;
        if (e.t === 'syscall' && (e.line.startsWith('rt_sigreturn(') || e.line.startsWith('sigreturn('))) {
          if (this.deferred.depth > 0) this.deferred.depth--;
          else this.deferred.sigreturnSeen = true;
        }
        if (e.t === 'exec' && this.deferred.sigreturnSeen && this.deferred.depth === 0) this.resolveDeferred(e.pc);
        continue;
      }
      this.replaying = true;
      try {
        if (e.t === 'exec') {
          this.justTranslated = null;
          this.executedReplay(e.pc, e.block);
        } else if (e.t === 'signal') this.signal(e.name, e.code, e.addr);
        else if (e.t === 'stopped') this.notExecuted(e.ptr, e.pc);
        else {
          const paren = e.line.indexOf('(');
          this.lastSyscall = paren > 0 ? e.line.slice(0, paren) : null;
        }
      } finally {
        this.replaying = false;
      }
    }
  }

  private executedReplay(pc: number, block: Block): void {
    this.stats.tbExecutions++;
    if (this.pending !== null) this.commit(this.pending, pc);
    this.captureRuntime(block);
    this.lastSyscall = null;
    if (this.stats.instructions >= this.limits.maxInsns) return this.stop(pc, 'budget');
    this.pending = block;
  }

  /** Stop before the TB at `pc` (a limit reached): the trace ends with an asynchronous disable there. */
  private stop(pc: number, reason: StopReason): void {
    this.stopped = true;
    this.stopReason = reason;
    this.pending = null;
    this.session.interrupt(pc);
    this.limits.onStop(reason);
  }
}

export function newPathStats(): PathStats {
  return { tbExecutions: 0, translations: 0, instructions: 0, signals: [], inexactFaults: 0, unmappedTbs: 0 };
}

/** Where a completed block continues when the code alone says so, else NaN. */
function knownSuccessor(b: Block): number {
  const last = b.ips.length - 1;
  switch (b.end.kind) {
    case BranchKind.None:
      return b.ips[last] + b.sizes[last];
    case BranchKind.DirectJump:
    case BranchKind.DirectCall:
      return b.end.target;
    default:
      return NaN;
  }
}
