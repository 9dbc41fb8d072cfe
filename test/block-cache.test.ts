import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errataFor, parseCpu } from '../src/packets/cpu.js';
import { defaultConfig, type DecoderConfig } from '../src/packets/config.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { ErrorCode } from '../src/packets/errors.js';
import { PtEvent } from '../src/events/event.js';
import { ANY_ASID } from '../src/flow/address-space.js';
import { Block, BlockDecoder } from '../src/flow/block-decoder.js';
import {
  BlockCache,
  MAX_RUN_INSNS,
  RUN_CONTIGUOUS,
  RUN_DIRECT,
  RUN_FINAL,
} from '../src/flow/block-cache.js';
import { Image } from '../src/flow/image.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { InstructionDecoder } from '../src/flow/instruction-decoder.js';
import { ExecMode, InsnClass, InstructionInfo } from '../src/flow/instruction.js';
import { ByteSourceCache } from '../src/flow/section.js';
import { REAL_TRACES } from './helpers/vectors.js';

// Status flags (a const enum in src/events/status.ts).
const EVENT_PENDING = 1;
const EOS = 4;

/*
 * 64-bit code at 0x1000:
 *   1000: 90              nop
 *   1001: b8 01 00 00 00  mov eax, 1
 *   1006: eb 02           jmp 100a
 *   1008: 0f 0b           ud2            (jumped over)
 *   100a: 48 01 c0        add rax, rax
 *   100d: 74 05           jz 1014
 *   100f: e8 00 01 00 00  call 1114
 *   1014: c3              ret
 */
const CODE = [0x90, 0xb8, 1, 0, 0, 0, 0xeb, 0x02, 0x0f, 0x0b, 0x48, 0x01, 0xc0, 0x74, 0x05, 0xe8, 0, 1, 0, 0, 0xc3];

function imageWith(sections: [number, number[]][]): Image {
  const image = new Image();
  for (const [vaddr, bytes] of sections) expect(image.addMemory(`m${vaddr}`, new Uint8Array(bytes), vaddr)).toBe(0);
  return image;
}

function run(cache: BlockCache, ip: number) {
  const id = cache.lookup(ip, ExecMode.Bit64, ANY_ASID);
  expect(id).toBeGreaterThanOrEqual(0);
  const info = cache.info[id]!;
  return {
    count: cache.count[id]!,
    final: (info & RUN_FINAL) !== 0,
    contiguous: (info & RUN_CONTIGUOUS) !== 0,
    direct: (info & RUN_DIRECT) !== 0,
    iclass: (info >>> 4) & 15,
    size: info & 15,
    lastIp: cache.lastIp[id]!,
    nextIp: cache.nextIp[id]!,
    directs: cache.directs[id]!,
    disp: cache.disp[id]!,
  };
}

describe('BlockCache runs', () => {
  it('crosses non-branches and direct jumps up to the first instruction the trace decides', () => {
    const cache = new BlockCache(imageWith([[0x1000, CODE]]), false);
    const r = run(cache, 0x1000);
    expect(r).toMatchObject({ count: 4, final: true, iclass: InsnClass.CondJump, lastIp: 0x100d, size: 2, directs: 1, contiguous: false });
    expect(r.disp).toBe(5);
    // From after the jump the run is contiguous.
    expect(run(cache, 0x100a)).toMatchObject({ count: 1, final: true, lastIp: 0x100d, directs: 0, contiguous: true });
    // A direct call is final (the return stack needs it); nothing precedes it here.
    expect(run(cache, 0x100f)).toMatchObject({ count: 0, final: true, iclass: InsnClass.Call, direct: true, lastIp: 0x100f, disp: 0x100 });
    expect(run(cache, 0x1014)).toMatchObject({ count: 0, final: true, iclass: InsnClass.Return });
  });

  it('ends runs at direct jumps when asked (endOnJump)', () => {
    const cache = new BlockCache(imageWith([[0x1000, CODE]]), true);
    expect(run(cache, 0x1000)).toMatchObject({ count: 2, final: true, iclass: InsnClass.Jump, direct: true, lastIp: 0x1006, disp: 2, contiguous: true });
  });

  it('leaves a run open at the end of its mapping, before undecodable bytes and after the cap', () => {
    const nops = new Array<number>(MAX_RUN_INSNS + 10).fill(0x90);
    // 0x06 (push es) is invalid in 64-bit mode.
    const cache = new BlockCache(imageWith([[0x2000, [0x90, 0x90, 0x90]], [0x3000, [0x90, 0x06]], [0x10000, nops]]), false);
    expect(run(cache, 0x2000)).toMatchObject({ count: 3, final: false, lastIp: 0x2002, nextIp: 0x2003, iclass: InsnClass.Other });
    expect(run(cache, 0x3000)).toMatchObject({ count: 1, final: false, nextIp: 0x3001 });
    expect(run(cache, 0x3001)).toMatchObject({ count: 0, final: false });
    expect(run(cache, 0x10000)).toMatchObject({ count: MAX_RUN_INSNS, final: false, nextIp: 0x10000 + MAX_RUN_INSNS });
    expect(cache.lookup(0x5000, ExecMode.Bit64, ANY_ASID)).toBe(-1);
    expect(cache.lookup(0x2000, ExecMode.Unknown, ANY_ASID)).toBe(-1);
  });

  it('counts hits and misses, and drops its entries when the image changes', () => {
    const image = imageWith([[0x1000, CODE]]);
    const cache = new BlockCache(image, false);
    run(cache, 0x1000);
    run(cache, 0x1000);
    expect([cache.hits, cache.misses, cache.size]).toEqual([1, 1, 1]);
    // Overlay a `ret` at 0x1000: the old run must not be used.
    expect(image.addMemory('patch', new Uint8Array([0xc3]), 0x1000)).toBe(0);
    expect(run(cache, 0x1000)).toMatchObject({ count: 0, final: true, iclass: InsnClass.Return });
    expect(cache.size).toBe(1);
    // 0x1001 now lies in the remainder of the first mapping.
    expect(run(cache, 0x1001)).toMatchObject({ count: 3, lastIp: 0x100d });
  });

  it('keys runs by mode', () => {
    // b8 01 00 00 00 is `mov eax, 1` in 32/64-bit mode but `mov ax, 1` + `add [bx+si], al` in 16-bit mode.
    const cache = new BlockCache(imageWith([[0x1000, [0xb8, 1, 0, 0, 0, 0xc3]]]), false);
    const id64 = cache.lookup(0x1000, ExecMode.Bit64, ANY_ASID);
    const id16 = cache.lookup(0x1000, ExecMode.Bit16, ANY_ASID);
    expect(id16).not.toBe(id64);
    expect(cache.count[id64]).toBe(1);
    expect(cache.count[id16]).toBe(2);
  });
});

