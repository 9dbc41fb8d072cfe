import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/packets/errors.js';
import { TntCache } from '../src/events/tnt-cache.js';
import { EventQueue, Binding } from '../src/events/event-queue.js';
import { EventType } from '../src/events/event.js';
import { ReturnStack, RETSTACK_DEPTH } from '../src/flow/return-stack.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFlowCommand } from '../src/cli/flow.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { ANY_ASID } from '../src/flow/address-space.js';
import { Image } from '../src/flow/image.js';
import { checkBlock, checkInsn } from '../src/flow/insn-check.js';
import { decodeInstruction } from '../src/flow/instruction-decoder.js';
import { ExecMode, InsnClass, InstructionInfo } from '../src/flow/instruction.js';
import { VECTORS } from './helpers/vectors.js';

describe('TntCache', () => {
  it('returns bits oldest first and reports empty', () => {
    const c = new TntCache();
    expect(c.query()).toBe(-ErrorCode.BadQuery);
    // 3 bits: taken, not taken, taken (oldest is the most significant).
    expect(c.add(0b101, 3)).toBe(0);
    expect(c.add(1, 1)).toBe(-ErrorCode.BadContext);
    expect([c.query(), c.query(), c.query()]).toEqual([1, 0, 1]);
    expect(c.isEmpty()).toBe(true);
  });

  it('holds the 47 bits of a TNT-64 exactly', () => {
    const c = new TntCache();
    const bits = 2 ** 46 + 1; // first and last taken
    c.add(bits, 47);
    const got: number[] = [];
    while (!c.isEmpty()) got.push(c.query());
    expect(got.length).toBe(47);
    expect(got[0]).toBe(1);
    expect(got[46]).toBe(1);
    expect(got.slice(1, 46).every((b) => b === 0)).toBe(true);
  });
});

describe('ReturnStack', () => {
  it('pops in reverse order and fails when empty', () => {
    const s = new ReturnStack();
    s.push(0x1000);
    s.push(-0x7f000000); // a kernel address
    expect(s.pop()).toBe(0);
    expect(s.ip).toBe(-0x7f000000);
    expect(s.pop()).toBe(0);
    expect(s.ip).toBe(0x1000);
    expect(s.pop()).toBe(-ErrorCode.RetstackEmpty);
  });

  it('keeps the newest 64 entries when it overflows', () => {
    const s = new ReturnStack();
    for (let i = 0; i < RETSTACK_DEPTH + 10; i++) s.push(i);
    const popped: number[] = [];
    while (s.pop() === 0) popped.push(s.ip);
    expect(popped.length).toBe(RETSTACK_DEPTH);
    expect(popped[0]).toBe(RETSTACK_DEPTH + 9);
    expect(popped[RETSTACK_DEPTH - 1]).toBe(10);
  });
});

describe('EventQueue', () => {
  it('is a FIFO per binding with find and clearing slots', () => {
    const q = new EventQueue();
    const a = q.enqueue(Binding.Tip)!;
    a.type = EventType.AsyncBranch;
    a.at = 5;
    const b = q.enqueue(Binding.Tip)!;
    b.type = EventType.ExecMode;
    expect(q.isEmpty(Binding.Fup)).toBe(true);
    expect(q.find(Binding.Tip, EventType.ExecMode)).toBe(b);
    expect(q.dequeue(Binding.Tip)).toBe(a);
    expect(q.dequeue(Binding.Tip)).toBe(b);
    expect(q.dequeue(Binding.Tip)).toBeNull();
    const c = q.enqueue(Binding.Tip)!;
    expect(c.at).toBe(0);
  });
});

describe('EventQueue.findBound', () => {
  it('tells events that bind their FUP from those that only take its IP', () => {
    const q = new EventQueue();
    const intr = q.enqueue(Binding.Fup)!;
    intr.type = EventType.Interrupt;
    intr.fupUnbound = true;
    expect(q.findBound(Binding.Fup)).toBe(false);
    const ptw = q.enqueue(Binding.Fup)!;
    ptw.type = EventType.Ptwrite;
    expect(q.findBound(Binding.Fup)).toBe(true);
    q.dequeue(Binding.Fup);
    q.dequeue(Binding.Fup);
    // Slots are cleared when reused.
    expect(q.enqueue(Binding.Fup)!.fupUnbound).toBe(false);
  });
});

