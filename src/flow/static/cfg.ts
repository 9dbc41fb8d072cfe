/**
 * The static control-flow model of one ELF module: functions, basic blocks,
 * edges, and the sets a control-flow-integrity policy needs (address-taken
 * functions, exported functions, call-preceded return sites, jump-table
 * targets, landing pads, PLT stubs and their imports).
 *
 * Addresses are link-time addresses of the module (module-map.ts adds the
 * load bias). Blocks follow the trace-side block decoder's notion: a block
 * ends at every branch, calls included, and at every address something
 * jumps to; so an executed block of a trace starts at a block start here.
 *
 * Storage is columnar (typed arrays indexed by block, edge or function
 * number), so lookups allocate nothing: {@link ModuleCfg.blockAt} is a binary
 * search over the sorted block starts.
 */
import { readFileSync } from 'node:fs';
import { ElfFile, PT_LOAD } from '../elf.js';
import {
  baseName,
  Disassembly,
  DisassemblyOptions,
  disassembleElf,
  FunctionOrigin,
  InsnFlow,
  Mark,
  NORETURN_NAMES,
  NumberList,
  type IfuncChoice,
  PltEntry,
  sortedUnique,
} from './disassembly.js';
import { STB_GLOBAL, STB_WEAK, STT_FUNC, STT_GNU_IFUNC } from './elf-tables.js';
import type { JumpTable } from './jump-tables.js';
import { lastAtOrBelow } from '../sorted-search.js';

export type { JumpTable } from './jump-tables.js';
export type { IfuncChoice, PltEntry } from './disassembly.js';

/** Kind of a control-flow edge. */
export enum EdgeKind {
  /** Into the next block without a branch (the next address is a block start). */
  Fallthrough = 0,
  /** Taken direct jump or conditional jump. */
  Taken = 1,
  /** Not-taken side of a conditional jump. */
  NotTaken = 2,
  /** Direct call to the callee's entry. */
  Call = 3,
  /** From a call block to the instruction after the call. */
  ReturnSite = 4,
  /** Indirect call; target unknown (NaN). */
  IndirectCall = 5,
  /** Indirect jump that is not a recognised jump table; target unknown (NaN). */
  IndirectJump = 6,
  /** One target of a recognised jump table. */
  JumpTable = 7,
  /** Direct jump (conditional or not) to another function's entry. */
  TailCall = 8,
}

export const EDGE_KIND_NAMES: readonly string[] = [
  'fallthrough', 'taken', 'not-taken', 'call', 'return-site', 'indirect-call', 'indirect-jump', 'jump-table', 'tail-call',
];

/** How a block ends. */
export enum BlockEndKind {
  /** Falls into the next block (which starts at a jump target). */
  Fallthrough = 0,
  CondJump = 1,
  Jump = 2,
  Call = 3,
  IndirectCall = 4,
  IndirectJump = 5,
  Return = 6,
  /** hlt, ud2, int3, far transfer: no successor. */
  Stop = 7,
  /** The next bytes could not be decoded, or code ended. */
  Invalid = 8,
}

/** Block flag bits. */
export const BlockFlag = {
  LowConfidence: 1,
  LandingPad: 2,
  JumpTableTarget: 4,
  /** Starts right after a call instruction. */
  ReturnSite: 8,
  FunctionEntry: 16,
  Plt: 32,
  /** Ends with a call to a function that does not return. */
  NoReturnCall: 64,
  /** A code pointer points at the block start. */
  Pointer: 128,
} as const;

/** Function flag bits (the low 16 bits are {@link FunctionOrigin}). */
export const FunctionFlag = {
  Exported: 1 << 16,
  AddressTaken: 1 << 17,
  Plt: 1 << 18,
  LowConfidence: 1 << 19,
  NoReturn: 1 << 20,
} as const;

/** An exported (dynamic, default-visibility) function. */
export interface ExportedSymbol {
  name: string;
  address: number;
}