// ---------------------------------------------------------------------------
// The block decoder against the instruction decoder on the real traces.

interface RealTrace {
  name: string;
  images: { file: string; address: string }[];
}

function setup(name: string): { packets: PacketDecoder; config: DecoderConfig; image: Image } {
  const dir = join(REAL_TRACES, name);
  const manifest = JSON.parse(readFileSync(join(REAL_TRACES, 'MANIFEST.json'), 'utf8')) as RealTrace[];
  const t = manifest.find((m) => m.name === name)!;
  const image = new Image();
  const files = new ByteSourceCache();
  for (const img of t.images) image.addFile(files, join(dir, img.file), 0, Infinity, Number(img.address), ANY_ASID);
  const config = defaultConfig();
  config.cpu = parseCpu('6/158')!;
  const errata = errataFor(config.cpu);
  if (typeof errata !== 'number') config.errata = errata;
  const packets = new PacketDecoder(new Uint8Array(readFileSync(join(dir, 'trace.pt'))), { skd007: config.errata.skd007 });
  return { packets, config, image };
}

/** What both decoders report, folded the same way: addresses, and at each error where and which. */
class Listing {
  ips: number[] = [];
  classes: number[] = [];
  errors: string[] = [];
  hash = 0x811c9dc5;
  count = 0;
  constructor(private readonly keep: boolean) {}
  add(ip: number, iclass: number): void {
    this.count++;
    if (this.keep) {
      this.ips.push(ip);
      this.classes.push(iclass);
    }
    const t = ip.toString(16);
    for (let i = 0; i < t.length; i++) this.hash = Math.imul(this.hash ^ t.charCodeAt(i), 0x01000193) >>> 0;
    this.hash = Math.imul(this.hash ^ 0x2c, 0x01000193) >>> 0;
  }
}

const FLAGS = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false };

/** ptxed's loop with the instruction decoder (continuing at the next PSB after errors). */
function listInsns(name: string, keep: boolean): Listing {
  const { packets, config, image } = setup(name);
  const dec = new InsnDecoder(packets, config, image, FLAGS);
  const out = new Listing(keep);
  const insn = new InstructionInfo();
  const ev = new PtEvent();
  let status = dec.syncForward();
  for (;;) {
    if (status < 0) {
      if (status === -ErrorCode.Eos) break;
      out.errors.push(`${dec.offset}:${status}`);
      status = dec.syncForward();
      continue;
    }
    while (status >= 0 && status & EVENT_PENDING) status = dec.event(ev);
    if (status < 0) continue;
    if (status & EOS) break;
    status = dec.next(insn);
    // Like ptxed, an instruction that was decoded is listed even if it failed.
    if (status >= 0 || insn.iclass !== InsnClass.Unknown) out.add(insn.ip, insn.iclass);
  }
  return out;
}

