/**
 * The one input model: every format becomes a Recording, and hostile
 * bundles are refused with one line naming the field at fault.
 */
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRecording } from '../src/sources/import/open-recording.js';
import { importBundle } from '../src/sources/import/bundle-import.js';
import { InputError } from '../src/sources/import/safe-files.js';
import { LineWriter } from '../src/cli/output.js';
import { CliError } from '../src/cli/output.js';
import { runAnalyzeCommand } from '../src/cli/analyze.js';
import { runReportCommand } from '../src/cli/report.js';
import { runCompletionCommand } from '../src/cli/completion.js';
import { loadCommands } from '../src/cli/commands.js';
import { readDormantFile } from '../src/cli/dormant-file.js';
import { REAL_TRACES } from './helpers/vectors.js';

const DEMO = join(__dirname, '..', 'demo', 'rop_stack.exploit');
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-model-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the demo bundle with its manifest edited by `edit`. */
function hostile(name: string, edit: (m: Record<string, any>) => unknown): string {
  const dir = join(work, name);
  cpSync(DEMO, dir, { recursive: true });
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const out = edit(m);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(out === undefined ? m : out));
  return dir;
}

describe('Recording model', () => {
  it('a version-1 bundle: one stream, the program, its exit and images inside the bundle', () => {
    const r = importBundle(DEMO);
    expect(r.format).toBe('bundle');
    expect(r.recorder).toBe('qemu');
    expect(r.program?.argv.length).toBeGreaterThan(0);
    expect(r.exit?.status).toBe(0);
    expect(r.streams).toHaveLength(1);
    const s = r.streams[0]!;
    expect(s.size).toBeGreaterThan(1000);
    expect(s.expected?.instructions).toBeGreaterThan(1000);
    expect(s.mappings.length).toBeGreaterThan(0);
    for (const m of s.mappings) expect(m.file.startsWith(realpathSync(DEMO) + '/')).toBe(true);
    const src = s.open();
    expect(src.size).toBe(s.size);
    src.close();
  });

  it('a version-2 bundle: processes, threads and one stream per thread, images shared per process', () => {
    const dir = hostile('v2', (m) => ({
      ...m,
      version: 2,
      trace: undefined,
      instructions: undefined,
      decode: undefined,
      processes: [{ pid: 100, ppid: null, program: m.program, exit: m.exit, untraced: null }],
      threads: [{ tid: 100, pid: 100, name: 'prog' }, { tid: 101, pid: 100, name: 'worker' }],
      streams: [
        { file: m.trace.file, pid: 100, tid: 100, cpu: null, bytes: m.trace.bytes, images: m.images.map((_: unknown, i: number) => i), instructions: m.instructions },
        { file: m.trace.file, pid: 100, tid: 101, cpu: null, bytes: m.trace.bytes, images: m.images.map((_: unknown, i: number) => i), instructions: null },
      ],
      core: null,
    }));
    const r = importBundle(dir);
    expect(r.processes.map((p) => p.pid)).toEqual([100]);
    expect(r.threads.map((t) => t.tid)).toEqual([100, 101]);
    expect(r.streams.map((s) => s.label)).toEqual(['[100/100]', '[100/101]']);
    expect(r.streams[0]!.image).toBe(r.streams[1]!.image);
  });

  it('a raw trace with images, and a perf.data, become the same model', () => {
    const raw = openRecording(join(REAL_TRACES, 'unzip', 'trace.pt'), { raw: [join(REAL_TRACES, 'unzip', 'seg_400000.bin') + ':0x400000'], cpu: '6/158' });
    expect(raw.format).toBe('raw');
    expect(raw.streams[0]!.config.cpu.model).toBe(158);
    expect(raw.streams[0]!.mappings[0]!.address).toBe(0x400000);
    expect(() => openRecording(join(REAL_TRACES, 'unzip', 'trace.pt'))).toThrow(/needs its images/);
  });
});

