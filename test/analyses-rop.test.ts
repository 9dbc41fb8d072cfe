import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TransferKind as K } from '../src/flow/control-flow.js';
import { EventType, PtEvent } from '../src/events/event.js';
import { Image } from '../src/flow/image.js';
import { CodeFacts } from '../src/analyses/code-facts.js';
import type { DetectorContext } from '../src/analyses/detector-base.js';
import { EvidenceBuilder } from '../src/analyses/evidence.js';
import { ModuleMap } from '../src/analyses/modules.js';
import { RopDetector } from '../src/analyses/rop.js';

/**
 * Code assembled with nasm at 0x10000:
 *   caller: call func ; (return site, call-preceded)
 *   func:   ret
 *   g1: pop rax ; ret       g2: pop rdi ; ret     g3: pop rsi ; ret
 *   g4: pop rdx ; ret       g5: syscall ; ret     tramp: mov eax, 15 ; syscall
 */
const BASE = 0x10000;
const SOURCE = `bits 64
org ${BASE}
caller: call func
after:  nop
        nop
func:   ret
g1: pop rax
    ret
g2: pop rdi
    ret
g3: pop rsi
    ret
g4: pop rdx
    ret
g5: syscall
    ret
tramp: mov eax, 15
    syscall
`;

function assemble(): { image: Image; labels: Record<string, number> } {
  const dir = mkdtempSync(join(tmpdir(), 'ptscope-rop-'));
  writeFileSync(join(dir, 'g.asm'), SOURCE);
  execFileSync('nasm', ['-f', 'bin', '-o', join(dir, 'g.bin'), '-l', join(dir, 'g.lst'), join(dir, 'g.asm')]);
  const bytes = new Uint8Array(readFileSync(join(dir, 'g.bin')));
  const image = new Image();
  image.addMemory('gadgets', bytes, BASE);
  // Offsets from the listing: label lines are followed by their instruction.
  const labels: Record<string, number> = {};
  for (const line of readFileSync(join(dir, 'g.lst'), 'utf8').split('\n')) {
    const m = /^\s*\d+\s+([0-9A-F]{8})\s+[0-9A-F]+\s+(\w+):/.exec(line);
    if (m) labels[m[2]] = BASE + parseInt(m[1], 16);
  }
  return { image, labels };
}

function context(image: Image): DetectorContext {
  const modules = new ModuleMap();
  const facts = new CodeFacts(image);
  return { image, modules, facts, evidence: new EvidenceBuilder(facts, modules), thread: { pid: null, tid: null }, offset: () => 42, params: {}, policyFile: null, monitor: [], openTrace: null, config: null };
}

describe('rop detector', () => {
  const { image, labels: L } = assemble();

  it('knows call-preceded return sites from the code', () => {
    const facts = new CodeFacts(image);
    expect(facts.isCallPreceded(L.after)).toBe(1);
    expect(facts.isCallPreceded(L.g2)).toBe(0);
    expect(facts.isCallPreceded(0x99999)).toBe(-1);
    expect(facts.isSigreturnTrampoline(L.tramp)).toBe(true);
    expect(facts.isSigreturnTrampoline(L.g5)).toBe(false);
  });

  it('ignores returns to call-preceded sites', () => {
    const d = new RopDetector(context(image));
    for (let i = 0; i < 50; i++) {
      d.onTransfer(K.DirectCall, L.caller, L.func, 5, 3, NaN);
      d.onTransfer(K.Return, L.func, L.after, 1, 1, NaN);
    }
    expect(d.findings()).toHaveLength(0);
  });

  it('flags a chain of short gadgets reached by returns, with the gadgets as evidence', () => {
    const d = new RopDetector(context(image));
    d.onTransfer(K.Return, L.func, L.g1, 1, 4, NaN);
    d.onTransfer(K.Return, L.g1 + 1, L.g2, 1, 2, NaN);
    d.onTransfer(K.Return, L.g2 + 1, L.g3, 1, 2, NaN);
    d.onTransfer(K.Return, L.g3 + 1, L.g4, 1, 2, NaN);
    const f = d.findings();
    expect(f.length).toBeGreaterThanOrEqual(1);
    expect(f[0].kind).toBe('rop-chain');
    expect(f[0].chain?.[0].insns.map((i) => i.text)).toEqual(['pop rax', 'ret']);
    expect(f[0].transfer?.target[0].text).toBe('pop rdi');
  });

  it('flags SROP: a syscall gadget reached by a return that resumes elsewhere', () => {
    const d = new RopDetector(context(image));
    d.onTransfer(K.Return, L.func, L.g1, 1, 4, NaN);
    d.onTransfer(K.Return, L.g1 + 1, L.g5, 1, 2, NaN);
    d.onTransfer(K.FarCall, L.g5, NaN, 2, 1, NaN);
    const en = new PtEvent();
    en.type = EventType.Enabled;
    en.ip = 0x12345;
    d.onEvent(en);
    const srop = d.findings().filter((f) => f.kind === 'srop');
    expect(srop).toHaveLength(1);
    expect(srop[0].details.resumedAt).toBe('0x12345');
  });

  it('does not flag a signal handler returning into a sigreturn trampoline', () => {
    const d = new RopDetector(context(image));
    // The signal: tracing stops at 0x10000 and resumes in the handler.
    const stop = new PtEvent();
    stop.type = EventType.AsyncDisabled;
    stop.at = 0x10000;
    d.onEvent(stop);
    const handler = new PtEvent();
    handler.type = EventType.Enabled;
    handler.ip = 0x20000;
    d.onEvent(handler);
    d.onTransfer(K.Return, 0x20000, L.tramp, 1, 9, NaN);
    d.onTransfer(K.FarCall, L.tramp + 5, NaN, 2, 2, NaN);
    const en = new PtEvent();
    en.type = EventType.Enabled;
    en.ip = 0x30000;
    d.onEvent(en);
    d.onTransfer(K.Return, 0x30010, L.g1, 1, 9, NaN); // one stray violation is not a chain
    expect(d.findings()).toHaveLength(0);
  });

  it('flags a return into the sigreturn trampoline that no signal delivery prepared (SROP)', () => {
    const d = new RopDetector(context(image));
    d.onTransfer(K.Return, L.func, L.g1, 1, 4, NaN);
    d.onTransfer(K.Return, L.g1 + 1, L.tramp, 1, 2, NaN);
    d.onTransfer(K.FarCall, L.tramp + 5, NaN, 2, 2, NaN);
    const en = new PtEvent();
    en.type = EventType.Enabled;
    en.ip = 0x30000;
    d.onEvent(en);
    expect(d.findings().map((f) => f.kind)).toContain('srop');
  });

  it('a long gadget breaks the chain', () => {
    const d = new RopDetector(context(image));
    d.onTransfer(K.Return, L.func, L.g1, 1, 4, NaN);
    d.onTransfer(K.Return, L.g1 + 1, L.g2, 1, 500, NaN); // 500 instructions: not a gadget
    for (let i = 0; i < 20; i++) {
      d.onTransfer(K.DirectCall, L.caller, L.func, 5, 30, NaN);
      d.onTransfer(K.Return, L.func, L.after, 1, 30, NaN);
    }
    expect(d.findings().filter((f) => f.kind === 'rop-chain' && f.chain!.length >= 4)).toHaveLength(0);
  });
});
