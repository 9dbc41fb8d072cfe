import { ErrorCode } from './errors.js';
import { Packet } from './packet.js';
import { IP_PAYLOAD_SIZE, PacketType } from './packet-type.js';
import { PSB_SIZE, syncBackward, syncForward, isPsbAt } from './sync.js';

/**
 * Options for the packet decoder.
 */
export interface PacketDecoderOptions {
  /**
   * Decode PEBS-via-PT block packets (BBP/BIP/BEP). libipt does not know
   * them and reports the BBP opcode as unknown; set false to behave alike.
   * Default: true.
   */
  pebs?: boolean;
  /** SKD007 erratum: a 2-byte CYC followed by what looks like OVF is an OVF. */
  skd007?: boolean;
  /** SKZ84 erratum: a TMA with reserved bits set is skipped as an invalid packet. */
  skz84?: boolean;
  /**
   * Offset of `buf[0]` in the whole trace. Offsets reported in packets and
   * errors include it, so a window over a large file reports file offsets.
   */
  baseOffset?: number;
}

/**
 * The packet decoder (libipt's pt_packet_decoder): decodes one packet at a
 * time into a caller-owned {@link Packet}. It must be synchronized (at a
 * PSB, or with {@link syncSet}) before {@link next} works.
 *
 * All returns follow libipt: a non-negative result on success, a negated
 * {@link ErrorCode} otherwise. Nothing is allocated per packet.
 */
export class PacketDecoder {
  private buf: Uint8Array;
  private end: number;
  /** Current position in `buf`; -1 while not synchronized. */
  private pos = -1;
  /**
   * Trace offset of the last synchronization point; -1 if none. Kept as a
   * trace offset (not a buffer position) so that it survives windows.
   */
  private sync = -1;
  /** PEBS block context: 0 outside a block, else the BIP payload size (4 or 8). */
  private block = 0;
  private readonly pebs: boolean;
  private readonly skd007: boolean;
  private readonly skz84: boolean;
  private base: number;
  /**
   * The buffer reaches the end of the trace. A streaming caller clears it
   * for inner windows, so that look-ahead past the window end (SKD007)
   * asks for more data instead of deciding without it.
   */
  final = true;

  constructor(buf: Uint8Array, options: PacketDecoderOptions = {}) {
    this.buf = buf;
    this.end = buf.length;
    this.pebs = options.pebs ?? true;
    this.skd007 = options.skd007 ?? false;
    this.skz84 = options.skz84 ?? false;
    this.base = options.baseOffset ?? 0;
  }

  /** Trace offset of `buffer[0]`. */
  get baseOffset(): number {
    return this.base;
  }

  /**
   * Continue decoding in another window of the same trace, for streaming a
   * file in flat memory. `buf[0]` is at trace offset `baseOffset`; the
   * current position and sync point keep their trace offsets. Keep windows
   * aligned to 8 bytes of trace offset so that PSB search matches libipt.
   * `end` marks whether the window reaches the end of the trace (only used
   * by callers; the decoder reports -Eos at any window end).
   */
  rebase(buf: Uint8Array, baseOffset: number): void {
    const shift = this.base - baseOffset;
    if (this.pos >= 0) this.pos += shift;
    this.buf = buf;
    this.end = buf.length;
    this.base = baseOffset;
  }

  /** The trace bytes this decoder reads. */
  get buffer(): Uint8Array {
    return this.buf;
  }

  /** Current trace offset, or -ErrorCode.NoSync when not synchronized. */
  get offset(): number {
    return this.pos < 0 ? -ErrorCode.NoSync : this.base + this.pos;
  }

  /** Trace offset of the last synchronization point, or -ErrorCode.NoSync. */
  get syncOffset(): number {
    return this.sync < 0 ? -ErrorCode.NoSync : this.sync;
  }

  /** The decoding options (for a decoder over another window of the same trace). */
  get options(): PacketDecoderOptions {
    return { pebs: this.pebs, skd007: this.skd007, skz84: this.skz84 };
  }

