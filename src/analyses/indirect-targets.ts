/**
 * The one judgement of "may this indirect call or jump go there?" that CFI,
 * the JOP/COP chain check and FlowGuard's static credit share, from the
 * static CFGs of the modules (src/flow/static):
 *
 * - a jump out of a PLT stub (or a `jmp *f@GOTPCREL(%rip)` tail call) may
 *   go only where the dynamic linker can bind the import: an export of
 *   that name in a loaded module, one of the implementations an IFUNC
 *   resolver of it can return, or (lazy binding, before the first call)
 *   the stub's own `push n; jmp plt0` tail. When no loaded module exports
 *   the name, the target cannot be judged: {@link UNCHECKED};
 * - any indirect call or jump may go to a function entry that can be
 *   called through a pointer: address-taken (its address is stored or
 *   loaded somewhere), exported, a PLT stub, the ELF entry point, an
 *   init/fini function;
 * - a jump whose target set the CFG recovered (a bounded jump table, a
 *   constant) may go only to that set; one whose set is a sample (a table
 *   with no bound, a table in writable data) or whose table could not be
 *   located may go to the sample; anywhere else in its own function it
 *   cannot be judged ({@link UNCHECKED}, counted, never a finding), and
 *   neither can a jump whose set was not recovered at all, to a
 *   well-decoded block start of its own function;
 * - other jumps may also go to a code address whose address is taken (a
 *   computed-goto label, a continuation), to a case of another jump table
 *   of the same function (tail-duplicated dispatch), or to a function entry
 *   of another module (a tail call through a pointer).
 *
 * Landing pads, longjmp targets and other stack switches are not judged
 * here: they are legitimate only when the trace prepared them
 * (stack-switch.ts), which the detectors ask separately.
 */
import { BlockFlag, FunctionFlag, type ModuleCfg } from '../flow/static/cfg.js';
import { FunctionOrigin } from '../flow/static/disassembly.js';
import type { Module, ModuleMap } from './modules.js';
import { lastAtOrBelow } from '../flow/sorted-search.js';

export const ALLOWED = 1;
export const DENIED = 0;
/** The target module has no CFG (or there is no module): cannot judge. */
export const UNKNOWN = -1;
/** The jump's target set cannot be bounded statically: not judged, counted. */
export const UNCHECKED = -2;

/** Why a target could not be judged, for the unchecked log. */
export const UNCHECKED_REASON = 'indirect jump whose target set cannot be bounded statically (unbounded table, unlocated table, or an import no loaded module exports)';

/** May a pointer call reach the function entry at link-time `t`? */
export function isPointerCallable(cfg: ModuleCfg, t: number): boolean {
  if (cfg.isAllowedIndirectTarget(t)) return true;
  const p = cfg.pltAt(t);
  if (p !== null && p.address === t) return true;
  const f = cfg.functionIndex(t);
  return f >= 0 && (cfg.functionFlags[f] & (FunctionOrigin.Entry | FunctionOrigin.InitFini | FunctionFlag.AddressTaken | FunctionFlag.Exported)) !== 0;
}

/** Where the import `name` may be bound: run-time addresses of its exports, and of its IFUNC implementations. */
function importBindings(modules: ModuleMap, name: string, to: number): boolean | null {
  let exported = false;
  for (const m of modules.modules) {
    const cfg = m.cfg();
    if (cfg === null) continue;
    for (const a of cfg.exportAddressesOf(name)) {
      exported = true;
      if (a + m.bias === to) return true;
      for (const impl of cfg.ifuncTargets(a)) if (impl + m.bias === to) return true;
    }
  }
  return exported ? false : null;
}

