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

describe('EventQueue: one queue, bindings as bit sets (libipt pt_event_queue)', () => {
  it('takes the oldest event for a binding from the middle and keeps the others in order', () => {
    const q = new EventQueue();
    const types = [EventType.ExecMode, EventType.Ptwrite, EventType.Tsx, EventType.Exstop];
    const bindings = [Binding.Tip, Binding.FupBound, Binding.Fup, Binding.FupBound];
    for (let i = 0; i < types.length; i++) q.enqueue(bindings[i]!)!.type = types[i]!;
    expect(q.isEmpty(Binding.FupBound)).toBe(false);
    expect(q.isEmpty(Binding.Psbend)).toBe(true);
    // The first event that binds to a FUP of either kind is the PTWRITE.
    expect(q.dequeue(Binding.Fup | Binding.FupBound)!.type).toBe(EventType.Ptwrite);
    expect(q.peek(Binding.Tip | Binding.Fup)!.type).toBe(EventType.ExecMode);
    expect(q.dequeue(Binding.Tip | Binding.Fup | Binding.FupBound)!.type).toBe(EventType.ExecMode);
    expect(q.dequeue(Binding.FupBound)!.type).toBe(EventType.Exstop);
    expect(q.dequeue(Binding.Fup)!.type).toBe(EventType.Tsx);
    expect(q.dequeue(Binding.Fup)).toBeNull();
  });

  it('holds 14 events (one slot stays free), and a requeued event is a copy', () => {
    const q = new EventQueue();
    for (let i = 0; i < 14; i++) expect(q.enqueue(Binding.Tip)).not.toBeNull();
    expect(q.enqueue(Binding.Tip)).toBeNull();
    const q2 = new EventQueue();
    const ev = q2.standalone();
    ev.type = EventType.Interrupt;
    ev.vector = 14;
    const copy = q2.requeue(ev, Binding.Fup)!;
    expect(copy).not.toBe(ev);
    expect([copy.type, copy.vector]).toEqual([EventType.Interrupt, 14]);
  });
});
