/**
 * Unit tests of the packet decoder (src/packets/decoder.ts), the IP
 * decompression (last-ip.ts), PSB sync and the streaming PacketStream.
 * Packet bytes are written out by hand from the SDM's layouts (Vol. 3C,
 * "Trace Packets and Data Types"); edge cases are also checked against
 * libipt 2.0.5 through the oracle.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { randomStream, Rng } from '../bench/synthetic-trace.js';
import { PacketDecoder, type PacketDecoderOptions } from '../src/packets/decoder.js';
import * as enc from '../src/packets/encoder.js';
import { ErrorCode } from '../src/packets/errors.js';
import { LastIp } from '../src/packets/last-ip.js';
import { Packet } from '../src/packets/packet.js';
import { PacketStream } from '../src/packets/packet-stream.js';
import { IpCompression, PacketType } from '../src/packets/packet-type.js';
import { FileSource, SliceSource, type TraceSource } from '../src/packets/trace-source.js';
import { encodeTrace } from '../src/packets/trace-writer.js';
import { neutralDump } from './helpers/neutral-packets.js';
import { runOracle } from './helpers/oracle.js';
import { garbage, mutate } from '../tools/fuzz-packets.js';

const PSB = [0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82];

/** Decode the first packet of `bytes` (after skipping `skip` packets) at offset 0. */
function decode(bytes: number[], options: PacketDecoderOptions = {}, skip = 0): { status: number; pkt: Packet; d: PacketDecoder } {
  const d = new PacketDecoder(new Uint8Array(bytes), options);
  expect(d.syncSet(0)).toBe(0);
  const pkt = new Packet();
  let status = 0;
  for (let i = 0; i <= skip; i++) status = d.next(pkt);
  return { status, pkt, d };
}

/** Decode one packet that must succeed with `size` bytes; returns it. */
function one(bytes: number[], options: PacketDecoderOptions = {}, skip = 0): Packet {
  const { status, pkt } = decode(bytes, options, skip);
  expect(status).toBe(bytes.length - (skip ? bytesBefore(bytes, skip, options) : 0));
  return pkt;
}

function bytesBefore(bytes: number[], skip: number, options: PacketDecoderOptions): number {
  const d = new PacketDecoder(new Uint8Array(bytes), options);
  d.syncSet(0);
  const pkt = new Packet();
  for (let i = 0; i < skip; i++) d.next(pkt);
  return d.offset;
}

