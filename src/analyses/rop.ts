/**
 * Code-reuse chains (kBouncer-style, and its jump/call-oriented relatives).
 *
 * A *link* is a gadget entered through an indirect transfer to a place a
 * legitimate program would not go, and left after a few instructions
 * through another indirect transfer:
 * - ROP: entered by a `ret` whose target is not call-preceded (the
 *   instruction before it is not a call; kBouncer's test);
 * - JOP/COP: entered by an indirect `jmp`/`call` whose target the static CFG
 *   does not allow (no address-taken or exported function entry, no
 *   jump-table target of that jump, no landing pad).
 *
 * Findings:
 * - `rop-chain`: at least `minChain` consecutive links (each gadget at
 *   most `maxGadget` instructions), or `minViolations` ROP links among the
 *   last `window` returns (kBouncer's LBR-sized check, which also catches
 *   ret2libc, where long library functions separate the gadgets);
 * - `jop-chain` / `cop-chain`: `minJop` consecutive JOP/COP links;
 * - `jop-dispatcher`: a dispatcher gadget (one address reached by short
 *   indirect jumps again and again, alternating with functional gadgets),
 *   seen `dispatcherRounds` times;
 * - `srop`: a system call inside a gadget entered by a non-call-preceded
 *   return, after which execution resumes somewhere else than after the
 *   syscall (rt_sigreturn, syscall 15, loaded a forged frame). A real
 *   sigreturn trampoline reached by the return of a signal handler the
 *   trace saw delivered is not a gadget (stack-switch.ts).
 *
 * Benign exceptions, by design: stack switches the trace prepared
 * (stack-switch.ts: a longjmp/setcontext to a recorded resume point, a
 * fresh makecontext context and its planted return, an unwinder's jump to
 * a landing pad, a signal handler's return into the sigreturn trampoline)
 * are not links. Indirect jumps/calls into modules without an ELF (raw
 * images) and jumps whose target set cannot be bounded statically cannot
 * be judged: they are noted unchecked.
 */
import { GapKind, TransferKind } from '../flow/control-flow.js';
import { EventType, type PtEvent } from '../events/event.js';
import { NOT_MAPPED } from './code-facts.js';
import { DetectorBase, cr3Text, type DetectorContext } from './detector-base.js';
import { ParamError } from './detector-params.js';
import { RecentCalls } from './evidence.js';
import type { DetectedFinding, GadgetEvidence } from './finding.js';
import { hexAddress } from './finding.js';
import { ALLOWED, judgeIndirectTarget, UNCHECKED, UNCHECKED_REASON } from './indirect-targets.js';
import { StackSwitches, SwitchKind } from './stack-switch.js';
import { noImageForReturn, noModuleForTarget, targetsNotJudged } from './unchecked-reasons.js';

/** Links remembered for evidence. */
const RING = 64;

export class RopDetector extends DetectorBase {
  readonly parameters: Readonly<Record<string, number>>;
  private readonly maxGadget: number;
  private readonly minChain: number;
  private readonly window: number;
  private readonly minViolations: number;
  private readonly minJop: number;
  private readonly dispatcherRounds: number;

  // The gadget being executed (entered by a suspicious transfer).
  private inGadget = false;
  private gadgetStart = 0;
  private gadgetEntry: TransferKind = TransferKind.Return;
  private gadgetInsns = 0;
  private gadgetFromReturn = false;

  // The current chain of links.
  private readonly linkStart = new Float64Array(RING);
  private readonly linkLast = new Float64Array(RING);
  private readonly linkLen = new Uint16Array(RING);
  private readonly linkEntry = new Uint8Array(RING);
  private links = 0;
  private ropLinks = 0;
  private jopLinks = 0;
  private copLinks = 0;
  private chainReported = false;

  // kBouncer window over the last returns: 1 = violation.
  private readonly recentReturns: Uint8Array;
  private returnIndex = 0;
  private violationsInWindow = 0;
  private windowReported = -Infinity;

