/**
 * Return compression in the edge decoder, on small hand-made traces: a
 * near return takes a TNT bit when one is pending, and libipt (at the
 * vectors' commit, which our exact decoder follows) stops with
 * bad_retcomp when that bit is not taken, whatever the return stack
 * holds; a taken bit pops the return stack, which holds the return address
 * of every near call that ran, including a call that a TIP.PGD binds to.
 *
 * A TIP.PGD with an IP binds as soon as the flow reaches that IP, so a
 * call after it does not run.
 *
 * Each case is decoded by the exact block decoder and by the edge decoder
 * (fast path alone, and with its fallback), in each state the fast path can
 * meet the return in: inside one cached step with its call, in a later
 * step (1-bit steps), with an empty return stack, after a return that
 * popped correctly. The edges must be the same.
 */
import { describe, expect, it } from 'vitest';
import { AddrCfg, defaultConfig, type DecoderConfig } from '../src/packets/config.js';
import * as enc from '../src/packets/encoder.js';
import { ErrorCode } from '../src/packets/errors.js';
import type { Packet } from '../src/packets/packet.js';
import { IpCompression } from '../src/packets/packet-type.js';
import { encodeTrace } from '../src/packets/trace-writer.js';
import { PtEvent } from '../src/events/event.js';
import { Block, BlockDecoder } from '../src/flow/block-decoder.js';
import { EdgeCoverage } from '../src/flow/edges/edge-coverage.js';
import { EdgePairs } from '../src/flow/edges/edge-pairs.js';
import { packetDecoderFor } from '../src/flow/edges/exact-edges.js';
import { Image } from '../src/flow/image.js';

// Status flags (a const enum in src/events/status.ts).
const EVENT_PENDING = 1;
const EOS = 4;

const config = defaultConfig();

function imageWith(sections: [number, number[]][]): Image {
  const image = new Image();
  for (const [vaddr, bytes] of sections) expect(image.addMemory(`m${vaddr.toString(16)}`, new Uint8Array(bytes), vaddr)).toBe(0);
  return image;
}

/** PSB+ in 64-bit mode, then tracing enabled at `ip`. */
function enabledAt(ip: number): Packet[] {
  return [enc.psb(), enc.psbEnd(), enc.modeExec(true, false), enc.tipPge(IpCompression.Sext48, 0, ip)];
}

/** The TNT-8 packet of `outcomes` ('!' taken, '.' not taken), oldest first. */
function tnt(outcomes: string): Packet {
  let bits = 0;
  for (const c of outcomes) bits = (bits << 1) | (c === '!' ? 1 : 0);
  return enc.tnt8(bits, outcomes.length);
}

/** The decode errors of the exact block decoder (code name, and the IP it stopped at). */
function exactErrors(trace: Uint8Array, image: Image, cfg: DecoderConfig = config): { error: number; ip: number }[] {
  const dec = new BlockDecoder(packetDecoderFor(trace, cfg), cfg, image);
  const block = new Block();
  const ev = new PtEvent();
  const errors: { error: number; ip: number }[] = [];
  let status = dec.syncForward();
  for (let steps = 0; steps < 1000; steps++) {
    while (status >= 0 && (status & EVENT_PENDING) !== 0) status = dec.event(ev);
    if (status >= 0 && (status & EOS) === 0) status = dec.next(block);
    if (status >= 0 && (status & EOS) === 0) continue;
    if (status === -ErrorCode.Eos || (status >= 0 && (status & EOS) !== 0)) return errors;
    if (status !== -ErrorCode.NoEnable) errors.push({ error: -status, ip: dec.ip });
    status = dec.syncForward();
    if (status === -ErrorCode.Eos) return errors;
  }
  throw new Error('exact decode did not end');
}

interface Edge {
  from: number;
  to: number;
  count: number;
}

/** Decode `trace` every way; check they agree and return the edges and the fast path's bail reason. */
function decodeAllWays(
  trace: Uint8Array,
  image: Image,
  stepBits?: number,
  cfg: DecoderConfig = config,
): { edges: Edge[]; fast: boolean; bailReason: string } {
  const want = new EdgePairs();
  new EdgeCoverage(image, cfg, { exactOnly: true }).count(trace, want);
  const cov = new EdgeCoverage(image, cfg, { stepBits });
  const got = new EdgePairs();
  const fast = cov.countFastOnly(trace, got);
  const bailReason = cov.lastBailReason;
  if (fast) expect(got.list(), 'fast path alone').toEqual(want.list());
  // Twice: the second run starts from the cached steps of the first.
  for (let round = 0; round < 2; round++) {
    const path = cov.count(trace, got);
    expect(path).toBe(fast ? 'fast' : 'exact');
    expect(got.list(), `with fallback, round ${round}`).toEqual(want.list());
  }
  return { edges: want.list(), fast, bailReason };
}

const hex = (edges: Edge[]): string[] =>
  edges.map((e) => `${Number.isNaN(e.from) ? '-' : e.from.toString(16)}>${e.to.toString(16)}x${e.count}`).sort();

