/**
 * The recorder's trace unit without qemu: synthetic instruction streams go
 * through PtEncoderSession and the packets are read back with ptscope's
 * packet decoder. Covers the SDM rules the end-to-end tests only exercise
 * implicitly: IP compression choice, TNT buffering, return compression and
 * its 64-deep stack, PSB+ contents, syscalls, asynchronous events, filters,
 * snapshot trimming; plus the log parser and the IP hash.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PacketDecoder } from '../src/packets/decoder.js';
import { Packet } from '../src/packets/packet.js';
import { PACKET_NAMES, PacketType } from '../src/packets/packet-type.js';
import { BranchKind, decodeBlock, locateDataFault, type BlockEnd } from '../src/sources/recorder/branch-kind.js';
import { IpSequenceHash } from '../src/sources/recorder/ip-sequence-hash.js';
import { DEFAULT_TIMING, PtEncoderSession, type EncoderSettings } from '../src/sources/recorder/pt-encoder-session.js';
import { QemuLogParser, type TranslatedBlock } from '../src/sources/recorder/qemu-log.js';
import { TraceOutput } from '../src/sources/recorder/trace-output.js';

const dir = mkdtempSync(join(tmpdir(), 'ptscope-recenc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

function settings(extra: Partial<EncoderSettings> = {}): EncoderSettings {
  return { psbPeriod: 1 << 30, retCompression: true, longTnt: false, ranges: [], timing: DEFAULT_TIMING, snapshot: false, ...extra };
}

/** Run `body` against a fresh session and return the packets as readable strings. */
function encode(body: (s: PtEncoderSession) => void, extra: Partial<EncoderSettings> = {}, snapshotBytes = 0): string[] {
  const path = join(dir, `t${seq++}.pt`);
  const out = new TraceOutput(path, snapshotBytes);
  const s = new PtEncoderSession(out, settings({ snapshot: snapshotBytes > 0, ...extra }));
  body(s);
  s.finish();
  out.finish();
  return packets(readFileSync(path));
}

function packets(bytes: Uint8Array): string[] {
  const dec = new PacketDecoder(bytes);
  expect(dec.syncForward()).toBe(0);
  const p = new Packet();
  const list: string[] = [];
  for (;;) {
    const n = dec.next(p);
    if (n < 0) break;
    const name = PACKET_NAMES[p.type];
    switch (p.type) {
      case PacketType.Tip:
      case PacketType.TipPge:
      case PacketType.TipPgd:
      case PacketType.Fup:
        list.push(`${name} ${p.ipc}:${(p.hi * 2 ** 32 + p.lo).toString(16)}`);
        break;
      case PacketType.Tnt8:
      case PacketType.Tnt64:
        list.push(`${name} ${p.tntBits.toString(2).padStart(p.tntSize, '0')}`);
        break;
      default:
        list.push(name);
    }
  }
  return list;
}

const end = (kind: BranchKind, target = 0, pushes = kind === BranchKind.DirectCall): BlockEnd => ({ kind, target, pushes, repString: false });
const COND = end(BranchKind.CondJump, 0x401100);
const IND = end(BranchKind.IndirectJump);
const CALL = end(BranchKind.DirectCall, 0x402000);
const RET = end(BranchKind.Return);
const SYSCALL = end(BranchKind.ToKernel);

