import { PacketType } from './packet-type.js';

/**
 * One decoded packet. The decoder owns a single instance and overwrites it
 * on every call, so the hot loop allocates nothing; copy it with
 * {@link copyPacket} to keep one.
 *
 * 64-bit payloads (IPs, TSC, CR3, VMCS base, MNT, PTWRITE and EVD payloads)
 * are split into two unsigned 32-bit halves, `hi` and `lo`, because a double
 * cannot hold them exactly and BigInt would allocate.
 *
 * Which fields are meaningful depends on `type`:
 * - Fup/Tip/TipPge/TipPgd: `ipc`, and the raw (not yet decompressed) IP bits in `hi:lo`.
 * - Tnt8/Tnt64: `tntSize` bits in `tntBits`; the oldest branch is the most significant
 *   of those bits (bit `tntSize - 1`); 1 means taken. The stop bit is removed.
 * - ModeExec: `csl`, `csd`, `iflag`. ModeTsx: `intx`, `abrt`.
 * - Pip: CR3 in `hi:lo` (payload already shifted into place), `nr`.
 * - Vmcs: VMCS base address in `hi:lo`.
 * - Tsc: the 56-bit TSC in `hi:lo`.
 * - Cbr: `ratio`. Tma: `ctc` (16 bits), `fc` (9 bits). Mtc: `ctc` (8 bits).
 * - Cyc: the cycle count exactly in `hi:lo`, and as a number in `cyc` (exact up to 2^53).
 * - Mnt: payload in `hi:lo`.
 * - Exstop: `ip`.
 * - Mwait: `hints`, `ext`.
 * - Pwre: `state`, `subState`, `hw`.
 * - Pwrx: `last`, `deepest`, `wakeInterrupt`, `wakeStore`, `wakeAutonomous`.
 * - Ptw: `plc` (0: 4 bytes, 1: 8 bytes), `ip`, payload in `hi:lo`.
 * - Cfe: `cfeType`, `vector`, `ip`.
 * - Evd: `evdType`, payload in `hi:lo`.
 * - Trig: `trbv`, `ip`, `icntv`, `mult`, `icnt`.
 * - Bbp: `bbpSize` (4 or 8: the BIP payload size), `bbpType`.
 * - Bip: `bipId`, `bbpSize` (the item size from the enclosing BBP), payload in `hi:lo` (`hi` is 0 for 4-byte items).
 * - Bep: `ip`.
 */
export class Packet {
  type: PacketType = PacketType.Invalid;
  /** Offset of the first byte of the packet in the trace. */
  offset = 0;
  /** Size in bytes, header included. */
  size = 0;

  ipc = 0;
  hi = 0;
  lo = 0;

  tntSize = 0;
  tntBits = 0;

  csl = false;
  csd = false;
  iflag = false;
  intx = false;
  abrt = false;

  nr = false;
  ratio = 0;
  ctc = 0;
  fc = 0;
  cyc = 0;

  ip = false;
  hints = 0;
  ext = 0;
  state = 0;
  subState = 0;
  hw = false;
  last = 0;
  deepest = 0;
  wakeInterrupt = false;
  wakeStore = false;
  wakeAutonomous = false;
  plc = 0;
  cfeType = 0;
  vector = 0;
  evdType = 0;
  trbv = 0;
  icntv = false;
  mult = false;
  icnt = 0;
  bbpSize = 0;
  bbpType = 0;
  bipId = 0;
}

/** Copy every field of `src` into `dst` (or a new packet) and return it. */
export function copyPacket(src: Packet, dst: Packet = new Packet()): Packet {
  return Object.assign(dst, src);
}