describe('hostile bundles are refused, naming the field', () => {
  const cases: [string, (m: Record<string, any>) => unknown, RegExp][] = [
    ['null manifest', () => null, /expected a JSON object/],
    ['string address', (m) => void (m.images[0].address = 'notanumber'), /images\[0\]\.address: expected a hex address/],
    ['future version', (m) => void (m.version = 9), /bundle version 9 is newer than this ptscope reads/],
    ['trace outside the bundle', (m) => void (m.trace.file = '../../../../etc/passwd'), /trace\.file: '..\/..\/..\/..\/etc\/passwd' resolves outside the bundle directory/],
    ['absolute image path', (m) => void (m.images[0].file = '/bin/ls'), /images\[0\]\.file: '\/bin\/ls' is an absolute path/],
    ['negative size', (m) => void (m.images[0].size = -1), /images\[0\]\.size/],
    ['too many images', (m) => void (m.images = Array.from({ length: 10_000 }, () => m.images[0])), /images: .*4096/],
    ['not an object program', (m) => void (m.program = 'x'), /program:/],
    ['image epochs not from offset 0', (m) => void (m.trace.imageEpochs = [{ offset: 5, runtime: 0 }]), /trace\.imageEpochs\[0\]\.offset: epochs start at offset 0 and their offsets increase/],
    ['image epochs going back', (m) => void (m.trace.imageEpochs = [{ offset: 0, runtime: 0 }, { offset: 64, runtime: 0 }, { offset: 64, runtime: 0 }]), /trace\.imageEpochs\[2\]\.offset: epochs start at offset 0 and their offsets increase/],
    ['image epochs naming run-time images the stream lacks', (m) => void (m.trace.imageEpochs = [{ offset: 0, runtime: 3 }]), /trace\.imageEpochs\[0\]\.runtime: 3 is more than the stream's 0 run-time images/],
    ['too many image epochs', (m) => void (m.trace.imageEpochs = Array.from({ length: 5000 }, (_, i) => ({ offset: i, runtime: 0 }))), /imageEpochs: .*4096/],
  ];
  for (const [name, edit, why] of cases) {
    it(name, () => {
      const dir = hostile(name.replace(/\W+/g, '-'), edit);
      expect(() => importBundle(dir)).toThrow(InputError);
      expect(() => importBundle(dir)).toThrow(why);
    });
  }

  it('a symlink out of the bundle is refused', () => {
    const dir = hostile('symlink', () => undefined);
    rmSync(join(dir, 'trace.pt'));
    symlinkSync('/etc/passwd', join(dir, 'trace.pt'));
    expect(() => importBundle(dir)).toThrow(/trace\.file: 'trace\.pt' resolves outside the bundle directory/);
  });

  it('a FIFO as the trace is refused, not waited on', () => {
    const dir = hostile('fifo', () => undefined);
    rmSync(join(dir, 'trace.pt'));
    expect(spawnSync('mkfifo', [join(dir, 'trace.pt')]).status).toBe(0);
    expect(() => importBundle(dir)).toThrow(/trace\.file: not a regular file/);
  });

  it('device files given as raw traces are refused', () => {
    expect(() => openRecording('/dev/zero', { raw: ['/bin/true:0x400000'] })).toThrow(/not a regular file/);
  });
});

describe('honest exit statuses', () => {
  it('analyze of random bytes is an input error (exit 2), not "0 findings"', () => {
    const f = join(work, 'random.pt');
    writeFileSync(f, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 0xff)));
    const out = new LineWriter(null);
    expect(() => runAnalyzeCommand([f, '--raw', join(REAL_TRACES, 'unzip', 'seg_400000.bin') + ':0x400000'], out)).toThrow(/no instruction could be decoded/);
    out.flush();
    expect(out.text).not.toMatch(/0 findings/);
  });

  it('analyze of a trace with decode errors is a partial read (exit 1)', () => {
    const good = readFileSync(join(REAL_TRACES, 'unzip', 'trace.pt'));
    const bad = Buffer.from(good);
    // Corrupt bytes in the middle; the decoder resyncs at the next PSB.
    for (let i = 0; i < 64; i++) bad[(bad.length >> 1) + i] = 0xd9;
    const f = join(work, 'corrupt.pt');
    writeFileSync(f, bad);
    const out = new LineWriter(null);
    expect(runAnalyzeCommand([f, '--raw', join(REAL_TRACES, 'unzip', 'seg_400000.bin') + ':0x400000', '--cpu', '6/158'], out)).toBe(1);
  });

  it('report on an empty trace does not show a green verdict', () => {
    const dir = hostile('empty-trace', (m) => void (m.trace.bytes = 0));
    writeFileSync(join(dir, 'trace.pt'), new Uint8Array(0));
    const html = join(work, 'empty.html');
    expect(() => runReportCommand([dir, '-o', html, '-q'], new LineWriter(null))).toThrow(/no instruction could be decoded/);
  });

  it('analyze refuses unknown options and detectors with one line', () => {
    expect(() => runAnalyzeCommand([DEMO, '--detekt', 'rop'], new LineWriter(null))).toThrow(/unknown option '--detekt'.*Did you mean --detect\?/);
    expect(() => runAnalyzeCommand([DEMO, '--param', 'nosuch.x=1'], new LineWriter(null))).toThrow(/unknown detector 'nosuch'/);
  });
});

describe('other JSON inputs', () => {
  it('a malformed --dormant file names the field', () => {
    const f = join(work, 'dormant.json');
    writeFileSync(f, JSON.stringify({ regions: [{ function: 7 }] }));
    expect(() => readDormantFile(f)).toThrow(CliError);
    expect(() => readDormantFile(f)).toThrow(/regions\[0\]\.function/);
    writeFileSync(f, JSON.stringify({ triggers: [{ condition: ['x'] }] }));
    expect(() => readDormantFile(f)).toThrow(/triggers\[0\]\.condition/);
  });
});

describe('shell completion', () => {
  for (const shell of ['bash', 'zsh'] as const) {
    it(`${shell}: every command and its options, generated from the parsers`, async () => {
      const commands = await loadCommands();
      const out = new LineWriter(null);
      expect(runCompletionCommand([shell], out, commands)).toBe(0);
      out.flush();
      for (const cmd of Object.keys(commands)) expect(out.text).toContain(cmd);
      expect(out.text).toContain('--fail-on-findings');
      expect(out.text).toContain('--block:end-on-call');
      if (shell === 'bash') {
        const file = join(work, 'ptscope.bash');
        writeFileSync(file, out.text);
        expect(spawnSync('bash', ['-n', file]).status).toBe(0);
      }
    });
  }
});