/** Everything that defines a {@link ModuleCfg}; also the JSON payload (cfg-json.ts). */
export interface ModuleCfgData {
  name: string;
  buildId: string | null;
  bits: number;
  /** Lowest PT_LOAD p_vaddr (the link-time base). */
  linkBase: number;
  /** End of the highest PT_LOAD (p_vaddr + p_memsz). */
  linkEnd: number;
  blockStart: Float64Array;
  blockEnd: Float64Array;
  /** Address of the block's last instruction. */
  blockLast: Float64Array;
  blockInsns: Uint32Array;
  blockFunction: Int32Array;
  blockFlags: Uint16Array;
  blockEndKind: Uint8Array;
  /** Edges of block b are [edgeFirst[b], edgeFirst[b + 1]). */
  edgeFirst: Uint32Array;
  edgeTarget: Float64Array;
  /** Target block index, or -1 (unknown target, or outside the module). */
  edgeBlock: Int32Array;
  edgeKind: Uint8Array;
  functionEntry: Float64Array;
  functionName: string[];
  functionFlags: Uint32Array;
  /** Blocks of function f are functionBlocks[functionBlockFirst[f] .. functionBlockFirst[f + 1]). */
  functionBlockFirst: Uint32Array;
  functionBlocks: Int32Array;
  addressTaken: Float64Array;
  codePointers: Float64Array;
  returnSites: Float64Array;
  landingPads: Float64Array;
  exports: ExportedSymbol[];
  plt: PltEntry[];
  jumpTables: JumpTable[];
  /** IFUNC resolvers and the implementations each can return. */
  ifuncs: IfuncChoice[];
  /** LSDA call-site records, sorted by start: calls in [start, end) unwind to pad. */
  callSiteStart: Float64Array;
  callSiteEnd: Float64Array;
  callSitePad: Float64Array;
}

/** log2 of the bytes per blockAt bucket: blocks average more than 16 bytes. */
const BUCKET_BITS = 4;
/** A gap between blocks larger than this starts a new bucket segment (the index stays sparse). */
const BUCKET_SEGMENT_GAP = 1 << 20;

function contains(a: Float64Array, x: number): boolean {
  const i = lastAtOrBelow(a, x);
  return i >= 0 && a[i] === x;
}

export class ModuleCfg implements ModuleCfgData {
  name!: string;
  buildId!: string | null;
  bits!: number;
  linkBase!: number;
  linkEnd!: number;
  blockStart!: Float64Array;
  blockEnd!: Float64Array;
  blockLast!: Float64Array;
  blockInsns!: Uint32Array;
  blockFunction!: Int32Array;
  blockFlags!: Uint16Array;
  blockEndKind!: Uint8Array;
  edgeFirst!: Uint32Array;
  edgeTarget!: Float64Array;
  edgeBlock!: Int32Array;
  edgeKind!: Uint8Array;
  functionEntry!: Float64Array;
  functionName!: string[];
  functionFlags!: Uint32Array;
  functionBlockFirst!: Uint32Array;
  functionBlocks!: Int32Array;
  addressTaken!: Float64Array;
  codePointers!: Float64Array;
  returnSites!: Float64Array;
  landingPads!: Float64Array;
  exports!: ExportedSymbol[];
  plt!: PltEntry[];
  jumpTables!: JumpTable[];
  ifuncs!: IfuncChoice[];
  callSiteStart!: Float64Array;
  callSiteEnd!: Float64Array;
  callSitePad!: Float64Array;
  private readonly pltAddress: Float64Array;
  private readonly jumpTableAddress: Float64Array;
  private readonly exportAddress: Float64Array;
  private exportByName: Map<string, number[]> | null = null;
  /**
   * blockAt's index, per segment of blocks without large gaps: segment s
   * covers [segmentBase[s], segmentBase[s] + segmentSpan[s]), and
   * bucketFirst[segmentBucket[s] + k] is the last block starting at or
   * before segmentBase[s] + k * 16.
   */
  private readonly segmentBase: Float64Array;
  private readonly segmentSpan: Float64Array;
  private readonly segmentBucket: Float64Array;
  private readonly bucketFirst: Int32Array;
  private readonly ifuncByResolver: Map<number, number[]>;

