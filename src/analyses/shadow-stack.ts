/**
 * Shadow stack: every call pushes its return address, every return must go
 * to the address on top. One detector runs per stream, so a recording
 * with one stream per thread gives each thread its own stacks, dropped when
 * its stream ends (analyze.ts). Kept per address space (CR3); within one
 * address space, contexts the trace enters without a call (a signal handler, a
 * callback from untraced code, another thread resumed after a gap) are
 * separated by *sentinel* entries that remember where the interrupted
 * context continues.
 *
 * What is benign, and why it raises no finding:
 * - tail calls: the callee returns to the caller's caller, which is the top;
 * - deep recursion: the stack is a growable typed array, no fixed depth;
 * - syscalls with user-only tracing: a FarCall, tracing disabled, resumed
 *   at the next instruction. That is the expected continuation: nothing is
 *   dropped. Only an overflow or a decode error resets pairing;
 * - a resume somewhere else (signal delivery, a callback from untraced
 *   code, a thread switch): a sentinel is pushed holding the expected
 *   continuation; a later resume there (sigreturn) pops back to it, and a
 *   return out of that context cannot be checked (it is counted as
 *   unchecked, not reported);
 * - stack switches the trace prepared (stack-switch.ts, the definition all
 *   detectors share): a longjmp/setcontext/swapcontext to the resume point
 *   of an earlier setjmp/getcontext/swapcontext call restores the stack
 *   and depth recorded at that call (a parked coroutine stack becomes
 *   active); the first entry of a makecontext context starts a fresh stack;
 *   an unwinder's jump to a landing pad pops to the frame whose call site
 *   the LSDA maps to that pad;
 * - a return with an empty stack (past the start of the trace, after an
 *   overflow, in a fresh coroutine) is unchecked;
 * - decoding from a PSB in the middle of the trace (FlowGuard's slow path),
 *   a switch that unseen events could have prepared (stack-switch.ts)
 *   returns below every frame seen: the stack empties, and what follows is
 *   unchecked until new frames are pushed.
 *
 * Everything else is a `return-mismatch`, including a return to a deeper
 * frame that no recorded switch explains. Consecutive mismatching returns
 * (a ROP chain) form one finding that lists the chain.
 */
import { GapKind, TransferKind } from '../flow/control-flow.js';
import { EventType, type PtEvent } from '../events/event.js';
import { DetectorBase, cr3Text, type DetectorContext } from './detector-base.js';
import type { DetectedFinding, GadgetEvidence } from './finding.js';
import { hexAddress } from './finding.js';
import { StackSwitches, SwitchKind } from './stack-switch.js';

/** The note of a nonlocal goto into a function no frame on the stack was called from. */
const NONLOCAL_GOTO_UNSEEN = 'nonlocal goto (__builtin_longjmp) into a function with no frame seen: returns out of it not checked';

/** Entry kinds. */
const FRAME = 0;
const SENTINEL = 1;

/** One stack of return addresses, growable. */
export class ShadowStack {
  ret = new Float64Array(256);
  site = new Float64Array(256);
  target = new Float64Array(256);
  kind = new Uint8Array(256);
  /** Which push made each entry (a frame popped and pushed again is another activation). */
  serial = new Float64Array(256);
  depth = 0;
  maxDepth = 0;

  push(ret: number, site: number, target: number, kind: number): void {
    if (this.depth === this.ret.length) this.grow();
    const d = this.depth++;
    this.ret[d] = ret;
    this.site[d] = site;
    this.target[d] = target;
    this.kind[d] = kind;
    this.serial[d] = ++pushes;
    if (this.depth > this.maxDepth) this.maxDepth = this.depth;
  }

  /** Index of the highest frame whose return address is `ip`, or -1 (stops at nothing: sentinels are looked through). */
  findFrame(ip: number): number {
    for (let i = this.depth - 1; i >= 0; i--) if (this.ret[i] === ip && this.kind[i] === FRAME) return i;
    return -1;
  }

  /** Index of the highest sentinel that resumes at `ip`, or -1. */
  findSentinel(ip: number): number {
    for (let i = this.depth - 1; i >= 0; i--) if (this.kind[i] === SENTINEL && this.ret[i] === ip) return i;
    return -1;
  }

  private grow(): void {
    const n = this.ret.length * 2;
    const r = new Float64Array(n);
    r.set(this.ret);
    this.ret = r;
    const s = new Float64Array(n);
    s.set(this.site);
    this.site = s;
    const t = new Float64Array(n);
    t.set(this.target);
    this.target = t;
    const q = new Float64Array(n);
    q.set(this.serial);
    this.serial = q;
    const k = new Uint8Array(n);
    k.set(this.kind);
    this.kind = k;
  }
}

