import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/packets/errors.js';
import { ANY_ASID, Asid, ipFromBigInt, ipFromHiLo } from '../src/flow/address-space.js';
import { Image } from '../src/flow/image.js';
import { decodeInstruction, InstructionDecoder } from '../src/flow/instruction-decoder.js';
import {
  ExecMode,
  InsnClass,
  insnBindsToPip,
  insnBindsToVmcs,
  insnChangesCpl,
  insnChangesCr3,
  insnClassName,
  InsnKind,
  insnNextIp,
  insnNextIpError,
  InstructionInfo,
} from '../src/flow/instruction.js';
import { ByteSourceCache, Section } from '../src/flow/section.js';

const C = InsnClass;
const K = InsnKind;

/**
 * Hand-assembled from the SDM Vol. 2 opcode tables: mode, bytes, expected
 * size, class, kind, and for direct branches the displacement.
 */
type Row = [mode: 16 | 32 | 64, hex: string, size: number, cls: InsnClass, kind: InsnKind, disp?: number];

const TABLE: Row[] = [
  // 64-bit mode
  [64, '90', 1, C.Other, K.None],
  [64, '48 89 c3', 3, C.Other, K.None], // mov rbx, rax
  [64, 'e8 10 00 00 00', 5, C.Call, K.CallE8, 0x10],
  [64, 'e8 00 00 00 00', 5, C.Call, K.CallE8, 0], // call next: an ordinary direct call
  [64, 'e8 f0 ff ff ff', 5, C.Call, K.CallE8, -0x10],
  [64, '66 e8 10 00 00 00', 6, C.Call, K.CallE8, 0x10], // 66 ignored for near branches in 64-bit (Intel)
  [64, 'ff d0', 2, C.Call, K.CallFFr2], // call rax
  [64, 'ff 15 00 01 00 00', 6, C.Call, K.CallFFr2], // call [rip+0x100]
  [64, '41 ff d3', 3, C.Call, K.CallFFr2], // call r11
  [64, 'ff 1c 24', 3, C.FarCall, K.CallFFr3], // call far [rsp]
  [64, '48 ff 18', 3, C.FarCall, K.CallFFr3], // call far m16:64 [rax]
  [64, 'c3', 1, C.Return, K.RetC3],
  [64, 'f3 c3', 2, C.Return, K.RetC3], // rep ret
  [64, 'c2 08 00', 3, C.Return, K.RetC2],
  [64, 'cb', 1, C.FarReturn, K.RetCB],
  [64, '48 cb', 2, C.FarReturn, K.RetCB],
  [64, 'ca 04 00', 3, C.FarReturn, K.RetCA],
  [64, 'eb fe', 2, C.Jump, K.JmpEB, -2],
  [64, 'e9 00 01 00 00', 5, C.Jump, K.JmpE9, 0x100],
  [64, 'ff e0', 2, C.Jump, K.JmpFFr4], // jmp rax
  [64, '3e ff e0', 3, C.Jump, K.JmpFFr4], // notrack jmp rax
  [64, 'ff 2c 24', 3, C.FarJump, K.JmpFFr5], // jmp far [rsp]
  [64, '74 05', 2, C.CondJump, K.Jcc, 5],
  [64, '7f 80', 2, C.CondJump, K.Jcc, -128],
  [64, '0f 85 f0 ff ff ff', 6, C.CondJump, K.Jcc, -16],
  [64, 'e3 02', 2, C.CondJump, K.JrCXZ, 2], // jrcxz
  [64, '67 e3 02', 3, C.CondJump, K.JrCXZ, 2], // jecxz
  [64, 'e2 fe', 2, C.CondJump, K.Loop, -2],
  [64, 'e1 fe', 2, C.CondJump, K.LoopE, -2],
  [64, 'e0 fe', 2, C.CondJump, K.LoopNE, -2],
  [64, 'cd 80', 2, C.FarCall, K.Int],
  [64, 'cc', 1, C.FarCall, K.Int3],
  [64, 'f1', 1, C.FarCall, K.Int1],
  [64, 'cf', 1, C.FarReturn, K.Iret],
  [64, '48 cf', 2, C.FarReturn, K.Iret],
  [64, '0f 05', 2, C.FarCall, K.Syscall],
  [64, '0f 34', 2, C.FarCall, K.Sysenter],
  [64, '48 0f 35', 3, C.FarReturn, K.Sysexit],
  [64, '0f 07', 2, C.FarReturn, K.Sysret],
  [64, '48 0f 07', 3, C.FarReturn, K.Sysret],
  [64, '0f 01 c1', 3, C.FarCall, K.Vmcall],
  [64, '0f 01 c2', 3, C.FarReturn, K.Vmlaunch],
  [64, '0f 01 c3', 3, C.FarReturn, K.Vmresume],
  [64, '0f c7 30', 3, C.Other, K.Vmptrld], // vmptrld [rax]
  [64, '0f 22 d8', 3, C.Other, K.MovCr3], // mov cr3, rax
  [64, '0f 22 c0', 3, C.Other, K.None], // mov cr0, rax
  [64, '0f 20 d8', 3, C.Other, K.None], // mov rax, cr3 (a read)
  [64, '44 0f 22 c0', 4, C.Other, K.None], // mov cr8, rax (REX.R)
  [64, 'f3 0f ae e0', 4, C.Ptwrite, K.Ptwrite], // ptwrite eax
  [64, 'f3 48 0f ae 20', 5, C.Ptwrite, K.Ptwrite], // ptwrite qword [rax]
  [64, 'f3 0f 01 ec', 4, C.FarReturn, K.Uiret],
  [64, 'f2 0f 01 ca', 4, C.FarReturn, K.Erets],
  [64, 'f3 0f 01 ca', 4, C.FarReturn, K.Eretu],
  [64, '0f 01 ca', 3, C.Other, K.Clac],
  [64, '0f 01 cb', 3, C.Other, K.Stac],
  [64, 'c7 f8 10 00 00 00', 6, C.Other, K.Xbegin], // xbegin: not a branch for libipt
  [64, '0f 01 d5', 3, C.Other, K.Xend],
  [64, 'c6 f8 01', 3, C.Other, K.Xabort],
  [64, '0f 01 c9', 3, C.Other, K.Mwait],
  [64, 'f4', 1, C.Other, K.Hlt],
  [64, '0f 0b', 2, C.Other, K.Ud],
  [64, 'c5 f8 77', 3, C.Other, K.None], // vzeroupper (VEX)
  [64, 'd5 00 a1 0d 10 00 00 00 00 00 00', 11, C.Indirect, K.Jmpabs], // APX jmpabs 0x100d
  // 32-bit mode
  [32, 'e8 10 00 00 00', 5, C.Call, K.CallE8, 0x10],
  [32, '66 e8 fd ff', 4, C.Call, K.CallE8, -3], // call rel16
  [32, 'ff d0', 2, C.Call, K.CallFFr2],
  [32, '9a 78 56 34 12 10 00', 7, C.FarCall, K.Call9A], // call 0x10:0x12345678
  [32, 'ff 18', 2, C.FarCall, K.CallFFr3],
  [32, 'ea 78 56 34 12 10 00', 7, C.FarJump, K.JmpEA],
  [32, 'ff 28', 2, C.FarJump, K.JmpFFr5],
  [32, 'ff 20', 2, C.Jump, K.JmpFFr4], // jmp [eax]
  [32, 'e9 00 01 00 00', 5, C.Jump, K.JmpE9, 0x100],
  [32, '0f 84 00 01 00 00', 6, C.CondJump, K.Jcc, 0x100],
  [32, '66 0f 84 00 01', 5, C.CondJump, K.Jcc, 0x100], // jz rel16
  [32, 'e3 fe', 2, C.CondJump, K.JrCXZ, -2], // jecxz
  [32, '67 e3 fe', 3, C.CondJump, K.JrCXZ, -2], // jcxz
  [32, 'ce', 1, C.FarCall, K.Into],
  [32, 'cd 80', 2, C.FarCall, K.Int],
  [32, 'cf', 1, C.FarReturn, K.Iret],
  [32, '0f 34', 2, C.FarCall, K.Sysenter],
  [32, '0f 35', 2, C.FarReturn, K.Sysexit],
  [32, '0f 22 d8', 3, C.Other, K.MovCr3],
  [32, 'c3', 1, C.Return, K.RetC3],
  [32, 'ca 08 00', 3, C.FarReturn, K.RetCA],
  [32, '0f c7 30', 3, C.Other, K.Vmptrld],
  [32, 'f3 0f ae e0', 4, C.Ptwrite, K.Ptwrite],
  [32, 'c5 f8 77', 3, C.Other, K.None], // vzeroupper: VEX, not lds
  [32, 'c5 00', 2, C.Other, K.None], // lds eax, [eax]: not VEX
  // 16-bit mode
  [16, 'e8 fd ff', 3, C.Call, K.CallE8, -3],
  [16, '66 e8 10 00 00 00', 6, C.Call, K.CallE8, 0x10],
  [16, 'ff d0', 2, C.Call, K.CallFFr2], // call ax
  [16, '9a 34 12 00 f0', 5, C.FarCall, K.Call9A], // call 0xf000:0x1234
  [16, 'ea 34 12 00 f0', 5, C.FarJump, K.JmpEA],
  [16, 'eb fe', 2, C.Jump, K.JmpEB, -2],
  [16, 'e9 00 01', 3, C.Jump, K.JmpE9, 0x100],
  [16, '74 05', 2, C.CondJump, K.Jcc, 5],
  [16, 'e3 02', 2, C.CondJump, K.JrCXZ, 2], // jcxz
  [16, 'e2 fe', 2, C.CondJump, K.Loop, -2],
  [16, 'cd 10', 2, C.FarCall, K.Int],
  [16, 'cf', 1, C.FarReturn, K.Iret],
  [16, 'c3', 1, C.Return, K.RetC3],
  [16, 'cb', 1, C.FarReturn, K.RetCB],
  [16, '0f 22 d8', 3, C.Other, K.MovCr3],
];