describe('PtEncoderSession', () => {
  it('starts with PSB+ (no FUP while disabled) and TIP.PGE, and picks the IP compression as hardware does', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      s.branch(0x401000, 2, IND, 0x401234); // same upper 48 bits: update-16
      s.boundary(0x401234);
      s.branch(0x401234, 2, IND, 0x40567890); // same upper 32: update-32
      s.boundary(0x40567890);
      s.branch(0x40567890, 2, IND, 0x7fff00001000); // same upper 16: update-48
      s.boundary(0x7fff00001000);
      s.branch(0x7fff00001000, 2, IND, -0xa00000); // 0xffffffffff600000: sign-extended 48
      s.boundary(-0xa00000);
      s.branch(-0xa00000, 2, SYSCALL, NaN);
    });
    expect(list).toEqual([
      'psb', 'mode.exec', 'psbend',
      'tip.pge 3:401000',
      'tip 1:1234',
      'tip 2:40567890',
      'tip 4:7fff00001000',
      'tip 3:ffffff600000',
      'tip.pgd 0:0',
    ]);
  });

  it('buffers conditional branches into TNT-8 (6 bits, oldest first) and flushes before other packets', () => {
    const taken = [1, 0, 0, 1, 1, 0, 1, 1];
    const list = encode((s) => {
      s.boundary(0x401000);
      for (const t of taken) s.branch(0x401000, 2, COND, t ? 0x401100 : 0x401002);
      s.branch(0x401000, 2, IND, 0x401200);
    });
    expect(list.slice(4)).toEqual(['tnt.8 100110', 'tnt.8 11', 'tip 1:1200']);
  });

  it('TNT-64 holds up to 47 bits with longTnt', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      for (let i = 0; i < 50; i++) s.branch(0x401000, 2, COND, i % 2 ? 0x401100 : 0x401002);
    }, { longTnt: true });
    expect(list.slice(4)).toEqual([`tnt.64 ${'01'.repeat(23)}0`, 'tnt.8 101']);
  });

  it('return compression follows libipt\'s 64-entry stack: the deepest returns are TIPs', () => {
    const depth = 70;
    const body = (s: PtEncoderSession): void => {
      s.boundary(0x401000);
      for (let i = 0; i < depth; i++) s.branch(0x401000 + i * 8, 5, CALL, 0x402000);
      for (let i = depth - 1; i >= 0; i--) s.branch(0x402100, 1, RET, 0x401000 + i * 8 + 5);
    };
    const on = encode(body).slice(4);
    const tntBits = on.filter((p) => p.startsWith('tnt')).reduce((n, p) => n + p.split(' ')[1].length, 0);
    expect(tntBits).toBe(64);
    expect(on.filter((p) => p.startsWith('tip ')).length).toBe(depth - 64);
    const off = encode(body, { retCompression: false }).slice(4);
    expect(off.every((p) => p.startsWith('tip '))).toBe(true);
    expect(off.length).toBe(depth);
  });

  it('a call to the next instruction is not pushed (libipt skips it)', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      s.branch(0x401000, 5, end(BranchKind.DirectCall, 0x401005, false), 0x401005);
      s.branch(0x401010, 1, RET, 0x401005);
    });
    expect(list.slice(4)).toEqual(['tip 1:1005']);
  });

  it('syscalls: TIP.PGD with the IP suppressed, TIP.PGE at the return to user space', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      s.branch(0x401000, 2, COND, 0x401100);
      s.branch(0x401100, 2, SYSCALL, NaN);
      s.boundary(0x401102);
      s.insn(0x401102);
    });
    expect(list.slice(4)).toEqual(['tnt.8 1', 'tip.pgd 0:0', 'tip.pge 1:1102']);
  });

  it('asynchronous events: FUP at the next IP, then TIP.PGD', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      s.insn(0x401000);
      s.interrupt(0x401003);
      s.boundary(0x405000); // the handler
    });
    expect(list.slice(4)).toEqual(['fup 1:1003', 'tip.pgd 0:0', 'tip.pge 1:5000']);
  });

  it('PSB+ after the period carries FUP(current IP) and resets the return stack', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      s.branch(0x401000, 5, CALL, 0x402000);
      for (let i = 0; i < 40; i++) {
        s.boundary(0x402000);
        s.branch(0x402000, 2, IND, 0x7f0000000000 + i * 0x100000000);
      }
      s.boundary(0x403000);
      s.branch(0x403000, 1, RET, 0x401005);
    }, { psbPeriod: 128 });
    const psb = list.indexOf('psb', 1);
    expect(psb).toBeGreaterThan(0);
    // PSB+ comes at an instruction boundary: the FUP holds the next instruction's IP in full.
    expect(list[psb + 1]).toBe('mode.exec');
    expect(list[psb + 2]).toMatch(/^fup 3:40[23]000$/);
    expect(list[psb + 3]).toBe('psbend');
    // The return's call was before the PSB: not compressed.
    expect(list.at(-1)).toBe('tip 4:401005');
  });

  it('timing packets: TSC and TMA in PSB+, CYC before timed packets', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      for (let i = 0; i < 100; i++) s.insn(0x401000);
      s.branch(0x401000, 2, IND, 0x401200);
    }, { timing: { ...DEFAULT_TIMING, tsc: true, mtc: true, cyc: true } });
    expect(list.slice(0, 5)).toEqual(['psb', 'tsc', 'tma', 'mode.exec', 'psbend']);
    expect(list).toContain('cyc');
    expect(list.at(-1)).toBe('tip 1:1200');
  });

  it('IP filter: TIP.PGD with the target when leaving, TIP.PGE when entering, FUP+TIP.PGD when falling out', () => {
    const list = encode((s) => {
      s.boundary(0x401000);
      s.branch(0x401000, 2, IND, 0x500000); // leaves by a branch
      s.boundary(0x500000);
      s.branch(0x500000, 2, IND, 0x401100); // enters
      s.boundary(0x401100);
      s.insn(0x401100);
      s.boundary(0x402000); // falls out linearly
      s.insn(0x402000);
    }, { ranges: [{ from: 0x401000, to: 0x401fff }] });
    expect(list.slice(3)).toEqual(['tip.pge 3:401000', 'tip.pgd 2:500000', 'tip.pge 2:401100', 'fup 1:2000', 'tip.pgd 0:0']);
  });

  it('counts and hashes only traced instructions', () => {
    const path = join(dir, 'count.pt');
    const out = new TraceOutput(path);
    const s = new PtEncoderSession(out, settings({ ranges: [{ from: 0x401000, to: 0x401fff }] }));
    s.boundary(0x401000);
    s.insn(0x401000);
    s.boundary(0x402000);
    s.insn(0x402000);
    out.finish();
    const h = new IpSequenceHash();
    h.add(0x401000);
    expect(s.executed).toBe(2);
    expect({ n: s.traced.count, h: s.traced.hex() }).toEqual({ n: 1, h: h.hex() });
  });
});

