import { ErrorCode } from './errors.js';
import { Packet } from './packet.js';
import { IP_PAYLOAD_SIZE, PacketType } from './packet-type.js';
import { PSB_SIZE } from './sync.js';

/**
 * The packet encoder (libipt's pt_encoder): writes one {@link Packet} as
 * Intel PT bytes, the exact inverse of {@link PacketDecoder}. Bit layouts
 * follow the Intel SDM Vol. 3C, "Trace Packets and Data Types"; the section
 * of each packet is named where it is encoded.
 *
 * The encoder is strict: a payload that does not fit its field (an IP wider
 * than its compression, a TNT with bits beyond its size, a misaligned CR3,
 * ...) is refused with -BadPacket instead of being truncated, so that
 * `decode(encode(p))` always gives `p` back. Encodings are canonical
 * (shortest CYC, reserved bits zero).
 */

/** Size of the largest packet the encoder writes (PSB). */
export const MAX_ENCODED_SIZE = PSB_SIZE;

const TWO_32 = 4294967296;

/** Write the `n` (<= 4) low bytes of `v` little-endian at `pos`. */
function put32(out: Uint8Array, pos: number, v: number, n: number): void {
  for (let i = 0; i < n; i++) {
    out[pos + i] = v & 0xff;
    v >>>= 8;
  }
}

/** Write the 64-bit `hi:lo` as `n` (<= 8) bytes little-endian. */
function put64(out: Uint8Array, pos: number, hi: number, lo: number, n: number): void {
  put32(out, pos, lo, n < 4 ? n : 4);
  if (n > 4) put32(out, pos + 4, hi, n - 4);
}

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

/** True if `v` is an integer in [0, 2^bits). */
function fits(v: number, bits: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < 2 ** bits;
}

/**
 * Size in bytes of the encoding of `pkt`, or a negated ErrorCode: -BadOpcode
 * for a kind the encoder does not know, -BadPacket for a payload that does
 * not fit.
 */
export function encodedSize(pkt: Packet): number {
  switch (pkt.type) {
    case PacketType.Pad:
    case PacketType.Tnt8:
      return 1;
    case PacketType.Psb:
      return PSB_SIZE;
    case PacketType.PsbEnd:
    case PacketType.Ovf:
    case PacketType.Stop:
    case PacketType.Exstop:
    case PacketType.ModeExec:
    case PacketType.ModeTsx:
    case PacketType.Mtc:
    case PacketType.Bep:
      return 2;
    case PacketType.Fup:
    case PacketType.Tip:
    case PacketType.TipPge:
    case PacketType.TipPgd: {
      const n = pkt.ipc >= 0 && pkt.ipc < 8 ? IP_PAYLOAD_SIZE[pkt.ipc] : -1;
      return n < 0 ? -ErrorCode.BadPacket : 1 + n;
    }
    case PacketType.Tnt64:
    case PacketType.Pip:
    case PacketType.Tsc:
      return 8;
    case PacketType.Vmcs:
    case PacketType.Tma:
    case PacketType.Pwrx:
      return 7;
    case PacketType.Cbr:
    case PacketType.Pwre:
    case PacketType.Cfe:
      return 4;
    case PacketType.Cyc: {
      if (!fits(pkt.cyc, 53)) return -ErrorCode.BadPacket;
      // 5 bits in the header, 7 per extension byte.
      let size = 1;
      for (let rest = Math.floor(pkt.cyc / 32); rest > 0; rest = Math.floor(rest / 128)) size++;
      return size;
    }
    case PacketType.Mnt:
    case PacketType.Evd:
      return 11;
    case PacketType.Mwait:
      return 10;
    case PacketType.Ptw:
      return pkt.plc === 0 ? 6 : pkt.plc === 1 ? 10 : -ErrorCode.BadPacket;
    case PacketType.Trig:
      return pkt.icntv ? 5 : 3;
    case PacketType.Bbp:
      return 3;
    case PacketType.Bip:
      return pkt.bbpSize === 4 ? 5 : pkt.bbpSize === 8 ? 9 : -ErrorCode.BadPacket;
  }
  return -ErrorCode.BadOpcode;
}

/**
 * Encode `pkt` into `out` at `pos`. Returns the number of bytes written, or
 * a negated ErrorCode: -BadOpcode for an unknown or invalid `type`,
 * -BadPacket for a payload that cannot be encoded, -Eos if the packet does
 * not fit in `out`. Nothing is written on error.
 *
 * A BIP's item size is not in its own bytes but in the enclosing BBP: pass
 * it in `pkt.bbpSize` (4 or 8).
 */