/** Pushes made by every shadow stack so far: each entry's {@link ShadowStack.serial}. */
let pushes = 0;

/**
 * A context a setjmp-family call saved: the stack and its depth at the
 * call, and which activation of the saving function it was (the serial of
 * the frame below the call, 0 at depth 0).
 */
interface SavedContext {
  stack: ShadowStack;
  depth: number;
  serial: number;
}

/** Is the function that saved `c` still running (its frame never popped since)? */
function isLive(c: SavedContext): boolean {
  return c.depth <= c.stack.depth && (c.depth === 0 || c.stack.serial[c.depth - 1] === c.serial);
}

/**
 * The context a resume goes back to: the most recent one whose saving
 * function is still running (a jmp_buf is valid only until then), else
 * the most recent.
 */
function liveContext(tags: readonly (SavedContext | null)[] | undefined): SavedContext | null {
  if (tags === undefined) return null;
  for (let i = tags.length - 1; i >= 0; i--) {
    const c = tags[i];
    if (c !== null && c !== undefined && isLive(c)) return c;
  }
  return tags[tags.length - 1] ?? null;
}

/** The stacks of one address space: the active one and parked coroutine stacks. */
class AddressSpaceStacks {
  active = new ShadowStack();
  parked: ShadowStack[] = [];
}

/** An open mismatch incident (a run of returns that matched nothing). */
interface Incident {
  finding: DetectedFinding;
  returns: number;
}

export class ShadowStackDetector extends DetectorBase {
  readonly parameters: Readonly<Record<string, number>>;
  private readonly callPathLength: number;
  private readonly maxParked: number;
  private readonly spaces = new Map<number, AddressSpaceStacks>();
  private curKey = NaN;
  private cur: AddressSpaceStacks;
  /** The last transfer (to derive the expected continuation at a gap). */
  private lastKind = -1;
  private lastFrom = 0;
  private lastSize = 0;
  private lastTo = NaN;
  /** Where execution should resume after the current gap (NaN: unknown). */
  private expectedResume = NaN;
  private incident: Incident | null = null;
  /** Counters for reports. */
  private returnsChecked = 0;
  private returnsMatched = 0;
  private resyncs = 0;
  private readonly switches: StackSwitches<SavedContext | null>;

  constructor(ctx: DetectorContext) {
    super('shadow-stack', ctx);
    this.callPathLength = this.numParam('callPath');
    this.maxParked = this.numParam('maxParked');
    this.parameters = { callPath: this.callPathLength, maxParked: this.maxParked };
    this.cur = new AddressSpaceStacks();
    this.spaces.set(-1, this.cur);
    this.curKey = -1;
    this.switches = new StackSwitches(ctx.modules, ctx.facts, ctx.historyUnseen ?? false);
  }

  private space(cr3: number): AddressSpaceStacks {
    const key = Number.isNaN(cr3) ? -1 : cr3;
    if (key === this.curKey) return this.cur;
    let s = this.spaces.get(key);
    if (s === undefined) {
      s = new AddressSpaceStacks();
      this.spaces.set(key, s);
    }
    this.curKey = key;
    this.cur = s;
    return s;
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, _insns: number, cr3: number): void {
    this.lastKind = kind;
    this.lastFrom = from;
    this.lastSize = size;
    this.lastTo = to;
    switch (kind) {
      case TransferKind.DirectCall:
      case TransferKind.IndirectCall: {
        // `call next` reads the IP and never returns.
        if (to === from + size) return;
        const st = this.space(cr3).active;
        this.switches.observe(kind, from, to, size, { stack: st, depth: st.depth, serial: st.depth > 0 ? st.serial[st.depth - 1]! : 0 });
        st.push(from + size, from, to, FRAME);
        return;
      }
      case TransferKind.Return:
        this.onReturn(from, to, cr3);
        return;
      case TransferKind.IndirectJump:
        // longjmp and the unwinder leave by a jump; only those the trace prepared matter here.
        if (!Number.isNaN(to) && this.switches.mayBeSwitch(to, from)) {
          const k = this.switches.classify(kind, to, from);
          if (k !== SwitchKind.None) this.applySwitch(k, to, cr3, from);
        }
        return;
      case TransferKind.FarCall:
        // A traced far call into a handler (kernel traced, or a gate): the
        // handler's far return comes back to the next instruction.
        if (!Number.isNaN(to) && to !== from + size) this.space(cr3).active.push(from + size, from, to, SENTINEL);
        return;
      case TransferKind.Async:
        // An interrupt or signal delivered between two instructions: the
        // interrupted context continues at `from`.
        this.switches.observe(kind, from, to, size, null);
        if (to !== from) this.space(cr3).active.push(from, from, to, SENTINEL);
        return;
      case TransferKind.FarReturn:
      case TransferKind.FarJump:
        if (!Number.isNaN(to)) this.resumeAt(to, cr3, NaN);
        return;
      default:
        return;
    }
  }

