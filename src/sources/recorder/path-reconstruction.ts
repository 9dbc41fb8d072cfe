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
 */
import { BranchKind, decodeBlock, locateDataFault, type BlockEnd } from './branch-kind.js';
import type { MemoryMap } from './memory-map.js';
import type { PtEncoderSession } from './pt-encoder-session.js';
import type { QemuLogSink, TranslatedBlock } from './qemu-log.js';

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
}

/** Signals the CPU raises at the faulting instruction. */
const FAULT_SIGNALS = new Set(['SIGSEGV', 'SIGBUS', 'SIGILL', 'SIGFPE']);

type Deferred =
  | { t: 'exec'; cpu: number; ptr: number; pc: number }
  | { t: 'signal'; name: string; code: number; addr: number | null }
  | { t: 'syscall'; line: string };

export interface PathStats {
  /** TB executions seen. */
  tbExecutions: number;
  translations: number;
  /** Instructions executed (the emulator's count). */
  instructions: number;
  signals: string[];
  /** Executions of other vCPUs (threads), which are not traced. */
  otherThreadTbs: number;
  /** Faults whose instruction could not be located exactly. */
  inexactFaults: number;
  /** Executed TBs at addresses no image maps. */
  unmappedTbs: number;
}

export class PathReconstruction implements QemuLogSink {
  private readonly blocks = new Map<number, Block>();
  private justTranslated: Block | null = null;
  private pending: Block | null = null;
  private lastIp = NaN;
  /** A fault signal seen for {@link pending}; resolved by the next event. */
  private pendingFault: { name: string; addr: number | null } | null = null;
  /** Held-back events while an interrupted branch's successor is unknown. */
  private deferred: { block: Block; events: Deferred[]; depth: number; sigreturnSeen: boolean } | null = null;
  private replaying = false;
  stopped = false;
  stopReason: 'budget' | 'exec' | null = null;
  readonly stats: PathStats = {
    tbExecutions: 0,
    translations: 0,
    instructions: 0,
    signals: [],
    otherThreadTbs: 0,
    inexactFaults: 0,
    unmappedTbs: 0,
  };

  constructor(
    private readonly session: PtEncoderSession,
    private readonly memory: MemoryMap,
    private readonly maxInsns: number,
    /** Called once when the recorder must stop the target (budget, exec). */
    private readonly onStop: () => void,
  ) {}

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
    };
    this.stats.translations++;
  }

  executed(cpu: number, ptr: number, pc: number): void {
    if (this.stopped) return;
    if (cpu !== 0) {
      this.stats.otherThreadTbs++;
      return;
    }
    let block: Block | undefined;
    if (this.justTranslated !== null) {
      block = this.justTranslated;
      this.justTranslated = null;
      this.blocks.set(ptr, block);
    } else {
      block = this.blocks.get(ptr);
    }
    if (block === undefined || block.ips[0] !== pc) {
      throw new Error(`qemu log: TB at 0x${pc.toString(16)} executed but never translated`);
    }
    if (this.deferred !== null && !this.replaying) {
      this.deferred.events.push({ t: 'exec', cpu, ptr, pc });
      if (this.deferred.sigreturnSeen && this.deferred.depth === 0) this.resolveDeferred(pc);
      return;
    }
    this.stats.tbExecutions++;
    if (!this.memory.contains(pc)) this.stats.unmappedTbs++;
    if (this.pending !== null) this.commit(this.pending, pc);
    if (this.memory.execed) return this.stop(pc, 'exec');
    if (this.stats.instructions >= this.maxInsns) return this.stop(pc, 'budget');
    this.pending = block;
  }

  signal(name: string, code: number, addr: number | null): void {
    if (this.stopped) return;
    if (this.deferred !== null && !this.replaying) {
      this.deferred.events.push({ t: 'signal', name, code, addr });
      if (!FAULT_SIGNALS.has(name) || code <= 0) this.deferred.depth++;
      return;
    }
    this.stats.signals.push(name);
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

  syscall(line: string): void {
    this.memory.syscall(line);
    if (this.deferred !== null && !this.replaying) {
      if (line.startsWith('rt_sigreturn(') || line.startsWith('sigreturn(')) {
        if (this.deferred.depth > 0) this.deferred.depth--;
        else this.deferred.sigreturnSeen = true;
      }
      this.deferred.events.push({ t: 'syscall', line });
    }
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
    if (this.deferred !== null) {
      // The handler never returned: assume the branch fell through.
      const d = this.deferred;
      this.deferred = null;
      this.stats.inexactFaults++;
      const last = d.block.ips.length - 1;
      const guess = d.block.ips[last] + d.block.sizes[last];
      this.commitFully(d.block, guess);
      this.session.interrupt(guess);
      this.replay(d.events);
    }
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
  }

  // --- committing -----------------------------------------------------------

  /** The TB ran to its end and execution continued at `next`. */
  private commit(block: Block, next: number): void {
    if (this.pendingFault !== null) {
      // A handler is running: it starts at `next`.
      this.commitFault(block, null);
      return;
    }
    this.commitFully(block, next);
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
    if (linearEnd > start) this.stats.instructions += linearEnd - start;
    if (upto === n && start <= n - 1) {
      const i = n - 1;
      if (i === 0 || !covered) s.boundary(ips[i]);
      s.branch(ips[i], block.sizes[i], block.end, next);
      this.stats.instructions++;
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
          this.executedReplay(e.pc, e.ptr);
        } else if (e.t === 'signal') this.signal(e.name, e.code, e.addr);
      } finally {
        this.replaying = false;
      }
    }
  }

  private executedReplay(pc: number, ptr: number): void {
    const block = this.blocks.get(ptr)!;
    this.stats.tbExecutions++;
    if (this.pending !== null) this.commit(this.pending, pc);
    if (this.stats.instructions >= this.maxInsns) return this.stop(pc, 'budget');
    this.pending = block;
  }

  private stop(pc: number, reason: 'budget' | 'exec'): void {
    this.stopped = true;
    this.stopReason = reason;
    this.pending = null;
    this.session.interrupt(pc);
    this.onStop();
  }
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