export function encodePacket(pkt: Packet, out: Uint8Array, pos: number): number {
  const size = encodedSize(pkt);
  if (size < 0) return size;
  if (!checkPayload(pkt)) return -ErrorCode.BadPacket;
  if (pos < 0 || pos + size > out.length) return -ErrorCode.Eos;
  writePacket(pkt, out, pos, size);
  return size;
}

/** Range checks of every payload field; see {@link Packet} for the fields. */
function checkPayload(p: Packet): boolean {
  switch (p.type) {
    case PacketType.Fup:
    case PacketType.Tip:
    case PacketType.TipPge:
    case PacketType.TipPgd: {
      // The payload must fit the width its compression carries.
      const bytes = IP_PAYLOAD_SIZE[p.ipc];
      if (!isU32(p.lo) || !isU32(p.hi)) return false;
      if (bytes <= 4) return p.hi === 0 && fits(p.lo, bytes * 8);
      return bytes === 8 || p.hi <= 0xffff;
    }
    case PacketType.Tnt8:
      // SDM "TNT Packets": 1 to 6 bits in the header, below the stop bit.
      return Number.isInteger(p.tntSize) && p.tntSize >= 1 && p.tntSize <= 6 && fits(p.tntBits, p.tntSize);
    case PacketType.Tnt64:
      // 1 to 47 bits in a 6-byte payload, below the stop bit.
      return Number.isInteger(p.tntSize) && p.tntSize >= 1 && p.tntSize <= 47 && fits(p.tntBits, p.tntSize);
    case PacketType.Pip:
      // SDM "PIP Packet": CR3[51:5] is carried; lower bits must be zero.
      return isU32(p.lo) && (p.lo & 0x1f) === 0 && fits(p.hi, 20);
    case PacketType.Vmcs:
      // SDM "VMCS Packet": a 4 KiB aligned base below 2^52.
      return isU32(p.lo) && (p.lo & 0xfff) === 0 && fits(p.hi, 20);
    case PacketType.Tsc:
      return isU32(p.lo) && fits(p.hi, 24);
    case PacketType.Cbr:
      return fits(p.ratio, 8);
    case PacketType.Tma:
      return fits(p.ctc, 16) && fits(p.fc, 9);
    case PacketType.Mtc:
      return fits(p.ctc, 8);
    case PacketType.Mnt:
    case PacketType.Evd:
      if (p.type === PacketType.Evd && !fits(p.evdType, 5)) return false;
      return isU32(p.lo) && isU32(p.hi);
    case PacketType.Mwait:
      return isU32(p.hints) && isU32(p.ext);
    case PacketType.Pwre:
      return fits(p.state, 4) && fits(p.subState, 4);
    case PacketType.Pwrx:
      return fits(p.last, 4) && fits(p.deepest, 4);
    case PacketType.Ptw:
      return isU32(p.lo) && (p.plc === 1 ? isU32(p.hi) : p.hi === 0);
    case PacketType.Cfe:
      return fits(p.cfeType, 5) && fits(p.vector, 8);
    case PacketType.Trig:
      return fits(p.trbv, 8) && (p.icntv ? fits(p.icnt, 16) : p.icnt === 0);
    case PacketType.Bbp:
      return (p.bbpSize === 4 || p.bbpSize === 8) && fits(p.bbpType, 5);
    case PacketType.Bip:
      return fits(p.bipId, 5) && isU32(p.lo) && (p.bbpSize === 8 ? isU32(p.hi) : p.hi === 0);
  }
  return true;
}

function writeExt(out: Uint8Array, pos: number, ext: number): void {
  out[pos] = 0x02;
  out[pos + 1] = ext;
}