  private onReturn(from: number, to: number, cr3: number): void {
    const st = this.space(cr3).active;
    const d = st.depth;
    if (Number.isNaN(to)) {
      // Returned into untraced code: the target is not known.
      if (d > 0) st.depth--;
      this.log.note('return with unknown target (tracing disabled at the return)', this.ctx.offset());
      return;
    }
    this.returnsChecked++;
    if (d > 0 && st.ret[d - 1] === to && st.kind[d - 1] === FRAME) {
      st.depth = d - 1;
      this.returnsMatched++;
      this.incident = null;
      return;
    }
    if (d > 0 && st.kind[d - 1] === SENTINEL) {
      if (!this.ctx.facts.isSigreturnTrampoline(to)) {
        this.log.note('return out of a context entered without a call (signal handler, callback from untraced code)', this.ctx.offset());
      }
      return;
    }
    const k = this.switches.classify(TransferKind.Return, to);
    if (k !== SwitchKind.None) {
      this.applySwitch(k, to, cr3);
      this.incident = null;
      return;
    }
    if (d === 0) {
      this.log.note('return with an empty shadow stack (start of trace, after a reset, or a fresh coroutine)', this.ctx.offset());
      return;
    }
    this.mismatch(st, from, to, cr3);
  }

  /** Follow a stack switch the trace prepared (stack-switch.ts) to `to`, from `from` (NaN: a return). */
  private applySwitch(k: SwitchKind, to: number, cr3: number, from = NaN): void {
    this.resyncs++;
    const sp = this.space(cr3);
    switch (k) {
      case SwitchKind.ContextResume: {
        const saved = liveContext(this.switches.resumeTags);
        if (saved === null) return;
        if (saved.stack !== sp.active) {
          // Another context (a parked coroutine): park the active one and resume it.
          const i = sp.parked.indexOf(saved.stack);
          if (i >= 0) sp.parked.splice(i, 1);
          this.park(sp);
          sp.active = saved.stack;
        }
        // The saving call's frame and everything above it are gone.
        sp.active.depth = Math.min(saved.depth, sp.active.depth);
        return;
      }
      case SwitchKind.FreshContext:
        this.park(sp);
        sp.active = new ShadowStack();
        return;
      case SwitchKind.LandingPad: {
        // Pop to the frame whose call site the LSDA sends to this pad.
        const st = sp.active;
        for (let i = st.depth - 1; i >= 0; i--) {
          if (st.kind[i] === FRAME && this.landingPadOf(st.ret[i]) === to) {
            st.depth = i;
            return;
          }
        }
        this.log.note('unwinder entered a landing pad no frame on the shadow stack leads to', this.ctx.offset());
        return;
      }
      case SwitchKind.NonlocalGoto: {
        // Back into the most recent activation of the label's function that
        // is still running: the calls it made since are gone, so pop to the
        // highest frame called from it. No such frame: that activation is
        // the top one if the jump is its own, else it is below every frame
        // seen (entered before the trace, or by a jump).
        const st = sp.active;
        const sw = this.switches;
        for (let i = st.depth - 1; i >= 0; i--) {
          if (st.kind[i] === FRAME && sw.inGotoFunction(st.site[i])) {
            st.depth = i;
            return;
          }
        }
        if (sw.inGotoFunction(from)) return;
        st.depth = 0;
        this.log.note(NONLOCAL_GOTO_UNSEEN, this.ctx.offset());
        return;
      }
      case SwitchKind.PreparedUnseen: {
        // Prepared before the decode start: the frame it goes back to (the
        // saving call's, the catching one, the interrupted one) is below
        // every frame seen, unless the LSDA maps a seen frame to this pad.
        const st = sp.active;
        for (let i = st.depth - 1; i >= 0; i--) {
          if (st.kind[i] === FRAME && this.landingPadOf(st.ret[i]) === to) {
            st.depth = i;
            return;
          }
        }
        st.depth = 0;
        return;
      }
      default:
        // A planted continuation (makecontext's) or a signal return: nothing on the stack to pop.
        return;
    }
  }

  /** The run-time landing pad for a frame returning to `ret`, or NaN. */
  private landingPadOf(ret: number): number {
    const m = this.ctx.modules.find(ret);
    const cfg = m?.cfg() ?? null;
    if (m === null || cfg === null) return NaN;
    return cfg.landingPadForReturn(ret - m.bias) + m.bias;
  }

