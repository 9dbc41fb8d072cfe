/**
 * The shadow stack's segment summary: bracket matching.
 *
 * The worker's fresh detector holds, per address space, only the frames
 * its own body pushed: the *local* part of each stack, on top of the
 * unknown stack the piece starts with. Whatever touches only the local
 * part is judged there, exactly: a return that matches a local frame, a
 * return out of a local sentinel, a resume at a local frame or sentinel,
 * calls, interrupts and system calls (which push locally).
 *
 * Everything else needs the stack below, and is written down, in order,
 * for the detector that holds the serial state (summary.ts):
 * - a return when the local part is empty: the return the piece cannot
 *   match against its own calls;
 * - a return that matches no local frame (a mismatch's evidence and depth,
 *   or a stack switch, read the whole stack), a resume no local entry
 *   explains, a call to a context API (it records the whole stack), the
 *   first tracing stop or resume whose expected continuation was decided
 *   before the piece, and an overflow or decode error (it resets all).
 *   Before such a record the local part of its stack is handed down
 *   (pushed onto the serial stack) and the local part starts empty again;
 * - the stack-switch tracker's inputs (system calls, interrupts, tracing
 *   on/off), so that its serial state is kept;
 * - at the end, the calls left open: each stack's local part, pushed.
 * Notes, counters, the deepest depth reached and the last transfer are
 * kept so that statistics and the detector's state match too.
 *
 * Indirect jumps are judged locally on one assumption, checked when the
 * summary is applied: no target is a resume point and no unwind is in
 * progress (then none can be a stack switch). Otherwise the body is
 * replayed.
 */
import { EventType, PtEvent } from '../../events/event.js';
import { GapKind, TransferKind, type FlowConsumer } from '../../flow/control-flow.js';
import { eventOf, LogTag, STRIDE } from '../../flow/parallel/flow-log.js';
import type { Detector } from '../detector-base.js';
import type { UncheckedLog } from '../finding.js';
import type { ShadowStack } from '../shadow-stack.js';
import { ContextApi, type StackSwitches } from '../stack-switch.js';
import { OP, OpLog, replayRecord } from './op-log.js';
import type { Summarizer, SummaryRule } from './summary-rule.js';

/** Entry kinds (shadow-stack.ts). */
const FRAME = 0;
const SENTINEL = 1;

const enum Op {
  /** Replay the record into the detector. */
  Record = 0,
  /** Replay the record into its stack-switch tracker only. */
  Switch = 1,
  /** Set the detector's last transfer, current space, expected resume, open incident (flags say which). */
  Sync = 2,
  /** A stack's local part reached this depth above the serial one. */
  MaxDepth = 3,
  Push = 4,
  Note = 5,
  /** Set the stack-switch tracker's syscall and stop continuations, and add the signals the body counted. */
  Tracker = 6,
}

/** The stack-switch tracker's fields that system calls, interrupts and tracing on/off change (private to stack-switch.ts). */
interface TrackerState {
  afterSyscall: number;
  stoppedAt: number;
  signalsInHandler: number;
}

const LAST_KNOWN = 1;
const SPACE_KNOWN = 2;
const EXPECTED_KNOWN = 4;
const INCIDENT_CLEARED = 8;

interface Space {
  active: ShadowStack;
  parked: ShadowStack[];
}

/** The shadow-stack detector's fields a summary reads and sets (private to shadow-stack.ts). */
interface ShadowInternals {
  spaces: Map<number, Space>;
  curKey: number;
  cur: Space;
  lastKind: number;
  lastFrom: number;
  lastSize: number;
  lastTo: number;
  expectedResume: number;
  incident: unknown;
  returnsChecked: number;
  returnsMatched: number;
  switches: StackSwitches<unknown>;
  log: UncheckedLog;
  space(cr3: number): Space;
}

