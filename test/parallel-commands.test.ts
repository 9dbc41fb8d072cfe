/**
 * `flow --jobs`, `dump --jobs` and `coverage --jobs` (src/cli/parallel):
 * the trace decoded in pieces cut at every PSB (in this thread) prints
 * what the serial command prints, line for line, with the same exit
 * status (coverage: the same blocks with the same counts, in the same
 * order), on the real-CPU traces, a demo bundle and a mutated trace with
 * decode errors; and the commands with `--jobs 2` on a worker pool print
 * what `--jobs 1` prints.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TempDirs } from './helpers/temp-dirs.js';
import { runDumpCommand } from '../src/cli/dump-command.js';
import { parseDumpArgs } from '../src/cli/dump.js';
import { parseFlowArgs } from '../src/cli/flow-args.js';
import { runFlowCommand } from '../src/cli/flow.js';
import { LineWriter } from '../src/cli/output.js';
import { runDumpInPieces } from '../src/cli/parallel/dump-pieces.js';
import { runFlowInPieces } from '../src/cli/parallel/flow-pieces.js';
import type { PieceTuning } from '../src/cli/parallel/line-pieces.js';
import { psbOffsets } from '../src/flow/parallel/psb-split.js';
import { openTraceInput } from '../src/analyses/trace-input.js';
import type { OpenOptions } from '../src/sources/import/open-recording.js';
import { runCoverageCommand } from '../src/cli/coverage.js';
import { coverageInPieces } from '../src/cli/parallel/coverage-in-pieces.js';
import { coveragePiece } from '../src/reports/coverage-pieces.js';
import { ExecutedBlocks } from '../src/reports/drcov.js';
import { walkTrace } from '../src/reports/report-model.js';
import { traceInputs } from '../src/analyses/trace-input.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { runExportPerfCommand } from '../src/cli/export-perf.js';
import { REAL_TRACES, realTraces } from './helpers/vectors.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const real = realTraces().map((t) => ({
  name: t.name,
  pt: join(REAL_TRACES, t.name, t.pt),
  raw: t.images.flatMap((i) => ['--raw', `${join(REAL_TRACES, t.name, i.file)}:${i.address}`]),
}));
const byName = (name: string) => real.find((r) => r.name === name)!;

const EVERY_PSB: PieceTuning = { plan: { everyPsb: true }, inThread: true };

interface Run {
  status: number;
  text: string;
  errors: string[];
}

async function flowSerial(argv: string[]): Promise<Run> {
  const out = new LineWriter(null, 1 << 30);
  const errors: string[] = [];
  const status = await runFlowCommand(argv, out, (m) => errors.push(m));
  out.flush();
  return { status, text: out.text, errors };
}

async function flowPieces(argv: string[], tuning = EVERY_PSB): Promise<Run> {
  const out = new LineWriter(null, 1 << 30);
  const errors: string[] = [];
  const a = parseFlowArgs(argv, out, (m) => errors.push(m))!;
  const status = await runFlowInPieces(argv, a, out, (m) => errors.push(m), tuning);
  out.flush();
  return { status, text: out.text, errors };
}

async function dumpSerial(argv: string[]): Promise<Run> {
  const out = new LineWriter(null, 1 << 30);
  const errors: string[] = [];
  const status = await runDumpCommand(argv, out, (m) => errors.push(m));
  out.flush();
  return { status, text: out.text, errors };
}

async function dumpPieces(argv: string[], tuning = EVERY_PSB): Promise<Run> {
  const out = new LineWriter(null, 1 << 30);
  const errors: string[] = [];
  const status = await runDumpInPieces(argv, parseDumpArgs(argv)!, [], out, (m) => errors.push(m), tuning);
  out.flush();
  return { status, text: out.text, errors };
}

/** The unzip trace with bytes overwritten at fixed places (and an extended opcode no packet has): decode errors and resyncs. */
function mutatedTrace(): string {
  const bytes = new Uint8Array(readFileSync(byName('unzip').pt));
  for (let at = 700; at < bytes.length; at += 2731) bytes[at] ^= 0x5a;
  for (let at = 1500; at + 1 < bytes.length; at += 4099) bytes.set([0x02, 0xd5], at);
  const path = join(temps.make('ptscope-par-text-'), 'mutated.pt');
  writeFileSync(path, bytes);
  return path;
}

