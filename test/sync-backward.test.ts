/**
 * Backward synchronization (libipt's pt_qry/pt_insn/pt_blk_sync_backward):
 * from the end of the trace, each call goes to the PSB before the current
 * position, and returns 0 without status flags (as libipt does). The
 * query, instruction and block decoders are compared with libipt (the
 * vectors' version, ptoracle's sync-backward mode: the sync offsets, and
 * the offset and status after the events at each), over an in-memory trace
 * and over a file read in small windows.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig, type DecoderConfig } from '../src/packets/config.js';
import { errataFor, parseCpu } from '../src/packets/cpu.js';
import { errorMessage } from '../src/packets/errors.js';
import { PacketStream, packetOptionsFor } from '../src/packets/packet-stream.js';
import { FileSource } from '../src/packets/trace-source.js';
import { PtEvent } from '../src/events/event.js';
import { QueryDecoder } from '../src/events/query-decoder.js';
import { ANY_ASID } from '../src/flow/address-space.js';
import { BlockDecoder } from '../src/flow/block-decoder.js';
import { Image } from '../src/flow/image.js';
import { InsnDecoder } from '../src/flow/insn-decoder.js';
import { ByteSourceCache } from '../src/flow/section.js';
import { libiptHeadBin } from './helpers/libipt-head.js';
import { REAL_TRACES } from './helpers/vectors.js';

// Status flag (a const enum in src/events/status.ts).
const EVENT_PENDING = 1;

const work = mkdtempSync(join(tmpdir(), 'ptscope-sync-back-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Case {
  name: string;
  dir: string;
  trace: string;
  images: [string, number][];
}

const CASES: Case[] = [
  { name: 'unzip', dir: join(REAL_TRACES, 'unzip'), trace: 'trace.pt', images: [['seg_400000.bin', 0x400000]] },
  { name: 'mruby', dir: join(REAL_TRACES, 'mruby'), trace: 'trace.pt', images: [['seg_400000.bin', 0x400000]] },
];

function config(): DecoderConfig {
  const c = defaultConfig();
  c.cpu = parseCpu('6/158')!;
  const errata = errataFor(c.cpu);
  if (typeof errata !== 'number') c.errata = errata;
  return c;
}

function image(k: Case): Image {
  const img = new Image();
  const files = new ByteSourceCache();
  let isid = 1;
  for (const [file, base] of k.images) img.addFile(files, resolve(k.dir, file), 0, Infinity, base, ANY_ASID, isid++);
  return img;
}

type Flow = InsnDecoder | BlockDecoder;

/** ptoracle's sync-backward lines, from ptscope's decoders. */
function ours(k: Case, trace: () => Uint8Array | PacketStream): string {
  const cfg = config();
  const out: string[] = [];
  const q = new QueryDecoder(trace(), cfg);
  let line = 'qry';
  let status: number;
  for (;;) {
    status = q.syncBackward();
    if (status < 0) break;
    line += ` ${q.syncOffset.toString(16)}`;
  }
  out.push(`${line} ${errorMessage(status)}`);
  for (const [name, dec] of [
    ['insn', new InsnDecoder(trace(), cfg, image(k))],
    ['blk', new BlockDecoder(trace(), cfg, image(k))],
  ] as [string, Flow][]) {
    const ev = new PtEvent();
    let line = name;
    let last = Infinity;
    let stuck = false;
    for (;;) {
      status = dec.syncBackward();
      if (status < 0) break;
      const offset = dec.syncOffset;
      if (offset >= last) {
        line += ` again ${offset.toString(16)}`;
        stuck = true;
        break;
      }
      last = offset;
      while (status >= 0 && status & EVENT_PENDING) status = dec.event(ev);
      line += ` ${offset.toString(16)}:${dec.offset.toString(16)}:${status}`;
    }
    out.push(stuck ? line : `${line} ${errorMessage(status)}`);
  }
  return out.join('\n') + '\n';
}

function oracle(k: Case): string {
  const args = ['sync-backward', '--cpu', '6/158', ...k.images.flatMap(([f, b]) => ['--raw', `${f}:0x${b.toString(16)}`]), k.trace];
  const res = spawnSync(join(libiptHeadBin(), 'ptoracle'), args, { cwd: k.dir, encoding: 'utf8', timeout: 60_000 });
  if (res.status !== 0) throw new Error(`ptoracle ${args.join(' ')}: ${res.stderr}`);
  return res.stdout;
}

describe('syncBackward on the query, instruction and block decoders, as libipt', () => {
  for (const k of CASES) {
    it(`${k.name}: in memory and from a file in 4 KiB windows`, { timeout: 120_000 }, () => {
      const want = oracle(k);
      expect(want.split('\n')[0]!.split(' ').length).toBeGreaterThan(20);
      const bytes = new Uint8Array(readFileSync(join(k.dir, k.trace)));
      expect(ours(k, () => bytes)).toBe(want);
      const file = join(k.dir, k.trace);
      expect(ours(k, () => new PacketStream(new FileSource(file), { ...packetOptionsFor(config()), windowSize: 4096 }))).toBe(want);
    });
  }

  it('a segment at the end whose PSB+ is cut: as libipt (which gives -Eos there)', () => {
    const k = CASES[0]!;
    const bytes = new Uint8Array(readFileSync(join(k.dir, k.trace)));
    // A PSB and half a PSB+ at the end.
    const cut = new Uint8Array(bytes.length + 20);
    cut.set(bytes);
    cut.set([0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x02, 0x82, 0x99, 0x00, 0x02, 0x03], bytes.length);
    const path = join(work, 'cut.pt');
    writeFileSync(path, cut);
    const c: Case = { ...k, dir: work, trace: 'cut.pt', images: k.images.map(([f, b]) => [join(k.dir, f), b]) };
    const want = oracle(c);
    expect(ours(c, () => cut)).toBe(want);
    // libipt's comments say such a segment is skipped; its event decoder
    // returns the -Eos of the cut PSB+ before the query decoder can.
    expect(want.split('\n')[0]).toBe('qry reached end of trace stream');
  });
});