  constructor(data: ModuleCfgData) {
    Object.assign(this, data);
    this.plt = [...data.plt].sort((a, b) => a.address - b.address);
    this.jumpTables = [...data.jumpTables].sort((a, b) => a.jumpAddress - b.jumpAddress);
    this.exports = [...data.exports].sort((a, b) => a.address - b.address);
    this.pltAddress = Float64Array.from(this.plt, (p) => p.address);
    this.jumpTableAddress = Float64Array.from(this.jumpTables, (t) => t.jumpAddress);
    this.exportAddress = Float64Array.from(this.exports, (e) => e.address);
    this.ifuncs = data.ifuncs ?? [];
    this.callSiteStart ??= new Float64Array(0);
    this.callSiteEnd ??= new Float64Array(0);
    this.callSitePad ??= new Float64Array(0);
    this.ifuncByResolver = new Map(this.ifuncs.map((f) => [f.resolver, f.targets]));
    const n = this.blockStart.length;
    const segs: [number, number, number][] = [];
    for (let b = 0; b < n; b++) {
      const top = segs[segs.length - 1];
      if (top === undefined || this.blockStart[b] > top[1] + BUCKET_SEGMENT_GAP) segs.push([this.blockStart[b], this.blockEnd[b], 0]);
      else top[1] = Math.max(top[1], this.blockEnd[b]);
    }
    let buckets = 0;
    for (const sg of segs) {
      sg[2] = buckets;
      buckets += ((sg[1] - sg[0]) >>> BUCKET_BITS) + 1;
    }
    this.segmentBase = Float64Array.from(segs, (x) => x[0]);
    this.segmentSpan = Float64Array.from(segs, (x) => x[1] - x[0]);
    this.segmentBucket = Float64Array.from(segs, (x) => x[2]);
    this.bucketFirst = new Int32Array(buckets);
    let b = -1;
    for (let s = 0; s < segs.length; s++) {
      const count = (this.segmentSpan[s] >>> BUCKET_BITS) + 1;
      for (let k = 0; k < count; k++) {
        const at = this.segmentBase[s] + k * (1 << BUCKET_BITS);
        while (b + 1 < n && this.blockStart[b + 1] <= at) b++;
        this.bucketFirst[this.segmentBucket[s] + k] = b;
      }
    }
  }

  get blockCount(): number {
    return this.blockStart.length;
  }

  get edgeCount(): number {
    return this.edgeKind.length;
  }

  get functionCount(): number {
    return this.functionEntry.length;
  }

  /**
   * Index of the block that contains `ip` (link-time), or -1. No allocation:
   * a bucket index over the code gives the last block starting at or before
   * the bucket, and a short forward scan finishes (binary search outside it).
   */
  blockAt(ip: number): number {
    const starts = this.blockStart;
    let s = 0;
    if (this.segmentBase.length > 1) s = Math.max(0, lastAtOrBelow(this.segmentBase, ip));
    const rel = ip - this.segmentBase[s];
    let i: number;
    if (rel >= 0 && rel < this.segmentSpan[s]) {
      i = this.bucketFirst[this.segmentBucket[s] + (rel >>> BUCKET_BITS)];
      const n = starts.length;
      while (i + 1 < n && starts[i + 1] <= ip) i++;
    } else {
      i = lastAtOrBelow(starts, ip);
    }
    return i >= 0 && ip < this.blockEnd[i] ? i : -1;
  }

  /** Index of the block that starts exactly at `ip`, or -1. */
  blockStartingAt(ip: number): number {
    const i = lastAtOrBelow(this.blockStart, ip);
    return i >= 0 && this.blockStart[i] === ip ? i : -1;
  }

  /** Index of the function whose entry is `ip`, or -1. */
  functionIndex(ip: number): number {
    const i = lastAtOrBelow(this.functionEntry, ip);
    return i >= 0 && this.functionEntry[i] === ip ? i : -1;
  }

