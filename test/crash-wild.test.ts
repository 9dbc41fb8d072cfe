/**
 * `ptscope crash` on programs written as ordinary code (corpus/crashes-wild,
 * built with gcc's defaults: no -fno-builtin): a few representative cases
 * (the whole corpus runs in tools/eval-crashes-wild.ts), and the command
 * line as a process: text and JSON, --no-sandbox and --no-rerun, and
 * one-line errors with status 2 for bad input.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routineOf } from '../src/analyses/crash/library-routines.js';
import type { CrashReport } from '../src/analyses/crash/crash.js';
import { evaluateWildCase, prepareWildCase, scoreWildReport, wildCases, type WildCase, type WildResult } from '../tools/eval-crashes-wild.js';
import { REPO_ROOT } from './helpers/oracle.js';

const BIN = join(REPO_ROOT, 'bin', 'ptscope.js');
/**
 * The case, a stack overflow by read(2), a copy by hand at -O2, memset with a length from the input, a double free,
 * an overflow in a private shared library, fread's copy inside libc, a use after free with reuse; and the crashes that are
 * no bad memory access: a recursion and a variable-length array that run the stack out, a division by zero, a signal the
 * program raises itself (through a tail call at -O2); and a stack overflow that the stack protector stops. Then a worker
 * thread's strcpy over a callback stored before its trace starts, and an index past a global table at -O2.
 */
const SAMPLE = [
  'heap_name_memcpy-O0', 'stack_read_stdin-O0', 'hand_copy_field-O2', 'memset_length-O0', 'double_free-O0', 'lib_overflow-O2', 'file_fread_len-O0', 'uaf_reuse-O0',
  'recursion_depth-O2', 'vla_count-O0', 'per_item_average-O2', 'raise_on_error-O2', 'greeting_canary-O2',
  'thread_name_copy-O0', 'qsort_key_table-O2',
];

const cases = new Map<string, WildCase>(wildCases().filter((c) => SAMPLE.includes(c.name)).map((c) => [c.name, c]));
const results = new Map<string, WildResult>();
let work: string;

/** The case the command line is run on; its report in the checks above is the CLI's JSON, so it is analysed once. */
const CLI_CASE = 'heap_name_memcpy-O0';
let cliJson: SpawnSyncReturns<string>;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-crash-cli-'));
  for (const c of cases.values()) {
    const crashed = await prepareWildCase(c);
    if (c.name !== CLI_CASE || !crashed) {
      results.set(c.name, evaluateWildCase(c, crashed));
      continue;
    }
    cliJson = run(['crash', '--json', c.bundle]);
    results.set(c.name, cliJson.status === 0 ? scoreWildReport(c, JSON.parse(cliJson.stdout) as CrashReport) : evaluateWildCase(c, crashed));
  }
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

function run(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 26 });
}

describe('libc routine names', () => {
  it('recognises the plain, fortified and multiarch names, and nothing else', () => {
    expect(routineOf('memcpy')).toBe('memcpy');
    expect(routineOf('__memmove_avx_unaligned_erms')).toBe('memmove');
    expect(routineOf('__memcpy_evex_unaligned_erms')).toBe('memcpy');
    expect(routineOf('__memset_avx2_unaligned_erms')).toBe('memset');
    expect(routineOf('__strcpy_sse2_unaligned')).toBe('strcpy');
    expect(routineOf('__stpcpy_avx2')).toBe('stpcpy');
    expect(routineOf('__memcpy_chk')).toBe('memcpy');
    expect(routineOf('__vsprintf_internal')).toBeNull();
    expect(routineOf('vsprintf')).toBe('sprintf');
    expect(routineOf('memcmp')).toBeNull();
    expect(routineOf('strlen')).toBeNull();
    expect(routineOf('memcpy_user_helper')).toBeNull();
  });
});

