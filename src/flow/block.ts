/**
 * A block of sequential instructions (libipt's `struct pt_block`): what the
 * block decoder reports per call. A block runs from {@link Block.ip} to
 * {@link Block.endIp} without the trace having to say anything in between:
 * every instruction leads to the next sequentially or by a direct jump or
 * call. All of it is in one section, one execution mode, one address space.
 */
import { ErrorCode } from '../packets/errors.js';
import type { Asid } from './address-space.js';
import { ANY_ASID } from './address-space.js';
import type { Image } from './image.js';
import { instructionDecoderFor } from './instruction-decoder.js';
import { ExecMode, InsnClass, InstructionInfo, insnNextIp } from './instruction.js';

/** libipt's limit on instructions per block (pt_block.ninsn is 16 bits). */
export const MAX_BLOCK_INSNS = 0xffff;

export class Block {
  /** Address of the first instruction (where decoding stood, for an empty block). */
  ip = 0;
  /** Address of the last instruction. */
  endIp = 0;
  /** Image section identifier of the code. */
  isid = 0;
  mode: ExecMode = ExecMode.Unknown;
  /** Class of the last instruction; Unknown where the decoder does not know it (libipt's ptic_unknown). */
  iclass: InsnClass = InsnClass.Unknown;
  ninsn = 0;
  /** Executed speculatively (inside a transaction). */
  speculative = false;
  /**
   * The last instruction runs past the end of its section: its bytes are
   * {@link raw}`[0 .. size)`, read from the sections that hold them.
   */
  truncated = false;
  /** Size of the last instruction (libipt fills it in only for a truncated one). */
  size = 0;
  readonly raw = new Uint8Array(15);

  /** Where {@link ips} re-reads the code. */
  private image: Image | null = null;
  private asid: Asid = ANY_ASID;
  private addresses = new Float64Array(64);
  /** {@link addresses} holds this block's instructions. */
  private addressesReady = false;

  /** The image the block's code is read from (null before a decoder fills it). */
  get codeImage(): Image | null {
    return this.image;
  }

  /** The address space the block's code is read in. */
  get codeAsid(): Asid {
    return this.asid;
  }

  /** Clear the block for the next decode, from `image` in `asid` (libipt zeroes it). */
  begin(image: Image, asid: Asid): void {
    this.ip = 0;
    this.endIp = 0;
    this.isid = 0;
    this.mode = ExecMode.Unknown;
    this.iclass = InsnClass.Unknown;
    this.ninsn = 0;
    this.speculative = false;
    this.truncated = false;
    this.size = 0;
    this.image = image;
    this.asid = asid;
    this.addressesReady = false;
  }

  /**
   * Addresses of the instructions, `ips[0 .. ninsn)`: computed on first use
   * after each decode by following the block's code from {@link ip}.
   * Valid until the block is decoded into again.
   */
  get ips(): Float64Array {
    if (!this.addressesReady) this.computeAddresses();
    return this.addresses;
  }

  /**
   * Decode the block's last instruction into `out` (ptscope's; libipt's
   * {@link iclass} may be Unknown or just Indirect where the block cache
   * did not need to know): 0 or a negative ErrorCode.
   */
  lastInsn(out: InstructionInfo): number {
    if (this.ninsn === 0 || this.image === null) return -ErrorCode.Internal;
    return instructionDecoderFor(this.image).decode(out, this.endIp, this.mode, this.asid);
  }

  private computeAddresses(): void {
    const n = this.ninsn;
    if (this.addresses.length < n) this.addresses = new Float64Array(Math.max(n, this.addresses.length * 2));
    const out = this.addresses;
    this.addressesReady = true;
    if (n === 0) return;
    if (this.image === null) throw new Error('Block.ips: the block was not filled by a block decoder');
    const dec = instructionDecoderFor(this.image);
    const insn = new InstructionInfo();
    let ip = this.ip;
    for (let k = 0; k < n; k++) {
      out[k] = ip;
      if (k === n - 1) break;
      if (dec.decode(insn, ip, this.mode, this.asid) < 0) throw new Error(`Block.ips: no instruction at ${ip}`);
      // An instruction that needs trace ends a block, unless the decoder
      // counted one twice (libipt's does, and so does this one, around a
      // postponed instruction): then go on as ptxed's reconstruction does,
      // past it, or to a direct branch's target.
      const next = insnNextIp(insn);
      ip = Number.isNaN(next) ? ip + insn.size + (insn.isDirect ? insn.displacement : 0) : next;
    }
  }
}
