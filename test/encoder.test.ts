import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PacketDecoder } from '../src/packets/decoder.js';
import * as enc from '../src/packets/encoder.js';
import { encodedSize, encodePacket } from '../src/packets/encoder.js';
import { ErrorCode } from '../src/packets/errors.js';
import { Packet } from '../src/packets/packet.js';
import { IpCompression, PacketType } from '../src/packets/packet-type.js';
import { encodeTrace, TraceWriter } from '../src/packets/trace-writer.js';
import { describePacket, samePacket } from '../tools/fuzz-packets.js';

function bytes(p: Packet): number[] {
  const out = new Uint8Array(32);
  const n = encodePacket(p, out, 0);
  expect(n, `encode ${PacketType[p.type]}`).toBeGreaterThan(0);
  expect(encodedSize(p)).toBe(n);
  return [...out.subarray(0, n)];
}

/** Decode a single packet (after an optional context prefix such as a BBP). */
function decodeOne(buf: Uint8Array, skip = 0): Packet {
  const d = new PacketDecoder(buf);
  expect(d.syncSet(0)).toBe(0);
  const pkt = new Packet();
  for (let i = 0; i <= skip; i++) expect(d.next(pkt)).toBeGreaterThan(0);
  expect(d.offset).toBe(buf.length);
  return pkt;
}

