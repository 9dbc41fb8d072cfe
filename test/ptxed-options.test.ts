/**
 * ptxed's image options, against the vectors' ptxed: `--verbose`/`-v` (the
 * segments each later `--elf` or `--pevent:kcore` maps, from an ELF64 and
 * an ELF32 file built here), `--iscache-limit` (its argument checked as
 * ptxed checks it), and `--att` (AT&T syntax; the vectors' ptxed has no
 * disassembler, so the text is checked by GNU as: it must assemble to the
 * bytes the Intel text assembles to).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runFlowCommand } from '../src/cli/flow.js';
import { normalizeLines, runIn } from '../tools/conformance/run-in.js';
import { libiptHeadBin } from './helpers/libipt-head.js';
import { loadManifest, REAL_TRACES, realTraces, VECTORS } from './helpers/vectors.js';

const work = mkdtempSync(join(tmpdir(), 'ptscope-ptxed-options-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A pevent vector (a trace with sideband), copied beside the ELF files built here. */
const vector = loadManifest().find((c) => c.name === 'pevent-comm_exec-mmap-tsc-iret')!;
function caseFiles(): string[] {
  for (const f of [vector.pt, ...vector.images.map((i) => i.file), vector.sideband_args[vector.sideband_args.length - 1]!]) {
    copyFileSync(join(VECTORS, vector.name, f), join(work, f));
  }
  return vector.ptxed!.argv;
}

function buildElfs(): void {
  writeFileSync(join(work, 'prog.c'), 'static int twice(int x) { return 2 * x; }\nint main(int argc, char **argv) { (void)argv; return twice(argc); }\n');
  execFileSync('gcc', ['-O1', '-o', join(work, 'prog64'), join(work, 'prog.c')]);
  writeFileSync(join(work, 'prog32.asm'), 'global _start\nsection .text\n_start:\n  mov eax, 1\n  int 0x80\nsection .data\nvalue: dd 7\n');
  execFileSync('nasm', ['-f', 'elf32', '-o', join(work, 'prog32.o'), join(work, 'prog32.asm')]);
  execFileSync('ld', ['-m', 'elf_i386', '-o', join(work, 'prog32'), join(work, 'prog32.o')]);
}

function ptxed(argv: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(join(libiptHeadBin(), 'ptxed'), argv, { cwd: work, encoding: 'utf8' });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe('ptxed image options', () => {
  const argv = caseFiles();
  buildElfs();
  // The vector's options, the image options before them (ptxed processes its options in order).
  const cases: [string, string[]][] = [
    ['--verbose before --elf (ELF64, at its link address and at a base)', ['--verbose', '--elf', 'prog64', '--elf', 'prog64:0x7000000']],
    ['-v before an ELF32 file', ['-v', '--elf', 'prog32']],
    ['--elf before --verbose prints nothing of it', ['--elf', 'prog32', '--verbose', '--elf', 'prog64:0x9000000']],
    ['--verbose before --pevent:kcore', ['--verbose', '--pevent:kcore', 'prog64:0xffffffff81000000']],
    ['--iscache-limit changes no output', ['--iscache-limit', '4096', '-v', '--elf', 'prog64:0x5000000']],
  ];
  for (const [name, before] of cases) {
    it(name, () => {
      const args = [...before, ...argv];
      const expected = ptxed(args);
      expect(expected.status).toBe(0);
      const got = runIn(runFlowCommand, args, work, true);
      expect(normalizeLines(got)).toEqual(normalizeLines(expected.stdout));
      if (before.includes('-v') || before.includes('--verbose')) expect(got).toMatch(/^prog(64|32): offset=0x0 size=0x[0-9a-f]+ vaddr=0x[0-9a-f]+\.$/m);
    });
  }

  it('--iscache-limit: a missing or bad argument is the usage error ptxed gives', () => {
    for (const bad of [['--iscache-limit'], ['--iscache-limit', 'many', '--pt', vector.pt]]) {
      const expected = ptxed(bad);
      expect(expected.status).not.toBe(0);
      const line = expected.stderr.trim().split('\n')[0]!.replace(/^\S*ptxed: /, 'ptscope: ');
      expect(runIn(runFlowCommand, bad, work, true).trim()).toBe(line);
    }
  });

  it('--att prints AT&T syntax that GNU as assembles to what the Intel text assembles to', () => {
    // The instructions of the first 8 KiB of a real trace, in both syntaxes; a direct branch's absolute
    // target would assemble relative to where the line lands, so those are left out.
    const real = realTraces().find((t) => t.name === 'mruby')!;
    const base = ['--cpu', '6/158', ...real.images.flatMap((i) => ['--raw', `${join(REAL_TRACES, real.name, i.file)}:${i.address}`]), '--pt', `${join(REAL_TRACES, real.name, real.pt)}:0-8192`];
    const texts = (extra: string[]): string[] =>
      runIn(runFlowCommand, [...extra, ...base], work, true)
        .split('\n')
        .filter((l) => /^[0-9a-f]{16} {2}/.test(l))
        .map((l) => l.slice(18));
    const att = texts(['--att']);
    const intel = texts([]);
    expect(att.length).toBe(intel.length);
    const pairs = new Map<string, string>();
    att.forEach((a, k) => {
      if (!/^(j[a-z]*|call|loop[a-z]*) 0x/.test(a)) pairs.set(a, intel[k]!);
    });
    expect(pairs.size).toBeGreaterThan(500);
    expect([...pairs.keys()].some((a) => /%r[a-z0-9]+/.test(a) && /\$0x/.test(a))).toBe(true);
    const assemble = (name: string, lines: string[]): Buffer => {
      writeFileSync(join(work, `${name}.s`), lines.join('\n') + '\n');
      execFileSync('as', ['--64', '-o', join(work, `${name}.o`), join(work, `${name}.s`)]);
      execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(work, `${name}.o`), join(work, `${name}.bin`)]);
      return readFileSync(join(work, `${name}.bin`));
    };
    const fromAtt = assemble('att', [...pairs.keys()]);
    const fromIntel = assemble('intel', ['.intel_syntax noprefix', ...pairs.values()]);
    expect(fromAtt.length).toBeGreaterThan(0);
    expect(fromAtt.equals(fromIntel)).toBe(true);
  });
});
