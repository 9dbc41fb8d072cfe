/**
 * The basic-block graph the edge decoder walks (Honeybee's idea: know each
 * block's end ahead of time instead of decoding instructions while
 * following the trace).
 *
 * A block here starts at any address the flow can be at and runs through
 * the straight-line code to its first branch (any instruction whose class
 * is not Other or Ptwrite: near and far calls, jumps, conditional jumps,
 * returns): its *terminator*. The code between needs nothing from the
 * trace, so a block is crossed in one step; what the terminator needs
 * decides the rest:
 *
 * - {@link Term.Cond}: one TNT bit (taken: `target`, not taken: `next`);
 * - {@link Term.Jump}, {@link Term.Call}, {@link Term.CallNext}: nothing
 *   (`target`; a call pushes `next` on the return stack, except a call to
 *   the next instruction, which libipt does not treat as a call);
 * - {@link Term.Ret}: a taken TNT bit (compressed: pop the return stack)
 *   or a TIP;
 * - {@link Term.IndJump}, {@link Term.IndCall} (pushes `next`),
 *   {@link Term.Far}: a TIP;
 * - {@link Term.Bad}: the instruction at `termIp` cannot be decoded (no
 *   mapping, invalid bytes) or is a direct far branch; the exact decoders
 *   report an error there.
 *
 * A block is *special* when an instruction inside it can bind an event in
 * libipt's flow decoders (MOV CR3, VMPTRLD, PTWRITE, or a privilege change
 * that is not a branch): the edge decoder leaves such code to the exact
 * decoder whenever an event is pending.
 *
 * Instructions are decoded in 64-bit mode with the image's shared
 * {@link InstructionDecoder} (iced-x86), as the flow decoders do, and in no
 * particular address space: the edge decoder is only used on images whose
 * sections all map in every address space. A change of the image
 * ({@link Image.version}) drops the graph.
 */
import { ANY_ASID } from '../address-space.js';
import type { Image } from '../image.js';
import { instructionDecoderFor, type InstructionDecoder } from '../instruction-decoder.js';
import { ExecMode, InsnClass, InsnKind, InstructionInfo, insnChangesCpl } from '../instruction.js';
import { blockHash } from './edge-map.js';
import { grow } from '../grow.js';

/** What a block's terminator needs and does. */
export const enum Term {
  Cond = 1,
  Jump = 2,
  Call = 3,
  CallNext = 4,
  Ret = 5,
  IndJump = 6,
  IndCall = 7,
  Far = 8,
  Bad = 9,
}

/** True for terminators that follow the code alone (direct jumps and calls). */
export function isDirectTerm(t: Term): boolean {
  return t === Term.Jump || t === Term.Call || t === Term.CallNext;
}

/** Empty slot in the address table. */
const EMPTY = -1;

export class BlockGraph {
  /** Start address of each block. */
  start = new Float64Array(1024);
  /** {@link blockHash} of the start address. */
  hash = new Int32Array(1024);
  /** Terminator kind ({@link Term}). */
  term = new Uint8Array(1024);
  /** 1 if the block holds an instruction that can bind an event (see the file comment). */
  special = new Uint8Array(1024);
  /** Address of the terminator. */
  termIp = new Float64Array(1024);
  /** Address after the terminator (fall-through, return address). */
  next = new Float64Array(1024);
  /** Target of a direct terminator (Cond, Jump, Call, CallNext). */
  target = new Float64Array(1024);
  /** Block ids of `target` and `next`, resolved on first use (-1: not yet). */
  targetId = new Int32Array(1024);
  nextId = new Int32Array(1024);
  private used = 0;

  /** Open-addressing table: start address → block id. */
  private keys = new Float64Array(2048);
  private ids = new Int32Array(2048).fill(EMPTY);

  /** Instructions decoded to build blocks. */
  decoded = 0;
  /** Incremented by {@link clear}: block ids of older generations are void. */
  generation = 0;
  private version: number;
  private readonly decoder: InstructionDecoder;
  private readonly insn = new InstructionInfo();

  constructor(readonly image: Image) {
    this.version = image.version;
    this.decoder = instructionDecoderFor(image);
  }

  /** Blocks built. */
  get size(): number {
    return this.used;
  }

  /** Bytes held by the graph's arrays. */
  get bytes(): number {
    return (
      this.start.byteLength + this.hash.byteLength + this.term.byteLength + this.special.byteLength +
      this.termIp.byteLength + this.next.byteLength + this.target.byteLength + this.targetId.byteLength +
      this.nextId.byteLength + this.keys.byteLength + this.ids.byteLength
    );
  }

  /** True if the graph was built from an older version of the image (call {@link clear}). */
  get stale(): boolean {
    return this.image.version !== this.version;
  }

  clear(): void {
    this.used = 0;
    this.ids.fill(EMPTY);
    this.decoded = 0;
    this.version = this.image.version;
    this.generation++;
  }

  /** The id of the block starting at `addr`, built on first use. */
  lookup(addr: number): number {
    const keys = this.keys;
    const ids = this.ids;
    const mask = ids.length - 1;
    let slot = blockHash(addr) & mask;
    for (;;) {
      const id = ids[slot];
      if (id === EMPTY) break;
      if (keys[slot] === addr) return id;
      slot = (slot + 1) & mask;
    }
    const id = this.build(addr);
    // build() may have grown the table: insert afresh.
    this.insert(addr, id);
    return id;
  }

