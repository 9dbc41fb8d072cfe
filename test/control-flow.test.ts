import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errataFor, parseCpu } from '../src/packets/cpu.js';
import { defaultConfig } from '../src/packets/config.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { ANY_ASID } from '../src/flow/address-space.js';
import { ControlFlowWalker, GapKind, TransferKind, type FlowConsumer } from '../src/flow/control-flow.js';
import type { PtEvent } from '../src/events/event.js';
import { Image } from '../src/flow/image.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { ByteSourceCache } from '../src/flow/section.js';
import { REAL_TRACES } from './helpers/vectors.js';

function decoderFor(name: string): InsnDecoder {
  const dir = join(REAL_TRACES, name);
  const manifest = JSON.parse(readFileSync(join(REAL_TRACES, 'MANIFEST.json'), 'utf8')) as {
    name: string;
    images: { file: string; address: string }[];
  }[];
  const c = manifest.find((m) => m.name === name)!;
  const image = new Image();
  const files = new ByteSourceCache();
  for (const img of c.images) {
    expect(image.addFile(files, join(dir, img.file), 0, Infinity, Number(img.address), ANY_ASID)).toBeGreaterThanOrEqual(0);
  }
  const config = defaultConfig();
  config.cpu = parseCpu('6/158')!;
  const errata = errataFor(config.cpu);
  if (typeof errata !== 'number') config.errata = errata;
  const packets = new PacketDecoder(new Uint8Array(readFileSync(join(dir, 'trace.pt'))), { skd007: config.errata.skd007 });
  return new InsnDecoder(packets, config, image);
}

/** Counts transfers by kind and checks their internal consistency. */
class Recorder implements FlowConsumer {
  readonly byKind = new Map<TransferKind, number>();
  instructions = 0;
  insnsInTransfers = 0;
  gaps = 0;
  errors = 0;
  notTakenMismatch = 0;
  onTransfer(kind: TransferKind, from: number, to: number, size: number, insnsBefore: number): void {
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
    this.insnsInTransfers += insnsBefore;
    if (kind === TransferKind.CondNotTaken && to !== from + size) this.notTakenMismatch++;
  }
  onInstruction(): void {
    this.instructions++;
  }
  onGap(kind: GapKind): void {
    if (kind !== GapKind.Error) this.gaps++;
  }
  onError(): void {
    this.errors++;
  }
}

describe('control-flow walker', () => {
  it('walks the unzip trace: every instruction, transfers of each kind, no errors', () => {
    const rec = new Recorder();
    const stats = new ControlFlowWalker(decoderFor('unzip'), [rec]).run();
    expect(stats.instructions).toBe(149576);
    expect(rec.instructions).toBe(149576);
    expect(stats.errors).toBe(0);
    expect(rec.errors).toBe(0);
    expect(rec.notTakenMismatch).toBe(0);
    for (const k of [TransferKind.DirectCall, TransferKind.Return, TransferKind.CondTaken, TransferKind.CondNotTaken]) {
      expect(rec.byKind.get(k) ?? 0).toBeGreaterThan(100);
    }
    // Every instruction but those after the last transfer belongs to one.
    expect(rec.insnsInTransfers).toBeLessThanOrEqual(rec.instructions);
    expect(rec.insnsInTransfers).toBeGreaterThan(rec.instructions * 0.9);
    // The IP filter (0x400000-0x427000) disables tracing on calls into libc.
    expect(rec.gaps).toBeGreaterThan(0);
  });

  it('reports decode errors and keeps going on dyn_test', () => {
    const rec = new Recorder();
    const stats = new ControlFlowWalker(decoderFor('dyn_test'), [rec]).run();
    expect(stats.errors).toBeGreaterThan(5);
    expect(rec.errors).toBe(stats.errors);
    expect(stats.instructions).toBe(870);
  });
});

/**
 * Every callback but onInstruction, in order, as numbers: what the walker
 * must deliver identically whether it reads instructions or blocks. Kept
 * as a list (small traces) or folded into a hash (large ones).
 */
class Transcript implements FlowConsumer {
  readonly items: number[] = [];
  hash = 0x811c9dc5;
  count = 0;
  constructor(private readonly keep: boolean) {}
  private put(...xs: number[]): void {
    this.count++;
    for (const x of xs) {
      if (this.keep) this.items.push(x);
      // FNV-1a over the value's decimal digits (NaN included).
      const t = String(x);
      for (let i = 0; i < t.length; i++) this.hash = Math.imul(this.hash ^ t.charCodeAt(i), 0x01000193) >>> 0;
      this.hash = Math.imul(this.hash ^ 0x2c, 0x01000193) >>> 0;
    }
  }
  onTransfer(kind: TransferKind, from: number, to: number, size: number, insnsBefore: number, cr3: number): void {
    this.put(1, kind, from, to, size, insnsBefore, cr3);
  }
  onEvent(ev: PtEvent): void {
    this.put(2, ev.type, ev.ip, ev.at, ev.ipSuppressed ? 1 : 0, ev.statusUpdate ? 1 : 0);
  }
  onGap(kind: GapKind, offset: number): void {
    this.put(3, kind, offset);
  }
  onError(code: number, offset: number, ip: number): void {
    this.put(4, code, offset, ip);
  }
  onEnd(): void {
    this.put(5);
  }
}

describe('control-flow walker: blocks and instructions give the same stream', () => {
  for (const name of ['unzip', 'dyn_test', 'mruby']) {
    it(`${name}: identical callbacks and counts in both modes`, { timeout: 120_000 }, () => {
      const keep = name !== 'mruby';
      const byInsn = new Transcript(keep);
      const byBlock = new Transcript(keep);
      const a = new ControlFlowWalker(decoderFor(name), [byInsn]).run('insn');
      const b = new ControlFlowWalker(decoderFor(name), [byBlock]).run('block');
      expect(b).toEqual(a);
      expect(a.instructions).toBeGreaterThan(0);
      expect(a.transfers).toBeGreaterThan(0);
      expect(byBlock.count).toBe(byInsn.count);
      if (keep) expect(byBlock.items).toEqual(byInsn.items);
      expect(byBlock.hash).toBe(byInsn.hash);
    });
  }

  it('chooses blocks only when no consumer wants every instruction', () => {
    const rec = new Recorder();
    const t = new Transcript(true);
    // With onInstruction (Recorder) it walks instructions; the counts still agree.
    const withInsn = new ControlFlowWalker(decoderFor('unzip'), [rec, t]).run();
    const t2 = new Transcript(true);
    const auto = new ControlFlowWalker(decoderFor('unzip'), [t2]).run();
    expect(rec.instructions).toBe(withInsn.instructions);
    expect(auto).toEqual(withInsn);
    expect(t2.items).toEqual(t.items);
  });
});