function writePacket(p: Packet, out: Uint8Array, pos: number, size: number): void {
  switch (p.type) {
    case PacketType.Pad:
      out[pos] = 0x00;
      return;
    case PacketType.Psb:
      // SDM "PSB Packet": 02 82 repeated eight times.
      for (let i = 0; i < PSB_SIZE; i += 2) writeExt(out, pos + i, 0x82);
      return;
    case PacketType.PsbEnd:
      return writeExt(out, pos, 0x23);
    case PacketType.Ovf:
      return writeExt(out, pos, 0xf3);
    case PacketType.Stop:
      return writeExt(out, pos, 0x83);
    case PacketType.Fup:
    case PacketType.Tip:
    case PacketType.TipPge:
    case PacketType.TipPgd:
      // SDM "IP Packets": IPBytes in bits 7:5, the opcode in 4:0.
      out[pos] = (p.ipc << 5) | IP_OPCODES[p.type];
      put64(out, pos + 1, p.hi, p.lo, size - 1);
      return;
    case PacketType.Tnt8:
      // SDM "Short TNT": bit 0 is 0, the stop bit just above the branch bits.
      out[pos] = ((p.tntBits | (1 << p.tntSize)) << 1) & 0xff;
      return;
    case PacketType.Tnt64: {
      // SDM "Long TNT": 02 A3 and 6 payload bytes ending in the stop bit.
      writeExt(out, pos, 0xa3);
      const value = p.tntBits + 2 ** p.tntSize;
      put64(out, pos + 2, Math.floor(value / TWO_32), value % TWO_32, 6);
      return;
    }
    case PacketType.ModeExec:
      // SDM "MODE Packets": leaf in bits 7:5 (000: exec; CS.L, CS.D, IF).
      out[pos] = 0x99;
      out[pos + 1] = (p.csl ? 1 : 0) | (p.csd ? 2 : 0) | (p.iflag ? 4 : 0);
      return;
    case PacketType.ModeTsx:
      // Leaf 001: InTX, TXAbort.
      out[pos] = 0x99;
      out[pos + 1] = 0x20 | (p.intx ? 1 : 0) | (p.abrt ? 2 : 0);
      return;
    case PacketType.Pip: {
      // SDM "PIP Packet": payload bit 0 is NR, bits 47:1 are CR3[51:5],
      // i.e. the payload is CR3 >> 4 with bit 0 replaced.
      writeExt(out, pos, 0x43);
      const lo = ((p.lo >>> 4) | (p.hi << 28) | (p.nr ? 1 : 0)) >>> 0;
      put64(out, pos + 2, p.hi >>> 4, lo, 6);
      return;
    }
    case PacketType.Vmcs:
      // SDM "VMCS Packet": base address bits 51:12 in 5 bytes.
      writeExt(out, pos, 0xc8);
      put32(out, pos + 2, ((p.lo >>> 12) | (p.hi << 20)) >>> 0, 4);
      out[pos + 6] = p.hi >>> 12;
      return;
    case PacketType.Tsc:
      // SDM "TSC Packet": 7 bytes of TSC.
      out[pos] = 0x19;
      put64(out, pos + 1, p.hi, p.lo, 7);
      return;
    case PacketType.Mtc:
      // SDM "MTC Packet": CTC[N+7:N].
      out[pos] = 0x59;
      out[pos + 1] = p.ctc;
      return;
    case PacketType.Cbr:
      // SDM "CBR Packet": the ratio, then a reserved byte.
      writeExt(out, pos, 0x03);
      out[pos + 2] = p.ratio;
      out[pos + 3] = 0;
      return;
    case PacketType.Tma:
      // SDM "TMA Packet": CTC[15:0], a reserved byte, FastCounter[8:0].
      writeExt(out, pos, 0x73);
      put32(out, pos + 2, p.ctc, 2);
      out[pos + 4] = 0;
      put32(out, pos + 5, p.fc, 2);
      return;
    case PacketType.Cyc: {
      // SDM "CYC Packet": bits 1:0 = 11, bit 2 = more bytes follow, bits
      // 7:3 = value[4:0]; each extension byte carries 7 more bits in 7:1
      // and a continuation flag in bit 0.
      let rest = Math.floor(p.cyc / 32);
      out[pos] = ((p.cyc % 32) << 3) | (rest > 0 ? 4 : 0) | 3;
      for (let i = 1; i < size; i++) {
        const more = Math.floor(rest / 128);
        out[pos + i] = ((rest % 128) << 1) | (more > 0 ? 1 : 0);
        rest = more;
      }
      return;
    }
    case PacketType.Mnt:
      // SDM "MNT Packet": 02 C3 88 and an 8-byte payload.
      writeExt(out, pos, 0xc3);
      out[pos + 2] = 0x88;
      put64(out, pos + 3, p.hi, p.lo, 8);
      return;
    case PacketType.Exstop:
      // SDM "EXSTOP Packet": bit 7 of the ext byte is the IP bit.
      return writeExt(out, pos, p.ip ? 0xe2 : 0x62);
    case PacketType.Mwait:
      // SDM "MWAIT Packet": EAX hints, then ECX extensions, 4 bytes each.
      writeExt(out, pos, 0xc2);
      put32(out, pos + 2, p.hints, 4);
      put32(out, pos + 6, p.ext, 4);
      return;
    case PacketType.Pwre:
      // SDM "PWRE Packet": byte 2 bit 3 is HW, byte 3 is state:sub-state.
      writeExt(out, pos, 0x22);
      out[pos + 2] = p.hw ? 0x08 : 0;
      out[pos + 3] = (p.state << 4) | p.subState;
      return;
    case PacketType.Pwrx:
      // SDM "PWRX Packet": last:deepest C-state, then the wake reason bits.
      writeExt(out, pos, 0xa2);
      out[pos + 2] = (p.last << 4) | p.deepest;
      out[pos + 3] = (p.wakeInterrupt ? 1 : 0) | (p.wakeStore ? 4 : 0) | (p.wakeAutonomous ? 8 : 0);
      out[pos + 4] = 0;
      out[pos + 5] = 0;
      out[pos + 6] = 0;
      return;
    case PacketType.Ptw:
      // SDM "PTWRITE Packet": ext byte = IP(7) PayloadBytes(6:5) 10010.
      writeExt(out, pos, (p.ip ? 0x80 : 0) | (p.plc << 5) | 0x12);
      put64(out, pos + 2, p.hi, p.lo, size - 2);
      return;
    case PacketType.Cfe:
      // SDM "CFE Packet": IP(7) and type(4:0), then the vector.
      writeExt(out, pos, 0x13);
      out[pos + 2] = (p.ip ? 0x80 : 0) | p.cfeType;
      out[pos + 3] = p.vector;
      return;
    case PacketType.Evd:
      // SDM "EVD Packet": type(4:0), then an 8-byte payload.
      writeExt(out, pos, 0x53);
      out[pos + 2] = p.evdType;
      put64(out, pos + 3, p.hi, p.lo, 8);
      return;
    case PacketType.Trig:
      // SDM "TRIG Packet": IP(7) ICNTV(6) MULT(5), TRBV, optional ICNT.
      out[pos] = 0xd9;
      out[pos + 1] = (p.ip ? 0x80 : 0) | (p.icntv ? 0x40 : 0) | (p.mult ? 0x20 : 0);
      out[pos + 2] = p.trbv;
      if (p.icntv) put32(out, pos + 3, p.icnt, 2);
      return;
    case PacketType.Bbp:
      // SDM "BBP Packet": SZ(7) (1: 4-byte items) and type(4:0).
      writeExt(out, pos, 0x63);
      out[pos + 2] = (p.bbpSize === 4 ? 0x80 : 0) | p.bbpType;
      return;
    case PacketType.Bip:
      // SDM "BIP Packet": ID(7:3) 100, then the item.
      out[pos] = (p.bipId << 3) | 4;
      put64(out, pos + 1, p.hi, p.lo, size - 1);
      return;
    case PacketType.Bep:
      // SDM "BEP Packet": bit 7 of the ext byte is the IP bit.
      return writeExt(out, pos, p.ip ? 0xb3 : 0x33);
  }
}