/** The judgement of a jump out of the PLT stub or GOT tail jump at `from` of module `fm`; null if `from` is neither. */
function judgeImportJump(modules: ModuleMap, fm: Module, from: number, to: number): number | null {
  const cfg = fm.cfg();
  if (cfg === null) return null;
  const f = from - fm.bias;
  let name: string;
  let resolver = NaN;
  const stub = cfg.pltAt(f);
  if (stub !== null && stub.jumpAddress === f) {
    // Lazy binding: the slot still points at the stub's `push n; jmp plt0`.
    if (to > from && to - from <= 16) return ALLOWED;
    name = stub.name;
    resolver = stub.resolver;
  } else {
    const jt = cfg.jumpTableAt(f);
    if (jt === null || jt.source !== 'import' || jt.importName === undefined) return null;
    name = jt.importName;
  }
  // A module-local IFUNC (IRELATIVE slot): one of its resolver's choices.
  if (Number.isFinite(resolver)) {
    for (const impl of cfg.ifuncTargets(resolver)) if (impl + fm.bias === to) return ALLOWED;
    return cfg.ifuncTargets(resolver).length > 0 ? DENIED : UNCHECKED;
  }
  if (name === '') return UNCHECKED;
  const bound = importBindings(modules, name, to);
  return bound === null ? UNCHECKED : bound ? ALLOWED : DENIED;
}

/** May the indirect call (`isJump` false) or jump at `from` go to `to`? */
export function judgeIndirectTarget(modules: ModuleMap, from: number, to: number, isJump: boolean): number {
  const fm = modules.find(from);
  if (isJump && fm !== null) {
    const v = judgeImportJump(modules, fm, from, to);
    if (v !== null) return v;
  }
  const m = modules.find(to);
  if (m === null) return UNKNOWN;
  const cfg = m.cfg();
  if (cfg === null) return UNKNOWN;
  const t = to - m.bias;
  if (isPointerCallable(cfg, t)) return ALLOWED;
  if (!isJump) return DENIED;
  if (fm === m) {
    const jt = cfg.jumpTableAt(from - m.bias);
    const fj = cfg.functionAt(from - m.bias);
    if (jt !== null) {
      if (jt.targets.includes(t)) return ALLOWED;
      if (jt.bounded && jt.source !== 'indexed') return DENIED;
      if (fj >= 0 && sameFunction(cfg, fj, t, from - m.bias)) return UNCHECKED;
    }
    const b = cfg.blockStartingAt(t);
    if (b >= 0 && (cfg.blockFlags[b] & BlockFlag.Pointer) !== 0) return ALLOWED;
    const inFunction = fj >= 0 && sameFunction(cfg, fj, t, from - m.bias);
    if (b >= 0 && (cfg.blockFlags[b] & BlockFlag.JumpTableTarget) !== 0 && inFunction) return ALLOWED;
    // A jump whose set was not recovered, to a well-decoded block of its own
    // function: the dispatch of a switch or computed goto we could not model.
    if (jt === null && b >= 0 && (cfg.blockFlags[b] & BlockFlag.LowConfidence) === 0 && inFunction) return UNCHECKED;
    return DENIED;
  }
  const b = cfg.blockStartingAt(t);
  if (b >= 0 && (cfg.blockFlags[b] & BlockFlag.Pointer) !== 0) return ALLOWED;
  // A tail call through a pointer into another module's function.
  if (cfg.functionIndex(t) >= 0) return ALLOWED;
  return DENIED;
}

/** Function origins that name a real function start (not an unwind fragment or a gap-sweep guess). */
const TRUSTED_START = FunctionOrigin.Entry | FunctionOrigin.Symbol | FunctionOrigin.Export | FunctionOrigin.InitFini | FunctionOrigin.CallTarget | FunctionOrigin.Plt;

/** The nearest function entry at or below link-time `a` that is a real function start (symbol, export, call target, ...), or NaN. */
function trustedStart(cfg: ModuleCfg, a: number): number {
  const hi = lastAtOrBelow(cfg.functionEntry, a);
  for (let i = hi; i >= 0 && i > hi - 64; i--) if ((cfg.functionFlags[i] & TRUSTED_START) !== 0) return cfg.functionEntry[i];
  return NaN;
}

/**
 * True if link-time `t` lies in the same function as the jump at link-time
 * `jump`, owned by function `f`: the same owner in the CFG, or the same
 * real function start below both (stripped code splits a function at
 * unwind fragments and pointer targets; the real starts do not move). The
 * owner's start and the jump's own address are both tried: code that a
 * `.cold` fragment also jumps into may be owned by the fragment.
 */
function sameFunction(cfg: ModuleCfg, f: number, t: number, jump: number): boolean {
  if (cfg.functionAt(t) === f) return true;
  const s = trustedStart(cfg, t);
  return Number.isFinite(s) && (s === trustedStart(cfg, cfg.functionEntry[f]) || s === trustedStart(cfg, jump));
}