describe('TraceOutput snapshot', () => {
  it('keeps the newest PSB segments that fit, each starting with a PSB', () => {
    const path = join(dir, 'snap.pt');
    const out = new TraceOutput(path, 300);
    const s = new PtEncoderSession(out, settings({ psbPeriod: 100, snapshot: true }));
    s.boundary(0x401000);
    for (let i = 0; i < 200; i++) {
      s.boundary(0x401000 + i * 0x10000);
      s.branch(0x401000 + i * 0x10000, 2, IND, 0x401000 + (i + 1) * 0x10000);
    }
    s.finish();
    const r = out.finish();
    const bytes = readFileSync(path);
    expect(bytes.length).toBe(r.size);
    expect(r.size).toBeLessThanOrEqual(300);
    expect(r.start + r.size).toBe(r.fullSize);
    const list = packets(bytes);
    expect(list[0]).toBe('psb');
    // The kept part's IP sequence: from its first PSB's FUP on.
    const h = s.hashFrom(r.start);
    expect(h.count).toBeGreaterThan(0);
    expect(h.count).toBeLessThan(s.traced.count);
  });
});

describe('IpSequenceHash', () => {
  it('is FNV-1a 64 over 8 little-endian bytes per IP', () => {
    const ips = [0x401000n, 0x7fffffffe123n, 0xffffffffff600400n, 0n];
    const h = new IpSequenceHash();
    let ref = 0xcbf29ce484222325n;
    for (const ip of ips) {
      h.add(Number(BigInt.asIntN(64, ip)));
      for (let i = 0n; i < 8n; i++) {
        ref ^= (ip >> (8n * i)) & 0xffn;
        ref = (ref * 0x100000001b3n) & 0xffffffffffffffffn;
      }
    }
    expect(h.hex()).toBe(ref.toString(16).padStart(16, '0'));
    expect(h.count).toBe(4);
  });
});

