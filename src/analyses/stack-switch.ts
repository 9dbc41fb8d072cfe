/**
 * Legitimate stack switches, recognised by what they do in this trace: the
 * one shared definition the shadow stack, ROP, CFI and inter-module
 * detectors use (each owns an instance and feeds it the same stream).
 *
 * A return or indirect jump that does not go back to its caller is a
 * legitimate switch only when an earlier event of the trace prepared
 * exactly that destination:
 * - **context resume**: a call to a context-saving function (the setjmp
 *   family, getcontext, swapcontext) recorded its return address as a
 *   resume point; a later longjmp/setcontext/swapcontext transfer to that
 *   address resumes it. A forged jmp_buf or ucontext that points anywhere
 *   else is not a resume point, whatever code performs the transfer;
 * - **fresh context**: after a call to makecontext, the first entry into
 *   a function that may be called through a pointer (address-taken or
 *   exported) by a return (setcontext/swapcontext "return" into the new
 *   context) starts that context, once per makecontext call;
 * - **planted return**: when that function returns, it returns to the
 *   continuation makecontext planted (glibc's __start_context): an
 *   address-taken function entry of the module that implements
 *   makecontext;
 * - **landing pad**: while an unwinder call (_Unwind_RaiseException,
 *   _Unwind_Resume, _Unwind_ForcedUnwind, ...) is in progress, its final
 *   jump goes to an exception landing pad listed in the target module's
 *   .gcc_except_table (through .eh_frame's LSDA pointers);
 * - **signal return**: a handler's return into a sigreturn trampoline
 *   (`mov eax, 15; syscall`) after a signal was delivered (tracing
 *   resumed somewhere else than where it stopped) and not yet returned;
 * - **nonlocal goto**: GCC's and clang's __builtin_setjmp/__builtin_longjmp
 *   (Ruby's exceptions, some Scheme and Prolog systems), which call no
 *   library function. The save stores a label of its own function (a
 *   `lea` of it) with the frame and stack pointers; the jump loads the
 *   stack pointer from memory and jumps to the label. An indirect jump
 *   whose straight-line code loads the stack pointer from memory, to a
 *   code label whose address the program takes and which is no function
 *   entry, goes back into the most recent activation of the label's
 *   function that is still running.
 *
 * The functions are identified by the symbol (or PLT import) of the *called*
 * address: what an API call means is its contract; who executes the
 * switching `ret` is never a reason to trust it.
 *
 * A decode that starts in the middle of a trace (FlowGuard's slow path
 * decodes a window from the PSB before it) has not seen what came before:
 * a setjmp made when the program started, an unwind or a signal under way
 * at that PSB. There, a transfer that no seen event explains but that an
 * unseen one could have prepared is {@link SwitchKind.PreparedUnseen}: its
 * target is the return address of a direct call to a context-saving
 * function, an exception landing pad, or (for a return) a sigreturn
 * trampoline. The detectors take it as a switch and count it as unchecked;
 * any other target is judged as before.
 */
import { EventType, type PtEvent } from '../events/event.js';
import { TransferKind } from '../flow/control-flow.js';
import { BlockFlag } from '../flow/static/cfg.js';
import type { CodeFacts } from './code-facts.js';
import type { Module, ModuleMap } from './modules.js';

/** What a call to a function means for stack switching. */
export enum ContextApi {
  None = 0,
  /** Saves a context that resumes at the call's return address (setjmp family, getcontext). */
  Save = 1,
  /** Saves the current context (resumes at the return address) and switches to another (swapcontext). */
  SaveAndSwitch = 2,
  /** Prepares a fresh context that starts at a function (makecontext). */
  Make = 3,
  /** Starts unwinding the stack to an exception landing pad. */
  Unwind = 4,
}

/** How a return or indirect jump was classified. */
export enum SwitchKind {
  /** Not a stack switch: judge it as an ordinary transfer. */
  None = 0,
  ContextResume = 1,
  FreshContext = 2,
  PlantedReturn = 3,
  LandingPad = 4,
  SignalReturn = 5,
  /** A switch that events before a mid-trace decode start could have prepared (not verifiable: unchecked). */
  PreparedUnseen = 6,
  /** A __builtin_longjmp back into a running function ({@link StackSwitches.gotoFunction} says which). */
  NonlocalGoto = 7,
}

