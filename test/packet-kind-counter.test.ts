/**
 * The learned features' packet counts (PacketKindCounter) read the trace
 * through a window as the decode goes, with checkpoints to count behind
 * it. They must equal the counts of a scan of the whole trace in memory
 * (from its first PSB, resyncing at the next PSB after an error), for
 * offsets asked in trace order, out of order, behind and ahead of the
 * scan: on the real traces, on them with bytes flipped (errors and
 * resyncs), and from a source read in small pieces.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PacketKindCounter } from '../src/analyses/learned/features.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { Packet } from '../src/packets/packet.js';
import { PacketType } from '../src/packets/packet-type.js';
import { BufferSource, type TraceSource } from '../src/packets/trace-source.js';
import { Rng } from '../bench/synthetic-trace.js';
import { REAL_TRACES, realTraces } from './helpers/vectors.js';
import { ChunkedSource } from './helpers/chunked-source.js';

/** Every packet of the trace (offset, group), as a plain whole-trace scan finds them. */
function reference(trace: Uint8Array): { offsets: number[]; groups: number[] } {
  const dec = new PacketDecoder(trace);
  const pkt = new Packet();
  const offsets: number[] = [];
  const groups: number[] = [];
  let st = dec.syncForward();
  while (st >= 0) {
    if (dec.next(pkt) < 0) {
      st = dec.syncForward();
      continue;
    }
    const t = pkt.type;
    const g = t === PacketType.Pad ? -1 : t === PacketType.Tnt8 || t === PacketType.Tnt64 ? 0 : t === PacketType.Tip ? 1 : t === PacketType.TipPge ? 2 : t === PacketType.TipPgd ? 3 : t === PacketType.Fup ? 4 : 5;
    offsets.push(pkt.offset);
    groups.push(g);
  }
  return { offsets, groups };
}

function expectedBefore(ref: { offsets: number[]; groups: number[] }, x: number): number[] {
  const out = new Array<number>(7).fill(0);
  for (let i = 0; i < ref.offsets.length && ref.offsets[i]! < x; i++) {
    const g = ref.groups[i]!;
    if (g < 0) continue;
    out[g]!++;
    out[6]!++;
  }
  return out;
}

function check(trace: Uint8Array, source: TraceSource, rng: Rng): number {
  const ref = reference(trace);
  const counter = new PacketKindCounter(source);
  const out = new Float64Array(7);
  const ask = (x: number): void => {
    counter.countBefore(x, out, 0);
    expect([...out], `before 0x${x.toString(16)}`).toEqual(expectedBefore(ref, x));
  };
  // In trace order (as a decode asks), with a look back now and then (a window's start).
  let at = 0;
  while (at < trace.length) {
    at += 1 + rng.int(20000);
    ask(Math.min(at, trace.length + 1));
    if (rng.chance(0.5)) ask(rng.int(at + 1));
  }
  // Anywhere, in any order, and at every packet's own offset and the one after it, near the ends.
  for (let i = 0; i < 200; i++) ask(rng.int(trace.length + 2));
  for (const o of [...ref.offsets.slice(0, 50), ...ref.offsets.slice(-50)]) {
    ask(o);
    ask(o + 1);
  }
  counter.close();
  return ref.offsets.length;
}

describe('PacketKindCounter: the learned features\' packet counts, read through a window', () => {
  it.each(realTraces().map((t) => t.name))('%s: the counts of a whole-trace scan, clean and with bytes flipped', (name) => {
    const t = realTraces().find((r) => r.name === name)!;
    const clean = new Uint8Array(readFileSync(join(REAL_TRACES, t.name, t.pt)));
    const rng = new Rng(7);
    expect(check(clean, new BufferSource(clean), rng)).toBeGreaterThan(1000);
    expect(check(clean, new ChunkedSource(clean, 4093), rng)).toBeGreaterThan(1000);
    for (let seed = 1; seed <= 3; seed++) {
      const r = new Rng(seed);
      const trace = clean.slice();
      for (let x = r.int(4096); x < trace.length; x += 1 + r.int(8192)) trace[x] ^= 1 << r.int(8);
      check(trace, new ChunkedSource(trace, 1 + r.int(70000)), r);
    }
  }, 120_000);

  it('a trace without a PSB counts nothing', () => {
    const trace = new Uint8Array(5000).fill(0x55);
    const counter = new PacketKindCounter(new BufferSource(trace));
    const out = new Float64Array(7).fill(9);
    counter.countBefore(4000, out, 0);
    expect([...out]).toEqual([0, 0, 0, 0, 0, 0, 0]);
    counter.close();
  });
});