describe('crash root cause on ordinary builds', () => {
  for (const name of SAMPLE) {
    it(`${name}: the root-cause set holds the marked line and has at most 3 entries`, () => {
      const c = cases.get(name)!;
      const r = results.get(name)!;
      expect(r.signal).not.toBeNull();
      expect(r.report!.core.matchesTrace).toBe(true);
      expect(r.found, `${name}: ${r.lines.join(' ')}; want ${c.roots.join(' ')}`).toBe(true);
      expect(r.setSize).toBeGreaterThan(0);
      expect(r.setSize).toBeLessThanOrEqual(3);
    });
  }

  it("the issue's case: memcpy through the PLT, summarised, overwrites the function pointer in the same object", () => {
    const r = results.get('heap_name_memcpy-O0')!.report!;
    expect(r.signal).toBe('SIGSEGV');
    expect(r.summarisedCalls).toBeGreaterThan(0);
    expect(r.rootCauses[0].kind).toBe('out-of-bounds');
    expect(r.rootCauses[0].what).toMatch(/^memcpy writes 41 bytes to .*overwrites the code pointer/);
    expect(r.confidence).toBe('established');
  });

  it('read(2) past a stack buffer is a store over the live return address', () => {
    const r = results.get('stack_read_stdin-O0')!.report!;
    expect(r.rootCauses[0].what).toMatch(/the read system call writes .*return address/);
  });

  it("an overflow in a private shared library (found through the program's $ORIGIN run path) crashes the main program: the store in the library, with the program's call into it", () => {
    const r = results.get('lib_overflow-O2')!.report!;
    expect(r.crash.location.inMain).toBe(true);
    const root = r.rootCauses[0];
    expect(root.location.module).toBe('libfill.so');
    expect(root.location.line).toMatch(/lib\/libfill\.c:3$/);
    expect(root.callSite?.location.line).toMatch(/lib_overflow\.c:21$/);
    expect(root.what).toMatch(/overwrites the code pointer/);
  });

  it("fread's copy inside libc, through libc's own IRELATIVE PLT slot, is summarised as memcpy and charged to the program's fread", () => {
    const r = results.get('file_fread_len-O0')!.report!;
    const root = r.rootCauses[0];
    expect(root.location.inMain).toBe(false);
    expect(root.what).toMatch(/^mem(cpy|move) writes 48 bytes .*overwrites the code pointer/);
    expect(root.callSite?.location.line).toMatch(/file_fread_len\.c:23$/);
  });

  it('a use after free whose memory a later allocation reused: the free, through a pointer made before it', () => {
    const r = results.get('uaf_reuse-O0')!.report!;
    const root = r.rootCauses[0];
    expect(root.kind).toBe('use-after-free');
    expect(root.location.line).toMatch(/uaf_reuse\.c:19$/);
    expect(root.what).toMatch(/after the memory was allocated again/);
    expect(r.heapObjects.filter((o) => o.start === r.heapObjects[0].start)).toHaveLength(2);
  });

  it('the stack run out by a recursion names the recursive call, by a large frame the allocation', () => {
    const rec = results.get('recursion_depth-O2')!.report!;
    expect(rec.crash.what).toMatch(/at the end of the stack/);
    expect(rec.rootCauses[0].kind).toBe('stack-exhaustion');
    expect(rec.rootCauses[0].what).toMatch(/^depth_sum calls itself here: this call was open \d+ times/);
    expect(rec.confidence).toBe('established');
    const vla = results.get('vla_count-O0')!.report!;
    expect(vla.rootCauses[0].kind).toBe('stack-exhaustion');
    expect(vla.rootCauses[0].what).toMatch(/the frame of sum_of_squares took \d+ bytes/);
  });

  it('a division by zero follows the divisor; a signal the program raises is no fault', () => {
    const div = results.get('per_item_average-O2')!.report!;
    expect(div.signal).toBe('SIGFPE');
    expect(div.crash.what).toMatch(/^divides by zero/);
    const raised = results.get('raise_on_error-O2')!.report!;
    expect(raised.rootCauses[0].kind).toBe('signal-sent');
    expect(raised.rootCauses[0].what).toMatch(/tgkill system call\): not a fault/);
    expect(raised.confidence).toBe('established');
  });

  it('the stack protector\'s abort names the store over its canary', () => {
    const r = results.get('greeting_canary-O2')!.report!;
    expect(r.signal).toBe('SIGABRT');
    expect(r.crash.what).toMatch(/^the stack protector found the canary at 0x[0-9a-f]+ changed/);
    expect(r.rootCauses[0].kind).toBe('out-of-bounds');
    expect(r.rootCauses[0].what).toMatch(/^strcpy writes \d+ bytes .*the live stack-protector canary/);
  });

  it('a double free is a SIGABRT named at the call that aborted', () => {
    const r = results.get('double_free-O0')!.report!;
    expect(r.signal).toBe('SIGABRT');
    expect(r.rootCauses[0].kind).toBe('abort');
    expect(r.confidence).toBe('conditional');
  });
});

describe('ptscope crash (command line)', () => {
  const bundle = (): string => cases.get(CLI_CASE)!.bundle;

  it('text: the root cause with its source line; status 0', () => {
    const r = run(['crash', bundle()]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/root cause \(established\):/);
    expect(r.stdout).toMatch(/#1 out-of-bounds: .*heap_name_memcpy\.c:18/);
    expect(r.stderr).toBe('');
  });

  it('JSON: the same report, parseable', () => {
    const r = cliJson;
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout);
    expect(j.rootCauses[0].location.line).toMatch(/heap_name_memcpy\.c:18$/);
    expect(j.aliasing).toEqual({ byValue: expect.any(Number), byHeapLayout: expect.any(Number), assumed: expect.any(Number) });
    expect(j.core.source).toBe('bundle');
  });

  it('--no-sandbox only warns when the bundle has its core (nothing is re-run); the report is the same', () => {
    const a = cliJson;
    const b = run(['crash', '--json', '--no-sandbox', bundle()]);
    expect(b.status).toBe(0);
    expect(b.stderr.trim().split('\n')).toEqual(['ptscope: warning: --no-sandbox: a re-run of the program runs unconfined, with your network and files']);
    expect(JSON.parse(b.stdout).rootCauses).toEqual(JSON.parse(a.stdout).rootCauses);
  });

  it('--no-rerun on a bundle without a core: one line, status 2', () => {
    const copy = join(work, 'nocore.ptscope');
    cpSync(bundle(), copy, { recursive: true, filter: (src) => !src.endsWith('/core') });
    const r = run(['crash', '--no-rerun', copy]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ptscope: crash: .*no core file; pass --core FILE/);
  });

  it('bad input: a missing path, a non-core --core, a bad --window: one line each, status 2', () => {
    const notCore = join(work, 'not-a-core');
    writeFileSync(notCore, 'hello');
    for (const args of [['crash', join(work, 'missing')], ['crash', '--core', notCore, bundle()], ['crash', '--window', '0', bundle()], ['crash']]) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      const err = r.stderr.trim().split('\n');
      expect(err, args.join(' ')).toHaveLength(1);
      expect(err[0]).toMatch(/^(ptscope|error)/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});
