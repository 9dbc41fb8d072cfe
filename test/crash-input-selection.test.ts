/**
 * A crash through an object that an index from input chose: a table of
 * operation pointers, two of four filled, indexed by a number read from
 * stdin. The value the crash used is a null entry (calloc's memory); the
 * load that read it, whose index scanf stored, is a root cause
 * (input-selection.ts). -O0 adds the scaled index to the table's pointer;
 * -O2 indexes the load itself. An index that only a loop counter made
 * chooses nothing from input.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeCrash, type CrashReport } from '../src/analyses/crash/crash.js';
import { readsInput } from '../src/analyses/crash/library-routines.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { record } from '../src/sources/recorder/record.js';
import { TempDirs } from './helpers/temp-dirs.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

const TABLE = `#include <stdio.h>
#include <stdlib.h>
struct op { const char *name; int (*run)(int); };
static int twice(int x) { return 2 * x; }
static int negate(int x) { return -x; }
static struct op op_twice = { "twice", twice }, op_negate = { "negate", negate };
`;

/** Line 13 picks the entry by the index read from stdin; `use` (from line 14) crashes through it. */
const pickedThen = (use: string): string => `${TABLE}int main(void) {
  int slots = 4, idx, arg;
  struct op **table = calloc(slots, sizeof *table);
  table[0] = &op_twice;
  table[1] = &op_negate;
  if (scanf("%d %d", &idx, &arg) != 2) return 2;
  struct op *o = table[idx % slots]; /* ROOT CAUSE */
${use}
}
`;

const PICKED = pickedThen('  puts(o->name);\n  return o->run(arg) > 0 ? 0 : 1;');

// The entry called at once: at -O2 \`call [rax+8]\` faults on its read, before it pushes anything.
const CALLED = pickedThen('  return o->run(arg) > 0 ? 0 : 1;');

// A static table: gcc -O0 reads ops[i] as [offset + table], the pointer in the index register.
const STATIC = `${TABLE}static struct op *ops[4] = { &op_twice, &op_negate };
int main(void) {
  int idx, arg;
  if (scanf("%d %d", &idx, &arg) != 2) return 2;
  struct op *o = ops[idx % 4]; /* ROOT CAUSE */
  puts(o->name);
  return o->run(arg) > 0 ? 0 : 1;
}
`;

// The same null entry, reached by a loop counter.
const WALKED = `${TABLE}int main(void) {
  struct op **table = calloc(4, sizeof *table);
  table[0] = &op_twice;
  table[1] = &op_negate;
  int sum = 0;
  for (int i = 0; i < 4; i++) sum += table[i]->run(i);
  printf("%d\\n", sum);
  return 0;
}
`;

// The index from the program's arguments (the kernel's bytes above the first frame).
const ARGUED = `${TABLE}int main(int argc, char **argv) {
  struct op **table = calloc(4, sizeof *table);
  table[0] = &op_twice;
  table[1] = &op_negate;
  if (argc < 2) return 2;
  struct op *o = table[atoi(argv[1]) % 4]; /* ROOT CAUSE */
  return o->run(argc) > 0 ? 0 : 1;
}
`;

// An index main wrote into its own frame, then a long loop: the window starts after the store, below that frame.
const SPUN = `${TABLE}int main(void) {
  struct op **table = calloc(4, sizeof *table);
  table[0] = &op_twice;
  table[1] = &op_negate;
  volatile int idx = 3;
  volatile long spin = 0;
  for (long i = 0; i < 200000; i++) spin += i;
  return table[idx]->run((int)spin) > 0 ? 0 : 1;
}
`;

async function bundleOf(source: string, name: string, opt: string, stdin: string | null, args: string[] = []): Promise<string> {
  const dir = temps.make('ptscope-crash-selection-');
  writeFileSync(join(dir, `${name}.c`), source);
  const program = join(dir, name);
  execFileSync('gcc', ['-g', opt, '-o', program, join(dir, `${name}.c`)]);
  let input: string | undefined;
  if (stdin !== null) {
    input = join(dir, 'stdin.txt');
    writeFileSync(input, stdin);
  }
  const bundle = join(dir, 'b.ptscope');
  await record(withRecordDefaults({ argv: [program, ...args], output: bundle, timeoutSec: 60, hardware: false, stdio: 'ignore', stdin: input, exposeArguments: args.length > 0, notice: () => {} }));
  return bundle;
}

async function crashOf(source: string, name: string, opt: string, stdin: string | null): Promise<CrashReport> {
  return analyzeCrash(await bundleOf(source, name, opt, stdin));
}

