/**
 * The one judgement of "may this indirect call or jump go there?" that CFI,
 * the JOP/COP chain check and FlowGuard's static credit share, from the
 * target module's static CFG:
 *
 * - an address-taken or exported function entry, a PLT stub (and, for lazy
 *   binding, any address inside a PLT stub of the jump's own module), the
 *   ELF entry point, an init/fini function (.init/.fini, *_array entries:
 *   the loader and libc call them through pointers);
 * - for jumps also: a target of the jump table recognised at that jump, a
 *   block marked as jump-table target, code-pointer target (computed goto)
 *   or landing pad, a call-preceded site (longjmp back after setjmp), a
 *   function entry in another module (a tail call through a pointer), and a
 *   target in the jump's own function when the jump's block computes its
 *   target from a table (a RIP-relative `lea` or a `[table+index*scale]`
 *   operand: a switch the recogniser did not model).
 */
import { BlockFlag } from '../flow/static/cfg.js';
import { ElfBytes, isPointerRelocation, readRelocations, SHT_FINI_ARRAY, SHT_INIT_ARRAY, SHT_PREINIT_ARRAY } from '../flow/static/elf-tables.js';
import { readFileSync } from 'node:fs';
import type { CodeFacts } from './code-facts.js';
import type { Module, ModuleMap } from './modules.js';

export const ALLOWED = 1;
export const DENIED = 0;
/** The target module has no CFG (or there is no module): cannot judge. */
export const UNKNOWN = -1;

const initFiniCache = new WeakMap<Module, Set<number>>();

/** Link-time addresses of a module's init/fini functions and relocated code pointers. */
export function initFini(m: Module): Set<number> {
  let s = initFiniCache.get(m);
  if (s !== undefined) return s;
  s = new Set();
  initFiniCache.set(m, s);
  if (m.elf === null || m.path === null) return s;
  for (const sec of m.elf.sections) {
    if (sec.name === '.init' || sec.name === '.fini') s.add(sec.addr);
  }
  try {
    const eb = new ElfBytes(readFileSync(m.path), m.elf);
    const arrays = m.elf.sections.filter((x) => x.type === SHT_INIT_ARRAY || x.type === SHT_FINI_ARRAY || x.type === SHT_PREINIT_ARRAY);
    const ptr = eb.is64 ? 8 : 4;
    for (const a of arrays) {
      for (let at = a.addr; at + ptr <= a.addr + a.size; at += ptr) {
        const w = eb.wordAt(at);
        if (w) s.add(w);
      }
    }
    const exec = m.elf.loadSegments().filter((g) => (g.flags & 1) !== 0);
    // Pointers stored in the file itself (non-PIE code, RELR-packed relocations):
    // scan writable data for words that point into executable segments.
    for (const sec of m.elf.sections) {
      if ((sec.flags & 3) !== 3 || sec.type === 8 /* NOBITS */ || sec.size === 0 || (sec.flags & 4) !== 0) continue;
      for (let at = sec.offset; at + ptr <= sec.offset + sec.size && at + ptr <= eb.bytes.length; at += ptr) {
        const w = eb.word(at);
        if (w !== 0 && exec.some((g) => w >= g.vaddr && w < g.vaddr + g.filesz)) s.add(w);
      }
    }
    // Pointers relocations store (PIC: init arrays, atexit tables, vtables).
    for (const r of readRelocations(eb)) {
      const kind = isPointerRelocation(eb.is64, r.type);
      if (kind !== 'relative' || !r.addend) continue;
      if (exec.some((g) => r.addend >= g.vaddr && r.addend < g.vaddr + g.filesz)) s.add(r.addend);
    }
  } catch {
    // Unreadable tables: fewer allowed targets, never a crash.
  }
  return s;
}

const tableDispatchCache = new Map<number, boolean>();

/** True if the block ending in the jump at `from` computes the target from a table. */
function tableDispatch(facts: CodeFacts, m: Module, from: number): boolean {
  const cached = tableDispatchCache.get(from);
  if (cached !== undefined) return cached;
  let result = false;
  const cfg = m.cfg();
  if (cfg !== null) {
    const b = cfg.blockAt(from - m.bias);
    if (b >= 0) {
      const start = cfg.blockStart[b] + m.bias;
      let at = start;
      for (let i = 0; i < 32 && at <= from; i++) {
        const line = facts.straightLine(at, 1)[0];
        if (line === undefined) break;
        if (/^lea r\w+, \[0x[0-9a-f]+\]$/.test(line.text) || /\*[248]\+0x[0-9a-f]{4,}\]/.test(line.text)) {
          result = true;
          break;
        }
        at += line.size;
      }
    }
  }
  tableDispatchCache.set(from, result);
  return result;
}

/** May the indirect call (`isJump` false) or jump at `from` go to `to`? */
export function judgeIndirectTarget(modules: ModuleMap, facts: CodeFacts, from: number, to: number, isJump: boolean): number {
  const m = modules.find(to);
  if (m === null) return UNKNOWN;
  const cfg = m.cfg();
  if (cfg === null) return UNKNOWN;
  const t = to - m.bias;
  if (cfg.isAllowedIndirectTarget(t) || cfg.pltAt(t)?.address === t) return ALLOWED;
  if (m.elf !== null && t === m.elf.entry) return ALLOWED;
  if (initFini(m).has(t)) return ALLOWED;
  const fm = modules.find(from);
  // Lazy binding: the GOT slot still points back into the stub, after its jump.
  if (fm === m && cfg.pltAt(from - m.bias) !== null && to > from && to - from <= 16) return ALLOWED;
  if (!isJump) return DENIED;
  if (fm === m) {
    const jt = cfg.jumpTableAt(from - m.bias);
    if (jt !== null && jt.targets.includes(t)) return ALLOWED;
  }
  const b = cfg.blockStartingAt(t);
  if (b >= 0 && (cfg.blockFlags[b] & (BlockFlag.JumpTableTarget | BlockFlag.Pointer | BlockFlag.LandingPad)) !== 0) return ALLOWED;
  if (cfg.isLandingPad(t) || facts.isCallPreceded(to) === 1) return ALLOWED;
  if (fm !== m && cfg.functionIndex(t) >= 0) return ALLOWED;
  if (fm === m) {
    const fj = cfg.functionAt(from - m.bias);
    if (fj >= 0 && fj === cfg.functionAt(t) && tableDispatch(facts, m, from)) return ALLOWED;
  }
  return DENIED;
}