describe('branch classification and TB decoding', () => {
  it('splits a TB by its bytes and classifies its last instruction', () => {
    // mov %eax,%ebx; or %esi,%ebx; jne +0x10
    const d = decodeBlock(0x401000, Uint8Array.from([0x89, 0xc3, 0x09, 0xf3, 0x75, 0x10]))!;
    expect(Array.from(d.ips)).toEqual([0x401000, 0x401002, 0x401004]);
    expect(d.end.kind).toBe(BranchKind.CondJump);
    expect(d.end.target).toBe(0x401016);
    const kinds = (bytes: number[]): BranchKind => decodeBlock(0x1000, Uint8Array.from(bytes))!.end.kind;
    expect(kinds([0x0f, 0x05])).toBe(BranchKind.ToKernel); // syscall
    expect(kinds([0xc3])).toBe(BranchKind.Return);
    expect(kinds([0xff, 0xd0])).toBe(BranchKind.IndirectCall); // call *%rax
    expect(kinds([0xff, 0xe0])).toBe(BranchKind.IndirectJump); // jmp *%rax
    expect(kinds([0xe8, 0, 0, 0, 0])).toBe(BranchKind.DirectCall);
    expect(decodeBlock(0x1000, Uint8Array.from([0xe8, 0, 0, 0, 0]))!.end.pushes).toBe(false);
    expect(kinds([0xcc])).toBe(BranchKind.ToKernel); // int3
    expect(decodeBlock(0x1000, Uint8Array.from([0xf3, 0xa4]))!.firstIsRep).toBe(true); // rep movsb
  });

  it('locates a data fault by the instruction\'s fixed address', () => {
    // mov %eax,%ebx; movl $1,0x10; mov (%rax),%ecx
    const bytes = Uint8Array.from([0x89, 0xc3, 0xc7, 0x04, 0x25, 0x10, 0, 0, 0, 1, 0, 0, 0, 0x8b, 0x08]);
    expect(locateDataFault(0x1000, bytes, 0x10)).toEqual({ index: 1, exact: true });
    expect(locateDataFault(0x1000, bytes, 0x7000)).toEqual({ index: 2, exact: true });
  });
});

describe('QemuLogParser', () => {
  const LOG = [
    'host mmap_min_addr=0x1000',
    'start_code  0x0000004000001000',
    'entry       0x0000004002820b70',
    '----------------',
    'IN: main',
    '0x4000001000:  48 c7 44 24 b8 00 10 00  movq     $0x1000, -0x48(%rsp)',
    '0x4000001008:  00',
    '0x4000001009:  09                       .byte    0x09',
    '0x400000100a:  f3 c3                    repz retq',
    '',
    'Trace 0: 0x7fcba804d280 [0000000000000000/0000004000001000/1040c0b3/00000200] main',
    '123 openat(-100,"/lib/libc.so.6",O_RDONLY|O_CLOEXEC) = 3',
    '123 mmap(NULL,8192,PROT_READ|PROT_EXEC,MAP_PRIVATE,3,0)page layout changed following mmap',
    'start            end              size             prot',
    '0000004000000000-0000004000001000 0000000000001000 r--',
    ' = 0x0000004002846000',
    '--- SIGSEGV {si_signo=SIGSEGV, si_code=1, si_addr=0x0000000000000010} ---',
    'Trace 0: 0x7fcba804d280 [0000000000000000/0000004000001000/1040c0b3/00000200] main',
    '',
  ].join('\n');

  function parse(chunkSize: number): string[] {
    const events: string[] = [];
    const p = new QemuLogParser({
      translated: (tb: TranslatedBlock) => events.push(`tb ${tb.pc.toString(16)} ${Buffer.from(tb.bytes).toString('hex')}`),
      executed: (cpu, ptr, pc) => events.push(`exec ${cpu} ${ptr.toString(16)} ${pc.toString(16)}`),
      notExecuted: (ptr, pc) => events.push(`stopped ${ptr.toString(16)} ${pc.toString(16)}`),
      syscall: (line) => events.push(`sys ${line}`),
      signal: (name, code, addr) => events.push(`sig ${name} ${code} ${addr}`),
      layout: (name, value) => events.push(`layout ${name} ${value.toString(16)}`),
    });
    const buf = Buffer.from(LOG, 'latin1');
    for (let i = 0; i < buf.length; i += chunkSize) p.feed(buf.subarray(i, i + chunkSize));
    p.end();
    return events;
  }

  it('reads TBs (bytes across continuation and .byte lines), executions, syscalls split by page dumps, signals', () => {
    const expected = [
      'layout start_code 4000001000',
      'layout entry 4002820b70',
      'tb 4000001000 48c74424b80010000009f3c3',
      'exec 0 7fcba804d280 4000001000',
      'sys openat(-100,"/lib/libc.so.6",O_RDONLY|O_CLOEXEC) = 3',
      'sys mmap(NULL,8192,PROT_READ|PROT_EXEC,MAP_PRIVATE,3,0) = 0x0000004002846000',
      'sig SIGSEGV 1 16',
      'exec 0 7fcba804d280 4000001000',
    ];
    expect(parse(1 << 20)).toEqual(expected);
    for (const size of [1, 7, 64]) expect(parse(size)).toEqual(expected);
  });
});
