/**
 * Dormant code, step 1: what ran and what did not.
 *
 * The static CFG of the traced program's main executable (flow/static) is
 * merged with the executed instructions of a trace bundle: per block, how
 * often it was entered and whether any of its instructions ran. A *region*
 * is a connected set of blocks that never ran but are reachable from code
 * that did: it starts at the untaken side of an executed conditional branch
 * (that branch is the region's guard, see guards.ts), follows the
 * intra-function edges through blocks that never ran, and takes in the
 * module's functions that never ran and are called only from the region.
 *
 * Addresses in this file are link-time addresses of the module (the CFG's),
 * except where a name says `runtime`.
 */
import { readFileSync } from 'node:fs';
import type { FlowConsumer } from '../../flow/control-flow.js';
import { ElfFile } from '../../flow/elf.js';
import type { InstructionInfo } from '../../flow/instruction.js';
import { analyzeElfFile, BlockEndKind, EdgeKind, type ModuleCfg } from '../../flow/static/cfg.js';
import type { ImageMapping, Recording } from '../../sources/model/recording.js';
import { isSystemPath } from '../../sources/recorder/sandbox-view.js';
import { traceInputs, walkerFor } from '../trace-input.js';

/** The traced main executable: its CFG and where the recording loaded it. */
export interface TracedModule {
  /** Path of the copy inside the bundle. */
  file: string;
  /** Original path. */
  path: string;
  cfg: ModuleCfg;
  /** runtime = link + bias. */
  bias: number;
}

/** Per-block execution data of one module. */
export interface BlockExecution {
  module: TracedModule;
  /** Times each block was entered at its first instruction. */
  entries: Float64Array;
  /** 1 if any instruction of the block ran. */
  ran: Uint8Array;
  /** Instructions of the trace inside the module / in total. */
  moduleInstructions: number;
  totalInstructions: number;
  decodeErrors: number;
}

/** A never-executed region reachable from executed code. */
export interface Region {
  id: number;
  /** Entry blocks: the never-run successors of executed conditional branches. */
  entries: number[];
  /** All blocks of the region (guard function blocks and never-run callees). */
  blocks: number[];
  /** Instructions in the region. */
  instructions: number;
  /** Function (index) whose executed branch leads into the region. */
  function: number;
  /** Never-run functions of the module called only from the region. */
  calleeFunctions: number[];
}

/**
 * Where the recording loaded the main executable: the mapping of the
 * program's path (for a raw trace, which names no program, the first ELF
 * image given).
 */
export function tracedMainModule(recording: Recording, known?: ModuleCfg): TracedModule {
  const program = recording.program;
  let main: ImageMapping | undefined;
  for (const s of recording.streams) {
    main = s.mappings.find((m) => m.runtime === null && (program === null || m.originalPath === program.path));
    if (main !== undefined) break;
  }
  if (main === undefined) throw new Error(`${recording.name}: the recording has no image of the program${program ? ` ${program.path}` : ''}`);
  return tracedModuleOf(main, known);
}

/**
 * The program's own shared libraries in the recording: file images other
 * than the main executable mapped from outside the system directories
 * (libc, the loader and the rest of the system's libraries are not the
 * program's code). `known` gives a CFG already built for an image (its
 * original path and its file), if there is one.
 */
export function tracedOwnLibraries(recording: Recording, main: TracedModule, known?: (originalPath: string, file: string) => ModuleCfg | undefined): TracedModule[] {
  const out: TracedModule[] = [];
  for (const s of recording.streams) {
    for (const m of s.mappings) {
      if (m.runtime !== null || m.originalPath === main.path || m.file === main.file || isSystemPath(m.originalPath)) continue;
      if (out.some((t) => t.path === m.originalPath)) continue;
      try {
        out.push(tracedModuleOf(m, known?.(m.originalPath, m.file)));
      } catch {
        // Not an ELF image with loadable code (a mapped data file): not code to follow.
      }
    }
  }
  return out;
}

function tracedModuleOf(main: ImageMapping, known?: ModuleCfg): TracedModule {
  const file = main.file;
  const elf = ElfFile.parse(readFileSync(file), file);
  const seg = elf.segments.find((s) => s.type === 1 && main!.offset >= s.offset && main!.offset < s.offset + s.filesz);
  if (seg === undefined) throw new Error(`${file}: no loadable segment holds file offset 0x${main.offset.toString(16)}`);
  const link = seg.vaddr + (main.offset - seg.offset);
  const cfg = known ?? analyzeElfFile(file);
  return { file, path: main.originalPath, cfg, bias: main.address - link };
}

/** Decode every stream that maps the main executable and count executions on its blocks. */
export function mergeCoverage(recording: Recording, module: TracedModule = tracedMainModule(recording)): BlockExecution {
  return mergeCoverageOf(recording, [module])[0];
}

/**
 * Block executions of several modules in one decode: the main executable
 * first (its streams are the ones decoded), then its own libraries.
 */
