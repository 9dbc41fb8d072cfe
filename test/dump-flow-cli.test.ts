/**
 * `ptscope dump` and `ptscope flow` as processes (issue 14's regressions):
 * flow's `--elf`, inputs that are not regular files (pipes read as a
 * stream by dump, refused by flow's `--pt`; devices refused), exit statuses
 * (2: no PSB, nothing decodable; 1: decode errors; dump and dump --stat
 * agree), and a full stdout giving one clean line.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/oracle.js';
import { REAL_TRACES } from './helpers/vectors.js';

const BIN = join(REPO_ROOT, 'bin', 'ptscope.js');
const DEMO = join(REPO_ROOT, 'demo', 'rop_stack.benign');
const DEMO_TRACE = join(DEMO, 'trace.pt');
const DEMO_RAW = `${join(DEMO, 'images', '0-prog')}:0x1000-0x790f1:0x401000`;
const UNZIP = join(REAL_TRACES, 'unzip');
const UNZIP_ARGS = ['--cpu', '6/158', '--raw', `${join(UNZIP, 'seg_400000.bin')}:0x400000`, '--pt', join(UNZIP, 'trace.pt')];

let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-cli-'));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(args: string[], opts: { input?: Uint8Array; stdout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], {
    input: opts.input,
    stdio: [opts.input ? 'pipe' : 'ignore', opts.stdout ?? 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 1 << 28,
  });
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

describe('flow --elf', () => {
  it('loads an ELF at its own addresses: the same instructions as --raw of its code', () => {
    const raw = run(['flow', '--cpu', 'none', '--no-inst', '--stat', '--raw', DEMO_RAW, '--pt', DEMO_TRACE]);
    const elf = run(['flow', '--cpu', 'none', '--no-inst', '--stat', '--elf', join(DEMO, 'images', '0-prog'), '--pt', DEMO_TRACE]);
    expect(raw.status).toBe(0);
    expect(elf.status).toBe(0);
    expect(elf.stdout).toBe(raw.stdout);
    expect(elf.stdout).toContain('insn: 28566.');
  });

  it('with a base, loads it there (here: where the code is not, so nothing decodes)', () => {
    const r = run(['flow', '--cpu', 'none', '--quiet', '--elf', `${join(DEMO, 'images', '0-prog')}:0x1000`, '--pt', DEMO_TRACE]);
    expect(r.status).toBe(2);
    expect(lines(r.stderr)).toEqual(['ptscope: flow: no instruction could be decoded (1 decode errors)']);
  });
});

describe('inputs that are not regular files', () => {
  it('flow --pt refuses a FIFO and /dev/zero with one line, at once', () => {
    const fifo = join(work, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    for (const path of [fifo, '/dev/zero']) {
      const r = run(['flow', '--pt', path]);
      expect(r.status).toBe(2);
      expect(lines(r.stderr)).toEqual([`ptscope: flow: ${path} is not a regular file: --pt needs a trace file (not a pipe or device)`]);
    }
  });

  it('dump refuses a device', () => {
    const r = run(['dump', '/dev/zero']);
    expect(r.status).toBe(2);
    expect(lines(r.stderr)).toEqual(['ptscope: dump: /dev/zero is neither a regular file nor a pipe']);
  });

  it('dump - and dump /dev/stdin read a pipe as a stream: the same as the file', () => {
    const bytes = new Uint8Array(readFileSync(join(UNZIP, 'trace.pt')));
    const file = run(['dump', join(UNZIP, 'trace.pt')]);
    expect(file.status).toBe(0);
    for (const name of ['-', '/dev/stdin']) {
      const r = run(['dump', name], { input: bytes });
      expect(r.status, name).toBe(0);
      expect(r.stdout, name).toBe(file.stdout);
    }
    const stat = run(['dump', '--stat', '-'], { input: bytes });
    expect(stat.stdout).toBe(run(['dump', '--stat', join(UNZIP, 'trace.pt')]).stdout);
  });
});

describe('exit status', () => {
  it('a trace without a PSB is an input error (2) for dump, dump --stat and flow', () => {
    const path = join(work, 'nopsb.pt');
    writeFileSync(path, new Uint8Array(256).fill(0x55));
    for (const args of [['dump', path], ['dump', '--stat', path], ['flow', '--pt', path]]) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(lines(r.stderr), args.join(' ')).toEqual([`ptscope: ${args[0]}: no PSB found in ${path} (0x100 bytes): not an Intel PT trace`]);
    }
  });

  it('a trace in which no instruction decodes is an input error (2) for flow', () => {
    // The demo trace without its code.
    const r = run(['flow', '--cpu', 'none', '--quiet', '--pt', DEMO_TRACE]);
    expect(r.status).toBe(2);
    expect(lines(r.stderr)).toEqual(['ptscope: flow: no instruction could be decoded (1 decode errors)']);
  });

  it('a trace with decode errors is a partial read (1): dump and dump --stat agree', () => {
    // Cut inside a packet.
    const cut = join(work, 'cut.pt');
    writeFileSync(cut, readFileSync(join(UNZIP, 'trace.pt')).subarray(0, 1000));
    const dump = run(['dump', cut]);
    const stat = run(['dump', '--stat', cut]);
    expect(dump.status).toBe(1);
    expect(stat.status).toBe(1);
    expect(lines(dump.stderr)).toEqual([`ptscope: dump: ${cut}: trace ends inside a packet at offset 0x3e6`]);
    expect(lines(stat.stderr)).toEqual(lines(dump.stderr));
    // A bad opcode in the middle.
    const bad = join(work, 'bad.pt');
    const bytes = new Uint8Array(readFileSync(DEMO_TRACE));
    bytes.set([0x02, 0xff], 0x40); // not an opcode
    writeFileSync(bad, bytes);
    expect(run(['dump', bad]).status).toBe(1);
    expect(run(['dump', '--stat', bad]).status).toBe(1);
  });

  it('flow with decode errors exits 1, without them 0', () => {
    const dyn = join(REAL_TRACES, 'dyn_test');
    const raws = ['555555554000', '7ffff7802000', '7ffff781f000', '7ffff7824000', '7ffff7875000', '7ffff7878000', '7ffff789c000', '7ffff78f1000', '7ffff78fc000', '7ffff7902000', '7ffff7bd2000', '7ffff7fcffff'];
    const args = ['flow', '--cpu', '6/158', '--quiet', ...raws.flatMap((a) => ['--raw', `${join(dyn, `seg_${a}.bin`)}:0x${a}`]), '--pt', join(dyn, 'trace.pt')];
    const r = run(args);
    expect(r.status).toBe(1);
    expect(run(['flow', '--quiet', ...UNZIP_ARGS]).status).toBe(0);
  });
});

describe('a full stdout', () => {
  it('gives one clean line and exit status 2, for dump, dump --stat and flow', () => {
    const full = openSync('/dev/full', 'w');
    try {
      for (const args of [['dump', join(UNZIP, 'trace.pt')], ['dump', '--stat', join(UNZIP, 'trace.pt')], ['flow', ...UNZIP_ARGS]]) {
        const r = run(args, { stdout: full });
        expect(r.status, args[0]).toBe(2);
        expect(lines(r.stderr), args.join(' ')).toEqual(['ptscope: cannot write the output: no space left on the device']);
      }
    } finally {
      closeSync(full);
    }
  });
});