/** Header opcodes (bits 4:0) of the IP packets. */
const IP_OPCODES: Readonly<Record<number, number>> = {
  [PacketType.Tip]: 0x0d,
  [PacketType.TipPge]: 0x11,
  [PacketType.TipPgd]: 0x01,
  [PacketType.Fup]: 0x1d,
};

// ---------------------------------------------------------------------------
// Builders: one new Packet per call, for tests and trace synthesis.

function make(type: PacketType, init?: Partial<Packet>): Packet {
  const p = new Packet();
  p.type = type;
  if (init) Object.assign(p, init);
  return p;
}

/** Split a non-negative integer below 2^64 (given as a bigint or a safe number) into halves. */
export function split64(v: bigint | number): { hi: number; lo: number } {
  const b = BigInt(v);
  return { hi: Number((b >> 32n) & 0xffffffffn), lo: Number(b & 0xffffffffn) };
}

export const pad = (): Packet => make(PacketType.Pad);
export const psb = (): Packet => make(PacketType.Psb);
export const psbEnd = (): Packet => make(PacketType.PsbEnd);
export const ovf = (): Packet => make(PacketType.Ovf);
export const stop = (): Packet => make(PacketType.Stop);

/** An IP packet of `type` with compression `ipc` and raw payload `hi:lo`. */
export function ipPacket(type: PacketType, ipc: number, hi: number, lo: number): Packet {
  return make(type, { ipc, hi, lo });
}
export const tip = (ipc: number, hi: number, lo: number): Packet => ipPacket(PacketType.Tip, ipc, hi, lo);
export const tipPge = (ipc: number, hi: number, lo: number): Packet => ipPacket(PacketType.TipPge, ipc, hi, lo);
export const tipPgd = (ipc: number, hi: number, lo: number): Packet => ipPacket(PacketType.TipPgd, ipc, hi, lo);
export const fup = (ipc: number, hi: number, lo: number): Packet => ipPacket(PacketType.Fup, ipc, hi, lo);

