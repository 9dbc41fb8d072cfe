/**
 * A quiet piece of `flow --jobs` decodes the steps of a block that needs no
 * record in a loop of their own (InsnStep.quietRest). Decoding with every
 * step unrecorded must give what the serial loop gives, step for step:
 * the counts, the diagnostics and where they are printed, on traces with
 * errors everywhere (random byte flips), with and without resync.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeFlow, type FlowPrintOptions } from '../src/cli/flow-decode.js';
import { LineWriter } from '../src/cli/output.js';
import { defaultConfig } from '../src/packets/config.js';
import { errataFor, parseCpu } from '../src/packets/cpu.js';
import { PacketDecoder } from '../src/packets/decoder.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { rawImage, type RawImages } from '../bench/flow-count.js';
import { Rng } from '../bench/synthetic-trace.js';
import { REAL_TRACES, realTraces } from './helpers/vectors.js';

function decode(trace: Uint8Array, images: RawImages, resync: boolean, allBody: boolean): { text: string; counts: unknown } {
  const config = defaultConfig();
  const cpu = parseCpu('6/158')!;
  config.cpu = cpu;
  const errata = errataFor(cpu);
  if (typeof errata !== 'number') config.errata = errata;
  const dec = new InsnDecoder(new PacketDecoder(trace, { skd007: config.errata.skd007 }), config, rawImage(images));
  const opts: FlowPrintOptions = { fmt: { eventIp: false, eventTime: false, offset: false }, noInst: false, quiet: true, time: false, rawInsn: false, check: false, showBlocks: false, resync, json: false, stat: true, att: false };
  const out = new DigestWriter();
  const piece = allBody ? { base: 0, record: () => {}, unrecorded: () => true } : null;
  const counts = decodeFlow({ kind: 'insn', dec }, opts, out, null, piece);
  return { text: `${out.lines} lines, sha256 ${out.hash.digest('hex')}`, counts };
}

/** The printed lines as a count and a digest (a trace with errors everywhere prints many). */
class DigestWriter extends LineWriter {
  readonly hash = createHash('sha256');
  lines = 0;

  constructor() {
    super(null);
  }

  override line(text: string): void {
    this.hash.update(text + '\n');
    this.lines++;
  }
}

describe('quiet steps in a loop of their own', () => {
  it.each(realTraces().map((t) => t.name))('%s, mutated: the serial counts and diagnostics', (name) => {
    const t = realTraces().find((r) => r.name === name)!;
    const clean = new Uint8Array(readFileSync(join(REAL_TRACES, t.name, t.pt)));
    const images = t.images.map((i) => ({ file: join(REAL_TRACES, t.name, i.file), address: Number(i.address) }));
    let errors = 0;
    for (let seed = 1; seed <= 3; seed++) {
      const rng = new Rng(seed);
      const trace = clean.slice();
      // A flip every 8 KiB or so: errors in the middle of long runs of steps.
      for (let at = rng.int(8192); at < trace.length; at += 1 + rng.int(16384)) trace[at] ^= 1 << rng.int(8);
      for (const resync of [false, true]) {
        const serial = decode(trace, images, resync, false);
        const body = decode(trace, images, resync, true);
        expect(body).toEqual(serial);
        errors += (serial.counts as { errors: number }).errors;
      }
    }
    // The traces did have errors to diagnose.
    expect(errors).toBeGreaterThanOrEqual(6);
  }, 120_000);
});