  private park(sp: AddressSpaceStacks): void {
    if (sp.active.depth === 0) return;
    sp.parked.push(sp.active);
    if (sp.parked.length > this.maxParked) {
      sp.parked.shift();
      this.log.note('parked coroutine stacks dropped (limit reached)', this.ctx.offset());
    }
  }

  private mismatch(st: ShadowStackLike, from: number, to: number, cr3: number): void {
    const ev = this.ctx.evidence;
    const gadget: GadgetEvidence = ev.gadget(to, NaN, 0, TransferKind.Return);
    if (this.incident !== null) {
      const inc = this.incident;
      inc.returns++;
      inc.finding.details.returns = inc.returns;
      if (inc.finding.chain!.length < 32) inc.finding.chain!.push(gadget);
      return;
    }
    const d = st.depth;
    const expected = st.ret[d - 1];
    const callPath = [];
    for (let i = Math.max(0, d - this.callPathLength); i < d; i++) {
      if (st.kind[i] !== FRAME) continue;
      callPath.push({
        site: hexAddress(st.site[i]),
        target: hexAddress(st.target[i]),
        siteSymbol: ev.symbol(st.site[i]),
        targetSymbol: ev.symbol(st.target[i]),
      });
    }
    const finding: DetectedFinding = {
      detector: this.name,
      kind: 'return-mismatch',
      severity: 'high',
      message: `return to ${hexAddress(to)}${sym(ev.symbol(to))} does not match the call site: expected ${hexAddress(expected)}${sym(ev.symbol(expected))}`,
      offset: this.ctx.offset(),
      cr3: cr3Text(cr3),
      transfer: ev.transfer(TransferKind.Return, from, to),
      callPath,
      chain: [gadget],
      details: { expected: hexAddress(expected), actual: hexAddress(to), depth: d, returns: 1 },
    };
    // The overwritten frame was consumed by this return.
    st.depth = d - 1;
    this.incident = { finding, returns: 1 };
    this.report(finding);
  }

  onEvent(ev: PtEvent): void {
    if (ev.statusUpdate) return;
    this.switches.observeEvent(ev);
    switch (ev.type) {
      case EventType.Disabled:
        // After a syscall with user-only tracing, execution continues at the next instruction.
        this.expectedResume =
          this.lastKind === TransferKind.FarCall && Number.isNaN(this.lastTo) ? this.lastFrom + this.lastSize : NaN;
        return;
      case EventType.AsyncDisabled:
        this.expectedResume = ev.at;
        return;
      case EventType.Enabled: {
        const expected = this.expectedResume;
        this.expectedResume = NaN;
        if (ev.ipSuppressed || ev.ip === expected) return;
        this.resumeAt(ev.ip, this.curKey === -1 ? NaN : this.curKey, expected);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Execution continues at `ip` without a traced transfer leading there.
   * `expected` is where the interrupted context would have continued.
   */
  private resumeAt(ip: number, cr3: number, expected: number): void {
    const st = this.space(cr3).active;
    const s = st.findSentinel(ip);
    const f = st.findFrame(ip);
    // The nearer of the two wins: a sigreturn back to a sentinel, or a
    // return executed while tracing was off.
    if (s >= 0 && s >= f) {
      st.depth = s;
      return;
    }
    if (f >= 0) {
      st.depth = f;
      return;
    }
    if (st.depth === 0 && Number.isNaN(expected)) return;
    st.push(expected, NaN, ip, SENTINEL);
  }

  onGap(kind: GapKind): void {
    if (kind === GapKind.Disabled) return;
    // An overflow or a decode error: calls and returns are missing.
    for (const sp of this.spaces.values()) {
      sp.active = new ShadowStack();
      sp.parked = [];
    }
    this.incident = null;
    this.expectedResume = NaN;
    this.switches.reset();
    this.log.note(
      kind === GapKind.Overflow ? 'trace overflow: call/return pairing reset' : 'decode error: call/return pairing reset',
      this.ctx.offset(),
    );
  }

  stats(): Record<string, number> {
    let maxDepth = 0;
    for (const sp of this.spaces.values()) maxDepth = Math.max(maxDepth, sp.active.maxDepth, ...sp.parked.map((p) => p.maxDepth));
    return {
      returnsChecked: this.returnsChecked,
      returnsMatched: this.returnsMatched,
      stackSwitches: this.resyncs,
      maxDepth,
      ...this.switches.stats(),
    };
  }

  /** The active stack of an address space (tests). */
  stackOf(cr3 = NaN): ShadowStack {
    return this.space(cr3).active;
  }
}

type ShadowStackLike = ShadowStack;

function sym(s: string | null): string {
  return s === null ? '' : ` (${s})`;
}