interface ShadowSummary {
  ops: Float64Array;
  reasons: string[];
  returnsChecked: number;
  returnsMatched: number;
  jumpTargets: number[];
  /** Resume points the body's context-API calls record, and whether one starts an unwind. */
  addedResumePoints: number[];
  unwinds: boolean;
}

function keyOf(cr3: number): number {
  return Number.isNaN(cr3) ? -1 : cr3;
}

function cr3Of(key: number): number {
  return key === -1 ? NaN : key;
}

class ShadowStackSummarizer implements Summarizer, FlowConsumer {
  /** The body's records come here, and go on to the detector. */
  readonly consumer: FlowConsumer = this;
  private readonly w: ShadowInternals;
  private readonly ops = new OpLog();
  private readonly reasons: string[] = [];
  private readonly reasonIndex = new Map<string, number>();
  /** Deepest local depth per space since its local part was last handed down. */
  private readonly localMax = new Map<number, number>();
  /** localMax's entry for `maxKey`, held here while that space is the one calls go to (most of the time: one space). */
  private maxKey = NaN;
  private maxDepth = 0;
  private readonly jumpTargets = new Set<number>();
  /** Targets added to jumpTargets lately, by their low bits: an interpreter's dispatch jumps to a few handlers again and again. */
  private readonly recentJumps = new Float64Array(256).fill(NaN);
  private readonly addedResumePoints = new Set<number>();
  private unwinds = false;
  private lastKnown = false;
  private spaceKnown = false;
  private expectedKnown = false;
  private incidentCleared = false;
  /**
   * Whether the switch tracker's `afterSyscall` and `stoppedAt` are known
   * from the body alone. Until both are, its inputs are written down to be
   * replayed; from then on the worker's tracker is exact, and only its
   * state (and the signals it counted since `signalsBase`) is handed over
   * before each record the serial detector replays, and at the end.
   */
  private afterKnown = false;
  private stoppedKnown = false;
  private signalsBase = 0;

  constructor(
    private readonly det: Detector,
    private readonly at: () => number,
  ) {
    const w = det as unknown as ShadowInternals;
    this.w = w;
    const space = w.space;
    w.space = (cr3: number): Space => {
      this.spaceKnown = true;
      return space.call(w, cr3);
    };
    w.log.note = (reason: string, offset: number, count = 1): void => {
      let i = this.reasonIndex.get(reason);
      if (i === undefined) {
        i = this.reasons.push(reason) - 1;
        this.reasonIndex.set(reason, i);
      }
      this.ops.add(Op.Note, 0, 0, 0, 0, 0, 0, 0, offset, i, count);
    };
  }

  private localStack(key: number): ShadowStack | undefined {
    // The detector's current space is spaces.get(curKey).
    return key === this.w.curKey ? this.w.cur.active : this.w.spaces.get(key)?.active;
  }

  private raiseMax(key: number): void {
    if (key !== this.maxKey) {
      if (!Number.isNaN(this.maxKey)) this.localMax.set(this.maxKey, this.maxDepth);
      this.maxKey = key;
      this.maxDepth = this.localMax.get(key) ?? 0;
    }
    const d = this.w.cur.active.depth;
    if (d > this.maxDepth) this.maxDepth = d;
  }

  private maxOf(key: number): number {
    return key === this.maxKey ? this.maxDepth : (this.localMax.get(key) ?? 0);
  }

  /** Hand a stack's local part down to the serial stack. */
  private handDown(key: number): void {
    const st = this.localStack(key);
    const max = this.maxOf(key);
    if (max === 0 && (st === undefined || st.depth === 0)) return;
    const at = this.at();
    this.ops.add(Op.MaxDepth, 0, 0, 0, 0, 0, 0, 0, at, key, max);
    if (st !== undefined) {
      for (let i = 0; i < st.depth; i++) this.ops.add(Op.Push, 0, st.ret[i]!, st.site[i]!, st.target[i]!, st.kind[i]!, 0, 0, at, key);
      st.depth = 0;
    }
    if (key === this.maxKey) this.maxDepth = 0;
    else this.localMax.set(key, 0);
  }