  /**
   * Move to the next PSB after the current position (libipt semantics: a
   * PSB that a preceding packet partially consumed is found again).
   */
  syncForward(): number {
    let pos = this.pos < 0 ? 0 : this.pos;
    if (this.base + pos === this.sync) pos += PSB_SIZE;
    let space = pos;
    if (space >= PSB_SIZE) space = PSB_SIZE - 1;
    pos -= space;
    const found = syncForward(this.buf, pos, this.end);
    if (found < 0) return found;
    this.sync = this.base + found;
    this.pos = found;
    this.block = 0;
    return 0;
  }

  /** Move to the closest PSB before the current position (or the end). */
  syncBackward(): number {
    const pos = this.pos < 0 ? this.end : this.pos;
    const found = syncBackward(this.buf, pos, this.end);
    if (found < 0) return found;
    this.sync = this.base + found;
    this.pos = found;
    this.block = 0;
    return 0;
  }

  /** Set the position to a trace offset without checking for a PSB. */
  syncSet(offset: number): number {
    const pos = offset - this.base;
    if (pos < 0 || pos > this.end) return -ErrorCode.Eos;
    this.sync = offset;
    this.pos = pos;
    this.block = 0;
    return 0;
  }

  /**
   * Restore a position and sync point saved from {@link offset} and
   * {@link syncOffset} (negative values mean "none"), e.g. to retry a
   * sync with more data.
   */
  restore(offset: number, syncOffset: number): void {
    this.pos = offset < 0 ? -1 : offset - this.base;
    this.sync = syncOffset < 0 ? -1 : syncOffset;
    this.block = 0;
  }

  /** True if a valid PSB starts at trace offset `offset`. */
  isPsbAt(offset: number): boolean {
    return isPsbAt(this.buf, offset - this.base, this.end);
  }

  /**
   * Decode the packet at the current position into `pkt` and advance past
   * it. Returns the number of bytes consumed (the packet size, except for
   * the SKD007 work-around, which consumes one byte more than the OVF it
   * reports), or a negated ErrorCode; on error the position does not move
   * (call {@link syncForward} to resync).
   */
  next(pkt: Packet): number {
    const pos = this.pos;
    if (pos < 0) return -ErrorCode.NoSync;
    // Fast path for the one-byte packets that dominate real traces (PAD and
    // TNT-8), kept small so that V8 inlines it into the caller's loop.
    if (pos < this.end) {
      const opc = this.buf[pos];
      if ((opc & 1) === 0 && opc !== 0x02 && this.block === 0) {
        pkt.offset = this.base + pos;
        pkt.size = 1;
        this.pos = pos + 1;
        if (opc === 0) {
          pkt.type = PacketType.Pad;
          return 1;
        }
        const bits = 31 - Math.clz32(opc >>> 1);
        pkt.type = PacketType.Tnt8;
        pkt.tntSize = bits;
        pkt.tntBits = (opc >>> 1) & ~(1 << bits);
        return 1;
      }
      if ((opc & 7) === 3) {
        // CYC without extension bytes (SKD007 only concerns 2-byte CYCs).
        pkt.offset = this.base + pos;
        pkt.size = 1;
        this.pos = pos + 1;
        pkt.type = PacketType.Cyc;
        pkt.cyc = opc >>> 3;
        pkt.hi = 0;
        pkt.lo = opc >>> 3;
        return 1;
      }
    }
    const size = this.decode(pkt, pos);
    if (size > 0) this.pos = pos + size;
    return size;
  }