export const SWITCH_KIND_NAMES: readonly string[] = [
  'none',
  'context-resume',
  'fresh-context',
  'planted-return',
  'landing-pad',
  'signal-return',
  'prepared-unseen',
  'nonlocal-goto',
];

/** The unchecked reason of a {@link SwitchKind.PreparedUnseen} switch. */
export const PREPARED_UNSEEN_REASON =
  'stack switch (longjmp/setcontext to a setjmp return site, unwind to a landing pad, or signal return) that events before the decode start could have prepared: not checked';

/** Function names by meaning. */
const API_BY_NAME = new Map<string, ContextApi>([
  ['setjmp', ContextApi.Save],
  ['_setjmp', ContextApi.Save],
  ['__setjmp', ContextApi.Save],
  ['sigsetjmp', ContextApi.Save],
  ['__sigsetjmp', ContextApi.Save],
  ['__sigsetjmp_cancel', ContextApi.Save],
  ['getcontext', ContextApi.Save],
  ['__getcontext', ContextApi.Save],
  ['swapcontext', ContextApi.SaveAndSwitch],
  ['__swapcontext', ContextApi.SaveAndSwitch],
  ['makecontext', ContextApi.Make],
  ['__makecontext', ContextApi.Make],
  ['_Unwind_RaiseException', ContextApi.Unwind],
  ['_Unwind_Resume', ContextApi.Unwind],
  ['_Unwind_Resume_or_Rethrow', ContextApi.Unwind],
  ['_Unwind_ForcedUnwind', ContextApi.Unwind],
  ['__gxx_personality_v0', ContextApi.None],
]);

/** Resume points kept (the oldest go first). */
const MAX_RESUME_POINTS = 4096;
/** Contexts kept per resume point (the oldest go first): nested activations of one function. */
const MAX_TAGS_PER_POINT = 256;
/** Entries a look-up cache here keeps before it starts over (API meanings by called address, jump sites, unseen targets). */
const MAX_API_CACHE = 1 << 16;

/** `cache`'s answer for `key`, computed and kept on first use (the cache starts over when full). */
function remembered<V>(cache: Map<number, V>, key: number, compute: () => V): V {
  let v = cache.get(key);
  if (v === undefined) {
    v = compute();
    if (cache.size >= MAX_API_CACHE) cache.clear();
    cache.set(key, v);
  }
  return v;
}

/** The meaning of a call to run-time address `to` (symbol, or PLT import name, at exactly that address). */
export function contextApiAt(modules: ModuleMap, to: number): ContextApi {
  const m = modules.find(to);
  if (m === null) return ContextApi.None;
  const name = entryName(m, to);
  return name === null ? ContextApi.None : (API_BY_NAME.get(name) ?? ContextApi.None);
}

function entryName(m: Module, to: number): string | null {
  const cfg = m.cfg();
  if (cfg !== null) {
    const p = cfg.pltAt(to - m.bias);
    if (p !== null && p.address === to - m.bias) return p.name === '' ? null : p.name;
  }
  const hit = m.symbolize(to);
  if (hit !== null && hit.offset === 0) {
    const at = hit.name.indexOf('@');
    return at < 0 ? hit.name : hit.name.slice(0, at);
  }
  return null;
}

/**
 * What calls mean, shared by every tracker over one module map: each
 * detector owns a tracker and they all see the same calls, so after the
 * first tracker looked a call's target up, the others find it in `last`.
 */
class ApiCache {
  version = -1;
  lastTo = NaN;
  lastApi = ContextApi.None;
  readonly byTarget = new Map<number, ContextApi>();
}

const apiCaches = new WeakMap<ModuleMap, ApiCache>();

function apiCacheFor(modules: ModuleMap): ApiCache {
  let c = apiCaches.get(modules);
  if (c === undefined) {
    c = new ApiCache();
    apiCaches.set(modules, c);
  }
  return c;
}

/**
 * Sees the inputs that reach a tracker's state, after the tracker took
 * them (a segment summary writes down those the state before its piece
 * decides: src/analyses/summaries/quiet-summary.ts): calls to context
 * APIs (`api`), interrupts and system calls, tracing on/off, resets.
 */