/*
 * 64-bit code:
 *   1000: 74 00           jz 1002
 *   1002: e8 f9 00 00 00  call 1100
 *   1007: c3              ret
 *   1100: c3              ret
 *   1200: e8 fb 00 00 00  call 1300
 *   1205: c3              ret
 *   1300: 74 00           jz 1302
 *   1302: c3              ret
 */
const RET_CODE = imageWith([
  [0x1000, [0x74, 0x00, 0xe8, 0xf9, 0x00, 0x00, 0x00, 0xc3]],
  [0x1100, [0xc3]],
  [0x1200, [0xe8, 0xfb, 0x00, 0x00, 0x00, 0xc3]],
  [0x1300, [0x74, 0x00, 0xc3]],
]);

describe('a compressed return with a not-taken bit', () => {
  const cases: { name: string; start: number; bits: string; stepBits?: number; stopsAt: number; edges: string[] }[] = [
    {
      name: 'the call and the return in one cached step',
      start: 0x1000,
      bits: '!.',
      stopsAt: 0x1100,
      edges: ['->1000x1', '1000>1002x1', '1002>1100x1'],
    },
    {
      name: 'the call in an earlier step (1-bit steps)',
      start: 0x1200,
      bits: '!.',
      stepBits: 1,
      stopsAt: 0x1302,
      edges: ['->1200x1', '1200>1300x1', '1300>1302x1'],
    },
    {
      name: 'the call and a branch before the return in one step',
      start: 0x1200,
      bits: '!.',
      stopsAt: 0x1302,
      edges: ['->1200x1', '1200>1300x1', '1300>1302x1'],
    },
    {
      name: 'an empty return stack (the bit is checked first)',
      start: 0x1100,
      bits: '.',
      stopsAt: 0x1100,
      edges: ['->1100x1'],
    },
    {
      name: 'after a compressed return that popped its call',
      start: 0x1000,
      bits: '!!.',
      stopsAt: 0x1007,
      edges: ['->1000x1', '1000>1002x1', '1002>1100x1', '1100>1007x1'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const trace = encodeTrace([...enabledAt(c.start), tnt(c.bits)]);
      expect(exactErrors(trace, RET_CODE)).toEqual([{ error: ErrorCode.BadRetcomp, ip: c.stopsAt }]);
      const r = decodeAllWays(trace, RET_CODE, c.stepBits);
      // The fast path leaves the decode error to the exact decoder, before counting anything.
      expect(r.fast).toBe(false);
      expect(r.bailReason).toBe('not-taken bit for a compressed return');
      expect(hex(r.edges)).toEqual([...c.edges].sort());
    });
  }

  it('a taken bit with an empty return stack is another error, also left to the exact decoder', () => {
    const trace = encodeTrace([...enabledAt(0x1100), tnt('!')]);
    expect(exactErrors(trace, RET_CODE)).toEqual([{ error: ErrorCode.RetstackEmpty, ip: 0x1100 }]);
    const r = decodeAllWays(trace, RET_CODE);
    expect(r.fast).toBe(false);
    expect(hex(r.edges)).toEqual(['->1100x1']);
  });
});

/*
 * A call that leaves the traced code (TIP.PGD with the call's target) and
 * tracing enabled again at its return address: libipt's block decoder ran
 * the call, so its return address is on the stack, and the next compressed
 * return goes back there, not to the caller's caller.
 *   0f00: e8 fb 00 00 00  call 1000
 *   0f05: c3              ret
 *   1000: e8 fb 00 00 00  call 1100
 *   1005: 74 00           jz 1007
 *   1007: c3              ret
 *   1100: <call>          e8 fb 0e 00 00 (call 2000), or 90 90 90 ff d0 (nops, call rax)
 *   1105: 74 00           jz 1107
 *   1107: c3              ret
 */
function callOutImage(call: number[]): Image {
  return imageWith([
    [0x0f00, [0xe8, 0xfb, 0x00, 0x00, 0x00, 0xc3]],
    [0x1000, [0xe8, 0xfb, 0x00, 0x00, 0x00, 0x74, 0x00, 0xc3]],
    [0x1100, [...call, 0x74, 0x00, 0xc3]],
  ]);
}

