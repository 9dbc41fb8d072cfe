/**
 * Building exploit payloads: a little-endian byte layout with named
 * placements, and ROP chains over a GadgetSet that remember which gadgets
 * they use (the ground truth written to run.json).
 */
import type { Gadget, GadgetSet } from './gadgets.js';

/** A gadget as used by an exploit, for run.json. */
export interface UsedGadget {
  address: string;
  module: string;
  text: string;
  end: Gadget['end'];
  role: string;
}

export function hex(v: number | bigint): string {
  return '0x' + v.toString(16);
}

export function usedGadget(g: Gadget, role: string): UsedGadget {
  return { address: hex(g.address), module: g.module, text: g.text, end: g.end, role };
}

/** Bytes placed at fixed offsets; gaps are filled with `fill`. */
export class Layout {
  private buf = Buffer.alloc(0);
  private readonly used: [number, number, string][] = [];

  constructor(private readonly fill = 0x41) {}

  get length(): number {
    return this.buf.length;
  }

  /** Place `data` at `offset`; throws if it overlaps an earlier placement. */
  put(offset: number, data: Uint8Array, what: string): void {
    const end = offset + data.length;
    for (const [b, e, w] of this.used) {
      if (offset < e && b < end) throw new Error(`${what} [${offset}, ${end}) overlaps ${w} [${b}, ${e})`);
    }
    this.used.push([offset, end, what]);
    if (end > this.buf.length) {
      const grown = Buffer.alloc(end, this.fill);
      this.buf.copy(grown);
      this.buf = grown;
    }
    Buffer.from(data).copy(this.buf, offset);
  }

  u64(offset: number, value: number | bigint, what: string): void {
    this.put(offset, qwords([value]), what);
  }

  bytes(): Buffer {
    return Buffer.from(this.buf);
  }
}

export function qwords(values: readonly (number | bigint)[]): Buffer {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), i * 8));
  return b;
}

const JUNK = 0x4a554e4b4a554e4bn; // "KNUJKNUJ": popped into registers nobody reads

/**
 * A chain of stack words consumed by `ret`s. `slot0Mod16` is the address of
 * its first word modulo 16 (8 for a return-address slot: the caller's `call`
 * pushed it onto a 16-byte aligned stack), so that calls into C functions
 * can be aligned as the ABI requires.
 */
export class RopChain {
  readonly words: bigint[] = [];
  readonly used: UsedGadget[] = [];
  /** Functions entered by the chain. */
  readonly functions: { name: string; address: string }[] = [];
  /** Indexes of the words that hold module addresses (for a relative chain). */
  readonly relocs: number[] = [];

  /**
   * `slot0Mod16`: see above. `relative`: the gadget set is at link-time
   * addresses of a shared object, and the words holding its addresses must
   * be moved by the load base ({@link relocs}).
   */
  constructor(
    readonly gadgets: GadgetSet,
    private readonly slot0Mod16 = 8,
    private readonly relative = false,
  ) {}

  word(v: number | bigint): this {
    this.words.push(BigInt.asUintN(64, BigInt(v)));
    return this;
  }

  private address(a: number): this {
    if (this.relative) this.relocs.push(this.words.length);
    return this.word(a);
  }

  gadget(g: Gadget, role: string): this {
    this.used.push(usedGadget(g, role));
    return this.address(g.address);
  }

  /** Load registers with `pop ...; ret` gadgets (registers popped as a side effect get junk or their wanted value). */
  set(regs: Record<string, number | bigint>): this {
    const pending = new Set(Object.keys(regs));
    for (const reg of Object.keys(regs)) {
      if (!pending.has(reg)) continue;
      const g = this.gadgets.popper(reg);
      this.gadget(g, `load ${reg}`);
      for (const insn of g.insns.slice(0, -1)) {
        const r = insn.slice(4);
        this.word(r in regs ? regs[r] : JUNK);
        pending.delete(r);
      }
    }
    return this;
  }

  /**
   * Return into a C function at `address` with the stack aligned as at a
   * function entry (rsp + 8 a multiple of 16), padding with a `ret` gadget.
   */
  callFunction(address: number, name: string, ret: Gadget): this {
    // Entering from slot i leaves rsp = slot(i) + 8, which must be 8 mod 16.
    if ((this.slot0Mod16 + this.words.length * 8) % 16 !== 0) this.gadget(ret, 'align the stack');
    this.functions.push({ name, address: hex(address) });
    return this.address(address);
  }

  bytes(): Buffer {
    return qwords(this.words);
  }
}
