/**
 * Property and differential tests of the packet layer over random streams
 * from a seeded generator (bench/synthetic-trace.ts); every failure message
 * names the seed that reproduces it.
 *
 * - round trip: encode -> decode gives the same packets, and re-encoding
 *   the decoded packets gives the same bytes;
 * - differential: ptscope's decoder equals libipt 2.0.5 (`ptoracle
 *   packets`) on valid and on mutated streams: same packets, same error
 *   offsets and codes, same resync points.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomStream, Rng } from '../bench/synthetic-trace.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { encodePacket } from '../src/packets/encoder.js';
import { ErrorCode } from '../src/packets/errors.js';
import { copyPacket, Packet } from '../src/packets/packet.js';
import { PacketType } from '../src/packets/packet-type.js';
import { encodeTrace } from '../src/packets/trace-writer.js';
import { neutralDumpDetailed } from './helpers/neutral-packets.js';
import { ensureOracle, runOracle } from './helpers/oracle.js';
import { describePacket, garbage, mutate, samePacket } from '../tools/fuzz-packets.js';

/** Decode a whole valid trace from its first PSB; fails on any error. */
function decodeAll(buf: Uint8Array): Packet[] {
  const d = new PacketDecoder(buf);
  expect(d.syncForward()).toBe(0);
  const out: Packet[] = [];
  const pkt = new Packet();
  for (;;) {
    const n = d.next(pkt);
    if (n === -ErrorCode.Eos) break;
    if (n < 0) expect.fail(`decode error ${n} at ${d.offset}`);
    out.push(copyPacket(pkt));
  }
  expect(d.offset).toBe(buf.length);
  return out;
}

describe('round trip: encode -> decode -> encode', () => {
  it('gives the same packets and the same bytes for 400 random streams of all kinds', () => {
    const kinds = new Set<PacketType>();
    const scratch = new Uint8Array(32);
    for (let seed = 1; seed <= 400; seed++) {
      const rng = new Rng(seed);
      const pkts = randomStream(rng, 20 + rng.int(300));
      const trace = encodeTrace(pkts);
      const decoded = decodeAll(trace);
      expect(decoded.length, `seed ${seed}: packet count`).toBe(pkts.length);
      let offset = 0;
      let block = 0;
      const again: number[] = [];
      for (let i = 0; i < pkts.length; i++) {
        const want = pkts[i];
        const got = decoded[i];
        kinds.add(got.type);
        // (expect() only on failure: it is slow in a loop over 60,000 packets.)
        if (!samePacket(want, got)) {
          expect.fail(`seed ${seed}, packet ${i}: wrote ${describePacket(want)}, read ${describePacket(got)}`);
        }
        if (got.offset !== offset) expect.fail(`seed ${seed}, packet ${i}: offset ${got.offset}, expected ${offset}`);
        offset += got.size;
        // The decoded packet carries everything needed to write it again
        // (a BIP's item size comes from its block's BBP).
        if (got.type === PacketType.Bbp) block = got.bbpSize;
        if (got.type === PacketType.Bip) got.bbpSize = block;
        const n = encodePacket(got, scratch, 0);
        if (n !== got.size) expect.fail(`seed ${seed}, packet ${i}: re-encode ${describePacket(got)} gave ${n}`);
        again.push(...scratch.subarray(0, n));
      }
      if (!Buffer.from(again).equals(Buffer.from(trace))) expect.fail(`seed ${seed}: re-encoded bytes differ`);
    }
    // The generator reaches every kind the encoder knows.
    for (let t = PacketType.Pad; t <= PacketType.Bep; t++) expect(kinds.has(t), `kind ${PacketType[t]} generated`).toBe(true);
  });
});