describe('a call that tracing is disabled at', () => {
  const calls = [
    { name: 'a direct call', bytes: [0xe8, 0xfb, 0x0e, 0x00, 0x00] },
    { name: 'an indirect call', bytes: [0x90, 0x90, 0x90, 0xff, 0xd0] },
  ];
  for (const call of calls) {
    const image = callOutImage(call.bytes);
    const out = (bits: string): Uint8Array =>
      encodeTrace([
        ...enabledAt(0x0f00),
        enc.tipPgd(IpCompression.Sext48, 0, 0x2000),
        enc.modeExec(true, false),
        enc.tipPge(IpCompression.Sext48, 0, 0x1105),
        tnt(bits),
      ]);

    it(`${call.name}: pushes its return address for a later compressed return`, () => {
      // jz, ret (back to 1105: the disabled call's return), jz, ret (to 1005).
      const trace = out('!!!!');
      expect(exactErrors(trace, image)).toEqual([]);
      const r = decodeAllWays(trace, image);
      expect(r.fast).toBe(true);
      expect(hex(r.edges)).toEqual(['->f00x1', 'f00>1000x1', '1000>1100x1', '1100>1105x1', '1105>1107x2', '1107>1105x1'].sort());
    });

    it(`${call.name}: then a not-taken bit for the caller's return`, () => {
      // ... ret to 1005, jz, ret with a not-taken bit: the stack still holds 0f05.
      const trace = out('!!!!!.');
      expect(exactErrors(trace, image)).toEqual([{ error: ErrorCode.BadRetcomp, ip: 0x1007 }]);
      const r = decodeAllWays(trace, image);
      expect(r.fast).toBe(false);
      expect(r.bailReason).toBe('not-taken bit for a compressed return');
      expect(hex(r.edges)).toEqual(
        ['->f00x1', 'f00>1000x1', '1000>1100x1', '1100>1105x1', '1105>1107x2', '1107>1105x1', '1107>1005x1', '1005>1007x1'].sort(),
      );
    });
  }

  it('a direct call out of the filter range, TIP.PGD without IP (SKL014): pushes its return address too', () => {
    const skl014: DecoderConfig = { ...defaultConfig(), errata: { ...defaultConfig().errata, skl014: true } };
    const [, r1, r2, r3] = config.addrFilter.ranges;
    skl014.addrFilter = { ranges: [{ cfg: AddrCfg.Filter, a: 0x0f00n, b: 0x1fffn }, r1, r2, r3] };
    const image = callOutImage(calls[0]!.bytes);
    const trace = encodeTrace([
      ...enabledAt(0x0f00),
      enc.tipPgd(IpCompression.Suppressed, 0, 0),
      enc.modeExec(true, false),
      enc.tipPge(IpCompression.Sext48, 0, 0x1105),
      tnt('!!!!'),
    ]);
    expect(exactErrors(trace, image, skl014)).toEqual([]);
    const r = decodeAllWays(trace, image, undefined, skl014);
    expect(r.fast).toBe(true);
    expect(hex(r.edges)).toEqual(['->f00x1', 'f00>1000x1', '1000>1100x1', '1100>1105x1', '1105>1107x2', '1107>1105x1'].sort());
  });
});

/*
 * A TIP.PGD whose IP the flow reaches inside straight-line code: libipt
 * binds it there (pt_blk_proceed_to_ip stops at the IP), so the call after
 * it does not run and pushes nothing.
 *   0f00: e8 fb 00 00 00  call 1000
 *   0f05: 74 00           jz 0f07
 *   0f07: c3              ret
 *   1000: 90              nop
 *   1001: e8 fa 00 00 00  call 1100
 *   1006: c3              ret
 *   1100: 74 00           jz 1102
 *   1102: c3              ret
 */
describe('a TIP.PGD bound before a call', () => {
  const image = imageWith([
    [0x0f00, [0xe8, 0xfb, 0x00, 0x00, 0x00, 0x74, 0x00, 0xc3]],
    [0x1000, [0x90, 0xe8, 0xfa, 0x00, 0x00, 0x00, 0xc3]],
    [0x1100, [0x74, 0x00, 0xc3]],
  ]);
  /** Enabled at 0f00; `before` (TNT), disabled at `disabledAt`, enabled at 1006, `after` (TNT). */
  const trace = (before: string, disabledAt: number, after: string): Uint8Array =>
    encodeTrace([
      ...enabledAt(0x0f00),
      ...(before === '' ? [] : [tnt(before)]),
      enc.tipPgd(IpCompression.Sext48, 0, disabledAt),
      enc.modeExec(true, false),
      enc.tipPge(IpCompression.Sext48, 0, 0x1006),
      tnt(after),
    ]);

  it('inside a block: the call after the IP does not run', () => {
    // ret at 1006 pops 0f05 (the call at 1001 did not run), jz.
    const t = trace('', 0x1001, '!!');
    expect(exactErrors(t, image)).toEqual([]);
    const r = decodeAllWays(t, image);
    expect(r.fast).toBe(true);
    expect(hex(r.edges)).toEqual(['->f00x1', 'f00>1000x1', '1000>1006x1', '1006>f05x1'].sort());
  });

  it('where the flow already is: nothing there runs', () => {
    // jz at 1100 to 1102, disabled there before its ret; at 1006 two
    // returns: to 1006 (the call at 1001 ran), then to 0f05.
    const t = trace('!', 0x1102, '!!');
    expect(exactErrors(t, image)).toEqual([]);
    const r = decodeAllWays(t, image);
    expect(r.fast).toBe(true);
    expect(hex(r.edges)).toEqual(['->f00x1', 'f00>1000x1', '1000>1100x1', '1100>1006x1', '1006>1006x1'].sort());
  });

  it('at the target of a direct call: the call runs', () => {
    // The call at 0f00 binds it; at 1006 the return goes back to 0f05.
    const t = trace('', 0x1000, '!!');
    expect(exactErrors(t, image)).toEqual([]);
    const r = decodeAllWays(t, image);
    expect(r.fast).toBe(true);
    expect(hex(r.edges)).toEqual(['->f00x1', 'f00>1006x1', '1006>f05x1'].sort());
  });
});