describe('--check (ptxed consistency check)', () => {
  const image = new Image();
  // 0x1000: call rel32 (e8 00 00 00 00); 0x1005: nop; 0x1006: ret
  image.addMemory('code', Uint8Array.from([0xe8, 0, 0, 0, 0, 0x90, 0xc3]), 0x1000, ANY_ASID, 1);

  function decodeAt(ip: number): InstructionInfo {
    const insn = new InstructionInfo();
    expect(decodeInstruction(image, ANY_ASID, ip, ExecMode.Bit64, insn)).toBe(0);
    return insn;
  }

  it('accepts what the flow decoder reports', () => {
    const lines: string[] = [];
    for (const ip of [0x1000, 0x1005, 0x1006]) checkInsn(decodeAt(ip), 0x20, lines);
    expect(lines).toEqual([]);
  });

  it('reports a class the disassembler disagrees with, and a missing section id', () => {
    const insn = decodeAt(0x1006);
    insn.iclass = InsnClass.CondJump;
    insn.isid = 0;
    const lines: string[] = [];
    checkInsn(insn, 0x20, lines);
    expect(lines).toEqual([
      '[20, 1006: check error: bad isid]',
      '[20, 1006: iclass error: iclass: cond jump, decoder iclass: ret]',
    ]);
  });

  it('walks a block and reports a gap between its instructions', () => {
    const ips = Float64Array.from([0x1000, 0x1005, 0x1006]);
    const block = { ips, ninsn: 3, endIp: 0x1006, mode: ExecMode.Bit64, iclass: InsnClass.Return, isid: 1 };
    const fetch = (ip: number): InstructionInfo | null => decodeAt(ip);
    const ok: string[] = [];
    checkBlock(block, 0x30, fetch, ok);
    // The call to the next instruction (displacement 0) stays in the block.
    expect(ok).toEqual([]);
    const gap: string[] = [];
    checkBlock({ ...block, ips: Float64Array.from([0x1000, 0x1006]), ninsn: 2 }, 0x30, fetch, gap);
    expect(gap).toEqual(['[30, 1000: error: did not reach end: 1006]']);
  });
});

describe('ptscope flow input handling', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptscope-flow-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const vector = join(VECTORS, 'ptxed-resync-nomap-fup-tip', 'ptxed-resync-nomap-fup-tip.pt');

  function run(argv: string[]): { text: string; error?: CliError } {
    const out = new LineWriter(null);
    try {
      runFlowCommand(argv, out);
    } catch (e) {
      if (!(e instanceof CliError)) throw e;
      out.flush();
      return { text: out.text, error: e };
    }
    out.flush();
    return { text: out.text };
  }

  it('rejects a missing, empty or non-PT trace with one line and exit status 2', () => {
    const empty = join(dir, 'empty.pt');
    writeFileSync(empty, new Uint8Array(0));
    const noise = join(dir, 'noise.pt');
    writeFileSync(noise, Uint8Array.from({ length: 4096 }, (_, i) => (i * 37 + 11) & 0xfe));
    for (const [file, message] of [
      [join(dir, 'missing.pt'), /cannot open .*missing\.pt: no such file/],
      [empty, /empty\.pt is empty: not an Intel PT trace/],
      [noise, /no PSB found in .*noise\.pt \(0x1000 bytes\): not an Intel PT trace/],
    ] as const) {
      const r = run(['--pt', file]);
      expect(r.error?.message).toMatch(message);
      expect(r.error?.message).not.toContain('\n');
      expect(r.error?.exitCode).toBe(2);
      expect(r.text).toBe('');
    }
  });

  it('decodes without an image: libipt-style nomap errors, then resync', () => {
    const r = run(['--insn-decoder', '--resync-on-error', '--event:ip', '--pt', vector]);
    expect(r.error).toBeUndefined();
    expect(r.text.split('\n').filter((l) => l)).toEqual([
      '[1e, 100000: error: no memory mapped at this address]',
      '[interrupt, from: 0000000000100200, to: 0000000000100300]',
      '[24, 100300: error: no memory mapped at this address]',
      '[interrupt, from: 0000000000100400, to: 0000000000100006]',
      '[2a, 100006: error: no memory mapped at this address]',
      // The asynchronous disable gives the next IP: it is reported there.
      '[disabled, at: 0000000000100007]',
    ]);
  });

  it('falls back to the next PSB without --resync-on-error', () => {
    const r = run(['--block-decoder', '--pt', vector]);
    expect(r.error).toBeUndefined();
    expect(r.text.split('\n').filter((l) => l)).toEqual(['[1e, 100000: error: no memory mapped at this address]']);
  });
});
