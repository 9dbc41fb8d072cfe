/**
 * Quiet steps of a block go in a loop of their own (InsnStep.quietRest):
 * serially under --quiet, and in a quiet piece of `flow --jobs` for a block
 * that needs no record. Either must give what one step at a time gives
 * (a piece that records every step, which never takes that loop): the
 * counts, the diagnostics and where they are printed, on traces with
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

type Steps = 'serial' | 'all-unrecorded' | 'all-recorded';

function decode(trace: Uint8Array, images: RawImages, resync: boolean, steps: Steps): { text: string; counts: unknown } {
  const config = defaultConfig();
  const cpu = parseCpu('6/158')!;
  config.cpu = cpu;
  const errata = errataFor(cpu);
  if (typeof errata !== 'number') config.errata = errata;
  const dec = new InsnDecoder(new PacketDecoder(trace, { skd007: config.errata.skd007 }), config, rawImage(images));
  const opts: FlowPrintOptions = { fmt: { eventIp: false, eventTime: false, offset: false }, noInst: false, quiet: true, time: false, rawInsn: false, check: false, showBlocks: false, resync, json: false, stat: true, att: false };
  const out = new DigestWriter();
  const piece = steps === 'serial' ? null : { base: 0, record: () => {}, unrecorded: () => steps === 'all-unrecorded' };
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
  it.each(realTraces().map((t) => t.name))('%s, mutated: the counts and diagnostics of one step at a time', (name) => {
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
        const oneByOne = decode(trace, images, resync, 'all-recorded');
        expect(decode(trace, images, resync, 'serial')).toEqual(oneByOne);
        expect(decode(trace, images, resync, 'all-unrecorded')).toEqual(oneByOne);
        errors += (oneByOne.counts as { errors: number }).errors;
      }
    }
    // The traces did have errors to diagnose.
    expect(errors).toBeGreaterThanOrEqual(6);
  }, 120_000);
});
