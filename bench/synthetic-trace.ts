/**
 * Synthetic Intel PT traces: a seeded PRNG, random valid packets of every
 * kind (for property, differential and fuzz tests) and a realistic packet
 * mix written to a file of any size (for the packet benchmark).
 *
 * Everything is deterministic for a given seed, so a failing case can be
 * reproduced from the seed printed with it.
 */
import { Packet } from '../src/packets/packet.js';
import { IpCompression, PacketType } from '../src/packets/packet-type.js';
import { TraceWriter } from '../src/packets/trace-writer.js';
import { mulberry32 } from '../src/sources/seeded-random.js';

/**
 * xorshift32: each call gives the next 32-bit unsigned value (a zero seed
 * counts as 1). Tests and tools whose inputs were made with it keep them.
 */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Seeded draws (mulberry32); good enough for test inputs. */
export class Rng {
  /** A uniform unsigned 32-bit integer. */
  readonly u32: () => number;

  constructor(readonly seed: number) {
    this.u32 = mulberry32(seed);
  }

  /** A uniform integer in [0, n), n <= 2^32. */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }

  /** A uniform integer with `bits` (<= 53) random bits. */
  bits(bits: number): number {
    if (bits <= 32) return bits === 32 ? this.u32() : this.u32() & ((1 << bits) - 1) >>> 0;
    return (this.u32() & ((1 << (bits - 32)) - 1)) * 4294967296 + this.u32();
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() < p * 4294967296;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/** Which packets a generator may produce. */
export interface PacketMix {
  /**
   * Only what libipt 2.0.5 decodes the same way as ptscope: no CFE, EVD,
   * TRIG, PEBS block packets, and no MODE.Exec IF bit.
   */
  libipt205?: boolean;
  /** No PEBS-via-PT block packets (BBP/BIP/BEP), which libipt does not know. */
  noPebs?: boolean;
  /** CYC values below 2^maxCycBits (default 53). */
  maxCycBits?: number;
}

const IPCS = [
  IpCompression.Suppressed, IpCompression.Update16, IpCompression.Update32,
  IpCompression.Sext48, IpCompression.Update48, IpCompression.Full,
];

/** Fill `p` with a random IP packet payload of compression `ipc`. */
function randomIp(rng: Rng, p: Packet, type: PacketType, ipc: number): void {
  p.type = type;
  p.ipc = ipc;
  p.hi = 0;
  p.lo = 0;
  switch (ipc) {
    case IpCompression.Update16:
      p.lo = rng.bits(16);
      break;
    case IpCompression.Update32:
      p.lo = rng.u32();
      break;
    case IpCompression.Sext48:
    case IpCompression.Update48:
      p.lo = rng.u32();
      p.hi = rng.bits(16);
      break;
    case IpCompression.Full:
      p.lo = rng.u32();
      p.hi = rng.u32();
      break;
  }
}

/** Reset every payload field, so that a packet holds only what its kind sets. */
function clear(p: Packet): void {
  p.ipc = 0; p.hi = 0; p.lo = 0; p.tntSize = 0; p.tntBits = 0;
  p.csl = false; p.csd = false; p.iflag = false; p.intx = false; p.abrt = false;
  p.nr = false; p.ratio = 0; p.ctc = 0; p.fc = 0; p.cyc = 0; p.ip = false;
  p.hints = 0; p.ext = 0; p.state = 0; p.subState = 0; p.hw = false; p.last = 0;
  p.deepest = 0; p.wakeInterrupt = false; p.wakeStore = false; p.wakeAutonomous = false;
  p.plc = 0; p.cfeType = 0; p.vector = 0; p.evdType = 0; p.trbv = 0; p.icntv = false;
  p.mult = false; p.icnt = 0; p.bbpSize = 0; p.bbpType = 0; p.bipId = 0;
}

/** A random TNT-8 / TNT-64 size-and-bits pair. */
function randomTnt(rng: Rng, p: Packet, long: boolean): void {
  p.type = long ? PacketType.Tnt64 : PacketType.Tnt8;
  p.tntSize = long ? 1 + rng.int(47) : 1 + rng.int(6);
  p.tntBits = rng.bits(p.tntSize);
}

/** A CYC value whose encoding takes 1 to 8 bytes, small values most often. */
function randomCyc(rng: Rng, maxBits = 53): number {
  const bits = rng.chance(0.7) ? 1 + rng.int(Math.min(12, maxBits)) : 1 + rng.int(maxBits);
  return rng.bits(bits);
}

/**
 * Fill `p` with a random packet of any kind that stands alone (not PSB, not
 * the PEBS block packets: the stream generator places those).
 */
export function randomPacket(rng: Rng, p: Packet, mix: PacketMix = {}): void {
  for (;;) {
    const type = 1 + rng.int(29); // Pad .. Trig
    if (type === PacketType.Psb) continue;
    if (mix.libipt205 && (type === PacketType.Cfe || type === PacketType.Evd || type === PacketType.Trig)) continue;
    return randomPayload(rng, p, type, mix);
  }
}

/** Fill `p` with a packet of kind `type` (not PSB or PEBS) and a random valid payload. */
export function randomPayload(rng: Rng, p: Packet, type: PacketType, mix: PacketMix = {}): void {
  clear(p);
  p.type = type;
  {
    switch (type) {
      case PacketType.Fup:
      case PacketType.Tip:
      case PacketType.TipPge:
      case PacketType.TipPgd:
        randomIp(rng, p, type, rng.pick(IPCS));
        return;
      case PacketType.Tnt8:
      case PacketType.Tnt64:
        randomTnt(rng, p, type === PacketType.Tnt64);
        return;
      case PacketType.ModeExec:
        p.csl = rng.chance(0.5);
        p.csd = rng.chance(0.5);
        p.iflag = !mix.libipt205 && rng.chance(0.5);
        return;
      case PacketType.ModeTsx:
        p.intx = rng.chance(0.5);
        p.abrt = rng.chance(0.5);
        return;
      case PacketType.Pip:
        p.lo = (rng.u32() & ~0x1f) >>> 0;
        p.hi = rng.bits(20);
        p.nr = rng.chance(0.5);
        return;
      case PacketType.Vmcs:
        p.lo = (rng.u32() & ~0xfff) >>> 0;
        p.hi = rng.bits(20);
        return;
      case PacketType.Cbr:
        p.ratio = rng.bits(8);
        return;
      case PacketType.Tsc:
        p.lo = rng.u32();
        p.hi = rng.bits(24);
        return;
      case PacketType.Tma:
        p.ctc = rng.bits(16);
        p.fc = rng.bits(9);
        return;
      case PacketType.Mtc:
        p.ctc = rng.bits(8);
        return;
      case PacketType.Cyc:
        p.cyc = randomCyc(rng, mix.maxCycBits);
        return;
      case PacketType.Mnt:
        p.lo = rng.u32();
        p.hi = rng.u32();
        return;
      case PacketType.Exstop:
        p.ip = rng.chance(0.5);
        return;
      case PacketType.Mwait:
        p.hints = rng.u32();
        p.ext = rng.u32();
        return;
      case PacketType.Pwre:
        p.state = rng.bits(4);
        p.subState = rng.bits(4);
        p.hw = rng.chance(0.5);
        return;
      case PacketType.Pwrx:
        p.last = rng.bits(4);
        p.deepest = rng.bits(4);
        p.wakeInterrupt = rng.chance(0.5);
        p.wakeStore = rng.chance(0.5);
        p.wakeAutonomous = rng.chance(0.5);
        return;
      case PacketType.Ptw:
        p.plc = rng.int(2);
        p.ip = rng.chance(0.5);
        p.lo = rng.u32();
        p.hi = p.plc === 1 ? rng.u32() : 0;
        return;
      case PacketType.Cfe:
        p.cfeType = rng.bits(5);
        p.vector = rng.bits(8);
        p.ip = rng.chance(0.5);
        return;
      case PacketType.Evd:
        p.evdType = rng.bits(5);
        p.lo = rng.u32();
        p.hi = rng.u32();
        return;
      case PacketType.Trig:
        p.trbv = rng.bits(8);
        p.ip = rng.chance(0.5);
        p.mult = rng.chance(0.5);
        p.icntv = rng.chance(0.5);
        p.icnt = p.icntv ? rng.bits(16) : 0;
        return;
      default:
        // Pad, PsbEnd, Ovf, Stop: no payload.
        return;
    }
  }
}

function fresh(type: PacketType): Packet {
  const p = new Packet();
  p.type = type;
  return p;
}

/** The packets of a PSB+ header: PSB, a few status packets, PSBEND. */
export function psbPlus(rng: Rng, mix: PacketMix = {}): Packet[] {
  const out = [fresh(PacketType.Psb)];
  const status = [PacketType.Tsc, PacketType.Cbr, PacketType.ModeExec, PacketType.Fup, PacketType.Pip, PacketType.Vmcs, PacketType.Tma];
  for (const type of status) {
    if (!rng.chance(0.6)) continue;
    const p = new Packet();
    randomPayload(rng, p, type, mix);
    out.push(p);
  }
  out.push(fresh(PacketType.PsbEnd));
  return out;
}

/**
 * A random valid packet stream of about `count` packets: it starts with a
 * PSB+, has more PSB+ headers now and then, and (unless `mix.libipt205`)
 * PEBS blocks (BBP, BIPs, BEP). Every kind the encoder knows appears with
 * enough packets.
 */
export function randomStream(rng: Rng, count: number, mix: PacketMix = {}): Packet[] {
  const out = psbPlus(rng, mix);
  while (out.length < count) {
    const r = rng.int(100);
    if (r < 3) {
      out.push(...psbPlus(rng, mix));
    } else if (r < 5 && !mix.libipt205 && !mix.noPebs) {
      const size = rng.chance(0.5) ? 4 : 8;
      const b = fresh(PacketType.Bbp);
      b.bbpSize = size;
      b.bbpType = rng.bits(5);
      out.push(b);
      for (let n = rng.int(4); n >= 0; n--) {
        const item = fresh(PacketType.Bip);
        item.bbpSize = size;
        item.bipId = rng.bits(5);
        item.lo = rng.u32();
        item.hi = size === 8 ? rng.u32() : 0;
        out.push(item);
      }
      const e = fresh(PacketType.Bep);
      e.ip = rng.chance(0.5);
      out.push(e);
    } else {
      const p = new Packet();
      randomPacket(rng, p, mix);
      out.push(p);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The benchmark trace: a realistic mix at any size.

/** Bytes between PSB+ headers (IA32_RTIT_CTL.PSBFreq = 4 KiB). */
const PSB_PERIOD = 4096;

/**
 * Fill `p` with the next packet of a realistic user-space trace: mostly
 * TNT-8, TIPs with mostly short compressions, MTC/CYC timing, some FUP,
 * TNT-64, TSC, and rare PIP, MODE, PAD, OVF.
 */
function realisticPacket(rng: Rng, p: Packet): void {
  clear(p);
  const r = rng.int(1000);
  if (r < 420) return randomTnt(rng, p, false);
  if (r < 450) return randomTnt(rng, p, true);
  if (r < 620) {
    const c = rng.int(100);
    const ipc = c < 55 ? IpCompression.Update16 : c < 85 ? IpCompression.Update32 : c < 93 ? IpCompression.Sext48
      : c < 97 ? IpCompression.Update48 : c < 99 ? IpCompression.Full : IpCompression.Suppressed;
    return randomIp(rng, p, PacketType.Tip, ipc);
  }
  if (r < 660) return randomIp(rng, p, PacketType.Fup, rng.chance(0.7) ? IpCompression.Update16 : IpCompression.Update32);
  if (r < 670) return randomIp(rng, p, rng.chance(0.5) ? PacketType.TipPge : PacketType.TipPgd, IpCompression.Sext48);
  if (r < 760) {
    p.type = PacketType.Mtc;
    p.ctc = rng.bits(8);
    return;
  }
  if (r < 930) {
    p.type = PacketType.Cyc;
    p.cyc = rng.chance(0.8) ? rng.bits(5) : rng.bits(5 + rng.int(20));
    return;
  }
  if (r < 950) {
    p.type = PacketType.Tsc;
    p.lo = rng.u32();
    p.hi = rng.bits(24);
    return;
  }
  if (r < 975) {
    p.type = PacketType.Pad;
    return;
  }
  if (r < 985) {
    p.type = PacketType.Pip;
    p.lo = (rng.u32() & ~0x1f) >>> 0;
    p.hi = rng.bits(20);
    return;
  }
  if (r < 995) {
    p.type = rng.chance(0.5) ? PacketType.ModeExec : PacketType.ModeTsx;
    p.csl = rng.chance(0.9);
    p.intx = rng.chance(0.5);
    return;
  }
  if (r < 998) {
    p.type = PacketType.Cbr;
    p.ratio = rng.bits(8);
    return;
  }
  p.type = PacketType.Ovf;
}

/**
 * Fill `p` with the next packet of a TNT-heavy trace (a loop-heavy program
 * without timing packets): mostly TNT-8, some TNT-64, a TIP or FUP now
 * and then.
 */
function tntHeavyPacket(rng: Rng, p: Packet): void {
  clear(p);
  const r = rng.int(1000);
  if (r < 880) return randomTnt(rng, p, false);
  if (r < 950) return randomTnt(rng, p, true);
  if (r < 990) return randomIp(rng, p, PacketType.Tip, rng.chance(0.7) ? IpCompression.Update16 : IpCompression.Update32);
  return randomIp(rng, p, PacketType.Fup, IpCompression.Update16);
}

/**
 * Write a realistic (or, with `mix` 'tnt', TNT-heavy) trace of at least `bytes` bytes to `path` (streamed:
 * flat memory). Returns the number of packets written.
 */
export function writeRealisticTrace(path: string, bytes: number, seed = 1, kind: 'realistic' | 'tnt' = 'realistic'): number {
  const next = kind === 'tnt' ? tntHeavyPacket : realisticPacket;
  const rng = new Rng(seed);
  const writer = new TraceWriter(path, 1 << 22);
  const p = new Packet();
  const mix: PacketMix = { libipt205: true };
  let packets = 0;
  let nextPsb = 0;
  while (writer.offset < bytes) {
    if (writer.offset >= nextPsb) {
      const header = psbPlus(rng, mix);
      writer.packets(header);
      packets += header.length;
      nextPsb = writer.offset + PSB_PERIOD;
      continue;
    }
    next(rng, p);
    writer.packet(p);
    packets++;
  }
  writer.finish();
  return packets;
}