describe('every packet kind', () => {
  it('pad, psb, psbend, ovf, stop', () => {
    expect(one([0x00]).type).toBe(PacketType.Pad);
    expect(one(PSB).type).toBe(PacketType.Psb);
    expect(one([0x02, 0x23]).type).toBe(PacketType.PsbEnd);
    expect(one([0x02, 0xf3]).type).toBe(PacketType.Ovf);
    expect(one([0x02, 0x83]).type).toBe(PacketType.Stop);
  });

  it.each([
    [0x0d, PacketType.Tip],
    [0x11, PacketType.TipPge],
    [0x01, PacketType.TipPgd],
    [0x1d, PacketType.Fup],
  ])('IP packet opcode %i with every compression', (opc, type) => {
    const cases: [number, number[], number, number][] = [
      [IpCompression.Suppressed, [], 0, 0],
      [IpCompression.Update16, [0x34, 0x12], 0, 0x1234],
      [IpCompression.Update32, [0xef, 0xbe, 0xad, 0xde], 0, 0xdeadbeef],
      [IpCompression.Sext48, [0x78, 0x56, 0x34, 0x12, 0x00, 0x80], 0x8000, 0x12345678],
      [IpCompression.Update48, [0x00, 0x10, 0x40, 0x00, 0xff, 0x7f], 0x7fff, 0x00401000],
      [IpCompression.Full, [0x01, 0x02, 0x03, 0x84, 0x05, 0x06, 0x07, 0xf8], 0xf8070605, 0x84030201],
    ];
    for (const [ipc, payload, hi, lo] of cases) {
      const p = one([(ipc << 5) | opc, ...payload]);
      expect(p.type).toBe(type);
      expect(p.ipc).toBe(ipc);
      expect([p.hi, p.lo]).toEqual([hi, lo]);
      expect(p.size).toBe(1 + payload.length);
    }
    // IPBytes 101 and 111 are reserved.
    expect(decode([(5 << 5) | opc, 0, 0, 0, 0, 0, 0, 0, 0]).status).toBe(-ErrorCode.BadPacket);
    expect(decode([(7 << 5) | opc, 0, 0, 0, 0, 0, 0, 0, 0]).status).toBe(-ErrorCode.BadPacket);
  });

  it('TNT-8 at its edge sizes', () => {
    // Short TNT: bit 0 is 0, the stop bit is the highest set bit.
    const cases: [number, number, number][] = [
      [0x04, 1, 0], [0x06, 1, 1], [0x08, 2, 0], [0x0e, 2, 3],
      [0x80, 6, 0], [0xfe, 6, 0x3f], [0xaa, 6, 0x15],
    ];
    for (const [byte, size, bits] of cases) {
      const p = one([byte]);
      expect([p.type, p.tntSize, p.tntBits], `byte ${byte.toString(16)}`).toEqual([PacketType.Tnt8, size, bits]);
    }
  });

  it('TNT-64 at its edge sizes', () => {
    const t64 = (payload: number[]) => [0x02, 0xa3, ...payload];
    const cases: [number[], number, number][] = [
      [[0x02, 0, 0, 0, 0, 0], 1, 0],
      [[0x03, 0, 0, 0, 0, 0], 1, 1],
      [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 47, 2 ** 47 - 1],
      [[0x00, 0x00, 0x00, 0x80, 0x00, 0x00], 31, 0],
      [[0xff, 0xff, 0xff, 0xff, 0x00, 0x00], 31, 0x7fffffff],
      [[0x00, 0x00, 0x00, 0x00, 0x01, 0x00], 32, 0],
      [[0x67, 0x45, 0x23, 0x01, 0x03, 0x00], 33, 0x1_0123_4567],
    ];
    for (const [payload, size, bits] of cases) {
      const p = one(t64(payload));
      expect([p.type, p.tntSize, p.tntBits], payload.join(',')).toEqual([PacketType.Tnt64, size, bits]);
    }
    // No stop bit at all.
    expect(decode(t64([0, 0, 0, 0, 0, 0])).status).toBe(-ErrorCode.BadPacket);
  });

  it('MODE.Exec and MODE.TSX', () => {
    let p = one([0x99, 0x01]);
    expect([p.type, p.csl, p.csd, p.iflag]).toEqual([PacketType.ModeExec, true, false, false]);
    p = one([0x99, 0x06]);
    expect([p.type, p.csl, p.csd, p.iflag]).toEqual([PacketType.ModeExec, false, true, true]);
    p = one([0x99, 0x21]);
    expect([p.type, p.intx, p.abrt]).toEqual([PacketType.ModeTsx, true, false]);
    p = one([0x99, 0x22]);
    expect([p.type, p.intx, p.abrt]).toEqual([PacketType.ModeTsx, false, true]);
    // Leaf 010 is not defined.
    expect(decode([0x99, 0x40]).status).toBe(-ErrorCode.BadPacket);
  });

  it('PIP with and without NR', () => {
    // Payload bit 0 is NR, bits 47:1 are CR3[51:5].
    let p = one([0x02, 0x43, 0x01, 0x45, 0x23, 0x01, 0x00, 0x00]);
    expect([p.type, p.hi, p.lo, p.nr]).toEqual([PacketType.Pip, 0, 0x12345000, true]);
    p = one([0x02, 0x43, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect([p.hi, p.lo, p.nr]).toEqual([0xfffff, 0xffffffe0, false]);
  });

  it('VMCS, CBR, TSC, TMA, MTC', () => {
    let p = one([0x02, 0xc8, 0x23, 0x01, 0xef, 0xcd, 0xab]);
    expect([p.type, p.hi, p.lo]).toEqual([PacketType.Vmcs, 0xabcde, 0xf0123000]);
    p = one([0x02, 0x03, 0x2a, 0x00]);
    expect([p.type, p.ratio]).toEqual([PacketType.Cbr, 0x2a]);
    p = one([0x19, 0x67, 0x45, 0x23, 0x81, 0xef, 0xcd, 0xab]);
    expect([p.type, p.hi, p.lo]).toEqual([PacketType.Tsc, 0xabcdef, 0x81234567]);
    p = one([0x02, 0x73, 0x34, 0x12, 0x00, 0xff, 0x01]);
    expect([p.type, p.ctc, p.fc]).toEqual([PacketType.Tma, 0x1234, 0x1ff]);
    // FastCounter has 9 bits.
    expect(decode([0x02, 0x73, 0x34, 0x12, 0x00, 0xff, 0x02]).status).toBe(-ErrorCode.BadPacket);
    p = one([0x59, 0xab]);
    expect([p.type, p.ctc]).toEqual([PacketType.Mtc, 0xab]);
  });

  it('CYC, including long extensions', () => {
    expect(one([0x03]).cyc).toBe(0);
    expect(one([0xfb]).cyc).toBe(0x1f);
    expect(one([0x07, 0x02]).cyc).toBe(0x20);
    expect(one([0xff, 0xfe]).cyc).toBe(0xfff);
    // 8 extension bytes: the longest CYC, 9 bytes (value 2^54 is exact).
    const longest = [0x07, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02];
    const p = one(longest);
    expect([p.type, p.size, p.cyc]).toEqual([PacketType.Cyc, 9, 2 ** 54]);
    // 53 bits, all ones: exact in a double.
    expect(one([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7e]).cyc).toBe(2 ** 53 - 1);
    // A 9th extension byte goes beyond 64 bits.
    expect(decode([0x07, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02]).status).toBe(-ErrorCode.BadPacket);
  });

  it('MNT, EXSTOP, MWAIT, PWRE, PWRX, PTWRITE', () => {
    let p = one([0x02, 0xc3, 0x88, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]);
    expect([p.type, p.hi, p.lo]).toEqual([PacketType.Mnt, 0x01020304, 0x05060708]);
    expect(decode([0x02, 0xc3, 0x89, 0, 0, 0, 0, 0, 0, 0, 0]).status).toBe(-ErrorCode.BadOpcode);
    expect([one([0x02, 0x62]).ip, one([0x02, 0xe2]).ip]).toEqual([false, true]);
    p = one([0x02, 0xc2, 0x44, 0x33, 0x22, 0x11, 0x01, 0x00, 0x00, 0x00]);
    expect([p.type, p.hints, p.ext]).toEqual([PacketType.Mwait, 0x11223344, 1]);
    p = one([0x02, 0x22, 0x08, 0x21]);
    expect([p.type, p.state, p.subState, p.hw]).toEqual([PacketType.Pwre, 2, 1, true]);
    p = one([0x02, 0xa2, 0x43, 0x0d, 0x00, 0x00, 0x00]);
    expect([p.type, p.last, p.deepest, p.wakeInterrupt, p.wakeStore, p.wakeAutonomous]).toEqual([PacketType.Pwrx, 4, 3, true, true, true]);
    p = one([0x02, 0x12, 0xfe, 0xca, 0x00, 0x00]);
    expect([p.type, p.plc, p.ip, p.hi, p.lo]).toEqual([PacketType.Ptw, 0, false, 0, 0xcafe]);
    p = one([0x02, 0xb2, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x80]);
    expect([p.plc, p.ip, p.hi, p.lo]).toEqual([1, true, 0x80000001, 2]);
    // Payload sizes 10 and 11 are reserved.
    expect(decode([0x02, 0x52, 0, 0, 0, 0, 0, 0, 0, 0]).status).toBe(-ErrorCode.BadPacket);
    expect(decode([0x02, 0x72, 0, 0, 0, 0, 0, 0, 0, 0]).status).toBe(-ErrorCode.BadPacket);
  });

  it('CFE, EVD, TRIG', () => {
    let p = one([0x02, 0x13, 0x8f, 0x80]);
    expect([p.type, p.cfeType, p.ip, p.vector]).toEqual([PacketType.Cfe, 0x0f, true, 0x80]);
    p = one([0x02, 0x53, 0x01, 0x30, 0, 0, 0, 0, 0, 0, 0x10]);
    expect([p.type, p.evdType, p.hi, p.lo]).toEqual([PacketType.Evd, 1, 0x10000000, 0x30]);
    p = one([0xd9, 0x80, 0x05]);
    expect([p.type, p.ip, p.icntv, p.mult, p.trbv]).toEqual([PacketType.Trig, true, false, false, 5]);
    p = one([0xd9, 0x60, 0x05, 0x34, 0x12]);
    expect([p.ip, p.icntv, p.mult, p.icnt, p.size]).toEqual([false, true, true, 0x1234, 5]);
  });

  it('PEBS blocks: BBP, BIP (by the block item size), BEP', () => {
    const block = [0x02, 0x63, 0x82, 0x1c, 0xdd, 0xcc, 0xbb, 0xaa, 0x02, 0xb3, 0x1c];
    const d = new PacketDecoder(new Uint8Array(block));
    d.syncSet(0);
    const p = new Packet();
    expect(d.next(p)).toBe(3);
    expect([p.type, p.bbpSize, p.bbpType]).toEqual([PacketType.Bbp, 4, 2]);
    expect(d.next(p)).toBe(5);
    expect([p.type, p.bipId, p.hi, p.lo]).toEqual([PacketType.Bip, 3, 0, 0xaabbccdd]);
    expect(d.next(p)).toBe(2);
    expect([p.type, p.ip]).toEqual([PacketType.Bep, true]);
    // After the BEP, 0x1c is a TNT-8 again.
    expect(d.next(p)).toBe(1);
    expect(p.type).toBe(PacketType.Tnt8);

    const eight = one([0x02, 0x63, 0x1f, 0xfc, 2, 0, 0, 0, 1, 0, 0, 0], {}, 1);
    expect([eight.type, eight.bipId, eight.hi, eight.lo]).toEqual([PacketType.Bip, 0x1f, 1, 2]);
    // Without PEBS support (libipt 2.0.5), BBP is an unknown opcode.
    expect(decode([0x02, 0x63, 0x82], { pebs: false }).status).toBe(-ErrorCode.BadOpcode);
  });

  it('unknown opcodes', () => {
    expect(decode([0x02, 0xff]).status).toBe(-ErrorCode.BadOpcode);
    expect(decode([0x39, 0x00]).status).toBe(-ErrorCode.BadOpcode);
    expect(decode([0x05]).status).toBe(-ErrorCode.BadOpcode);
  });
});

describe('IP decompression (LastIp)', () => {
  it('applies each compression to the last IP', () => {
    const last = new LastIp();
    expect(last.status()).toBe(-ErrorCode.NoIp);
    const step = (bytes: number[]): [number, number] => {
      expect(last.update(one(bytes))).toBe(0);
      return [last.hi, last.lo];
    };
    expect(step([0xcd, 0x00, 0x10, 0x40, 0x00, 0xff, 0x7f, 0x00, 0x00])).toEqual([0x7fff, 0x00401000]);
    expect(step([0x2d, 0x34, 0x12])).toEqual([0x7fff, 0x00401234]);
    expect(step([0x4d, 0xef, 0xbe, 0xad, 0xde])).toEqual([0x7fff, 0xdeadbeef]);
    // sext-48: bit 47 set extends into bits 63:48.
    expect(step([0x6d, 0x00, 0x00, 0x00, 0x81, 0xff, 0xff])).toEqual([0xffffffff, 0x81000000]);
    // sext-48 with bit 47 clear clears bits 63:48.
    expect(step([0x6d, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00])).toEqual([0, 0x1000]);
    // update-48 keeps bits 63:48.
    expect(step([0xcd, 0, 0, 0, 0, 0, 0, 0xff, 0xff])).toEqual([0xffff0000, 0]);
    expect(step([0x8d, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00])).toEqual([0xffff0002, 1]);
    // Full 8-byte IP.
    expect(step([0xcd, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])).toEqual([0x08070605, 0x04030201]);
    expect(last.status()).toBe(0);
    // Suppressed keeps the value but marks it unavailable.
    expect(step([0x0d])).toEqual([0x08070605, 0x04030201]);
    expect(last.status()).toBe(-ErrorCode.IpSuppressed);
  });
});

describe('truncated packets', () => {
  const packets = [
    enc.psb(), enc.psbEnd(), enc.ovf(), enc.stop(), enc.tip(IpCompression.Full, 1, 2), enc.fup(IpCompression.Sext48, 3, 4),
    enc.tipPge(IpCompression.Update32, 0, 5), enc.tipPgd(IpCompression.Update16, 0, 6), enc.tnt64(5, 40), enc.modeExec(true, false),
    enc.modeTsx(true, true), enc.pip(1, 0x20, true), enc.vmcs(1, 0x1000), enc.cbr(9), enc.tsc(1, 2), enc.tma(1, 2), enc.mtc(3),
    enc.cyc(2 ** 40), enc.mnt(1, 2), enc.exstop(true), enc.mwait(1, 2), enc.pwre(1, 2, true), enc.pwrx(1, 2),
    enc.ptw(0, true, 0, 1), enc.ptw(1, false, 1, 1), enc.cfe(1, 2, true), enc.evd(1, 2, 3), enc.trig(1, true, true),
    enc.trig(1, false, false, 77), enc.bbp(8, 1), enc.bep(false),
  ];

  it.each(packets.map((p) => [PacketType[p.type], p] as const))('%s: every cut gives -Eos and leaves the position', (_name, pkt) => {
    const full = encodeTrace([pkt]);
    for (let n = 0; n < full.length; n++) {
      const d = new PacketDecoder(full.subarray(0, n));
      expect(d.syncSet(0)).toBe(0);
      expect(d.next(new Packet()), `${n} of ${full.length} bytes`).toBe(-ErrorCode.Eos);
      expect(d.offset).toBe(0);
    }
  });

  it('a BIP cut inside its item gives -Eos', () => {
    const full = encodeTrace([enc.bbp(8, 1), enc.bip(8, 1, 2, 3)]);
    for (let n = 4; n < full.length; n++) {
      const d = new PacketDecoder(full.subarray(0, n));
      d.syncSet(0);
      const p = new Packet();
      expect(d.next(p)).toBe(3);
      expect(d.next(p)).toBe(-ErrorCode.Eos);
    }
  });
});

describe('PSB synchronization', () => {
  // 37 bytes of garbage, PSB+, packets, garbage, a PSB at an odd offset, packets.
  const rng = new Rng(99);
  const first = encodeTrace([enc.psb(), enc.cbr(1), enc.psbEnd(), enc.tnt8(1, 1), enc.tip(IpCompression.Update16, 0, 1)]);
  const second = encodeTrace([enc.psb(), enc.psbEnd(), enc.mtc(4)]);
  const lead = new Uint8Array(37).fill(0x55);
  const gap = garbage(rng, 24).map((b) => (b === 0x02 ? 0x00 : b));
  const trace = new Uint8Array(Buffer.concat([lead, first, gap, second]));
  const firstAt = 37;
  const secondAt = firstAt + first.length + gap.length;

  it('syncs forward from the start to each PSB in turn, then -Eos', () => {
    expect(secondAt % 2).toBe(1);
    const d = new PacketDecoder(trace);
    expect(d.offset).toBe(-ErrorCode.NoSync);
    expect(d.next(new Packet())).toBe(-ErrorCode.NoSync);
    expect(d.syncForward()).toBe(0);
    expect([d.offset, d.syncOffset]).toEqual([firstAt, firstAt]);
    expect(d.syncForward()).toBe(0);
    expect([d.offset, d.syncOffset]).toEqual([secondAt, secondAt]);
    expect(d.syncForward()).toBe(-ErrorCode.Eos);
    expect(d.offset).toBe(secondAt);
  });

  it('syncs backward from the end to each PSB in turn, then -Eos', () => {
    const d = new PacketDecoder(trace);
    expect(d.syncBackward()).toBe(0);
    expect(d.syncOffset).toBe(secondAt);
    expect(d.syncBackward()).toBe(0);
    expect(d.syncOffset).toBe(firstAt);
    expect(d.syncBackward()).toBe(-ErrorCode.Eos);
  });

  it('syncSet decodes from any offset', () => {
    const d = new PacketDecoder(trace);
    expect(d.syncSet(secondAt)).toBe(0);
    const p = new Packet();
    expect(d.next(p)).toBe(16);
    expect(p.offset).toBe(secondAt);
    expect(d.syncSet(trace.length + 1)).toBe(-ErrorCode.Eos);
  });

  it('resyncs after a decode error at the next PSB', () => {
    const bad = new Uint8Array(Buffer.concat([first, new Uint8Array([0x02, 0xff, 0x00, 0x00]), second]));
    const d = new PacketDecoder(bad);
    const p = new Packet();
    expect(d.syncForward()).toBe(0);
    const types: PacketType[] = [];
    let status: number;
    while ((status = d.next(p)) > 0) types.push(p.type);
    expect(types).toEqual([PacketType.Psb, PacketType.Cbr, PacketType.PsbEnd, PacketType.Tnt8, PacketType.Tip]);
    expect(status).toBe(-ErrorCode.BadOpcode);
    expect(d.offset).toBe(first.length);
    expect(d.syncForward()).toBe(0);
    expect(d.offset).toBe(first.length + 4);
    while ((status = d.next(p)) > 0) types.push(p.type);
    expect(status).toBe(-ErrorCode.Eos);
    expect(types.slice(5)).toEqual([PacketType.Psb, PacketType.PsbEnd, PacketType.Mtc]);
  });
});

describe('edge cases against libipt 2.0.5', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptscope-decoder-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cases: [string, number[]][] = [
    ['tnt.64 without stop bit', [0x02, 0xa3, 0, 0, 0, 0, 0, 0]],
    ['tnt.64 of zero bits', [0x02, 0xa3, 1, 0, 0, 0, 0, 0]],
    ['tnt.64 of 47 bits', [0x02, 0xa3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ['tnt.8 of 6 bits', [0xfe, 0x80]],
    ['longest cyc', [0x07, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02]],
    ['cyc beyond 64 bits', [0x07, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02]],
    ['reserved mode leaf', [0x99, 0x40]],
    ['tma with reserved bits', [0x02, 0x73, 0, 0, 0, 0, 0x02]],
    ['tma with the reserved byte set', [0x02, 0x73, 0, 0, 0x01, 0, 0]],
    ['ptw of 10 bytes', [0x02, 0x52, 0, 0, 0, 0, 0, 0, 0, 0]],
    ['mnt with a bad ext2', [0x02, 0xc3, 0x89, 0, 0, 0, 0, 0, 0, 0, 0]],
    ['reserved ipc', [0xad, 0, 0, 0, 0, 0, 0, 0, 0]],
    ['pip with the highest cr3', [0x02, 0x43, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ['sext-48 negative', [0x6d, 0, 0, 0, 0, 0, 0x80]],
    ['full ip', [0xcd, 1, 2, 3, 4, 5, 6, 7, 0x88]],
    ['cut tsc at the end', [0x19, 1, 2, 3]],
    ['cut cyc at the end', [0x07, 0x01]],
  ];

  it.each(cases)('%s', (name, bytes) => {
    // Cut cases end the trace; the others are followed by another PSB.
    const tail = name.startsWith('cut') ? [] : [...PSB, 0x59, 0x01];
    const trace = new Uint8Array([...PSB, 0x02, 0x23, ...bytes, ...tail]);
    const file = join(dir, `${name.replace(/\W+/g, '_')}.pt`);
    writeFileSync(file, trace);
    expect(neutralDump(trace)).toBe(runOracle(['packets', file]));
  });
});

/** A TraceSource over memory that is not a BufferSource, so PacketStream uses windows. */
class WindowedSource implements TraceSource {
  reads = 0;
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(dst: Uint8Array, dstOffset: number, offset: number, length: number): number {
    this.reads++;
    const n = Math.max(0, Math.min(length, this.bytes.length - offset));
    dst.set(this.bytes.subarray(offset, offset + n), dstOffset);
    return n;
  }
  close(): void {}
}

interface Decoder {
  syncForward(): number;
  next(pkt: Packet): number;
  readonly offset: number;
  readonly syncOffset: number;
}

/** Every event of the resync loop: packets, errors and sync points, as text. */
function events(d: Decoder): string[] {
  const out: string[] = [];
  const pkt = new Packet();
  for (;;) {
    const s = d.syncForward();
    if (s < 0) {
      out.push(`sync ${s} at ${d.offset}`);
      break;
    }
    out.push(`sync ${d.syncOffset}`);
    let status: number;
    while ((status = d.next(pkt)) > 0) {
      out.push(`${pkt.offset} ${PacketType[pkt.type]} ${pkt.size} ${pkt.hi} ${pkt.lo} ${pkt.tntBits} ${pkt.cyc} ${pkt.ctc}`);
    }
    out.push(`error ${status} at ${d.offset}`);
    if (status === -ErrorCode.Eos) break;
  }
  return out;
}

describe('PacketStream', () => {
  // About 300 KB: long clean stretches, mutated stretches, garbage longer
  // than a window without any PSB, and runs of PSBs.
  const rng = new Rng(4242);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    let chunk = encodeTrace(randomStream(rng, 200 + rng.int(2000)));
    if (rng.chance(0.5)) chunk = mutate(rng, chunk);
    parts.push(chunk);
    if (i % 10 === 3) parts.push(garbage(rng, 9000 + rng.int(3000)));
    if (i % 10 === 7) parts.push(encodeTrace([enc.psb(), enc.psb(), enc.psb(), enc.psb(), enc.psb()]));
  }
  const trace = new Uint8Array(Buffer.concat(parts));
  const expected = events(new PacketDecoder(trace));

  it('has a multi-window test trace with errors and resyncs', () => {
    expect(trace.length).toBeGreaterThan(100_000);
    expect(expected.filter((e) => e.startsWith('error') && !e.startsWith(`error -${ErrorCode.Eos}`)).length).toBeGreaterThan(5);
  });

  it.each([4096, 4104, 6000, 65536])('gives the single-buffer results with a %i-byte window', (windowSize) => {
    const source = new WindowedSource(trace);
    const got = events(new PacketStream(source, { windowSize }));
    expect(source.reads).toBeGreaterThan(trace.length / windowSize);
    expect(got.length).toBe(expected.length);
    for (let i = 0; i < got.length; i++) if (got[i] !== expected[i]) expect(got[i], `event ${i}`).toBe(expected[i]);
  });

  it('over a slice of a source (SliceSource): the results of the bytes of the slice in one buffer', () => {
    for (const [from, to] of [[0, trace.length], [777, 150_000], [50_001, 50_001], [123_456, trace.length]] as const) {
      const slice = new SliceSource(new WindowedSource(trace), from, to);
      expect(slice.size).toBe(to - from);
      expect(events(new PacketStream(slice, { windowSize: 4096 }))).toEqual(events(new PacketDecoder(trace.slice(from, to))));
    }
    const slice = new SliceSource(new WindowedSource(trace), 10, 20);
    const out = new Uint8Array(32);
    expect(slice.read(out, 0, 5, 32)).toBe(5);
    expect([...out.subarray(0, 5)]).toEqual([...trace.subarray(15, 20)]);
    expect(slice.read(out, 0, 10, 4)).toBe(0);
    expect(() => new SliceSource(new WindowedSource(trace), 5, trace.length + 1)).toThrow(RangeError);
  });

  it('gives the single-buffer results over a file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-stream-'));
    try {
      const file = join(dir, 't.pt');
      writeFileSync(file, trace);
      const stream = new PacketStream(new FileSource(file), { windowSize: 4096 });
      expect(events(stream)).toEqual(expected);
      stream.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
