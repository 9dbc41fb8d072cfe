/**
 * A crash in a thread that is not the program's first, through a pointer
 * that an overflowing string copy replaced with text: `crash` analyses the
 * crashing thread's stream, finds the copy, and writes the bad pointer
 * exactly (it is past 2^53, where a JS number rounds).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeCrash } from '../src/analyses/crash/crash.js';
import type { ManifestV2 } from '../src/sources/bundle/manifest.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { record } from '../src/sources/recorder/record.js';
import { TempDirs } from './helpers/temp-dirs.js';

const temps = new TempDirs();
afterAll(() => temps.removeAll());

// An ordinary build (gcc -g -O0, the compiler's defaults: PIE, builtins).
const SOURCE = `#include <pthread.h>
#include <stdio.h>
#include <string.h>
struct job { char name[8]; int *slot; };
static void *worker(void *arg) {
  struct job *j = arg;
  strcpy(j->name, "overflowing-name!"); /* ROOT CAUSE */
  *j->slot = 42;
  return NULL;
}
static void *idle(void *arg) { (void)arg; for (volatile int i = 0; i < 100000; i++); return NULL; }
int main(void) {
  int x = 0;
  struct job j = { "", &x };
  pthread_t a, b;
  pthread_create(&b, NULL, idle, NULL);
  pthread_create(&a, NULL, worker, &j);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  printf("%d\\n", x);
  return 0;
}
`;

describe('crash in a second thread', () => {
  it('analyses the crashing thread, names the overflowing copy, and writes the text pointer exactly', async () => {
    const dir = temps.make('ptscope-crash-thread-');
    writeFileSync(join(dir, 'thread_overflow.c'), SOURCE);
    const program = join(dir, 'thread_overflow');
    execFileSync('gcc', ['-g', '-O0', '-pthread', '-o', program, join(dir, 'thread_overflow.c')]);
    const bundle = join(dir, 'b.ptscope');
    await record(withRecordDefaults({ argv: [program], output: bundle, timeoutSec: 60, hardware: false, stdio: 'ignore', notice: () => {} }));
    const m = JSON.parse(readFileSync(join(bundle, 'manifest.json'), 'utf8')) as ManifestV2;
    expect(m.exit.signal).toBe('SIGSEGV');
    expect(m.threads.length).toBe(3);
    const r = analyzeCrash(bundle);
    expect(r.core.matchesTrace).toBe(true);
    expect(r.crash.location.line).toMatch(/thread_overflow\.c:8$/);
    expect(r.crash.location.symbol).toMatch(/^worker\+0x/);
    // "ing-name" as a little-endian pointer: 0x656d616e2d676e69, which a number would round to ...677000.
    expect(r.crash.faultAddress).toBe('0x656d616e2d676e69');
    expect(r.crash.what).toBe('writes 0x656d616e2d676e69 (unmapped)');
    expect(r.rootCauses[0]?.location.line).toMatch(/thread_overflow\.c:7$/);
    const origin = r.rootCauses[0]!.chain[0]!;
    expect(origin.what).toContain('0x656d616e2d676e69');
  }, 180_000);
});