// Expected bytes come from the SDM's packet layouts (Vol. 3C, "Trace Packets
// and Data Types"), worked out by hand.
const cases: [string, Packet, number[]][] = [
  ['pad', enc.pad(), [0x00]],
  ['psb', enc.psb(), [0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82]],
  ['psbend', enc.psbEnd(), [0x02, 0x23]],
  ['ovf', enc.ovf(), [0x02, 0xf3]],
  ['stop', enc.stop(), [0x02, 0x83]],
  ['tnt.8 1 bit', enc.tnt8(1, 1), [0x06]],
  ['tnt.8 3 bits', enc.tnt8(0b101, 3), [0x1a]],
  ['tnt.8 6 bits', enc.tnt8(0b111111, 6), [0xfe]],
  ['tnt.64 1 bit', enc.tnt64(0, 1), [0x02, 0xa3, 0x02, 0, 0, 0, 0, 0]],
  ['tnt.64 47 bits', enc.tnt64(2 ** 47 - 1, 47), [0x02, 0xa3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
  ['tnt.64 33 bits', enc.tnt64(0x1_2345_6789, 33), [0x02, 0xa3, 0x89, 0x67, 0x45, 0x23, 0x03, 0x00]],
  ['tip suppressed', enc.tip(IpCompression.Suppressed, 0, 0), [0x0d]],
  ['tip update-16', enc.tip(IpCompression.Update16, 0, 0x1234), [0x2d, 0x34, 0x12]],
  ['tip.pge update-32', enc.tipPge(IpCompression.Update32, 0, 0xdeadbeef), [0x51, 0xef, 0xbe, 0xad, 0xde]],
  ['tip.pgd sext-48', enc.tipPgd(IpCompression.Sext48, 0xffff, 0x12345678), [0x61, 0x78, 0x56, 0x34, 0x12, 0xff, 0xff]],
  ['fup update-48', enc.fup(IpCompression.Update48, 0x7f00, 0x00401000), [0x9d, 0x00, 0x10, 0x40, 0x00, 0x00, 0x7f]],
  ['tip full', enc.tip(IpCompression.Full, 0xffffffff, 0x81234567), [0xcd, 0x67, 0x45, 0x23, 0x81, 0xff, 0xff, 0xff, 0xff]],
  ['mode.exec 64-bit, IF', enc.modeExec(true, false, true), [0x99, 0x05]],
  ['mode.exec 32-bit', enc.modeExec(false, true), [0x99, 0x02]],
  ['mode.tsx intx', enc.modeTsx(true, false), [0x99, 0x21]],
  ['mode.tsx abort', enc.modeTsx(false, true), [0x99, 0x22]],
  // CR3 0x12345000 >> 5 << 1, NR in bit 0.
  ['pip nr', enc.pip(0, 0x12345000, true), [0x02, 0x43, 0x01, 0x45, 0x23, 0x01, 0x00, 0x00]],
  ['pip high cr3', enc.pip(0xfffff, 0xffffffe0, false), [0x02, 0x43, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]],
  // Base 0xabcde_f0123000 >> 12.
  ['vmcs', enc.vmcs(0xabcde, 0xf0123000), [0x02, 0xc8, 0x23, 0x01, 0xef, 0xcd, 0xab]],
  ['cbr', enc.cbr(0x2a), [0x02, 0x03, 0x2a, 0x00]],
  ['tsc', enc.tsc(0xabcdef, 0x01234567), [0x19, 0x67, 0x45, 0x23, 0x01, 0xef, 0xcd, 0xab]],
  ['tma', enc.tma(0x1234, 0x1ff), [0x02, 0x73, 0x34, 0x12, 0x00, 0xff, 0x01]],
  ['mtc', enc.mtc(0xab), [0x59, 0xab]],
  ['cyc 0', enc.cyc(0), [0x03]],
  ['cyc 0x1f', enc.cyc(0x1f), [0xfb]],
  ['cyc 0x20', enc.cyc(0x20), [0x07, 0x02]],
  ['cyc 0xfff', enc.cyc(0xfff), [0xff, 0xfe]],
  ['cyc 0x1000', enc.cyc(0x1000), [0x07, 0x01, 0x02]],
  ['cyc 2^53-1', enc.cyc(2 ** 53 - 1), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7e]],
  ['mnt', enc.mnt(0x01020304, 0x05060708), [0x02, 0xc3, 0x88, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]],
  ['exstop', enc.exstop(false), [0x02, 0x62]],
  ['exstop ip', enc.exstop(true), [0x02, 0xe2]],
  ['mwait', enc.mwait(0x11223344, 0x1), [0x02, 0xc2, 0x44, 0x33, 0x22, 0x11, 0x01, 0x00, 0x00, 0x00]],
  ['pwre', enc.pwre(2, 1, true), [0x02, 0x22, 0x08, 0x21]],
  ['pwrx', enc.pwrx(4, 3, { interrupt: true, autonomous: true }), [0x02, 0xa2, 0x43, 0x09, 0x00, 0x00, 0x00]],
  ['ptw 4 bytes', enc.ptw(0, false, 0, 0xcafe), [0x02, 0x12, 0xfe, 0xca, 0x00, 0x00]],
  ['ptw 8 bytes ip', enc.ptw(1, true, 0x01, 0x02), [0x02, 0xb2, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]],
  ['cfe', enc.cfe(0x0f, 0x80, true), [0x02, 0x13, 0x8f, 0x80]],
  ['evd', enc.evd(1, 0, 0x30), [0x02, 0x53, 0x01, 0x30, 0, 0, 0, 0, 0, 0, 0]],
  ['trig', enc.trig(5, true, false), [0xd9, 0x80, 0x05]],
  ['trig icnt', enc.trig(5, true, true, 0x1234), [0xd9, 0xe0, 0x05, 0x34, 0x12]],
  ['bbp 4-byte items', enc.bbp(4, 2), [0x02, 0x63, 0x82]],
  ['bbp 8-byte items', enc.bbp(8, 0x1f), [0x02, 0x63, 0x1f]],
  ['bip 4', enc.bip(4, 3, 0, 0xaabbccdd), [0x1c, 0xdd, 0xcc, 0xbb, 0xaa]],
  ['bip 8', enc.bip(8, 0x1f, 1, 2), [0xfc, 2, 0, 0, 0, 1, 0, 0, 0]],
  ['bep', enc.bep(false), [0x02, 0x33]],
  ['bep ip', enc.bep(true), [0x02, 0xb3]],
];

describe('encodePacket: SDM byte layouts', () => {
  it.each(cases)('%s', (_name, pkt, expected) => {
    expect(bytes(pkt)).toEqual(expected);
  });

  it('covers every packet kind but Invalid', () => {
    const kinds = new Set(cases.map(([, p]) => p.type));
    for (let t = PacketType.Pad; t <= PacketType.Bep; t++) expect(kinds.has(t), PacketType[t]).toBe(true);
  });
});

describe('encode then decode gives the packet back', () => {
  it.each(cases)('%s', (_name, pkt) => {
    const encoded = new Uint8Array(bytes(pkt));
    let got: Packet;
    if (pkt.type === PacketType.Bip) {
      // A BIP is only a BIP inside a block of its item size.
      const prefix = new Uint8Array(bytes(enc.bbp(pkt.bbpSize as 4 | 8, 0)));
      const buf = new Uint8Array(prefix.length + encoded.length);
      buf.set(prefix);
      buf.set(encoded, prefix.length);
      got = decodeOne(buf, 1);
    } else {
      got = decodeOne(encoded);
    }
    expect(samePacket(pkt, got), `${describePacket(pkt)} vs ${describePacket(got)}`).toBe(true);
    expect(got.size).toBe(encoded.length);
  });
});

describe('encodePacket errors', () => {
  const out = new Uint8Array(32);

  it('refuses unknown kinds with -BadOpcode', () => {
    expect(encodePacket(new Packet(), out, 0)).toBe(-ErrorCode.BadOpcode);
    const p = new Packet();
    p.type = 99 as PacketType;
    expect(encodePacket(p, out, 0)).toBe(-ErrorCode.BadOpcode);
  });

  it.each([
    ['tnt.8 of 0 bits', enc.tnt8(0, 0)],
    ['tnt.8 of 7 bits', enc.tnt8(0, 7)],
    ['tnt.8 bits above the size', enc.tnt8(0b100, 2)],
    ['tnt.64 of 0 bits', enc.tnt64(0, 0)],
    ['tnt.64 of 48 bits', enc.tnt64(0, 48)],
    ['tip with reserved ipc 5', enc.tip(5, 0, 0)],
    ['tip with reserved ipc 7', enc.tip(7, 0, 0)],
    ['update-16 wider than 16 bits', enc.tip(IpCompression.Update16, 0, 0x10000)],
    ['update-32 with high bits', enc.fup(IpCompression.Update32, 1, 0)],
    ['sext-48 wider than 48 bits', enc.fup(IpCompression.Sext48, 0x10000, 0)],
    ['suppressed with a payload', enc.tip(IpCompression.Suppressed, 0, 1)],
    ['pip with CR3 bits 4:0', enc.pip(0, 0x1010)],
    ['pip with CR3 above 2^52', enc.pip(0x100000, 0)],
    ['vmcs not 4K aligned', enc.vmcs(0, 0x800)],
    ['tsc above 56 bits', enc.tsc(0x1000000, 0)],
    ['tma fast counter above 9 bits', enc.tma(0, 0x200)],
    ['mtc above 8 bits', enc.mtc(0x100)],
    ['cyc of 2^53', enc.cyc(2 ** 53)],
    ['cyc negative', enc.cyc(-1)],
    ['cyc fraction', enc.cyc(1.5)],
    ['ptw plc 2', enc.ptw(2, false, 0, 0)],
    ['ptw 4 bytes with high bits', enc.ptw(0, false, 1, 0)],
    ['pwre state above 4 bits', enc.pwre(16, 0, false)],
    ['cfe type above 5 bits', enc.cfe(0x20, 0, false)],
    ['trig icnt above 16 bits', enc.trig(0, false, false, 0x10000)],
    ['bbp of 6-byte items', enc.bbp(6 as 4, 0)],
    ['bip without a block size', Object.assign(enc.bip(4, 0, 0, 0), { bbpSize: 0 })],
    ['bip 4 with high bits', enc.bip(4, 0, 1, 0)],
  ])('refuses %s with -BadPacket', (_name, pkt) => {
    out.fill(0xee);
    expect(encodePacket(pkt, out, 0)).toBe(-ErrorCode.BadPacket);
    expect(out.every((b) => b === 0xee)).toBe(true);
  });

  it('returns -Eos when the packet does not fit, and writes nothing', () => {
    for (const [, pkt, expected] of cases) {
      const small = new Uint8Array(expected.length + 3).fill(0xee);
      expect(encodePacket(pkt, small, 4)).toBe(-ErrorCode.Eos);
      expect(small.every((b) => b === 0xee)).toBe(true);
      expect(encodePacket(pkt, small, 3)).toBe(expected.length);
    }
  });
});

describe('TraceWriter', () => {
  it('grows in memory and keeps packet order', () => {
    const w = new TraceWriter(undefined, 64);
    for (let i = 0; i < 1000; i++) w.packet(enc.tnt8(i & 1, 1)).packet(enc.mtc(i & 0xff));
    const trace = w.finish();
    expect(trace.length).toBe(3000);
    expect([...trace.subarray(2997)]).toEqual([0x06, 0x59, 0xe7]);
  });

  it('throws with the offset on an unencodable packet', () => {
    const w = new TraceWriter().packet(enc.psb());
    expect(() => w.packet(enc.tnt8(0, 9))).toThrow(/offset 0x10/);
  });

  it('streams a file in chunks', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'ptscope-writer-'));
    try {
      const file = join(dir, 't.pt');
      const pkts = [enc.psb(), enc.psbEnd()];
      for (let i = 0; i < 5000; i++) pkts.push(enc.tip(IpCompression.Full, i, i * 7), enc.cyc(i));
      const w = new TraceWriter(file, 256);
      w.packets(pkts);
      const size = w.offset;
      w.finish();
      const onDisk = readFileSync(file);
      expect(onDisk.length).toBe(size);
      expect(new Uint8Array(onDisk)).toEqual(encodeTrace(pkts));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('re-encoding the libipt conformance vectors', () => {
  // pttc assembled these traces with libipt's encoder: every packet our
  // decoder reads back must re-encode to exactly the same bytes.
  const root = '/work/shared/vectors/libipt';
  const manifest = JSON.parse(readFileSync(join(root, 'MANIFEST.json'), 'utf8')) as { name: string; pt: string }[];

  it('gives the original bytes for every packet of every vector', () => {
    const out = new Uint8Array(32);
    const pkt = new Packet();
    let packets = 0;
    const seen = new Set<string>();
    for (const c of manifest) {
      const file = join(root, c.name, c.pt);
      if (seen.has(file)) continue;
      seen.add(file);
      const buf = new Uint8Array(readFileSync(file));
      const d = new PacketDecoder(buf);
      let block = 0;
      while (d.syncForward() === 0) {
        for (;;) {
          const n = d.next(pkt);
          if (n < 0) break;
          if (pkt.type === PacketType.Bbp) block = pkt.bbpSize;
          if (pkt.type === PacketType.Bip) pkt.bbpSize = block;
          const m = encodePacket(pkt, out, 0);
          expect(m, `${c.name}: ${describePacket(pkt)}`).toBe(n);
          expect([...out.subarray(0, m)], `${c.name}: ${describePacket(pkt)}`).toEqual([...buf.subarray(pkt.offset, pkt.offset + n)]);
          packets++;
        }
      }
    }
    expect(packets).toBeGreaterThan(1000);
  });
});