  /** Index of the function that owns the block containing `ip`, or -1. */
  functionAt(ip: number): number {
    const b = this.blockAt(ip);
    return b < 0 ? -1 : this.blockFunction[b];
  }

  /** Block indices of function `f`. */
  blocksOf(f: number): Int32Array {
    return this.functionBlocks.subarray(this.functionBlockFirst[f], this.functionBlockFirst[f + 1]);
  }

  /** Function index by name (first match), or -1. */
  functionByName(name: string): number {
    return this.functionName.indexOf(name);
  }

  isAddressTaken(ip: number): boolean {
    return contains(this.addressTaken, ip);
  }

  isReturnSite(ip: number): boolean {
    return contains(this.returnSites, ip);
  }

  isExported(ip: number): boolean {
    return contains(this.exportAddress, ip);
  }

  isLandingPad(ip: number): boolean {
    return contains(this.landingPads, ip);
  }

  /**
   * Coarse CFI policy for an indirect call or jump to `ip`: an address-taken
   * or exported function entry (jump-table targets are checked per site
   * with {@link jumpTableAt}).
   */
  isAllowedIndirectTarget(ip: number): boolean {
    return this.isAddressTaken(ip) || this.isExported(ip);
  }

  /** The exported function `name` (its first version), or NaN. */
  exportAddressOf(name: string): number {
    const all = this.exportAddressesOf(name);
    return all.length > 0 ? all[0] : NaN;
  }

  /** Every address exported as `name` (one per symbol version). */
  exportAddressesOf(name: string): readonly number[] {
    if (this.exportByName === null) {
      this.exportByName = new Map();
      for (const e of this.exports) {
        const list = this.exportByName.get(e.name);
        if (list === undefined) this.exportByName.set(e.name, [e.address]);
        else if (!list.includes(e.address)) list.push(e.address);
      }
    }
    return this.exportByName.get(name) ?? [];
  }

  /** The PLT stub that contains `ip`, or null. */
  pltAt(ip: number): PltEntry | null {
    const i = lastAtOrBelow(this.pltAddress, ip);
    if (i < 0) return null;
    const p = this.plt[i];
    return ip <= p.jumpAddress ? p : null;
  }

  /**
   * The landing pad the unwinder enters for a frame whose call returns to
   * `returnAddress` (link-time), from the LSDA call-site table; NaN if the
   * call has none (the frame is unwound through without stopping).
   */
  landingPadForReturn(returnAddress: number): number {
    const ip = returnAddress - 1;
    const i = lastAtOrBelow(this.callSiteStart, ip);
    // Records do not overlap within a function; look back a few for safety.
    for (let k = i; k >= 0 && k > i - 4; k--) if (ip < this.callSiteEnd[k] && ip >= this.callSiteStart[k]) return this.callSitePad[k];
    return NaN;
  }

  /** The implementations the IFUNC resolver at `resolver` can return (empty if unknown). */
  ifuncTargets(resolver: number): readonly number[] {
    return this.ifuncByResolver.get(resolver) ?? [];
  }

  /** The jump table used by the indirect jump at `jumpIp`, or null. */
  jumpTableAt(jumpIp: number): JumpTable | null {
    const i = lastAtOrBelow(this.jumpTableAddress, jumpIp);
    return i >= 0 && this.jumpTableAddress[i] === jumpIp ? this.jumpTables[i] : null;
  }