  private sync(): void {
    const w = this.w;
    const flags = (this.lastKnown ? LAST_KNOWN : 0) | (this.spaceKnown ? SPACE_KNOWN : 0) | (this.expectedKnown ? EXPECTED_KNOWN : 0) | (this.incidentCleared ? INCIDENT_CLEARED : 0);
    this.ops.add(Op.Sync, 0, w.lastKind, w.lastFrom, w.lastSize, w.lastTo, w.curKey, w.expectedResume, this.at(), flags);
    this.incidentCleared = false;
    if (this.trackerKnown()) {
      const t = this.tracker();
      this.ops.add(Op.Tracker, 0, t.afterSyscall, t.stoppedAt, t.signalsInHandler - this.signalsBase, 0, 0, 0, this.at());
      this.signalsBase = t.signalsInHandler;
    }
  }

  private tracker(): TrackerState {
    return this.w.switches as unknown as TrackerState;
  }

  private trackerKnown(): boolean {
    return this.afterKnown && this.stoppedKnown;
  }

  /** After the worker's tracker has seen an input: which of its fields the body has decided; the signals counted from here on are the body's. */
  private learned(after: boolean, stopped: boolean): void {
    this.afterKnown = after;
    this.stoppedKnown = stopped;
    if (this.trackerKnown()) this.signalsBase = this.tracker().signalsInHandler;
  }

  /** What the tracker learns from an event (stack-switch.ts observeEvent). */
  private learnedFrom(ev: PtEvent): void {
    if (ev.type === EventType.Disabled) this.learned(true, this.afterKnown);
    else if (ev.type === EventType.AsyncDisabled || ev.type === EventType.Enabled) this.learned(this.afterKnown, true);
  }

  /** A tracker input judged here: written down only while the tracker's state still depends on the state before. */
  private trackerTransfer(kind: TransferKind, from: number, to: number, size: number, insns: number, cr3: number): void {
    if (this.trackerKnown()) return;
    this.ops.transfer(Op.Switch, kind, from, to, size, insns, cr3, this.at());
    if (kind === TransferKind.FarCall) this.learned(true, this.stoppedKnown);
  }

  /** A transfer only the serial state can judge. */
  private serialTransfer(kind: TransferKind, from: number, to: number, size: number, insns: number, cr3: number): void {
    this.sync();
    this.handDown(keyOf(cr3));
    this.ops.transfer(Op.Record, kind, from, to, size, insns, cr3, this.at());
    // Mirror what the serial detector just did to the fields kept here.
    const w = this.w;
    w.lastKind = kind;
    w.lastFrom = from;
    w.lastSize = size;
    w.lastTo = to;
    this.lastKnown = true;
    w.space(cr3);
  }