  private decode(pkt: Packet, pos: number): number {
    const buf = this.buf;
    const end = this.end;
    if (pos >= end) return -ErrorCode.Eos;
    pkt.offset = this.base + pos;
    const opc = buf[pos];

    // One-byte opcodes: SDM Vol. 3C, "Packet Definitions" opcode table.
    if ((opc & 1) === 0) {
      if (opc === 0x00) {
        pkt.type = PacketType.Pad;
        return (pkt.size = 1);
      }
      if (opc === 0x02) return this.decodeExt(pkt, pos);
      if (this.block !== 0 && (opc & 7) === 4) return this.decodeBip(pkt, pos);
      // TNT-8: bits 7:1 hold the branch bits and a stop bit.
      const payload = opc >>> 1;
      const bits = 31 - Math.clz32(payload);
      pkt.type = PacketType.Tnt8;
      pkt.tntSize = bits;
      pkt.tntBits = payload & ~(1 << bits);
      return (pkt.size = 1);
    }
    if ((opc & 3) === 3) return this.decodeCyc(pkt, pos);
    switch (opc & 0x1f) {
      case 0x0d:
        return this.decodeIp(pkt, pos, PacketType.Tip);
      case 0x11:
        return this.decodeIp(pkt, pos, PacketType.TipPge);
      case 0x01:
        return this.decodeIp(pkt, pos, PacketType.TipPgd);
      case 0x1d:
        return this.decodeIp(pkt, pos, PacketType.Fup);
      case 0x19:
        switch (opc) {
          case 0x19: {
            // TSC: 7-byte payload.
            if (end < pos + 8) return -ErrorCode.Eos;
            pkt.type = PacketType.Tsc;
            pkt.lo = (buf[pos + 1] | (buf[pos + 2] << 8) | (buf[pos + 3] << 16) | (buf[pos + 4] << 24)) >>> 0;
            pkt.hi = buf[pos + 5] | (buf[pos + 6] << 8) | (buf[pos + 7] << 16);
            return (pkt.size = 8);
          }
          case 0x59:
            if (end < pos + 2) return -ErrorCode.Eos;
            pkt.type = PacketType.Mtc;
            pkt.ctc = buf[pos + 1];
            return (pkt.size = 2);
          case 0x99:
            return this.decodeMode(pkt, pos);
          case 0xd9:
            return this.decodeTrig(pkt, pos);
        }
        return -ErrorCode.BadOpcode;
    }
    return -ErrorCode.BadOpcode;
  }

