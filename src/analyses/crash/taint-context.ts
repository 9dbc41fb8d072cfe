/**
 * What the backward taint walk (taint.ts) and the input selections
 * (input-selection.ts) share: the window's facts, the fault, the steps
 * they record and how those print addresses. In a file of its own so that
 * the two import it, not each other.
 */
import type { InsnFacts } from './instruction-facts.js';
import type { LibraryCall } from './library-routines.js';
import type { HeapChunk } from './heap-chunks.js';
import type { DataObject } from './code-locations.js';
import type { ReverseExecution } from './reverse-execution.js';

/** abort: a library call that aborted the program (or an earlier call that set it up, such as a first free). */
/** use-after-free: the free of an object that a pointer made before it then read (stale-pointer.ts). */
/** selection: a load whose address an index from input chose (input-selection.ts). */
export type StepKind = 'crash' | 'copy' | 'origin' | 'out-of-bounds' | 'overflow' | 'abort' | 'use-after-free' | 'stack-exhaustion' | 'signal-sent' | 'selection';

export interface TaintStep {
  /** Index in the window. */
  t: number;
  kind: StepKind;
  /** What this step did with the bad value, in words. */
  what: string;
  /** The step this one feeds (toward the crash), or -1. */
  next: number;
}

export interface FaultSpec {
  /** Registers whose value is the bad value at the crash instruction. */
  regs: number[];
  /** Memory bytes holding the bad value at the crash instruction (and that value, when known). */
  mem: { addr: number; size: number; value?: bigint } | null;
  what: string;
  /**
   * Where the faulting slot's address came from, for pass 2: the
   * instruction at window index t set rsp from these registers (leave,
   * `mov rsp, rbp`), so a bad frame pointer there moved the slot.
   */
  slotAddressFrom?: { t: number; regs: number[] };
}

export type { HeapChunk } from './heap-chunks.js';

export interface TaintContext {
  facts: readonly (InsnFacts | null)[];
  rev: ReverseExecution;
  /** First index the walk may reach (after the last gap). */
  from: number;
  /** For each t: the window index of the call in the main executable that (transitively) reached t, or -1 when t is in the main executable. */
  callerOf: Int32Array;
  chunks: HeapChunk[];
  /** Live control slots (return addresses, saved rbp) as [address, from t, to t). */
  controlSlots: { addr: number; from: number; to: number; what: string }[];
  /** Summarised calls of libc's copy and string routines (library-routines.ts). */
  libraryCalls: LibraryCall[];
  /** True for an address in the code of a loaded image. */
  isCode: (addr: number) => boolean;
  /** The crash is a branch to a bad target: a code pointer that data replaced is a root cause. */
  badTarget: boolean;
  /** The global or static variable (ELF data object) that holds an address, or null. */
  dataObjectAt: (addr: number) => DataObject | null;
  /** True for an address the core maps. */
  isMapped: (addr: number) => boolean;
  /** For the program's call at window index c: the name of the routine it ran when that routine reads input (library-routines.ts readsInput), else null. */
  inputCall: (c: number) => string | null;
  /** The stack above rsp where the window starts (at exec: argv, the environment, the auxiliary vector), or null. */
  initialStack: { start: number; end: number } | null;
}