describe('flow in pieces cut at every PSB prints the serial output', () => {
  it.each(['unzip', 'dyn_test'])('%s: ptxed text, counts and tick events, JSON lines', async (name) => {
    const t = byName(name);
    expect(psbOffsets(readFileSync(t.pt)).length).toBeGreaterThan(3);
    for (const extra of [[], ['--stat', '--event:tick'], ['--json', '--event:ip']]) {
      const argv = ['--cpu', '6/158', ...t.raw, ...extra, '--pt', t.pt];
      const serial = await flowSerial(argv);
      expect(serial.text.split('\n').length).toBeGreaterThan(500);
      expect(await flowPieces(argv)).toEqual(serial);
    }
  }, 300_000);

  it('mruby: the counts (--quiet --stat)', async () => {
    const t = byName('mruby');
    const argv = ['--cpu', '6/158', ...t.raw, '--quiet', '--stat', '--pt', t.pt];
    const serial = await flowSerial(argv);
    expect(serial.text).toMatch(/^insn: [1-9][0-9]+\.\n$/);
    expect(await flowPieces(argv)).toEqual(serial);
  }, 300_000);

  it('a mutated trace: the same errors and resyncs at the same places, with --resync-on-error and without, and --quiet', async () => {
    const path = mutatedTrace();
    // (--quiet --stat: the counts of the quiet steps a piece decodes in a loop of their own.)
    for (const extra of [[], ['--resync-on-error'], ['--quiet', '--resync-on-error'], ['--quiet', '--stat', '--resync-on-error'], ['--quiet', '--stat']]) {
      const argv = ['--cpu', '6/158', ...byName('unzip').raw, ...extra, '--pt', path];
      const serial = await flowSerial(argv);
      expect(serial.status).toBe(1);
      expect(serial.text).toMatch(/error/);
      expect(await flowPieces(argv)).toEqual(serial);
    }
  }, 300_000);

  it('a demo bundle, as JSON lines too', async () => {
    const bundle = join(process.cwd(), 'demo', 'rop_stack.exploit');
    for (const extra of [[], ['--json']]) {
      const serial = await flowSerial([...extra, bundle]);
      expect(serial.text.split('\n').length).toBeGreaterThan(100);
      expect(await flowPieces([...extra, bundle])).toEqual(serial);
    }
  }, 300_000);
});

describe('dump in pieces cut at every PSB prints the serial output', () => {
  it.each(['unzip', 'dyn_test', 'mruby'])('%s (with --lastip, and as JSON)', async (name) => {
    const t = byName(name);
    for (const extra of [['--lastip'], ['--json']]) {
      const argv = [...extra, t.pt];
      const serial = await dumpSerial(argv);
      expect(await dumpPieces(argv)).toEqual(serial);
    }
  }, 300_000);

  it('a mutated trace: the same decode errors at the same offsets', async () => {
    const argv = ['--lastip', mutatedTrace()];
    const serial = await dumpSerial(argv);
    expect(serial.status).toBe(1);
    expect(serial.text).toMatch(/error decoding packet/);
    expect(await dumpPieces(argv)).toEqual(serial);
  }, 300_000);
});

/** Every block with its count, in the order the blocks first ran. */
function blockList(blocks: ExecutedBlocks): string[] {
  const list: string[] = [];
  blocks.forEach((start, end, count) => list.push(`${start.toString(16)}-${end.toString(16)}x${count}`));
  return list;
}

describe('coverage in pieces cut at every PSB gives the serial blocks', () => {
  const inputs: [string, () => [string, OpenOptions]][] = [
    ...real.map((t): [string, () => [string, OpenOptions]] => [t.name, () => [t.pt, { raw: t.raw.filter((_, i) => i % 2 === 1), cpu: '6/158' }]]),
    ['demo rop_stack.exploit', () => [join(process.cwd(), 'demo', 'rop_stack.exploit'), {}]],
    ['mutated unzip', () => [mutatedTrace(), { raw: byName('unzip').raw.filter((_, i) => i % 2 === 1), cpu: '6/158' }]],
  ];
  it.each(inputs)('%s', async (_name, source) => {
    const [path, options] = source();
    const serial = new ExecutedBlocks();
    const stats = walkTrace(openTraceInput(path, options), [serial]);
    const input = openTraceInput(path, options);
    const pieces = new ExecutedBlocks();
    const n = await coverageInPieces(input, async (r, limit) => coveragePiece(input, input.trace, 0, r, limit), 2, pieces, undefined, { everyPsb: true });
    expect(n).toBe(stats.instructions);
    expect(serial.size).toBeGreaterThan(100);
    expect(blockList(pieces)).toEqual(blockList(serial));
  }, 300_000);
});

describe('a multi-thread bundle (one stream per thread) and a perf.data, cut at every PSB', () => {
  it('flow (each thread under its own heading) and coverage (per stream) equal serial', async () => {
    const work = temps.make('ptscope-par-threads-');
    const exe = join(work, 'threads4');
    const cc = spawnSync('gcc', ['-O1', '-o', exe, join(process.cwd(), 'test', 'fixtures', 'threads', 'threads4.c'), '-pthread'], { encoding: 'utf8' });
    expect(cc.status, cc.stderr).toBe(0);
    const res = await record(withRecordDefaults({
      argv: [exe], output: join(work, 'threads4.ptscope'), timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'pipe', notice: () => {},
    }));
    const data = join(work, 'threads4.data');
    expect(runExportPerfCommand([res.bundle, '-o', data], new LineWriter(null))).toBe(0);
    for (const source of [res.bundle, data]) {
      const serial = await flowSerial([source]);
      // One stream per thread, each under its own heading.
      expect(serial.text.match(/^\[\d+\/\d+\]$/gm)).toHaveLength(5);
      expect(serial.text.split('\n').length).toBeGreaterThan(1000);
      expect(await flowPieces([source])).toEqual(serial);
      const recording = openRecording(source);
      try {
        for (const input of traceInputs(recording)) {
          const one = new ExecutedBlocks();
          walkTrace(input, [one]);
          const pieces = new ExecutedBlocks();
          await coverageInPieces(input, async (r, limit) => coveragePiece(input, input.trace, 0, r, limit), 2, pieces, undefined, { everyPsb: true });
          expect(blockList(pieces)).toEqual(blockList(one));
        }
      } finally {
        recording.close();
      }
    }
  }, 300_000);
});