export function mergeCoverageOf(recording: Recording, modules: readonly TracedModule[]): BlockExecution[] {
  const out: BlockExecution[] = modules.map((module) => ({
    module,
    entries: new Float64Array(module.cfg.blockCount),
    ran: new Uint8Array(module.cfg.blockCount),
    moduleInstructions: 0,
    totalInstructions: 0,
    decodeErrors: 0,
  }));
  const lo = modules.map((m) => m.cfg.linkBase + m.bias);
  const hi = modules.map((m) => m.cfg.linkEnd + m.bias);
  let errors = 0;
  let total = 0;
  const consumer: FlowConsumer = {
    onInstruction(insn: InstructionInfo): void {
      const ip = insn.ip;
      for (let i = 0; i < out.length; i++) {
        if (ip < lo[i] || ip >= hi[i]) continue;
        const e = out[i];
        e.moduleInstructions++;
        const link = ip - e.module.bias;
        const b = e.module.cfg.blockAt(link);
        if (b < 0) return;
        e.ran[b] = 1;
        if (e.module.cfg.blockStart[b] === link) e.entries[b]++;
        return;
      }
    },
    onError(): void {
      errors++;
    },
  };
  const main = modules[0];
  for (const input of traceInputs(recording)) {
    // Only the streams of processes that mapped the main executable here (threads, not exec'd children).
    if (!input.stream.mappings.some((m) => m.file === main.file && m.address < hi[0] && m.address + m.size > lo[0])) continue;
    total += walkerFor(input, [consumer]).run().instructions;
  }
  for (const e of out) {
    e.totalInstructions = total;
    e.decodeErrors = errors;
  }
  return out;
}

/** Is edge kind `k` a step inside one function? */
function isIntra(k: number): boolean {
  return k === EdgeKind.Fallthrough || k === EdgeKind.Taken || k === EdgeKind.NotTaken || k === EdgeKind.JumpTable || k === EdgeKind.ReturnSite;
}

/**
 * The never-run regions reachable from executed code. Each starts at a
 * never-run successor of an executed conditional branch; regions that
 * touch are one region.
 */
export function findRegions(exec: BlockExecution): Region[] {
  const cfg = exec.module.cfg;
  const owner = new Int32Array(cfg.blockCount).fill(-1);
  const functionRan = new Uint8Array(cfg.functionCount);
  for (let b = 0; b < cfg.blockCount; b++) if (exec.ran[b] && cfg.blockFunction[b] >= 0) functionRan[cfg.blockFunction[b]] = 1;
  const regions: Region[] = [];
  for (let b = 0; b < cfg.blockCount; b++) {
    if (!exec.ran[b] || cfg.blockEndKind[b] !== BlockEndKind.CondJump) continue;
    for (let e = cfg.edgeFirst[b]; e < cfg.edgeFirst[b + 1]; e++) {
      const k = cfg.edgeKind[e];
      if (k !== EdgeKind.Taken && k !== EdgeKind.NotTaken && k !== EdgeKind.Fallthrough) continue;
      const t = cfg.edgeBlock[e];
      if (t < 0 || exec.ran[t]) continue;
      if (owner[t] >= 0) {
        const r = regions[owner[t]];
        if (!r.entries.includes(t)) r.entries.push(t);
        continue;
      }
      regions.push(growRegion(exec, t, regions.length, owner, functionRan, cfg.blockFunction[b]));
    }
  }
  return regions;
}

function growRegion(exec: BlockExecution, entry: number, id: number, owner: Int32Array, functionRan: Uint8Array, fn: number): Region {
  const cfg = exec.module.cfg;
  const blocks: number[] = [];
  const callees: number[] = [];
  const stack = [entry];
  owner[entry] = id;
  const take = (t: number): void => {
    if (t < 0 || exec.ran[t] || owner[t] >= 0) return;
    owner[t] = id;
    stack.push(t);
  };
  while (stack.length > 0) {
    const b = stack.pop()!;
    blocks.push(b);
    for (let e = cfg.edgeFirst[b]; e < cfg.edgeFirst[b + 1]; e++) {
      const k = cfg.edgeKind[e];
      const t = cfg.edgeBlock[e];
      if (isIntra(k)) {
        take(t);
      } else if ((k === EdgeKind.Call || k === EdgeKind.TailCall) && t >= 0) {
        // A function that never ran, entered from the region: its blocks belong to the region.
        const f = cfg.blockFunction[t];
        if (f < 0 || functionRan[f] || cfg.functionEntry[f] !== cfg.blockStart[t]) continue;
        if (!callees.includes(f)) callees.push(f);
        for (const fb of cfg.blocksOf(f)) take(fb);
      }
    }
  }
  blocks.sort((a, b) => a - b);
  let instructions = 0;
  for (const b of blocks) instructions += cfg.blockInsns[b];
  return { id, entries: [entry], blocks, instructions, function: fn, calleeFunctions: callees };
}

/** Blocks of `region` that ran in a later recording (a coverage diff). */
export function newlyExecuted(region: Region, after: BlockExecution): number[] {
  return region.blocks.filter((b) => after.ran[b] === 1);
}