  /** Size in bytes of block `id`: up to the end of its terminator (an undecodable one excluded). */
  sizeOf(id: number): number {
    return this.next[id] - this.start[id];
  }

  /** The id of the block at `target` of block `id`. */
  targetOf(id: number): number {
    let t = this.targetId[id];
    if (t < 0) t = this.targetId[id] = this.lookup(this.target[id]);
    return t;
  }

  /** The id of the block at `next` of block `id`. */
  nextOf(id: number): number {
    let t = this.nextId[id];
    if (t < 0) t = this.nextId[id] = this.lookup(this.next[id]);
    return t;
  }

  private insert(addr: number, id: number): void {
    if ((this.used + 1) * 2 > this.ids.length) this.rehash(this.ids.length * 2);
    const keys = this.keys;
    const ids = this.ids;
    const mask = ids.length - 1;
    let slot = blockHash(addr) & mask;
    while (ids[slot] !== EMPTY) slot = (slot + 1) & mask;
    keys[slot] = addr;
    ids[slot] = id;
  }

  private rehash(capacity: number): void {
    const oldKeys = this.keys;
    const oldIds = this.ids;
    this.keys = new Float64Array(capacity);
    this.ids = new Int32Array(capacity).fill(EMPTY);
    const mask = capacity - 1;
    for (let i = 0; i < oldIds.length; i++) {
      const id = oldIds[i];
      if (id === EMPTY) continue;
      let slot = blockHash(oldKeys[i]) & mask;
      while (this.ids[slot] !== EMPTY) slot = (slot + 1) & mask;
      this.keys[slot] = oldKeys[i];
      this.ids[slot] = id;
    }
  }

  /** Decode the straight-line code from `addr` up to its terminator. */
  private build(addr: number): number {
    const id = this.alloc();
    const insn = this.insn;
    const dec = this.decoder;
    let ip = addr;
    let special = 0;
    let term = Term.Bad;
    let target = 0;
    let next = addr;
    for (;;) {
      this.decoded++;
      if (dec.decode(insn, ip, ExecMode.Bit64, ANY_ASID) < 0) break;
      const c = insn.iclass;
      if (c === InsnClass.Other || c === InsnClass.Ptwrite) {
        const k = insn.kind;
        if (c === InsnClass.Ptwrite || k === InsnKind.MovCr3 || k === InsnKind.Vmptrld || insnChangesCpl(insn)) special = 1;
        ip += insn.size;
        continue;
      }
      next = ip + insn.size;
      target = insn.isDirect ? insn.target : 0;
      term = terminatorOf(c, insn.isDirect, insn.displacement);
      break;
    }
    this.start[id] = addr;
    this.hash[id] = blockHash(addr);
    this.term[id] = term;
    this.special[id] = special;
    this.termIp[id] = ip;
    this.next[id] = term === Term.Bad ? ip : next;
    this.target[id] = target;
    this.targetId[id] = -1;
    this.nextId[id] = -1;
    return id;
  }

  private alloc(): number {
    const id = this.used++;
    if (id === this.start.length) {
      const n = id * 2;
      this.start = grow(this.start, new Float64Array(n));
      this.hash = grow(this.hash, new Int32Array(n));
      this.term = grow(this.term, new Uint8Array(n));
      this.special = grow(this.special, new Uint8Array(n));
      this.termIp = grow(this.termIp, new Float64Array(n));
      this.next = grow(this.next, new Float64Array(n));
      this.target = grow(this.target, new Float64Array(n));
      this.targetId = grow(this.targetId, new Int32Array(n));
      this.nextId = grow(this.nextId, new Int32Array(n));
    }
    return id;
  }
}

/** The terminator kind of a branch of class `c` (libipt's pt_insn_next_ip cases). */
function terminatorOf(c: InsnClass, isDirect: boolean, displacement: number): Term {
  switch (c) {
    case InsnClass.CondJump:
      return isDirect ? Term.Cond : Term.Bad;
    case InsnClass.Jump:
      return isDirect ? Term.Jump : Term.IndJump;
    case InsnClass.Call:
      if (!isDirect) return Term.IndCall;
      return displacement === 0 ? Term.CallNext : Term.Call;
    case InsnClass.Return:
      return Term.Ret;
    case InsnClass.Indirect:
      return Term.IndJump;
    case InsnClass.FarCall:
    case InsnClass.FarReturn:
    case InsnClass.FarJump:
      // A direct far branch would move by its displacement without trace;
      // no 64-bit code has one, so leave it to the exact decoder.
      return isDirect ? Term.Bad : Term.Far;
    default:
      return Term.Bad;
  }
}


const shared = new WeakMap<Image, BlockGraph>();

/** The block graph of `image`, shared by every edge decoder of it (rebuilt if the image changed). */
export function blockGraphFor(image: Image): BlockGraph {
  let g = shared.get(image);
  if (g === undefined) {
    g = new BlockGraph(image);
    shared.set(image, g);
  } else if (g.stale) {
    g.clear();
  }
  return g;
}