  // Dispatcher tracking: targets of short indirect jumps.
  private readonly ijmpTargets = new Float64Array(16);
  private ijmpCount = 0;
  private dispatcherReported = new Set<number>();

  // SROP: a syscall inside a ROP gadget whose continuation we wait for.
  private sropPending = false;
  private sropSyscall = 0;
  private sropSize = 0;
  private sropChain: GadgetEvidence[] = [];
  private sropOffset = 0;

  private readonly calls = new RecentCalls(8);
  private readonly switches: StackSwitches;
  private cr3 = NaN;
  private curIsJump = false;

  constructor(ctx: DetectorContext) {
    super('rop', ctx);
    this.maxGadget = this.numParam('maxGadget');
    this.minChain = this.numParam('minChain');
    this.window = this.numParam('window');
    this.minViolations = this.numParam('minViolations');
    this.minJop = this.numParam('minJop');
    this.dispatcherRounds = this.numParam('dispatcherRounds');
    if (this.minViolations > this.window) throw new ParamError(`--param rop.minViolations=${this.minViolations}: must be at most rop.window (${this.window})`);
    this.recentReturns = new Uint8Array(this.window);
    this.switches = new StackSwitches(ctx.modules, ctx.facts, ctx.historyUnseen ?? false);
    this.parameters = {
      maxGadget: this.maxGadget,
      minChain: this.minChain,
      window: this.window,
      minViolations: this.minViolations,
      minJop: this.minJop,
      dispatcherRounds: this.dispatcherRounds,
    };
  }