export interface SwitchTap {
  transfer(kind: TransferKind, from: number, to: number, size: number, api: ContextApi): void;
  event(ev: PtEvent): void;
  reset(): void;
}

export class StackSwitches<T = null> {
  private readonly apis: ApiCache;
  /** Sees each input after this tracker (null: none). */
  tap: SwitchTap | null = null;
  /** Transfers observed. */
  observed = 0;
  /**
   * Resume points: run-time address -> the tags given each time a context
   * was saved there, oldest first (one call site saves a context per
   * activation of its function: a re-entrant interpreter nests them).
   */
  private readonly resumePoints = new Map<number, T[]>();
  private freshContexts = 0;
  /** Modules whose makecontext planted continuations (their address-taken entries are return targets). */
  private readonly plantingModules = new Set<Module>();
  private unwinding = 0;
  private signalsInHandler = 0;
  /** Where execution continues after the last system call (its next instruction), or NaN. */
  private afterSyscall = NaN;
  /** Where execution continues after tracing stopped, or NaN: a resume elsewhere enters a signal handler. */
  private stoppedAt = NaN;
  /** The tags of the resume point a {@link SwitchKind.ContextResume} went to, oldest first (the detector picks the live one). */
  resumeTags: readonly T[] | undefined = undefined;
  /** The module and function index (in its CFG) a {@link SwitchKind.NonlocalGoto} went back into. */
  gotoModule: Module | null = null;
  gotoFunction = -1;
  /** Indirect jump sites by run-time address: does the site's code load the stack pointer from memory first? */
  private readonly stackLoadingJumps = new Map<number, boolean>();
  /** Classified switches by kind, for reports. */
  readonly counts = new Uint32Array(SWITCH_KIND_NAMES.length);

  /** Static resume points and landing pads, by run-time address (only when history is unseen). */
  private readonly unseenCache = new Map<number, boolean>();

  /**
   * `historyUnseen`: the decode starts in the middle of the trace, after
   * events this instance never sees (FlowGuard's slow path).
   */
  constructor(
    private readonly modules: ModuleMap,
    private readonly facts: CodeFacts,
    private readonly historyUnseen = false,
  ) {
    this.apis = apiCacheFor(modules);
  }

  /** What calling `to` means (cached, for every tracker over the same modules). */
  apiAt(to: number): ContextApi {
    const c = this.apis;
    if (c.version !== this.modules.version) {
      c.byTarget.clear();
      c.version = this.modules.version;
      c.lastTo = NaN;
    } else if (to === c.lastTo) return c.lastApi;
    const api = remembered(c.byTarget, to, () => contextApiAt(this.modules, to));
    c.lastTo = to;
    c.lastApi = api;
    return api;
  }

  /**
   * See one transfer, before the detector acts on it: calls to context
   * APIs are recorded with `tag` (the detector's state to restore when the
   * context resumes, e.g. its shadow stack and depth before the call).
   */
  observe(kind: TransferKind, from: number, to: number, size: number, tag: T): void {
    let api = ContextApi.None;
    if (kind === TransferKind.DirectCall || kind === TransferKind.IndirectCall) {
      if (!Number.isNaN(to)) api = this.onCall(from, to, size, tag);
    } else if (kind === TransferKind.Async) {
      if (!Number.isNaN(to) && to !== from) this.signalsInHandler++;
    } else if (kind === TransferKind.FarCall) {
      // A system call: with user-only tracing it resumes at the next instruction, unless a signal is delivered.
      this.afterSyscall = Number.isNaN(to) ? from + size : NaN;
    }
    this.observed++;
    if (this.tap !== null && (api !== ContextApi.None || kind === TransferKind.Async || kind === TransferKind.FarCall)) this.tap.transfer(kind, from, to, size, api);
  }