describe('differential against libipt 2.0.5', () => {
  let dir: string;

  beforeAll(() => {
    ensureOracle();
    dir = mkdtempSync(join(tmpdir(), 'ptscope-diff-'));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Known limitation: `Packet.cyc` is a double, exact below 2^53. Garbage
   * can form CYC packets with up to 64 payload bits, which libipt prints
   * exactly; such a line matches if ptscope's value is libipt's rounded to
   * a double. (The fix, exact `hi:lo` for CYC in the decoder, is proposed
   * to the lead.)
   */
  function sameInexactCyc(ours: string, theirs: string): boolean {
    const a = /^([0-9a-f]+) cyc ([0-9a-f]+)$/.exec(ours);
    const b = /^([0-9a-f]+) cyc ([0-9a-f]+)$/.exec(theirs);
    if (!a || !b || a[1] !== b[1]) return false;
    const exact = BigInt(`0x${b[2]}`);
    return exact > BigInt(Number.MAX_SAFE_INTEGER) && Number(exact) === parseInt(a[2], 16);
  }

  /** Packet kinds that libipt 2.0.5 does not know (its opcodes are bad_opc there). */
  const NEWER = /^([0-9a-f]+) (cfe|evd|trig|bbp|bip|bep)$/;

  /**
   * Compare ptscope and libipt on each trace; traces are written to files
   * and the oracle run on each. Mutations can create packets newer than
   * libipt 2.0.5 (e.g. a TRIG opcode): the dumps must then agree up to that
   * packet, where libipt must report bad_opc at the same offset.
   */
  function compareAll(traces: { name: string; bytes: Uint8Array }[]): { packets: number; errors: number; resyncs: number; cut: number } {
    let packets = 0;
    let errors = 0;
    let resyncs = 0;
    let cut = 0;
    for (const { name, bytes } of traces) {
      const file = join(dir, `${name}.pt`);
      writeFileSync(file, bytes);
      let ours = neutralDumpDetailed(bytes).text.split('\n');
      let theirs = runOracle(['packets', file]).split('\n');
      const newer = ours.findIndex((l) => NEWER.test(l));
      if (newer >= 0) {
        const offset = NEWER.exec(ours[newer])![1];
        expect(theirs[newer], `${name}: libipt 2.0.5 at a newer packet: ${ours[newer]}`).toBe(`error ${offset} bad_opc`);
        ours = ours.slice(0, newer);
        theirs = theirs.slice(0, newer);
        cut++;
      }
      for (let i = 0; i < ours.length && i < theirs.length; i++) {
        if (ours[i] !== theirs[i] && sameInexactCyc(ours[i], theirs[i])) ours[i] = theirs[i];
      }
      if (ours.join('\n') !== theirs.join('\n')) {
        let i = 0;
        while (i < ours.length && ours[i] === theirs[i]) i++;
        expect.fail(`${name}: first difference at line ${i + 1}:\n  ptscope: ${ours[i]}\n  libipt:  ${theirs[i]}\n` +
          `context: ${ours.slice(Math.max(0, i - 3), i).join(' | ')}`);
      }
      const lines = theirs;
      for (const l of lines) {
        if (l.startsWith('error ')) errors++;
        else if (/^[0-9a-f]+ psb$/.test(l)) resyncs++;
        else if (l && !l.startsWith('end ')) packets++;
      }
    }
    return { packets, errors, resyncs, cut };
  }

  it('decodes 200 valid random streams exactly like libipt', () => {
    const traces = [];
    for (let seed = 1; seed <= 200; seed++) {
      const rng = new Rng(seed);
      traces.push({ name: `valid-seed${seed}`, bytes: encodeTrace(randomStream(rng, 20 + rng.int(400), { libipt205: true })) });
    }
    const n = compareAll(traces);
    expect(n.errors).toBe(0);
    expect(n.cut).toBe(0);
    expect(n.packets).toBeGreaterThan(20000);
  });

  it('decodes 1500 mutated streams exactly like libipt: packets, error offsets and codes, resync points', () => {
    const traces = [];
    for (let seed = 1; seed <= 1500; seed++) {
      const rng = new Rng(0x5eed0000 + seed);
      let bytes = encodeTrace(randomStream(rng, 10 + rng.int(200), { libipt205: true }));
      // Garbage in front of the first PSB and between streams, then mutations.
      if (rng.chance(0.3)) bytes = Buffer.concat([garbage(rng, rng.int(100)), bytes]);
      if (rng.chance(0.3)) bytes = Buffer.concat([bytes, garbage(rng, rng.int(100)), encodeTrace(randomStream(rng, 50, { libipt205: true }))]);
      bytes = mutate(rng, bytes);
      traces.push({ name: `mutated-seed${0x5eed0000 + seed}`, bytes: new Uint8Array(bytes) });
    }
    const n = compareAll(traces);
    console.log(`mutated: ${n.packets} packets, ${n.errors} errors, ${n.resyncs} PSBs, ${n.cut} traces compared up to a newer packet`);
    // The mutations must actually exercise error and resync paths.
    expect(n.errors).toBeGreaterThan(300);
    expect(n.resyncs).toBeGreaterThan(1500);
    // Nearly all traces compare in full.
    expect(n.cut).toBeLessThan(traces.length / 10);
  });

  it('agrees with libipt on pure garbage with PSBs sprinkled in', () => {
    const traces = [];
    for (let seed = 1; seed <= 100; seed++) {
      const rng = new Rng(0x6a0000 + seed);
      const parts: Uint8Array[] = [];
      for (let k = rng.int(6); k >= 0; k--) {
        parts.push(garbage(rng, rng.int(300)));
        parts.push(encodeTrace(randomStream(rng, 1 + rng.int(10), { libipt205: true })));
      }
      traces.push({ name: `garbage-seed${0x6a0000 + seed}`, bytes: new Uint8Array(Buffer.concat(parts)) });
    }
    const n = compareAll(traces);
    expect(n.errors).toBeGreaterThan(50);
  });
});