/** TNT-8 with `size` (1..6) branch bits; the oldest branch is bit `size - 1`. */
export const tnt8 = (bits: number, size: number): Packet => make(PacketType.Tnt8, { tntBits: bits, tntSize: size });
/** TNT-64 with `size` (1..47) branch bits. */
export const tnt64 = (bits: number, size: number): Packet => make(PacketType.Tnt64, { tntBits: bits, tntSize: size });

export const modeExec = (csl: boolean, csd: boolean, iflag = false): Packet =>
  make(PacketType.ModeExec, { csl, csd, iflag });
export const modeTsx = (intx: boolean, abrt: boolean): Packet => make(PacketType.ModeTsx, { intx, abrt });
/** PIP with CR3 `hi:lo` (32-byte aligned, below 2^52). */
export const pip = (hi: number, lo: number, nr = false): Packet => make(PacketType.Pip, { hi, lo, nr });
export const vmcs = (hi: number, lo: number): Packet => make(PacketType.Vmcs, { hi, lo });
export const cbr = (ratio: number): Packet => make(PacketType.Cbr, { ratio });
/** TSC with the 56-bit value `hi:lo`. */
export const tsc = (hi: number, lo: number): Packet => make(PacketType.Tsc, { hi, lo });
export const tma = (ctc: number, fc: number): Packet => make(PacketType.Tma, { ctc, fc });
export const mtc = (ctc: number): Packet => make(PacketType.Mtc, { ctc });
export const cyc = (value: number): Packet => make(PacketType.Cyc, { cyc: value });
export const mnt = (hi: number, lo: number): Packet => make(PacketType.Mnt, { hi, lo });
export const exstop = (ip: boolean): Packet => make(PacketType.Exstop, { ip });
export const mwait = (hints: number, ext: number): Packet => make(PacketType.Mwait, { hints, ext });
export const pwre = (state: number, subState: number, hw: boolean): Packet =>
  make(PacketType.Pwre, { state, subState, hw });
export const pwrx = (
  last: number,
  deepest: number,
  wake: { interrupt?: boolean; store?: boolean; autonomous?: boolean } = {},
): Packet =>
  make(PacketType.Pwrx, {
    last,
    deepest,
    wakeInterrupt: wake.interrupt ?? false,
    wakeStore: wake.store ?? false,
    wakeAutonomous: wake.autonomous ?? false,
  });
/** PTWRITE; `plc` 0 carries 4 bytes (`lo`), 1 carries 8 (`hi:lo`). */
export const ptw = (plc: number, ip: boolean, hi: number, lo: number): Packet => make(PacketType.Ptw, { plc, ip, hi, lo });
export const cfe = (cfeType: number, vector: number, ip: boolean): Packet => make(PacketType.Cfe, { cfeType, vector, ip });
export const evd = (evdType: number, hi: number, lo: number): Packet => make(PacketType.Evd, { evdType, hi, lo });
/** TRIG; pass `icnt` to set ICNTV and carry the instruction count. */
export const trig = (trbv: number, ip: boolean, mult: boolean, icnt?: number): Packet =>
  make(PacketType.Trig, { trbv, ip, mult, icntv: icnt !== undefined, icnt: icnt ?? 0 });
/** BBP opening a block of `size`-byte (4 or 8) items. */
export const bbp = (size: 4 | 8, bbpType: number): Packet => make(PacketType.Bbp, { bbpSize: size, bbpType });
/** BIP inside a block of `size`-byte items. */
export const bip = (size: 4 | 8, bipId: number, hi: number, lo: number): Packet =>
  make(PacketType.Bip, { bbpSize: size, bipId, hi, lo });
export const bep = (ip: boolean): Packet => make(PacketType.Bep, { ip });