/** The same loop with the block decoder, listing Block.ips; checks each block's own fields. */
function listBlocks(name: string, keep: boolean, endOnCall: boolean, endOnJump: boolean): { out: Listing; dec: BlockDecoder; bad: string[] } {
  const { packets, config, image } = setup(name);
  const dec = new BlockDecoder(packets, config, image, { ...FLAGS, endOnCall, endOnJump });
  const out = new Listing(keep);
  const bad: string[] = [];
  const block = new Block();
  const ev = new PtEvent();
  let status = dec.syncForward();
  for (;;) {
    if (status < 0) {
      if (status === -ErrorCode.Eos) break;
      out.errors.push(`${dec.offset}:${status}`);
      status = dec.syncForward();
      continue;
    }
    while (status >= 0 && status & EVENT_PENDING) status = dec.event(ev);
    if (status < 0) continue;
    if (status & EOS) break;
    status = dec.next(block);
    const n = block.ninsn;
    if (n === 0) continue;
    const ips = block.ips;
    if (ips[0] !== block.ip || ips[n - 1] !== block.endIp) bad.push(`block at ${block.ip}: ips do not match ip/endIp`);
    for (let k = 0; k < n; k++) out.add(ips[k]!, k === n - 1 ? block.iclass : -1);
  }
  return { out, dec, bad };
}

describe('block decoder over the block cache agrees with the instruction decoder', () => {
  for (const name of ['unzip', 'dyn_test']) {
    it(`${name}: the same instructions, errors and last-instruction classes`, { timeout: 60_000 }, () => {
      const insns = listInsns(name, true);
      for (const [endOnCall, endOnJump] of [[false, false], [true, true], [true, false]] as const) {
        const { out, dec, bad } = listBlocks(name, true, endOnCall, endOnJump);
        expect(bad).toEqual([]);
        expect(out.count).toBe(insns.count);
        expect(out.ips).toEqual(insns.ips);
        expect(out.errors).toEqual(insns.errors);
        // Each block's class is its last instruction's, or, as in libipt,
        // Unknown after a trampoline, Indirect for any branch the trace
        // resolves that is neither a call nor a return.
        const indirectish = [InsnClass.Jump, InsnClass.FarCall, InsnClass.FarReturn, InsnClass.FarJump, InsnClass.Indirect];
        for (let i = 0; i < out.classes.length; i++) {
          const c = out.classes[i];
          if (c === -1 || c === InsnClass.Unknown || (c === InsnClass.Indirect && indirectish.includes(insns.classes[i]!))) continue;
          if (c !== insns.classes[i]) {
            throw new Error(`${name}: class of the block ending at ${out.ips[i]} is ${out.classes[i]}, instruction says ${insns.classes[i]}`);
          }
        }
      }
    });
  }

  it('mruby: the same 6,334,131 instruction addresses', { timeout: 120_000 }, () => {
    const insns = listInsns('mruby', false);
    const { out, dec, bad } = listBlocks('mruby', false, false, false);
    expect(bad).toEqual([]);
    expect(insns.count).toBe(6334131);
    expect(out.count).toBe(insns.count);
    expect(out.hash).toBe(insns.hash);
    expect(out.errors).toEqual(insns.errors);
  });
});

describe('instruction decoder walking cached runs', () => {
  it('reports each instruction exactly as a fresh decode of its address does (unzip)', { timeout: 60_000 }, () => {
    const { packets, config, image } = setup('unzip');
    const dec = new InsnDecoder(packets, config, image, FLAGS);
    const fresh = new InstructionDecoder(image);
    const want = new InstructionInfo();
    const insn = new InstructionInfo();
    const ev = new PtEvent();
    const diffs: string[] = [];
    let n = 0;
    let status = dec.syncForward();
    for (;;) {
      if (status < 0) {
        if (status === -ErrorCode.Eos) break;
        status = dec.syncForward();
        continue;
      }
      while (status >= 0 && status & EVENT_PENDING) status = dec.event(ev);
      if (status < 0) continue;
      if (status & EOS) break;
      status = dec.next(insn);
      if (status < 0) continue;
      n++;
      expect(fresh.decode(want, insn.ip, insn.mode, dec.asid)).toBe(0);
      const fields = ['size', 'iclass', 'kind', 'isDirect', 'displacement', 'target', 'truncated', 'isid', 'section'] as const;
      for (const f of fields) if (insn[f] !== want[f]) diffs.push(`${insn.ip.toString(16)} ${f}: ${String(insn[f])} vs ${String(want[f])}`);
      if (insn.raw().join() !== want.raw().join()) diffs.push(`${insn.ip.toString(16)} raw bytes differ`);
      if (diffs.length > 10) break;
    }
    expect(diffs).toEqual([]);
    expect(n).toBe(149576);
  });
});
