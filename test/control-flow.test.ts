import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errataFor, parseCpu } from '../src/packets/cpu.js';
import { defaultConfig } from '../src/packets/config.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { ANY_ASID } from '../src/flow/address-space.js';
import { ControlFlowWalker, GapKind, TransferKind, type FlowConsumer } from '../src/flow/control-flow.js';
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