  onTransfer(kind: TransferKind, from: number, to: number, size: number, insns: number, cr3: number): void {
    const key = keyOf(cr3);
    switch (kind) {
      case TransferKind.DirectCall:
      case TransferKind.IndirectCall:
        if (to !== from + size && !Number.isNaN(to)) {
          const api = this.w.switches.apiAt(to);
          if (api !== ContextApi.None) {
            if (api === ContextApi.Save || api === ContextApi.SaveAndSwitch) this.addedResumePoints.add(from + size);
            if (api === ContextApi.Unwind) this.unwinds = true;
            this.serialTransfer(kind, from, to, size, insns, cr3);
            return;
          }
        }
        this.det.onTransfer!(kind, from, to, size, insns, cr3);
        if (to !== from + size) this.raiseMax(key);
        break;
      case TransferKind.Return: {
        const st = this.localStack(key);
        const d = st?.depth ?? 0;
        if (d === 0 || !(Number.isNaN(to) || st!.kind[d - 1] === SENTINEL || st!.ret[d - 1] === to)) {
          this.serialTransfer(kind, from, to, size, insns, cr3);
          return;
        }
        const matched = !Number.isNaN(to) && st!.kind[d - 1] === FRAME;
        this.det.onTransfer!(kind, from, to, size, insns, cr3);
        if (matched) this.incidentCleared = true;
        break;
      }
      case TransferKind.IndirectJump:
        // A nonlocal goto pops to a frame that may lie below the piece.
        if (!Number.isNaN(to) && this.w.switches.loadsStackFirst(from)) {
          this.serialTransfer(kind, from, to, size, insns, cr3);
          return;
        }
        if (!Number.isNaN(to) && this.recentJumps[to & 255] !== to) {
          this.recentJumps[to & 255] = to;
          this.jumpTargets.add(to);
        }
        this.det.onTransfer!(kind, from, to, size, insns, cr3);
        break;
      case TransferKind.FarCall:
      case TransferKind.Async:
        this.det.onTransfer!(kind, from, to, size, insns, cr3);
        this.trackerTransfer(kind, from, to, size, insns, cr3);
        this.raiseMax(key);
        break;
      case TransferKind.FarReturn:
      case TransferKind.FarJump:
        if (!Number.isNaN(to) && !this.resumesLocally(key, to)) {
          this.serialTransfer(kind, from, to, size, insns, cr3);
          return;
        }
        this.det.onTransfer!(kind, from, to, size, insns, cr3);
        break;
      default:
        this.det.onTransfer!(kind, from, to, size, insns, cr3);
    }
    this.lastKnown = true;
  }

  /** A resume at `ip` that a local sentinel or frame explains (the nearer one wins, as serially). */
  private resumesLocally(key: number, ip: number): boolean {
    const st = this.localStack(key);
    return st !== undefined && (st.findSentinel(ip) >= 0 || st.findFrame(ip) >= 0);
  }

  private serialEvent(ev: PtEvent, handDown: number | null): void {
    this.sync();
    if (handDown !== null) this.handDown(handDown);
    this.ops.event(Op.Record, ev, this.at());
    // The serial tracker sees it from the state just handed over: so does this one.
    this.w.switches.observeEvent(ev);
    this.learnedFrom(ev);
  }

  private localEvent(ev: PtEvent): void {
    this.det.onEvent!(ev);
    if (!this.trackerKnown()) {
      this.ops.event(Op.Switch, ev, this.at());
      this.learnedFrom(ev);
    }
    this.expectedKnown = true;
  }

  onEvent(ev: PtEvent): void {
    if (ev.statusUpdate) return;
    const w = this.w;
    switch (ev.type) {
      case EventType.Disabled:
        // The expected continuation comes from the last transfer.
        if (this.lastKnown) this.localEvent(ev);
        else {
          this.serialEvent(ev, null);
          this.expectedKnown = false;
        }
        return;
      case EventType.AsyncDisabled:
        this.localEvent(ev);
        return;
      case EventType.Enabled:
        if (ev.ipSuppressed || (this.expectedKnown && ev.ip === w.expectedResume)) this.localEvent(ev);
        else if (this.expectedKnown && this.spaceKnown && this.resumesLocally(w.curKey, ev.ip)) this.localEvent(ev);
        else {
          this.serialEvent(ev, this.spaceKnown ? w.curKey : null);
          w.expectedResume = NaN;
          this.expectedKnown = true;
        }
        return;
      default:
        // Neither the detector nor its switch tracker reads other events.
        return;
    }
  }

  onGap(kind: GapKind): void {
    if (kind === GapKind.Disabled) return;
    // An overflow or decode error resets every stack: the serial detector does it.
    this.sync();
    for (const key of this.w.spaces.keys()) this.handDown(key);
    this.ops.gap(Op.Record, kind, this.at());
    this.w.switches.reset();
    this.learned(true, true);
    this.w.expectedResume = NaN;
    this.expectedKnown = true;
    this.incidentCleared = false;
  }