describe('crash through an object that input chose', () => {
  it("knows libc's readers of streams and descriptors by their plain, ISO C99, internal and fortified names", () => {
    for (const s of ['read', '__libc_read', '__read_chk', 'fgets', '__fgets_chk', 'fgets_unlocked', '_IO_getc', 'getchar', 'getline', '__isoc99_scanf', '__isoc99_fscanf', 'vfscanf', 'recvfrom', 'fread']) {
      expect(readsInput(s), s).toBe(true);
    }
    for (const s of ['atoi', 'strtol', 'sscanf', '__isoc99_sscanf', 'memcpy', 'readdir', 'readlink', 'printf']) expect(readsInput(s), s).toBe(false);
  });

  for (const opt of ['-O0', '-O2']) {
    it(`${opt}: the load whose index came from stdin is a root cause`, async () => {
      const r = await crashOf(PICKED, 'pick_op', opt, '3 7\n');
      expect(r.signal).toBe('SIGSEGV');
      expect(r.core.matchesTrace).toBe(true);
      expect(r.crash.location.line).toMatch(/pick_op\.c:14$/);
      const picked = r.rootCauses.find((c) => c.kind === 'selection');
      expect(picked?.location.line).toMatch(/pick_op\.c:13$/);
      expect(picked?.what).toMatch(/comes from input \(the call of \w*scanf\)/);
      // Its chain carries the entry's pointer to the crash.
      expect(picked?.chain.at(-1)?.kind).toBe('crash');
      expect(r.confidence).not.toBe('none');
    }, 180_000);
  }

  it('-O2: a call that faults on reading its target did not push: the core is the state before it', async () => {
    const r = await crashOf(CALLED, 'called_op', '-O2', '3 7\n');
    expect(r.signal).toBe('SIGSEGV');
    expect(r.crash.instruction).toMatch(/^call /);
    expect(r.core.matchesTrace).toBe(true);
    const picked = r.rootCauses.find((c) => c.kind === 'selection');
    // gcc -O2 gives the table load the call's line.
    expect(picked?.location.line).toMatch(/called_op\.c:1[34]$/);
    expect(picked?.what).toMatch(/through an index: the index \w+ = 3 comes from input \(the call of \w*scanf\)/);
  }, 180_000);

  it('-O0: a static table read as [offset + table]: the offset is the index, the table the pointer', async () => {
    const r = await crashOf(STATIC, 'static_op', '-O0', '3 7\n');
    expect(r.signal).toBe('SIGSEGV');
    const picked = r.rootCauses.find((c) => c.kind === 'selection');
    expect(picked?.location.line).toMatch(/static_op\.c:11$/);
    expect(picked?.what).toMatch(/comes from input \(the call of \w*scanf\)/);
  }, 180_000);

  it('-O0: an index from the arguments is input while the window holds the whole run, and not once it is cut', async () => {
    const bundle = await bundleOf(ARGUED, 'argued_op', '-O0', null, ['3']);
    const whole = analyzeCrash(bundle);
    expect(whole.signal).toBe('SIGSEGV');
    // Every traced instruction (and the faulting one, from the core).
    expect(whole.window.instructions).toBeGreaterThanOrEqual(whole.window.traced);
    const picked = whole.rootCauses.find((c) => c.kind === 'selection');
    expect(picked?.location.line).toMatch(/argued_op\.c:12$/);
    expect(picked?.what).toMatch(/arguments and environment/);
    // A window of the last instructions only: what lies above its first frame may be the program's own.
    const cut = analyzeCrash(bundle, { window: 3000 });
    expect(cut.window.instructions).toBeLessThan(cut.window.traced);
    expect(cut.rootCauses.some((c) => c.kind === 'selection' && /arguments and environment/.test(c.what))).toBe(false);
  }, 180_000);

  it("-O0: an index main stored in its own frame before the window is not the program's arguments", async () => {
    const r = await crashOf(SPUN, 'spun_op', '-O0', null);
    expect(r.signal).toBe('SIGSEGV');
    expect(r.window.instructions).toBeLessThan(r.window.traced);
    expect(r.rootCauses.some((c) => c.kind === 'selection')).toBe(false);
  }, 180_000);

  it('-O0: an entry a loop counter chose is no such root cause', async () => {
    const r = await crashOf(WALKED, 'walk_ops', '-O0', null);
    expect(r.signal).toBe('SIGSEGV');
    expect(r.core.matchesTrace).toBe(true);
    expect(r.rootCauses.some((c) => c.kind === 'selection')).toBe(false);
  }, 180_000);
});
