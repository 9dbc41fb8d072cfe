/**
 * The block cache (libipt's pt_block_cache, pt_bcache): for an address, the
 * straight-line run of code that starts there and needs nothing from the
 * trace, so that the flow decoders can cross it in one step.
 *
 * A run is a sequence of instructions whose successor the code alone
 * determines: non-branches (including PTWRITE, MOV CR3, VMPTRLD, which
 * matter only while an event is pending, and the decoders check that before
 * they use a run) and, unless `splitJumps`, direct jumps. It ends with
 * its *final* instruction, the first one the trace must resolve or whose
 * effect the decoder must apply (a conditional, indirect or far branch, a
 * return, a direct call for the return stack; a direct jump with
 * `splitJumps`), or *open*, before an instruction it cannot hold:
 * one that leaves the mapping the run started in, does not decode, or
 * runs past its mapping's end, or after {@link MAX_RUN_INSNS}. A decoder
 * steps such an instruction one at a time.
 *
 * Entries are keyed like libipt's (address space, IP, mode): by the
 * mapping that holds the IP (found in the address space), the offset in it
 * and the mode. A change of the image ({@link Image.version}) drops them.
 *
 * Per entry the cache keeps, in typed arrays: how many instructions precede
 * the final one, the last instruction's address and its packed
 * classification (size, class, kind, direct; the same layout as the
 * instruction cache), its displacement, the address after an open run, and
 * how many direct jumps the run takes (the decoders' loop guard counts them).
 * The classification of every instruction of the run is kept too, in
 * order ({@link BlockCache.first}), for the instruction decoder, which
 * reports each one but need not look each one up.
 */
import type { Asid } from './address-space.js';
import type { Image, MappedSection } from './image.js';
import { instructionDecoderFor, type InstructionDecoder } from './instruction-decoder.js';
import { ExecMode, InsnClass, InstructionInfo } from './instruction.js';
import { grow } from './grow.js';

/** Longest run cached (a direct-jump loop would otherwise never end). */
export const MAX_RUN_INSNS = 1024;

/** {@link BlockCache.info} layout: size (bits 0-3), class (4-7), kind (8-15), then flags. */
export const RUN_DIRECT = 1 << 16;
/** The run ends with a final instruction (else it is open). */
export const RUN_FINAL = 1 << 17;
/** The run takes no direct jump: its instructions lie in [start, last]. */
export const RUN_CONTIGUOUS = 1 << 18;

const PAGE_BITS = 10;
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;

/** Entry ids (+1, 0 = none) per offset of one mapping, in one mode. */
class RunTable {
  readonly pages: (Int32Array | undefined)[] = [];
}

export class BlockCache {
  /** Instructions before the final one (all of them for an open run). */
  count = new Int32Array(256);
  /** Packed classification of the run's last instruction, plus RUN_* flags. */
  info = new Int32Array(256);
  /** Displacement of a direct last instruction. */
  disp = new Int32Array(256);
  /** Direct jumps among the instructions before the final one. */
  directs = new Int32Array(256);
  /** Address of the run's last instruction. */
  lastIp = new Float64Array(256);
  /** Open runs: the address after the run. */
  nextIp = new Float64Array(256);
  /** Index in {@link insnInfo}/{@link insnDisp} of the run's first instruction. */
  first = new Int32Array(256);
  private used = 0;
  /** Packed classification and displacement of each instruction of each run, run after run. */
  insnInfo = new Int32Array(1024);
  insnDisp = new Int32Array(1024);
  private insnUsed = 0;

  /** Lookups answered from the cache, and runs built. */
  hits = 0;
  misses = 0;

  /** The mapping of the last lookup: its isid, for the decoders' section rule. */
  isid = 0;
  /** The mapping of the last successful lookup. */
  mapping: MappedSection | null = null;

  private readonly tables = new Map<MappedSection, RunTable[]>();
  private lastMsec: MappedSection | null = null;
  private lastMode = ExecMode.Unknown;
  private lastTable: RunTable | null = null;
  private version: number;
  private readonly decoder: InstructionDecoder;
  private readonly insn = new InstructionInfo();

  constructor(
    readonly image: Image,
    /** End runs at direct jumps too (a block decoder's `endOnJump`). */
    readonly splitJumps: boolean,
  ) {
    this.version = image.version;
    this.decoder = instructionDecoderFor(image);
  }

  /** Drop every entry. */
  clear(): void {
    this.tables.clear();
    this.lastMsec = null;
    this.lastTable = null;
    this.mapping = null;
    this.used = 0;
    this.insnUsed = 0;
    this.version = this.image.version;
  }

  /** Entries in use. */
  get size(): number {
    return this.used;
  }