  /** Counts for reports. */
  summary(): Record<string, number> {
    let lowBlocks = 0;
    for (let b = 0; b < this.blockCount; b++) if ((this.blockFlags[b] & BlockFlag.LowConfidence) !== 0) lowBlocks++;
    const kinds = new Array<number>(EDGE_KIND_NAMES.length).fill(0);
    for (let e = 0; e < this.edgeCount; e++) kinds[this.edgeKind[e]]++;
    const out: Record<string, number> = {
      functions: this.functionCount,
      blocks: this.blockCount,
      lowConfidenceBlocks: lowBlocks,
      edges: this.edgeCount,
      addressTaken: this.addressTaken.length,
      exported: this.exports.length,
      returnSites: this.returnSites.length,
      landingPads: this.landingPads.length,
      pltEntries: this.plt.length,
      indirectJumps: this.blockEndKind.reduce((k, e) => k + (e === BlockEndKind.IndirectJump ? 1 : 0), 0),
      jumpTables: this.jumpTables.filter((t) => t.source === 'table').length,
      boundedJumpTables: this.jumpTables.filter((t) => t.source === 'table' && t.bounded).length,
      constantJumps: this.jumpTables.filter((t) => t.source === 'constant').length,
      indexedJumps: this.jumpTables.filter((t) => t.source === 'indexed').length,
      ifuncResolvers: this.ifuncs.length,
    };
    EDGE_KIND_NAMES.forEach((n, i) => (out[`edges.${n}`] = kinds[i]));
    return out;
  }
}

/** Per-block execution counts from a trace, merged onto a module's blocks. */
export class BlockCoverage {
  readonly counts: Float64Array;
  /** Executions at addresses that are no block of the module. */
  outside = 0;

  constructor(readonly cfg: ModuleCfg) {
    this.counts = new Float64Array(cfg.blockCount);
  }

  /** Count `n` executions of the block containing link-time address `ip`. */
  add(ip: number, n = 1): void {
    const b = this.cfg.blockAt(ip);
    if (b >= 0) this.counts[b] += n;
    else this.outside += n;
  }

  /** Indices of blocks that never ran. */
  neverRan(): Int32Array {
    const out: number[] = [];
    for (let b = 0; b < this.counts.length; b++) if (this.counts[b] === 0) out.push(b);
    return Int32Array.from(out);
  }

  /** Blocks of function `f` that ran, and all its blocks. */
  functionCoverage(f: number): { ran: number; total: number } {
    const blocks = this.cfg.blocksOf(f);
    let ran = 0;
    for (const b of blocks) if (this.counts[b] > 0) ran++;
    return { ran, total: blocks.length };
  }
}

// ---------------------------------------------------------------------------
// Building.

const FLOW_TO_END: Record<number, BlockEndKind> = {
  [InsnFlow.CondJump]: BlockEndKind.CondJump,
  [InsnFlow.Jump]: BlockEndKind.Jump,
  [InsnFlow.Call]: BlockEndKind.Call,
  [InsnFlow.IndirectCall]: BlockEndKind.IndirectCall,
  [InsnFlow.IndirectJump]: BlockEndKind.IndirectJump,
  [InsnFlow.Return]: BlockEndKind.Return,
  [InsnFlow.Stop]: BlockEndKind.Stop,
};

/** Edge kinds that stay inside a function. */
function isIntraEdge(k: number): boolean {
  return (
    k === EdgeKind.Fallthrough ||
    k === EdgeKind.Taken ||
    k === EdgeKind.NotTaken ||
    k === EdgeKind.JumpTable ||
    k === EdgeKind.ReturnSite
  );
}