  /** See a decoder event: tracing that resumes elsewhere than it stopped is a signal handler's entry. */
  observeEvent(ev: PtEvent): void {
    if (ev.statusUpdate) return;
    if (ev.type === EventType.AsyncDisabled) this.stoppedAt = ev.at;
    else if (ev.type === EventType.Disabled) {
      this.stoppedAt = this.afterSyscall;
      this.afterSyscall = NaN;
    } else if (ev.type === EventType.Enabled) {
      if (!ev.ipSuppressed && !Number.isNaN(this.stoppedAt) && ev.ip !== this.stoppedAt) this.signalsInHandler++;
      this.stoppedAt = NaN;
    }
    if (this.tap !== null) this.tap.event(ev);
  }

  /** A call to `to`: what it means (after recording what it prepares). */
  private onCall(from: number, to: number, size: number, tag: T): ContextApi {
    const api = this.apiAt(to);
    switch (api) {
      case ContextApi.Save:
      case ContextApi.SaveAndSwitch: {
        let tags = this.resumePoints.get(from + size);
        if (tags === undefined && this.resumePoints.size >= MAX_RESUME_POINTS) {
          const oldest = this.resumePoints.keys().next().value as number;
          this.resumePoints.delete(oldest);
        }
        // The most recently saved site last in the map's order (evicted last).
        this.resumePoints.delete(from + size);
        tags ??= [];
        if (tags.length >= MAX_TAGS_PER_POINT) tags.shift();
        tags.push(tag);
        this.resumePoints.set(from + size, tags);
        return api;
      }
      case ContextApi.Make: {
        this.freshContexts++;
        const m = this.modules.find(to);
        const stub = m?.cfg()?.pltAt(to - m.bias);
        if (m !== null && (stub === null || stub === undefined)) this.plantingModules.add(m);
        else for (const x of this.modules.modules) if (!Number.isNaN(x.cfg()?.exportAddressOf('makecontext') ?? NaN)) this.plantingModules.add(x);
        return api;
      }
      case ContextApi.Unwind:
        this.unwinding++;
        return api;
      default:
        return api;
    }
  }

  /**
   * Cheap pre-check for the indirect jump at `from` to `to`: could it be a
   * switch (a resume point, an unwind in progress, a nonlocal goto)?
   */
  mayBeSwitch(to: number, from: number): boolean {
    return this.unwinding > 0 || this.resumePoints.has(to) || this.loadsStackFirst(from) || (this.historyUnseen && this.unseenJumpTarget(to));
  }

  /**
   * Does the indirect jump at run-time `from` load the stack pointer from
   * memory in the straight-line code before it (a nonlocal goto's jump)?
   * Read from the code between the start of the jump's block in the
   * module's CFG and the jump; cached per site.
   */
  loadsStackFirst(from: number): boolean {
    if (Number.isNaN(from)) return false;
    return remembered(this.stackLoadingJumps, from, () => {
      const m = this.modules.find(from);
      const cfg = m?.cfg() ?? null;
      const b = m === null || cfg === null ? -1 : cfg.blockAt(from - m.bias);
      return b >= 0 && this.facts.loadsStackPointer(cfg!.blockStart[b] + m!.bias, from);
    });
  }

  /**
   * A nonlocal goto's label: a block start at `to` whose address the code
   * takes (the CFG's pointer blocks) and that is no function entry. Sets
   * {@link gotoModule} and {@link gotoFunction} to its function.
   */
  private isGotoLabel(to: number): boolean {
    const m = this.modules.find(to);
    const cfg = m?.cfg() ?? null;
    if (m === null || cfg === null) return false;
    const t = to - m.bias;
    const b = cfg.blockStartingAt(t);
    if (b < 0 || (cfg.blockFlags[b] & BlockFlag.Pointer) === 0 || cfg.functionIndex(t) >= 0 || cfg.blockFunction[b] < 0) return false;
    this.gotoModule = m;
    this.gotoFunction = cfg.blockFunction[b];
    return true;
  }

  /** Is run-time `ip` in the function a {@link SwitchKind.NonlocalGoto} went back into? */
  inGotoFunction(ip: number): boolean {
    const m = this.gotoModule;
    if (m === null || !m.contains(ip)) return false;
    const cfg = m.cfg();
    return cfg !== null && cfg.functionAt(ip - m.bias) === this.gotoFunction;
  }