const MODES: Record<number, ExecMode> = { 16: ExecMode.Bit16, 32: ExecMode.Bit32, 64: ExecMode.Bit64 };

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.split(' ').map((h) => parseInt(h, 16)));
}

/** Decode `hex` placed at `ip`, followed by padding, in a fresh image. */
function decodeOne(mode: 16 | 32 | 64, hex: string, ip = 0x1000): { status: number; insn: InstructionInfo } {
  const code = hexBytes(hex);
  const bytes = new Uint8Array(code.length + 16).fill(0x90);
  bytes.set(code);
  const img = new Image();
  img.add(Section.fromMemory(hex, bytes), ip);
  const insn = new InstructionInfo();
  const status = decodeInstruction(img, ANY_ASID, ip, MODES[mode], insn);
  return { status, insn };
}

describe('classification table', () => {
  for (const [mode, hex, size, cls, kind, disp] of TABLE) {
    it(`${mode}-bit ${hex}: ${insnClassName(cls)}/${K[kind]}`, () => {
      const ip = 0x1000;
      const { status, insn } = decodeOne(mode, hex, ip);
      expect(status).toBe(0);
      expect(insn.size).toBe(size);
      expect(InsnClass[insn.iclass]).toBe(InsnClass[cls]);
      expect(K[insn.kind]).toBe(K[kind]);
      expect(insn.isDirect).toBe(disp !== undefined);
      if (disp !== undefined) {
        expect(insn.displacement).toBe(disp);
        expect(insn.target).toBe(ip + size + disp);
      }
      expect(Array.from(insn.raw())).toEqual(Array.from(hexBytes(hex)));
    });
  }

  it('covers every class in every mode where the class exists', () => {
    for (const mode of [16, 32, 64] as const) {
      const classes = new Set(TABLE.filter((r) => r[0] === mode).map((r) => r[3]));
      for (const c of [C.Other, C.Call, C.Return, C.Jump, C.CondJump, C.FarCall, C.FarReturn, C.FarJump]) {
        expect(classes.has(c), `${mode}-bit ${insnClassName(c)}`).toBe(true);
      }
    }
  });
});

