/**
 * The last instruction of each block a walk sees, remembered by the
 * block's end address. A walk needs every block's last instruction (is it
 * a call, a return, a jump?), and reading it again through the image (the
 * image's instruction decoder from a WeakMap, the mapping look-up, the
 * instruction cache) was one of the largest entries in `analyze`'s
 * profile. Loops end their blocks at the same few addresses over and
 * over, so a small direct-mapped table answers most blocks.
 *
 * An entry holds for one image, image version and address space (the
 * block's): a change of any of them forgets every entry. A block whose
 * last instruction runs past its section is read as before, every time.
 */
import type { Asid } from './address-space.js';
import type { Block } from './block.js';
import type { Image } from './image.js';
import type { InstructionInfo } from './instruction.js';

const BITS = 12;
const SIZE = 1 << BITS;
const MASK = SIZE - 1;

/** Packed answer: class (4 bits), direct (1 bit), size (4 bits). */
const DIRECT = 1 << 4;
const SIZE_SHIFT = 5;

/** Class of a packed answer ({@link LastInsnMemo.read}). */
export function lastClass(info: number): number {
  return info & 15;
}

/** Whether a packed answer's instruction has a direct target. */
export function lastIsDirect(info: number): boolean {
  return (info & DIRECT) !== 0;
}

/** Size of a packed answer's instruction. */
export function lastSize(info: number): number {
  return (info >>> SIZE_SHIFT) & 15;
}

export class LastInsnMemo {
  private readonly ends = new Float64Array(SIZE);
  private readonly modes = new Int8Array(SIZE);
  private readonly infos = new Int32Array(SIZE);
  /** The generation each slot was written in; a slot of an older one is empty. */
  private readonly gens = new Int32Array(SIZE);
  private gen = 1;
  private image: Image | null = null;
  private version = -1;
  private asid: Asid | null = null;
  /** Reads that had to decode (diagnostics and tests). */
  misses = 0;

  /**
   * The block's last instruction packed (see {@link lastClass}), or the
   * negative ErrorCode `block.lastInsn` gives. `scratch` is decoded into
   * on a miss.
   */
  read(block: Block, scratch: InstructionInfo): number {
    const image = block.codeImage;
    const asid = block.codeAsid;
    if (image === null || block.truncated) return this.decode(block, scratch);
    if (image !== this.image || image.version !== this.version || asid !== this.asid) {
      this.image = image;
      this.version = image.version;
      this.asid = asid;
      // Wrapping to 0 would match never-written slots.
      this.gen = this.gen === 0x7fffffff ? 1 : this.gen + 1;
      if (this.gen === 1) this.gens.fill(0);
    }
    const end = block.endIp;
    const mode = block.mode;
    // `&` takes the address modulo 2^32: enough to spread a program's code.
    const h = end & MASK;
    if (this.gens[h] === this.gen && this.ends[h] === end && this.modes[h] === mode) return this.infos[h]!;
    this.misses++;
    const info = this.decode(block, scratch);
    if (info < 0) return info;
    this.gens[h] = this.gen;
    this.ends[h] = end;
    this.modes[h] = mode;
    this.infos[h] = info;
    return info;
  }

  private decode(block: Block, scratch: InstructionInfo): number {
    const status = block.lastInsn(scratch);
    if (status < 0) return status;
    return scratch.iclass | (scratch.isDirect ? DIRECT : 0) | (scratch.size << SIZE_SHIFT);
  }
}