/** Build the model of a disassembled module. */
export function buildModuleCfg(d: Disassembly, name = d.elf.name): ModuleCfg {
  const { len, flow, mark, target } = d;
  const span = len.length;
  const space = d.space;
  const at = (off: number): number => space.toAddress(off);

  // Blocks: from each leader, up to a branch or the next leader.
  const bStart = new NumberList();
  const bEnd = new NumberList();
  const bLast = new NumberList();
  const bInsns: number[] = [];
  const bFlags: number[] = [];
  const bEndKind: number[] = [];
  const bLastOff: number[] = [];
  for (let off = 0; off < span; off++) {
    const m = mark[off];
    if ((m & Mark.Insn) === 0 || (m & Mark.Leader) === 0) continue;
    let cur = off;
    let count = 0;
    let endKind: BlockEndKind;
    for (;;) {
      count++;
      const fl = flow[cur];
      const nxt = cur + len[cur];
      if (fl !== InsnFlow.Next) {
        endKind = FLOW_TO_END[fl];
        break;
      }
      if (nxt >= space.regionEnd(cur) || (mark[nxt] & Mark.Insn) === 0) {
        endKind = BlockEndKind.Invalid;
        break;
      }
      if ((mark[nxt] & Mark.Leader) !== 0) {
        endKind = BlockEndKind.Fallthrough;
        break;
      }
      cur = nxt;
    }
    let flags = 0;
    if ((m & Mark.LowConfidence) !== 0) flags |= BlockFlag.LowConfidence;
    if ((m & Mark.LandingPad) !== 0) flags |= BlockFlag.LandingPad;
    if ((m & Mark.JumpTableTarget) !== 0) flags |= BlockFlag.JumpTableTarget;
    if ((m & Mark.ReturnSite) !== 0) flags |= BlockFlag.ReturnSite;
    if ((m & Mark.Function) !== 0) flags |= BlockFlag.FunctionEntry;
    if ((m & Mark.Plt) !== 0) flags |= BlockFlag.Plt;
    if ((m & Mark.Pointer) !== 0) flags |= BlockFlag.Pointer;
    if ((mark[cur] & Mark.NoReturnCall) !== 0) flags |= BlockFlag.NoReturnCall;
    bStart.push(at(off));
    bEnd.push(at(cur) + len[cur]);
    bLast.push(at(cur));
    bLastOff.push(cur);
    bInsns.push(count);
    bFlags.push(flags);
    bEndKind.push(endKind);
  }
  const blockStart = bStart.toArray();
  const nBlocks = blockStart.length;
  const blockIndex = (addr: number): number => {
    const i = lastAtOrBelow(blockStart, addr);
    return i >= 0 && blockStart[i] === addr ? i : -1;
  };

  // Edges.
  const tables = new Map<number, JumpTable>();
  for (const t of d.jumpTables) tables.set(t.jumpAddress, t);
  const edgeFirst = new Uint32Array(nBlocks + 1);
  const eTarget = new NumberList(nBlocks * 2);
  const eKind: number[] = [];
  const decodedAfter = (last: number, off: number) => off < space.regionEnd(last) && (mark[off] & Mark.Insn) !== 0;
  for (let b = 0; b < nBlocks; b++) {
    edgeFirst[b] = eKind.length;
    const last = bLastOff[b];
    const next = last + len[last];
    const add = (t: number, k: EdgeKind) => {
      eTarget.push(t);
      eKind.push(k);
    };
    switch (bEndKind[b]) {
      case BlockEndKind.Fallthrough:
        add(at(next), EdgeKind.Fallthrough);
        break;
      case BlockEndKind.CondJump:
        add(target[last], EdgeKind.Taken);
        if (decodedAfter(last, next)) add(at(next), EdgeKind.NotTaken);
        break;
      case BlockEndKind.Jump:
        add(target[last], EdgeKind.Taken);
        break;
      case BlockEndKind.Call:
        add(target[last], EdgeKind.Call);
        if ((bFlags[b] & BlockFlag.NoReturnCall) === 0 && decodedAfter(last, next)) add(at(next), EdgeKind.ReturnSite);
        break;
      case BlockEndKind.IndirectCall:
        add(NaN, EdgeKind.IndirectCall);
        if (decodedAfter(last, next)) add(at(next), EdgeKind.ReturnSite);
        break;
      case BlockEndKind.IndirectJump: {
        const t = tables.get(at(last));
        if (t && t.targets.length > 0) for (const x of new Set(t.targets)) add(x, EdgeKind.JumpTable);
        else add(NaN, EdgeKind.IndirectJump);
        break;
      }
      default:
        break;
    }
  }
  edgeFirst[nBlocks] = eKind.length;
  const edgeTarget = eTarget.toArray();
  const edgeKind = Uint8Array.from(eKind);
  const edgeBlock = new Int32Array(edgeTarget.length);
  for (let e = 0; e < edgeTarget.length; e++) edgeBlock[e] = Number.isNaN(edgeTarget[e]) ? -1 : blockIndex(edgeTarget[e]);

  // Functions: entries that decoded, each owning the blocks it reaches
  // without crossing another entry.
  const entries = sortedUnique([...d.functionOrigins.keys()].filter((a) => d.isInstruction(a)));
  const nFuncs = entries.length;
  const entryBlock = new Int32Array(nFuncs);
  const isEntryBlock = new Uint8Array(nBlocks);
  for (let f = 0; f < nFuncs; f++) {
    entryBlock[f] = blockIndex(entries[f]);
    if (entryBlock[f] >= 0) isEntryBlock[entryBlock[f]] = 1;
  }
  const blockFunction = new Int32Array(nBlocks).fill(-1);
  const stack: number[] = [];
  const claim = (f: number, root: number) => {
    blockFunction[root] = f;
    stack.push(root);
    while (stack.length > 0) {
      const b = stack.pop() as number;
      for (let e = edgeFirst[b]; e < edgeFirst[b + 1]; e++) {
        const t = edgeBlock[e];
        if (t < 0 || !isIntraEdge(edgeKind[e]) || blockFunction[t] >= 0 || isEntryBlock[t] === 1) continue;
        blockFunction[t] = f;
        stack.push(t);
      }
    }
  };
  for (let f = 0; f < nFuncs; f++) if (entryBlock[f] >= 0) claim(f, entryBlock[f]);
  // Blocks no entry reaches (landing pads, code behind unknown noreturn calls):
  // the function with the nearest entry below.
  for (let b = 0; b < nBlocks; b++) {
    if (blockFunction[b] >= 0) continue;
    const f = lastAtOrBelow(entries, blockStart[b]);
    if (f >= 0) claim(f, b);
  }
  // Direct jumps into another function's entry are tail calls.
  for (let b = 0; b < nBlocks; b++) {
    for (let e = edgeFirst[b]; e < edgeFirst[b + 1]; e++) {
      if (edgeKind[e] !== EdgeKind.Taken) continue;
      const t = edgeBlock[e];
      if (t >= 0 && isEntryBlock[t] === 1 && blockFunction[t] !== blockFunction[b]) edgeKind[e] = EdgeKind.TailCall;
    }
  }
  const functionBlockFirst = new Uint32Array(nFuncs + 1);
  for (let b = 0; b < nBlocks; b++) if (blockFunction[b] >= 0) functionBlockFirst[blockFunction[b] + 1]++;
  for (let f = 0; f < nFuncs; f++) functionBlockFirst[f + 1] += functionBlockFirst[f];
  const fill = functionBlockFirst.slice(0, nFuncs);
  const functionBlocks = new Int32Array(functionBlockFirst[nFuncs]);
  for (let b = 0; b < nBlocks; b++) if (blockFunction[b] >= 0) functionBlocks[fill[blockFunction[b]]++] = b;

  // Sets.
  const pointers: number[] = [];
  for (let i = 1; i < d.codeRefs.length; i += 2) pointers.push(d.codeRefs.data[i]);
  for (let i = 0; i < d.dataPointers.length; i++) pointers.push(d.dataPointers.data[i]);
  const codePointers = sortedUnique(pointers.filter((p) => d.isCode(p)));
  const addressTaken = sortedUnique(Array.from(codePointers).filter((p) => contains(entries, p)));
  const returnSites: number[] = [];
  for (let off = 0; off < span; off++) if ((mark[off] & Mark.ReturnSite) !== 0) returnSites.push(at(off));

  const exports: ExportedSymbol[] = [];
  const seen = new Set<string>();
  // Exports, and the canonical PLT addresses of a non-PIE executable: an
  // undefined function symbol with a value is that function's address for
  // the whole process (the executable took its address), and the dynamic
  // linker binds every module's references to it.
  for (const s of d.dynamicSymbols) {
    if (s.value === 0 || (s.type !== STT_FUNC && s.type !== STT_GNU_IFUNC)) continue;
    if ((s.bind !== STB_GLOBAL && s.bind !== STB_WEAK) || s.visibility !== 0) continue;
    const key = `${s.name}@${s.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    exports.push({ name: s.name, address: s.value });
  }
  const exportSet = new Set(exports.map((e) => e.address));

  const pltByAddr = new Map<number, PltEntry>();
  for (const p of d.plt) pltByAddr.set(p.address, p);
  const functionName: string[] = [];
  const functionFlags = new Uint32Array(nFuncs);
  for (let f = 0; f < nFuncs; f++) {
    const a = entries[f];
    const origin = d.functionOrigins.get(a) ?? 0;
    let flags = origin & 0xffff;
    const plt = pltByAddr.get(a);
    const sym = d.elf.symbolize(a);
    let fname: string;
    if (plt) fname = plt.name ? `${plt.name}@plt` : `plt_${a.toString(16)}`;
    else if (sym && sym.offset === 0) fname = sym.name;
    else fname = `sub_${a.toString(16)}`;
    functionName.push(fname);
    if (plt) flags |= FunctionFlag.Plt;
    if (exportSet.has(a)) flags |= FunctionFlag.Exported;
    if (contains(addressTaken, a)) flags |= FunctionFlag.AddressTaken;
    if ((origin & ~FunctionOrigin.Gap) === 0) flags |= FunctionFlag.LowConfidence;
    if (NORETURN_NAMES.has(baseName(plt ? plt.name : fname))) flags |= FunctionFlag.NoReturn;
    functionFlags[f] = flags;
  }

  return new ModuleCfg({
    name,
    buildId: d.elf.buildId,
    bits: d.eb.is64 ? 64 : 32,
    linkBase: d.elf.minLoadAddress(),
    linkEnd: d.elf.segments.reduce((m, p) => (p.type === PT_LOAD ? Math.max(m, p.vaddr + p.memsz) : m), 0),
    blockStart,
    blockEnd: bEnd.toArray(),
    blockLast: bLast.toArray(),
    blockInsns: Uint32Array.from(bInsns),
    blockFunction,
    blockFlags: Uint16Array.from(bFlags),
    blockEndKind: Uint8Array.from(bEndKind),
    edgeFirst,
    edgeTarget,
    edgeBlock,
    edgeKind,
    functionEntry: entries,
    functionName,
    functionFlags,
    functionBlockFirst,
    functionBlocks,
    addressTaken,
    codePointers,
    returnSites: Float64Array.from(returnSites),
    landingPads: sortedUnique(d.unwind.landingPads),
    exports,
    plt: d.plt,
    jumpTables: d.jumpTables,
    ifuncs: d.ifuncs,
    ...callSiteColumns(d),
  });
}

/** The LSDA call-site records as sorted columns. */
function callSiteColumns(d: Disassembly): Pick<ModuleCfgData, 'callSiteStart' | 'callSiteEnd' | 'callSitePad'> {
  const u = d.unwind;
  const order = u.callSiteStart.map((_, i) => i).sort((a, b) => u.callSiteStart[a] - u.callSiteStart[b]);
  return {
    callSiteStart: Float64Array.from(order, (i) => u.callSiteStart[i]),
    callSiteEnd: Float64Array.from(order, (i) => u.callSiteEnd[i]),
    callSitePad: Float64Array.from(order, (i) => u.callSitePad[i]),
  };
}

/** Disassemble and model a parsed ELF (link-time addresses). */
export function analyzeElf(bytes: Uint8Array, elf: ElfFile, name: string, options?: DisassemblyOptions): ModuleCfg {
  const d = disassembleElf(bytes, elf, options);
  try {
    return buildModuleCfg(d, name);
  } finally {
    d.dispose();
  }
}

/** Disassemble and model an ELF file from disk (link-time addresses). */
export function analyzeElfFile(path: string, options?: DisassemblyOptions): ModuleCfg {
  const bytes = readFileSync(path);
  return analyzeElf(bytes, ElfFile.parse(bytes, path), path, options);
}