  finish(): ShadowSummary {
    this.sync();
    for (const key of this.w.spaces.keys()) this.handDown(key);
    return {
      ops: this.ops.take(),
      reasons: this.reasons,
      returnsChecked: this.w.returnsChecked,
      returnsMatched: this.w.returnsMatched,
      jumpTargets: [...this.jumpTargets],
      addedResumePoints: [...this.addedResumePoints],
      unwinds: this.unwinds,
    };
  }
}

/** The active stack of a space, created if new, without changing the detector's current space. */
function activeStack(d: ShadowInternals, key: number): ShadowStack {
  const curKey = d.curKey;
  const cur = d.cur;
  const s = d.space(cr3Of(key));
  d.curKey = curKey;
  d.cur = cur;
  return s.active;
}

/** No indirect jump of the body can be a stack switch. */
function jumpsAreOrdinary(d: ShadowInternals, s: ShadowSummary): boolean {
  if (s.jumpTargets.length === 0) return true;
  // The tracker's own fields (private to stack-switch.ts).
  const tracker = d.switches as unknown as { unwinding: number; resumePoints: Map<number, unknown> };
  if (tracker.unwinding > 0 || s.unwinds) return false;
  const added = new Set(s.addedResumePoints);
  return s.jumpTargets.every((t) => !tracker.resumePoints.has(t) && !added.has(t));
}

function apply(truth: Detector, summary: unknown, setAt: (offset: number) => void): boolean {
  const d = truth as unknown as ShadowInternals;
  const s = summary as ShadowSummary;
  if (!jumpsAreOrdinary(d, s)) return false;
  const o = s.ops;
  const ev = new PtEvent();
  for (let i = 0; i < o.length; i += STRIDE) {
    setAt(o[i + 7]!);
    switch (o[i + OP]) {
      case Op.Record:
        replayRecord(o, i, truth, ev);
        break;
      case Op.Switch:
        if (o[i] === LogTag.Transfer) d.switches.observe(o[i + 1]! as TransferKind, o[i + 2]!, o[i + 3]!, o[i + 4]!, null);
        else d.switches.observeEvent(eventOf(o, i, ev));
        break;
      case Op.Sync: {
        const flags = o[i + OP + 1]!;
        if (flags & LAST_KNOWN) {
          d.lastKind = o[i + 1]!;
          d.lastFrom = o[i + 2]!;
          d.lastSize = o[i + 3]!;
          d.lastTo = o[i + 4]!;
        }
        if (flags & SPACE_KNOWN) d.space(cr3Of(o[i + 5]!));
        if (flags & EXPECTED_KNOWN) d.expectedResume = o[i + 6]!;
        if (flags & INCIDENT_CLEARED) d.incident = null;
        break;
      }
      case Op.MaxDepth: {
        const st = activeStack(d, o[i + OP + 1]!);
        st.maxDepth = Math.max(st.maxDepth, st.depth + o[i + OP + 2]!);
        break;
      }
      case Op.Push:
        activeStack(d, o[i + OP + 1]!).push(o[i + 1]!, o[i + 2]!, o[i + 3]!, o[i + 4]!);
        break;
      case Op.Note:
        d.log.note(s.reasons[o[i + OP + 1]!]!, o[i + 7]!, o[i + OP + 2]!);
        break;
      case Op.Tracker: {
        const t = d.switches as unknown as TrackerState;
        t.afterSyscall = o[i + 1]!;
        t.stoppedAt = o[i + 2]!;
        t.signalsInHandler += o[i + 3]!;
        break;
      }
    }
  }
  d.returnsChecked += s.returnsChecked;
  d.returnsMatched += s.returnsMatched;
  return true;
}

export const shadowStackSummaryRule: SummaryRule = {
  summarize: (fresh, at) => new ShadowStackSummarizer(fresh, at),
  apply,
};