  /**
   * The run at `ip`: an entry id, or -1 if nothing is mapped there or the
   * mode is unknown. Sets {@link isid}.
   */
  lookup(ip: number, mode: ExecMode, asid: Asid): number {
    if (this.image.version !== this.version) this.clear();
    const msec = this.image.find(ip, asid);
    if (msec === null || mode === ExecMode.Unknown) return -1;
    let table = this.lastTable;
    if (msec !== this.lastMsec || mode !== this.lastMode || table === null) {
      table = this.tableFor(msec, mode);
    }
    this.isid = msec.isid;
    this.mapping = msec;
    const off = ip - msec.vaddr;
    let page = table.pages[off >>> PAGE_BITS];
    if (page === undefined) {
      page = new Int32Array(PAGE_SIZE);
      table.pages[off >>> PAGE_BITS] = page;
    }
    const id = page[off & PAGE_MASK] - 1;
    if (id >= 0) {
      this.hits++;
      return id;
    }
    this.misses++;
    const made = this.build(ip, mode, asid, msec);
    page[off & PAGE_MASK] = made + 1;
    return made;
  }

  private tableFor(msec: MappedSection, mode: ExecMode): RunTable {
    let list = this.tables.get(msec);
    if (list === undefined) {
      list = [];
      this.tables.set(msec, list);
    }
    let t = list[mode];
    if (t === undefined) {
      t = new RunTable();
      list[mode] = t;
    }
    this.lastMsec = msec;
    this.lastMode = mode;
    this.lastTable = t;
    return t;
  }

  /** Walk the code from `ip` and store its run. */
  private build(ip: number, mode: ExecMode, asid: Asid, msec: MappedSection): number {
    const insn = this.insn;
    const dec = this.decoder;
    let at = ip;
    let count = 0;
    let directs = 0;
    let info = RUN_CONTIGUOUS;
    let disp = 0;
    let lastIp = ip;
    const first = this.insnUsed;
    for (;;) {
      // Open: past the cap, outside the mapping, or not decodable here.
      if (count >= MAX_RUN_INSNS || at < msec.vaddr || at >= msec.end) break;
      if (dec.decode(insn, at, mode, asid) < 0 || insn.truncated || insn.section !== msec) break;
      const packed = insn.size | (insn.iclass << 4) | (insn.kind << 8) | (insn.isDirect ? RUN_DIRECT : 0);
      this.pushInsn(packed, insn.displacement);
      const c = insn.iclass;
      if (c === InsnClass.Other || c === InsnClass.Ptwrite) {
        info = (info & RUN_CONTIGUOUS) | packed;
        disp = 0;
        lastIp = at;
        at += insn.size;
        count++;
        continue;
      }
      if (c === InsnClass.Jump && insn.isDirect && !this.splitJumps) {
        info = packed;
        disp = insn.displacement;
        lastIp = at;
        at = insn.target;
        directs++;
        count++;
        continue;
      }
      // The final instruction.
      info = (info & RUN_CONTIGUOUS) | packed | RUN_FINAL;
      disp = insn.displacement;
      lastIp = at;
      break;
    }
    const id = this.alloc();
    this.count[id] = count;
    this.info[id] = info;
    this.disp[id] = disp;
    this.directs[id] = directs;
    this.lastIp[id] = lastIp;
    this.nextIp[id] = at;
    this.first[id] = first;
    return id;
  }

  private pushInsn(packed: number, displacement: number): void {
    const i = this.insnUsed++;
    if (i === this.insnInfo.length) {
      this.insnInfo = grow(this.insnInfo, new Int32Array(i * 2));
      this.insnDisp = grow(this.insnDisp, new Int32Array(i * 2));
    }
    this.insnInfo[i] = packed;
    this.insnDisp[i] = displacement;
  }

  private alloc(): number {
    const id = this.used++;
    if (id === this.count.length) {
      const n = id * 2;
      this.count = grow(this.count, new Int32Array(n));
      this.info = grow(this.info, new Int32Array(n));
      this.disp = grow(this.disp, new Int32Array(n));
      this.directs = grow(this.directs, new Int32Array(n));
      this.lastIp = grow(this.lastIp, new Float64Array(n));
      this.nextIp = grow(this.nextIp, new Float64Array(n));
      this.first = grow(this.first, new Int32Array(n));
    }
    return id;
  }
}


const shared = new WeakMap<Image, BlockCache[]>();

/** The block cache of `image` for one way of splitting runs, shared like the instruction cache. */
export function blockCacheFor(image: Image, splitJumps: boolean): BlockCache {
  let list = shared.get(image);
  if (list === undefined) {
    list = [];
    shared.set(image, list);
  }
  const i = splitJumps ? 1 : 0;
  let c = list[i];
  if (c === undefined) {
    c = new BlockCache(image, splitJumps);
    list[i] = c;
  }
  return c;
}