  onTransfer(kind: TransferKind, from: number, to: number, _size: number, insnsBefore: number, cr3: number): void {
    this.cr3 = cr3;
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) this.calls.push(from, to);
    this.switches.observe(kind, from, to, _size, null);
    if (this.inGadget) {
      this.gadgetInsns += insnsBefore;
      if (this.gadgetInsns > this.maxGadget || kind === TransferKind.DirectCall) {
        this.endChain();
      } else if (kind === TransferKind.Return || kind === TransferKind.IndirectJump || kind === TransferKind.IndirectCall || kind === TransferKind.FarCall) {
        this.addLink(from);
        if (kind === TransferKind.FarCall && this.gadgetFromReturn) {
          this.sropPending = true;
          this.sropSyscall = from;
          this.sropSize = _size;
          this.sropOffset = this.ctx.offset();
          this.sropChain = this.chainEvidence();
        }
      }
      this.inGadget = false;
    }
    switch (kind) {
      case TransferKind.Return:
        this.onReturn(from, to);
        return;
      case TransferKind.IndirectJump:
      case TransferKind.IndirectCall:
        this.onIndirect(kind, from, to, insnsBefore);
        return;
      case TransferKind.FarCall:
        if (!Number.isNaN(to) && this.sropPending) this.checkSrop(to);
        return;
      case TransferKind.CondTaken:
      case TransferKind.CondNotTaken:
      case TransferKind.DirectJump:
        return;
      default:
        if (this.links > 0) this.endChain();
        return;
    }
  }

  private onReturn(from: number, to: number): void {
    if (Number.isNaN(to)) {
      this.endChain();
      return;
    }
    const cp = this.ctx.facts.isCallPreceded(to);
    let violation = false;
    if (cp === NOT_MAPPED) {
      this.log.noteFor(noImageForReturn, to, this.ctx.offset());
      this.endChain();
    } else if (cp === 1) {
      this.endChain();
    } else if (this.switches.classify(TransferKind.Return, to) !== SwitchKind.None) {
      this.endChain();
    } else {
      violation = true;
      this.startGadget(to, TransferKind.Return, true);
    }
    // kBouncer's window over the last returns.
    const w = this.window;
    const slot = this.returnIndex % w;
    this.violationsInWindow += (violation ? 1 : 0) - this.recentReturns[slot];
    this.recentReturns[slot] = violation ? 1 : 0;
    this.returnIndex++;
    if (violation && this.violationsInWindow >= this.minViolations && this.returnIndex - this.windowReported > w && !this.chainReported) {
      this.windowReported = this.returnIndex;
      this.reportChain('rop-chain', `${this.violationsInWindow} of the last ${Math.min(w, this.returnIndex)} returns went to non-call-preceded targets`, from, to, TransferKind.Return);
      this.chainReported = true;
    }
  }

  private onIndirect(kind: TransferKind, from: number, to: number, insnsBefore: number): void {
    if (Number.isNaN(to)) {
      this.endChain();
      return;
    }
    this.curIsJump = kind === TransferKind.IndirectJump;
    let verdict = this.indirectTargetAllowed(from, to);
    if (verdict === 0 && this.curIsJump && this.switches.classify(kind, to, from) !== SwitchKind.None) verdict = 1;
    // Dispatcher: the same disallowed target reached by short indirect jumps, alternating with other gadgets.
    if (kind === TransferKind.IndirectJump && insnsBefore <= this.maxGadget) this.trackDispatcher(from, to, verdict === 0);
    if (verdict === 1) {
      this.endChain();
      return;
    }
    if (verdict === NOT_MAPPED) {
      this.endChain();
      return;
    }
    this.startGadget(to, kind, false);
  }

  /** 1 allowed, 0 not allowed, NOT_MAPPED cannot tell. */
  private indirectTargetAllowed(from: number, to: number): number {
    const m = this.ctx.modules.find(to);
    if (m === null) {
      this.log.noteFor(noModuleForTarget, to, this.ctx.offset());
      return NOT_MAPPED;
    }
    const cfg = m.cfg();
    if (cfg === null) {
      this.log.noteFor(targetsNotJudged, m, this.ctx.offset());
      return NOT_MAPPED;
    }
    const v = judgeIndirectTarget(this.ctx.modules, from, to, this.curIsJump);
    if (v === UNCHECKED) {
      this.log.note(UNCHECKED_REASON, this.ctx.offset());
      return NOT_MAPPED;
    }
    return v === ALLOWED ? 1 : 0;
  }

  private trackDispatcher(from: number, to: number, disallowed: boolean): void {
    const t = this.ijmpTargets;
    t[this.ijmpCount % t.length] = to;
    this.ijmpCount++;
    if (this.ijmpCount < 2 * this.dispatcherRounds) return;
    // Count how often `to` occurs among the recent targets, and require alternation with other targets.
    let same = 0;
    let other = 0;
    const n = Math.min(this.ijmpCount, t.length);
    for (let i = 0; i < n; i++) {
      if (t[i] === to) same++;
      else other++;
    }
    if (same >= this.dispatcherRounds && other >= same - 1 && !this.dispatcherReported.has(to)) {
      // Alternation: the target before the latest must not be `to` itself (a tight loop).
      const prev = t[(this.ijmpCount - 2) % t.length];
      if (prev === to) return;
      if (!disallowed) return;
      this.dispatcherReported.add(to);
      this.reportChain('jop-dispatcher', `indirect jumps return to the dispatcher gadget at ${hexAddress(to)} again and again (${same} of the last ${n})`, from, to, TransferKind.IndirectJump);
    }
  }

  private startGadget(to: number, entry: TransferKind, fromReturn: boolean): void {
    this.inGadget = true;
    this.gadgetStart = to;
    this.gadgetEntry = entry;
    this.gadgetInsns = 0;
    this.gadgetFromReturn = fromReturn;
  }

  private addLink(last: number): void {
    const i = this.links % RING;
    this.linkStart[i] = this.gadgetStart;
    this.linkLast[i] = last;
    this.linkLen[i] = this.gadgetInsns;
    this.linkEntry[i] = this.gadgetEntry;
    this.links++;
    if (this.gadgetEntry === TransferKind.Return) this.ropLinks++;
    else if (this.gadgetEntry === TransferKind.IndirectJump) this.jopLinks++;
    else this.copLinks++;
    if (this.chainReported) return;
    if (this.ropLinks >= this.minChain) {
      this.chainReported = true;
      this.reportChain('rop-chain', `${this.links} consecutive short gadgets entered by returns to non-call-preceded targets`, last, NaN, TransferKind.Return);
    } else if (this.jopLinks + this.copLinks >= this.minJop) {
      this.chainReported = true;
      const kind = this.jopLinks >= this.copLinks ? 'jop-chain' : 'cop-chain';
      this.reportChain(kind, `${this.links} consecutive short gadgets entered by indirect ${kind === 'jop-chain' ? 'jumps' : 'calls'} to targets the CFG does not allow`, last, NaN, this.gadgetEntry);
    }
  }

  private endChain(): void {
    this.links = 0;
    this.ropLinks = 0;
    this.jopLinks = 0;
    this.copLinks = 0;
    this.chainReported = false;
    this.inGadget = false;
  }

  private chainEvidence(): GadgetEvidence[] {
    const out: GadgetEvidence[] = [];
    const n = Math.min(this.links, RING);
    for (let k = this.links - n; k < this.links; k++) {
      const i = k % RING;
      out.push(this.ctx.evidence.gadget(this.linkStart[i], this.linkLast[i], this.linkLen[i], this.linkEntry[i]));
    }
    return out;
  }

  private reportChain(kind: string, message: string, from: number, to: number, tkind: TransferKind): void {
    const ev = this.ctx.evidence;
    const chain = this.chainEvidence();
    const first = chain[0];
    const transferFrom = from;
    const f: DetectedFinding = {
      detector: this.name,
      kind,
      severity: 'high',
      message,
      offset: this.ctx.offset(),
      cr3: cr3Text(this.cr3),
      transfer: Number.isNaN(to) ? (first ? ev.transfer(tkind, transferFrom, Number(BigInt(first.address))) : null) : ev.transfer(tkind, from, to),
      callPath: ev.calls(this.calls),
      chain,
      details: { links: this.links, ropLinks: this.ropLinks, jopLinks: this.jopLinks, copLinks: this.copLinks, violationsInWindow: this.violationsInWindow },
    };
    this.report(f);
  }

  private checkSrop(resume: number): void {
    this.sropPending = false;
    if (resume === this.sropSyscall + this.sropSize) return;
    const ev = this.ctx.evidence;
    this.report({
      detector: this.name,
      kind: 'srop',
      severity: 'high',
      message: `system call at ${hexAddress(this.sropSyscall)} reached by a return-oriented gadget resumed at ${hexAddress(resume)}, not after the syscall: a sigreturn loaded a forged frame`,
      offset: this.sropOffset,
      cr3: cr3Text(this.cr3),
      transfer: ev.transfer(TransferKind.FarCall, this.sropSyscall, resume),
      callPath: ev.calls(this.calls),
      chain: this.sropChain,
      details: { syscall: hexAddress(this.sropSyscall), resumedAt: hexAddress(resume) },
    });
  }

  onEvent(ev: PtEvent): void {
    if (ev.statusUpdate) return;
    this.switches.observeEvent(ev);
    if (ev.type === EventType.Enabled && this.sropPending && !ev.ipSuppressed) this.checkSrop(ev.ip);
  }

  onGap(kind: GapKind): void {
    if (kind !== GapKind.Disabled) {
      this.switches.reset();
      this.endChain();
      this.sropPending = false;
      this.log.note(kind === GapKind.Overflow ? 'trace overflow: chains across it not seen' : 'decode error: chains across it not seen', this.ctx.offset());
    }
  }

  onEnd(): void {
    if (this.sropPending) {
      this.log.note(`syscall at ${hexAddress(this.sropSyscall)} reached by a gadget at the end of the trace: its continuation is unknown`, this.sropOffset);
    }
  }
}