  private decodeIp(pkt: Packet, pos: number, type: PacketType): number {
    const buf = this.buf;
    const ipc = buf[pos] >>> 5;
    const n = IP_PAYLOAD_SIZE[ipc];
    if (n < 0) return -ErrorCode.BadPacket;
    if (this.end < pos + 1 + n) return -ErrorCode.Eos;
    let lo = 0;
    let hi = 0;
    const p = pos + 1;
    switch (n) {
      case 8:
        hi = (buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24)) >>> 0;
        lo = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
        break;
      case 6:
        hi = buf[p + 4] | (buf[p + 5] << 8);
        lo = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
        break;
      case 4:
        lo = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
        break;
      case 2:
        lo = buf[p] | (buf[p + 1] << 8);
        break;
    }
    pkt.type = type;
    pkt.ipc = ipc;
    pkt.hi = hi;
    pkt.lo = lo;
    return (pkt.size = 1 + n);
  }

  private decodeMode(pkt: Packet, pos: number): number {
    if (this.end < pos + 2) return -ErrorCode.Eos;
    const payload = this.buf[pos + 1];
    // SDM "MODE Packets": bits 7:5 select the leaf.
    switch (payload & 0xe0) {
      case 0x00:
        pkt.type = PacketType.ModeExec;
        pkt.csl = (payload & 1) !== 0;
        pkt.csd = (payload & 2) !== 0;
        pkt.iflag = (payload & 4) !== 0;
        return (pkt.size = 2);
      case 0x20:
        pkt.type = PacketType.ModeTsx;
        pkt.intx = (payload & 1) !== 0;
        pkt.abrt = (payload & 2) !== 0;
        return (pkt.size = 2);
    }
    return -ErrorCode.BadPacket;
  }

  private decodeTrig(pkt: Packet, pos: number): number {
    const buf = this.buf;
    if (this.end < pos + 3) return -ErrorCode.Eos;
    const flags = buf[pos + 1];
    let size = 3;
    pkt.icnt = 0;
    if (flags & 0x40) {
      if (this.end < pos + 5) return -ErrorCode.Eos;
      pkt.icnt = buf[pos + 3] | (buf[pos + 4] << 8);
      size = 5;
    }
    pkt.type = PacketType.Trig;
    pkt.ip = (flags & 0x80) !== 0;
    pkt.icntv = (flags & 0x40) !== 0;
    pkt.mult = (flags & 0x20) !== 0;
    pkt.trbv = buf[pos + 2];
    return (pkt.size = size);
  }

  private decodeCyc(pkt: Packet, pos: number): number {
    const buf = this.buf;
    const end = this.end;
    // SDM "Cycle Count (CYC) Packet": 5 payload bits in the header, then
    // 7 bits per extension byte while bit 0 is set. At most 8 extension
    // bytes (61 bits) fit libipt's 64-bit check; the value is accumulated
    // exactly in 32-bit halves (`hi:lo`), and `cyc` is their double.
    let b = buf[pos];
    let lo = b >>> 3;
    let hi = 0;
    let ext = b & 4;
    let p = pos + 1;
    let shl = 5;
    while (ext) {
      if (p >= end) return -ErrorCode.Eos;
      b = buf[p++];
      ext = b & 1;
      const bits = b >>> 1;
      if (shl < 32) {
        lo |= bits << shl;
        if (shl > 25) hi = bits >>> (32 - shl);
      } else {
        hi |= bits << (shl - 32);
      }
      shl += 7;
      if (shl > 64) return -ErrorCode.BadPacket;
    }
    lo >>>= 0;
    hi >>>= 0;
    const value = hi === 0 ? lo : hi * 4294967296 + lo;
    pkt.type = PacketType.Cyc;
    pkt.cyc = value;
    pkt.hi = hi;
    pkt.lo = lo;
    pkt.size = p - pos;
    if (this.skd007 && pkt.size === 2 && (value & ~0x1f) === 0x20) {
      if (p >= end) return this.final ? pkt.size : -ErrorCode.Eos;
      if (buf[p] !== 0xf3) return pkt.size;
      // SKD007: the CYC's second byte was really the ext opcode of an OVF.
      // Reported at the CYC's offset, as libipt does; 3 bytes are consumed.
      pkt.type = PacketType.Ovf;
      pkt.size = 2;
      return 3;
    }
    return pkt.size;
  }

  private decodeBip(pkt: Packet, pos: number): number {
    const buf = this.buf;
    const n = this.block;
    if (this.end < pos + 1 + n) return -ErrorCode.Eos;
    const p = pos + 1;
    pkt.type = PacketType.Bip;
    pkt.bbpSize = n;
    pkt.bipId = buf[pos] >>> 3;
    pkt.lo = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
    pkt.hi = n === 8 ? (buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24)) >>> 0 : 0;
    return (pkt.size = 1 + n);
  }

  private decodeExt(pkt: Packet, pos: number): number {
    const buf = this.buf;
    const end = this.end;
    if (end <= pos + 1) return -ErrorCode.Eos;
    const ext = buf[pos + 1];
    switch (ext) {
      case 0x82: {
        // PSB: 02 82 repeated eight times.
        if (end < pos + PSB_SIZE) return -ErrorCode.Eos;
        for (let i = 2; i < PSB_SIZE; i += 2) {
          if (buf[pos + i] !== 0x02 || buf[pos + i + 1] !== 0x82) return -ErrorCode.BadPacket;
        }
        pkt.type = PacketType.Psb;
        this.block = 0;
        // A PSB is a synchronization point wherever it is read (libipt).
        this.sync = this.base + pos;
        return (pkt.size = PSB_SIZE);
      }
      case 0x23:
        pkt.type = PacketType.PsbEnd;
        return (pkt.size = 2);
      case 0xf3:
        pkt.type = PacketType.Ovf;
        this.block = 0;
        return (pkt.size = 2);
      case 0x83:
        pkt.type = PacketType.Stop;
        return (pkt.size = 2);
      case 0xa3: {
        // TNT-64: 6 payload bytes; the highest set bit is the stop bit.
        if (end < pos + 8) return -ErrorCode.Eos;
        const lo = (buf[pos + 2] | (buf[pos + 3] << 8) | (buf[pos + 4] << 16) | (buf[pos + 5] << 24)) >>> 0;
        const hi = buf[pos + 6] | (buf[pos + 7] << 8);
        let bits: number;
        let payload: number;
        if (hi !== 0) {
          const top = 31 - Math.clz32(hi);
          bits = 32 + top;
          payload = (hi & ~(1 << top)) * 4294967296 + lo;
        } else {
          if (lo <= 1) return -ErrorCode.BadPacket;
          bits = 31 - Math.clz32(lo);
          payload = bits === 31 ? lo - 0x80000000 : lo & ~(1 << bits);
        }
        pkt.type = PacketType.Tnt64;
        pkt.tntSize = bits;
        pkt.tntBits = payload;
        return (pkt.size = 8);
      }
      case 0x43: {
        // PIP: 6 payload bytes; bit 0 is NR, bits 47:1 are CR3[51:5].
        if (end < pos + 8) return -ErrorCode.Eos;
        const b0 = buf[pos + 2];
        const lo = (b0 | (buf[pos + 3] << 8) | (buf[pos + 4] << 16) | (buf[pos + 5] << 24)) >>> 0;
        const hi = buf[pos + 6] | (buf[pos + 7] << 8);
        // cr3 = (payload >> 1) << 5 = payload << 4 with bit 4 cleared.
        pkt.type = PacketType.Pip;
        pkt.nr = (b0 & 1) !== 0;
        pkt.lo = ((lo << 4) & ~0x1f) >>> 0;
        pkt.hi = ((hi << 4) | (lo >>> 28)) >>> 0;
        return (pkt.size = 8);
      }
      case 0x03:
        if (end < pos + 4) return -ErrorCode.Eos;
        pkt.type = PacketType.Cbr;
        pkt.ratio = buf[pos + 2];
        return (pkt.size = 4);
      case 0x73: {
        if (end < pos + 7) return -ErrorCode.Eos;
        const ctc = buf[pos + 2] | (buf[pos + 3] << 8);
        const fc = buf[pos + 5] | (buf[pos + 6] << 8);
        // SDM "TMA Packet": byte 4 is reserved, FastCounter has 9 bits.
        if (fc & ~0x1ff || buf[pos + 4] !== 0) {
          if (this.skz84) {
            pkt.type = PacketType.Invalid;
            return (pkt.size = 8);
          }
          return -ErrorCode.BadPacket;
        }
        pkt.type = PacketType.Tma;
        pkt.ctc = ctc;
        pkt.fc = fc;
        return (pkt.size = 7);
      }
      case 0xc8: {
        // VMCS: 5 payload bytes, VMCS base address bits 51:12.
        if (end < pos + 7) return -ErrorCode.Eos;
        const lo = (buf[pos + 2] | (buf[pos + 3] << 8) | (buf[pos + 4] << 16) | (buf[pos + 5] << 24)) >>> 0;
        const b4 = buf[pos + 6];
        pkt.type = PacketType.Vmcs;
        pkt.lo = (lo << 12) >>> 0;
        pkt.hi = ((b4 << 12) | (lo >>> 20)) >>> 0;
        return (pkt.size = 7);
      }
      case 0xc3: {
        if (end <= pos + 2) return -ErrorCode.Eos;
        if (buf[pos + 2] !== 0x88) return -ErrorCode.BadOpcode;
        if (end < pos + 11) return -ErrorCode.Eos;
        pkt.type = PacketType.Mnt;
        pkt.lo = (buf[pos + 3] | (buf[pos + 4] << 8) | (buf[pos + 5] << 16) | (buf[pos + 6] << 24)) >>> 0;
        pkt.hi = (buf[pos + 7] | (buf[pos + 8] << 8) | (buf[pos + 9] << 16) | (buf[pos + 10] << 24)) >>> 0;
        return (pkt.size = 11);
      }
      case 0x62:
      case 0xe2:
        pkt.type = PacketType.Exstop;
        pkt.ip = ext === 0xe2;
        return (pkt.size = 2);
      case 0xc2:
        if (end < pos + 10) return -ErrorCode.Eos;
        pkt.type = PacketType.Mwait;
        pkt.hints = (buf[pos + 2] | (buf[pos + 3] << 8) | (buf[pos + 4] << 16) | (buf[pos + 5] << 24)) >>> 0;
        pkt.ext = (buf[pos + 6] | (buf[pos + 7] << 8) | (buf[pos + 8] << 16) | (buf[pos + 9] << 24)) >>> 0;
        return (pkt.size = 10);
      case 0x22: {
        // PWRE: byte 2 bit 3 is HW; byte 3 holds C-state (7:4) and sub-state (3:0).
        if (end < pos + 4) return -ErrorCode.Eos;
        const b2 = buf[pos + 2];
        const b3 = buf[pos + 3];
        pkt.type = PacketType.Pwre;
        pkt.hw = (b2 & 0x08) !== 0;
        pkt.state = b3 >>> 4;
        pkt.subState = b3 & 0xf;
        return (pkt.size = 4);
      }
      case 0xa2: {
        // PWRX: byte 2 holds last (7:4) and deepest (3:0) core C-state, byte 3 the wake reason.
        if (end < pos + 7) return -ErrorCode.Eos;
        const b2 = buf[pos + 2];
        const b3 = buf[pos + 3];
        pkt.type = PacketType.Pwrx;
        pkt.last = b2 >>> 4;
        pkt.deepest = b2 & 0xf;
        pkt.wakeInterrupt = (b3 & 0x1) !== 0;
        pkt.wakeStore = (b3 & 0x4) !== 0;
        pkt.wakeAutonomous = (b3 & 0x8) !== 0;
        return (pkt.size = 7);
      }
      case 0x13:
        // CFE: type in 4:0 and IP bit 7 of byte 2, vector in byte 3.
        if (end < pos + 4) return -ErrorCode.Eos;
        pkt.type = PacketType.Cfe;
        pkt.cfeType = buf[pos + 2] & 0x1f;
        pkt.ip = (buf[pos + 2] & 0x80) !== 0;
        pkt.vector = buf[pos + 3];
        return (pkt.size = 4);
      case 0x53:
        if (end < pos + 11) return -ErrorCode.Eos;
        pkt.type = PacketType.Evd;
        pkt.evdType = buf[pos + 2] & 0x1f;
        pkt.lo = (buf[pos + 3] | (buf[pos + 4] << 8) | (buf[pos + 5] << 16) | (buf[pos + 6] << 24)) >>> 0;
        pkt.hi = (buf[pos + 7] | (buf[pos + 8] << 8) | (buf[pos + 9] << 16) | (buf[pos + 10] << 24)) >>> 0;
        return (pkt.size = 11);
      case 0x63:
        if (!this.pebs) return -ErrorCode.BadOpcode;
        // BBP: byte 2 bit 7 is SZ (1: 4-byte items), bits 4:0 the block type.
        if (end < pos + 3) return -ErrorCode.Eos;
        pkt.type = PacketType.Bbp;
        pkt.bbpSize = buf[pos + 2] & 0x80 ? 4 : 8;
        pkt.bbpType = buf[pos + 2] & 0x1f;
        this.block = pkt.bbpSize;
        return (pkt.size = 3);
      case 0x33:
      case 0xb3:
        if (!this.pebs) return -ErrorCode.BadOpcode;
        pkt.type = PacketType.Bep;
        pkt.ip = ext === 0xb3;
        this.block = 0;
        return (pkt.size = 2);
    }
    if ((ext & 0x1f) === 0x12) {
      // PTW: bits 6:5 of the ext byte give the payload size, bit 7 the IP bit.
      const plc = (ext >>> 5) & 3;
      if (plc > 1) return -ErrorCode.BadPacket;
      const n = plc === 0 ? 4 : 8;
      if (end < pos + 2 + n) return -ErrorCode.Eos;
      const p = pos + 2;
      pkt.type = PacketType.Ptw;
      pkt.plc = plc;
      pkt.ip = (ext & 0x80) !== 0;
      pkt.lo = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24)) >>> 0;
      pkt.hi = n === 8 ? (buf[p + 4] | (buf[p + 5] << 8) | (buf[p + 6] << 16) | (buf[p + 7] << 24)) >>> 0 : 0;
      return (pkt.size = 2 + n);
    }
    return -ErrorCode.BadOpcode;
  }
}