describe('--jobs 2 on a worker pool', () => {
  it('coverage: the same drcov file and JSON as --jobs 1', async () => {
    const dir = temps.make('ptscope-par-cov-');
    const bundle = join(process.cwd(), 'demo', 'rop_stack.exploit');
    const files = [join(dir, 'one.drcov'), join(dir, 'two.drcov')];
    await runCoverageCommand([bundle, '--format', 'drcov', '-o', files[0]!, '--jobs', '1'], new LineWriter(null));
    await runCoverageCommand([bundle, '--format', 'drcov', '-o', files[1]!, '--jobs', '2'], new LineWriter(null));
    expect(readFileSync(files[1]!)).toEqual(readFileSync(files[0]!));
    const t = byName('mruby');
    const args = [t.pt, ...t.raw, '--cpu', '6/158', '--json'];
    const one = new LineWriter(null);
    const two = new LineWriter(null);
    await runCoverageCommand([...args, '--jobs', '1'], one);
    await runCoverageCommand([...args, '--jobs', '2'], two);
    one.flush();
    two.flush();
    expect(two.text).toEqual(one.text);
    expect(JSON.parse(one.text).executedBlocks).toBeGreaterThan(1000);
  }, 300_000);

  it('flow and dump print what --jobs 1 prints (mruby: several pieces)', async () => {
    const t = byName('mruby');
    const flow = ['--cpu', '6/158', ...t.raw, '--quiet', '--stat', '--pt', t.pt];
    expect(await flowSerial([...flow, '--jobs', '2'])).toEqual(await flowSerial([...flow, '--jobs', '1']));
    const dump = ['--lastip', '--jobs', '2', t.pt];
    expect(await dumpSerial(dump)).toEqual(await dumpSerial(['--lastip', t.pt]));
  }, 300_000);

  it('flow and dump with their text held to a small budget, and pieces joined, print the serial output', async () => {
    // Every PSB a piece, 256 KiB of text held for the pieces ahead (the workers wait for it), and
    // every third hand-over refused, so the two pieces are decoded again as one (the lines written
    // already are left out) and the pieces after them, cancelled, are started again.
    let joins = 0;
    const tuning: PieceTuning = {
      plan: { everyPsb: true },
      heldText: 256 << 10,
      onJoin: () => joins++,
      refuse: (a, b) => b.index === a.index + 1 && a.index % 3 === 1,
    };
    const t = byName('unzip');
    const mutated = mutatedTrace();
    for (const pt of [t.pt, mutated]) {
      for (const extra of [[], ['--resync-on-error']]) {
        const argv = ['--cpu', '6/158', ...t.raw, ...extra, '--pt', pt];
        const serial = await flowSerial(argv);
        expect(serial.text.length).toBeGreaterThan(1 << 20);
        expect(await flowPieces(argv, tuning)).toEqual(serial);
        expect(await flowPieces(argv, { ...tuning, inThread: true })).toEqual(serial);
      }
      const dump = ['--lastip', pt];
      expect(await dumpPieces(dump, tuning)).toEqual(await dumpSerial(dump));
    }
    expect(joins).toBeGreaterThan(20);
  }, 300_000);

  it('refuses, in one line, what depends on the whole trace before a piece', async () => {
    const t = byName('unzip');
    await expect(async () => runFlowCommand(['--cpu', '6/158', ...t.raw, '--offset', '--jobs', '2', '--pt', t.pt], new LineWriter(null))).rejects.toThrow(/^--jobs: --offset and --check/);
    await expect(async () => runFlowCommand(['--cpu', '6/158', ...t.raw, '--block-decoder', '--jobs', '2', '--pt', t.pt], new LineWriter(null))).rejects.toThrow(/^--jobs: the block decoder's blocks depend on where decoding started/);
    await expect(async () => runDumpCommand(['--time', '--jobs', '2', t.pt], new LineWriter(null))).rejects.toThrow(/^--jobs: --time, --tcal and --pevent/);
    expect(() => runDumpCommand(['--jobs', '0', t.pt], new LineWriter(null))).toThrow(/--jobs: expected a whole number from 1 to 256/);
  });
});