describe('InstructionDecoder', () => {
  it('computes direct targets for kernel addresses', () => {
    const kernel = ipFromHiLo(0xffffffff, 0x81000000);
    const { status, insn } = decodeOne(64, 'e8 00 10 00 00', kernel);
    expect(status).toBe(0);
    expect(insn.target).toBe(ipFromHiLo(0xffffffff, 0x81001005));
    expect(insnNextIp(insn)).toBe(insn.target);
  });

  it('reports NoMap, BadInsn and unknown mode', () => {
    const img = new Image();
    img.addMemory('bad', Uint8Array.from([0x06, ...new Array(20).fill(0x90)]), 0x2000);
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    expect(dec.decode(insn, 0x1000, ExecMode.Bit64, ANY_ASID)).toBe(-ErrorCode.NoMap);
    expect(insn.iclass).toBe(InsnClass.Unknown);
    expect(dec.decode(insn, 0x2000, ExecMode.Bit64, ANY_ASID)).toBe(-ErrorCode.BadInsn); // push es: invalid in 64-bit
    expect(dec.decode(insn, 0x2000, ExecMode.Bit64, ANY_ASID)).toBe(-ErrorCode.BadInsn); // and again from the cache
    expect(dec.decode(insn, 0x2000, ExecMode.Bit32, ANY_ASID)).toBe(0); // valid in 32-bit
    expect(dec.decode(insn, 0x2001, ExecMode.Unknown, ANY_ASID)).toBe(-ErrorCode.BadInsn);
    expect(insnNextIpError(insn)).toBe(-ErrorCode.BadInsn);
    dec.dispose();
  });

  it('reads an instruction across two mappings and marks it truncated (the truncated vector)', () => {
    const dir = '/work/shared/vectors/libipt/truncated';
    const files = new ByteSourceCache();
    const img = new Image();
    img.addFile(files, `${dir}/truncated.bin`, 0, Infinity, 0x1000);
    img.addFile(files, `${dir}/truncated.bin`, 2, Infinity, 0x1002);
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    expect(dec.decode(insn, 0x1000, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.truncated).toBe(false);
    expect(dec.decode(insn, 0x1001, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.truncated).toBe(true);
    expect(insn.kind).toBe(K.JmpEB);
    expect(insn.target).toBe(0x1004); // the next ip in truncated-ptxed.exp
    expect(Array.from(insn.raw())).toEqual([0xeb, 0x01]);
    dec.dispose();
  });

  it('fails when the rest of an instruction is not mapped', () => {
    const img = new Image();
    img.addMemory('half', Uint8Array.from([0x90, 0xe8, 0x10]), 0x1000);
    const insn = new InstructionInfo();
    const dec = new InstructionDecoder(img);
    expect(dec.decode(insn, 0x1001, ExecMode.Bit64, ANY_ASID)).toBe(-ErrorCode.BadInsn);
    // An overlay that completes it makes it decodable.
    img.addMemory('rest', Uint8Array.from([0x00, 0x00, 0x00]), 0x1003);
    expect(dec.decode(insn, 0x1001, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.truncated).toBe(true);
    expect(insn.target).toBe(0x1006 + 0x10);
    dec.dispose();
  });

  it('sees overlays over cached code', () => {
    const img = new Image();
    img.addMemory('orig', Uint8Array.from([0xe8, 0x10, 0, 0, 0, 0x90, 0x90, 0x90]), 0x1000);
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    expect(dec.decode(insn, 0x1000, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.iclass).toBe(InsnClass.Call);
    // Patch the call into a return: the new mapping's bytes are decoded.
    img.addMemory('patch', Uint8Array.from([0xc3]), 0x1000);
    expect(dec.decode(insn, 0x1000, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.iclass).toBe(InsnClass.Return);
    // Patch only the middle: the original call now spans three mappings.
    img.addMemory('orig2', Uint8Array.from([0xe8, 0x10, 0, 0, 0]), 0x2000);
    expect(dec.decode(insn, 0x2000, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.target).toBe(0x2015);
    img.addMemory('mid', Uint8Array.from([0x20]), 0x2001);
    expect(dec.decode(insn, 0x2000, ExecMode.Bit64, ANY_ASID)).toBe(0);
    expect(insn.truncated).toBe(true);
    expect(insn.target).toBe(0x2025);
    dec.dispose();
  });

  it('decodes per address space', () => {
    const img = new Image();
    img.addMemory('a', Uint8Array.from([0xc3, 0x90]), 0x1000, new Asid(0x1000));
    img.addMemory('b', Uint8Array.from([0xcc, 0x90]), 0x1000, new Asid(0x2000));
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    expect(dec.decode(insn, 0x1000, ExecMode.Bit64, new Asid(0x1000))).toBe(0);
    expect(insn.iclass).toBe(InsnClass.Return);
    expect(dec.decode(insn, 0x1000, ExecMode.Bit64, new Asid(0x2000))).toBe(0);
    expect(insn.kind).toBe(K.Int3);
    expect(dec.decode(insn, 0x1000, ExecMode.Bit64, new Asid(0x3000))).toBe(-ErrorCode.NoMap);
    dec.dispose();
  });

  it('answers the libipt predicates', () => {
    const check = (mode: 16 | 32 | 64, hex: string) => {
      const { insn } = decodeOne(mode, hex);
      return [insnChangesCpl(insn), insnChangesCr3(insn), insnBindsToPip(insn), insnBindsToVmcs(insn)];
    };
    expect(check(64, '0f 05')).toEqual([true, false, true, true]); // syscall: far branch
    expect(check(64, '0f 22 d8')).toEqual([false, true, true, false]); // mov cr3
    expect(check(64, '0f 01 c2')).toEqual([false, false, true, true]); // vmlaunch
    expect(check(64, '0f c7 30')).toEqual([false, false, false, true]); // vmptrld
    expect(check(64, 'c3')).toEqual([false, false, false, false]);
    const { insn } = decodeOne(64, 'ff e0');
    expect(Number.isNaN(insnNextIp(insn))).toBe(true);
    expect(insnNextIpError(insn)).toBe(-ErrorCode.BadQuery);
  });

  it('disassembles in lower-case Intel syntax', () => {
    const img = new Image();
    img.addMemory('d', hexBytes('e8 10 00 00 00 48 8b 43 08 d5 00 a1 0d 10 00 00 00 00 00 00 90'), 0x401000);
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    const lines: string[] = [];
    for (let ip = 0x401000; ip < 0x401015; ip += insn.size) {
      expect(dec.decode(insn, ip, ExecMode.Bit64, ANY_ASID)).toBe(0);
      lines.push(dec.disassemble(insn));
    }
    expect(lines).toEqual(['call 0x401015', 'mov rax, qword ptr [rbx+0x8]', 'jmpabs 0x100d', 'nop']);
    dec.dispose();
  });

  it('decodes the mruby image linearly, the cache agreeing with iced (and reports the speed)', () => {
    const path = '/work/shared/traces/real/mruby/seg_400000.bin';
    const size = readFileSync(path).length;
    const files = new ByteSourceCache();
    const img = new Image();
    img.addFile(files, path, 0, Infinity, 0x400000);
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    const ips: number[] = [];
    const packed: number[] = [];
    let t = performance.now();
    for (let ip = 0x400000; ip < 0x400000 + size; ) {
      if (dec.decode(insn, ip, ExecMode.Bit64, ANY_ASID) < 0) {
        ip++;
        continue;
      }
      ips.push(ip);
      packed.push(insn.size | (insn.iclass << 4) | (insn.kind << 8), insn.target);
      ip += insn.size;
    }
    const firstMs = performance.now() - t;
    // Decoding again hits the cache and must give the same answers.
    const ipArr = Float64Array.from(ips);
    let hitMs = Infinity;
    for (let pass = 0; pass < 5; pass++) {
      t = performance.now();
      for (let i = 0; i < ipArr.length; i++) dec.decode(insn, ipArr[i], ExecMode.Bit64, ANY_ASID);
      hitMs = Math.min(hitMs, performance.now() - t);
    }
    let mismatches = 0;
    for (let i = 0; i < ipArr.length; i++) {
      dec.decode(insn, ipArr[i], ExecMode.Bit64, ANY_ASID);
      if ((insn.size | (insn.iclass << 4) | (insn.kind << 8)) !== packed[2 * i]) mismatches++;
      if (insn.target !== packed[2 * i + 1]) mismatches++;
    }
    expect(mismatches).toBe(0);
    // A fresh decoder (no cache) decoding out of order agrees with the cached one.
    const fresh = new InstructionDecoder(img);
    for (let i = ipArr.length - 1; i >= 0; i -= 7) {
      fresh.decode(insn, ipArr[i], ExecMode.Bit64, ANY_ASID);
      if ((insn.size | (insn.iclass << 4) | (insn.kind << 8)) !== packed[2 * i]) mismatches++;
    }
    expect(mismatches).toBe(0);
    fresh.dispose();
    const n = ipArr.length;
    console.log(
      `mruby linear decode: ${n} insns; first pass ${((n / firstMs) * 1e3 / 1e6).toFixed(1)} M/s, ` +
        `cached ${((n / hitMs) * 1e3 / 1e6).toFixed(1)} M/s`,
    );
    expect(n).toBeGreaterThan(200000);
    dec.dispose();
  });
});

describe('differential against objdump (binutils) on real code', () => {
  it('agrees on length, direct targets and returns over the mruby image', () => {
    const path = '/work/shared/traces/real/mruby/seg_400000.bin';
    const listing = execFileSync(
      'objdump',
      ['-D', '-b', 'binary', '-m', 'i386:x86-64', '-M', 'intel', '--adjust-vma=0x400000', path],
      { encoding: 'utf8', maxBuffer: 256 << 20 },
    );
    // objdump's linear sweep: "  addr:\tbytes\tmnemonic", long encodings continue on
    // lines without a mnemonic.
    const od: { ip: number; len: number; text: string }[] = [];
    for (const line of listing.split('\n')) {
      let m = /^\s+([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$/.exec(line);
      if (m) {
        od.push({ ip: parseInt(m[1], 16), len: m[2].trim().split(' ').length, text: m[3] });
        continue;
      }
      m = /^\s+([0-9a-f]+):\t([0-9a-f ]+?)\s*$/.exec(line);
      if (m && od.length > 0) od[od.length - 1].len += m[2].trim().split(' ').length;
    }
    const files = new ByteSourceCache();
    const img = new Image();
    img.addFile(files, path, 0, Infinity, 0x400000);
    const dec = new InstructionDecoder(img);
    const insn = new InstructionInfo();
    let compared = 0;
    let branches = 0;
    const mismatches: string[] = [];
    for (const o of od) {
      // Skip what objdump itself cannot decode or prints with a '?' operand
      // (mov to a segment register that does not exist), lone prefixes it
      // prints as instructions, and lock-prefixed branches (#UD).
      if (/\(bad\)|\?|^rex|^data16|^lock /.test(o.text)) continue;
      if (dec.decode(insn, o.ip, ExecMode.Bit64, ANY_ASID) < 0) {
        mismatches.push(`${o.ip.toString(16)}: ${o.text}: not decoded`);
        continue;
      }
      compared++;
      // objdump folds fwait (9b) into the x87 instruction after it; XED and
      // libipt's length decoder take 9b alone, as iced does.
      if (insn.byte(0) === 0x9b && insn.size === 1 && /^f/.test(o.text)) continue;
      if (insn.size !== o.len) mismatches.push(`${o.ip.toString(16)}: ${o.text}: size ${insn.size} vs ${o.len}`);
      const text = o.text.replace(/^(bnd|notrack) /, '');
      const br = /^(call|jmp|j[a-z]+|loop[a-z]*)\s+0x([0-9a-f]+)$/.exec(text);
      if (br) {
        branches++;
        if (!insn.isDirect || insn.target !== ipFromBigInt(BigInt('0x' + br[2]))) {
          mismatches.push(`${o.ip.toString(16)}: ${o.text}: target ${insn.target.toString(16)}`);
        }
      }
      const isRet = /^(repz )?ret\b/.test(text);
      if (isRet !== (insn.iclass === InsnClass.Return)) mismatches.push(`${o.ip.toString(16)}: ${o.text}: class ${insn.iclass}`);
      const far = /FWORD PTR|TBYTE PTR/.test(text);
      const isCall = /^call\b/.test(text);
      if (isCall && !far) {
        if (insn.iclass !== InsnClass.Call) mismatches.push(`${o.ip.toString(16)}: ${o.text}: class ${insn.iclass}`);
      } else if (isCall) {
        if (insn.iclass !== InsnClass.FarCall) mismatches.push(`${o.ip.toString(16)}: ${o.text}: class ${insn.iclass}`);
      } else if (insn.iclass === InsnClass.Call) {
        mismatches.push(`${o.ip.toString(16)}: ${o.text}: class ${insn.iclass}`);
      }
    }
    dec.dispose();
    expect(mismatches.slice(0, 20)).toEqual([]);
    expect(compared).toBeGreaterThan(200000);
    expect(branches).toBeGreaterThan(25000);
  });
});