  /**
   * Is the return or indirect jump to `to`, which is not an ordinary
   * transfer (it does not go back to its caller, or to a target the CFG
   * allows), a legitimate stack switch? Call it once per such transfer: it
   * consumes what it matches (a fresh context, an unwind, a signal).
   * `from` is the transfer's own address (NaN: not known).
   */
  classify(kind: TransferKind, to: number, from = NaN): SwitchKind {
    this.resumeTags = undefined;
    this.gotoModule = null;
    if (Number.isNaN(to) || (kind !== TransferKind.Return && kind !== TransferKind.IndirectJump)) return SwitchKind.None;
    let k = SwitchKind.None;
    if (this.resumePoints.has(to)) {
      // A normal return to the call site of setjmp (its first return) is not a switch:
      // the caller decides by comparing with the top of its own stack first.
      this.resumeTags = this.resumePoints.get(to);
      k = SwitchKind.ContextResume;
    } else if (this.unwinding > 0 && this.isLandingPad(to)) {
      this.unwinding = 0;
      k = SwitchKind.LandingPad;
    } else if (kind === TransferKind.Return) {
      if (this.freshContexts > 0 && this.isPointerEntry(to, null)) {
        this.freshContexts--;
        k = SwitchKind.FreshContext;
      } else if (this.plantingModules.size > 0 && this.facts.isCallPreceded(to) !== 1 && this.isPlanted(to)) {
        k = SwitchKind.PlantedReturn;
      } else if (this.signalsInHandler > 0 && this.facts.isSigreturnTrampoline(to)) {
        this.signalsInHandler--;
        k = SwitchKind.SignalReturn;
      }
    } else if (this.loadsStackFirst(from) && this.isGotoLabel(to)) {
      k = SwitchKind.NonlocalGoto;
    }
    if (k === SwitchKind.None && this.historyUnseen) {
      if (this.unseenJumpTarget(to) || (kind === TransferKind.Return && this.facts.isSigreturnTrampoline(to))) k = SwitchKind.PreparedUnseen;
    }
    if (k !== SwitchKind.None) this.counts[k]++;
    return k;
  }

  /**
   * Where a longjmp/setcontext or an unwinder could go after preparations
   * this instance did not see: the return address of a direct call to a
   * context-saving function (itself, or its PLT stub), or a landing pad.
   */
  private unseenJumpTarget(to: number): boolean {
    return remembered(this.unseenCache, to, () => {
      const callee = this.facts.directCallBefore(to);
      const api = Number.isNaN(callee) ? ContextApi.None : this.apiAt(callee);
      return api === ContextApi.Save || api === ContextApi.SaveAndSwitch || this.isLandingPad(to);
    });
  }

  private isLandingPad(to: number): boolean {
    const m = this.modules.find(to);
    const cfg = m?.cfg() ?? null;
    return m !== null && cfg !== null && cfg.isLandingPad(to - m.bias);
  }

  /** `to` is an entry of a function that may be called through a pointer (in `only`, if given). */
  private isPointerEntry(to: number, only: Set<Module> | null): boolean {
    const m = this.modules.find(to);
    if (m === null || (only !== null && !only.has(m))) return false;
    const cfg = m.cfg();
    if (cfg === null) return false;
    const t = to - m.bias;
    return cfg.functionIndex(t) >= 0 && (cfg.isAddressTaken(t) || cfg.isExported(t));
  }

  private isPlanted(to: number): boolean {
    const m = this.modules.find(to);
    if (m === null || !this.plantingModules.has(m)) return false;
    const cfg = m.cfg();
    return cfg !== null && cfg.functionIndex(to - m.bias) >= 0 && cfg.isAddressTaken(to - m.bias);
  }

  /** An overflow or decode error: whatever was in flight (an unwind, a signal) is unknown now. Resume points stay valid. */
  reset(): void {
    this.unwinding = 0;
    this.signalsInHandler = 0;
    this.stoppedAt = NaN;
    this.afterSyscall = NaN;
    if (this.tap !== null) this.tap.reset();
  }

  /** Counts by kind name (only kinds seen). */
  stats(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let k = 1; k < this.counts.length; k++) if (this.counts[k] > 0) out[`switch.${SWITCH_KIND_NAMES[k]}`] = this.counts[k];
    return out;
  }
}
