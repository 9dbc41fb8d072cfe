/**
 * `ptscope dormant` when the check lives in the program's own shared
 * library: corpus/dormant/shlib.c calls the payload only if `licensed()`
 * from its libcheck.so (corpus/dormant/libcheck.c: a key from getenv, the
 * year from localtime, a licence file from access) says so. The library
 * is linked the ordinary way (-Wl,-rpath,'$ORIGIN') and built with the
 * program (tools/eval-dormant-corpus.ts).
 *
 * End to end: the first recording does not run the payload; the region in
 * main is found; the rounds solve the three library calls at their sites
 * inside libcheck.so; the patched re-recording runs the payload; the shim
 * decides by the caller's module, so the same rules written for the main
 * executable patch nothing; a malformed rule is one clear line.
 */
import { readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CodeSpace } from '../src/analyses/dormant/code-space.js';
import { tracedMainModule, tracedOwnLibraries } from '../src/analyses/dormant/coverage-merge.js';
import { analyzeDormant } from '../src/analyses/dormant/dormant.js';
import { patchedRun } from '../src/analyses/dormant/rerun.js';
import { shutdownZ3 } from '../src/analyses/dormant/z3-context.js';
import { importBundle } from '../src/sources/import/bundle-import.js';
import { buildByName, libraryPath, payloadRegion, recordBuild, SAMPLES } from '../tools/eval-dormant-corpus.js';

const OUT = join(__dirname, '..', 'build/dormant/test/shlib');

describe('dormant code behind a check in the program\'s own shared library', () => {
  afterAll(async () => {
    await shutdownZ3();
  });

  it('shlib (-O2 -fPIE -pie, checks kept as calls): found, solved inside libcheck.so, and the re-run runs the payload', async () => {
    const sample = SAMPLES.find((s) => s.name === 'shlib')!;
    expect(sample.heldOut).toBe(false);
    const build = buildByName('O2-pie-noinline');
    const lib = basename(libraryPath(sample, build, OUT)!);
    const { bundle, stdout } = await recordBuild(sample, build, OUT);
    expect(stdout).toContain('done');
    expect(stdout).not.toContain('payload:');

    // The program's own library is code to follow (libc and the loader are not); its export's APIs weigh a call into it.
    const first = importBundle(bundle);
    const main = tracedMainModule(first);
    const libraries = tracedOwnLibraries(first, main);
    expect(libraries.map((l) => basename(l.path))).toEqual([lib]);
    const space = new CodeSpace(main, libraries);
    expect(space.exportOf('licensed')?.module).toBe(1);
    expect(space.libraryApis('licensed')).toEqual(expect.arrayContaining(['getenv', 'time', 'localtime', 'access']));

    const report = await analyzeDormant(bundle, { rerun: true, maxRegions: 1, timeoutMs: 20_000 });
    const region = payloadRegion(report)!;
    expect(region, JSON.stringify(report.regions.map((r) => r.calls))).toBeDefined();
    // The region and its guard are in main; the guard's condition comes from licensed().
    expect(region.function).toBe('main');
    expect(region.status, region.reason ?? '').toBe('proven');
    expect(region.proof!.targetRan).toBe(true);
    expect(region.proof!.output).toContain('payload: wrote marker dormant-marker-shlib');

    // Every solved call was made inside the library, and its rule names the library.
    const calls = region.trigger.map((t) => t.call.replace(/\(.*/, ''));
    expect(calls).toEqual(expect.arrayContaining(['getenv', 'localtime', 'access']));
    for (const t of region.trigger) expect(t.site.startsWith(`${lib}:0x`), t.site).toBe(true);
    expect(JSON.stringify(region.trigger)).toContain('\\"ACME-7731\\"');
    expect(region.trigger.find((t) => t.call.startsWith('localtime'))!.values.some((v) => v.symbol === 'tm_year' && Number(v.value.split(' ')[0]) >= 130)).toBe(true);
    expect(region.rules.length).toBeGreaterThanOrEqual(3);
    for (const r of region.rules) expect(r.split(' ')[1].startsWith(`${lib}:`), r).toBe(true);
    // The slice runs through the library's code and ends at main's guard.
    expect(region.slice.some((s) => s.ip.startsWith(`${lib}:`))).toBe(true);
    expect(region.slice[region.slice.length - 1].ip).toBe(region.guard);

    // Rounds: each library check opens in turn; every round before the last ran new blocks.
    expect(region.rounds.length).toBeGreaterThanOrEqual(2);
    expect(region.rounds[region.rounds.length - 1].targetRan).toBe(true);
    for (const k of region.rounds.slice(0, -1)) expect(k.newlyExecutedBlocks).toBeGreaterThan(0);

    // The same rules, confined, with the bundle's copy of libcheck.so shown at its recorded path: the marker file.
    const recording = first;
    const run = patchedRun(recording, region.rules);
    try {
      expect(run.files).toContain('dormant-marker-shlib');
      expect(readFileSync(join(run.workDir, 'dormant-marker-shlib'), 'utf8')).toBe('shlib payload ran\n');
    } finally {
      rmSync(run.workDir, { recursive: true, force: true });
    }

    // The shim decides by the caller's module: the same sites read as main-executable sites patch nothing.
    const asMain = region.rules.map((r) => r.replace(` ${lib}:`, ' '));
    const other = patchedRun(recording, asMain);
    try {
      expect(other.stdout).not.toContain('payload:');
      expect(other.files).not.toContain('dormant-marker-shlib');
    } finally {
      rmSync(other.workDir, { recursive: true, force: true });
    }

    // A malformed site is reported by the shim on one line and the rule ignored; the program still runs.
    const bad = patchedRun(recording, [`getenv ${lib}:zz ret=0`, 'access :11 ret=0', `getenv ${lib}:11#0 ret=0`, `getenv ${lib}:11#x ret=0`]);
    try {
      expect(bad.stderr).toContain('ptscope dormant shim: rule 1: SITE must be HEX (main executable) or MODULE:HEX, then optionally #N; rule ignored');
      expect(bad.stderr).toContain('ptscope dormant shim: rule 2: SITE must be HEX (main executable) or MODULE:HEX, then optionally #N; rule ignored');
      // An occurrence counts from 1, in decimal.
      expect(bad.stderr).toContain('ptscope dormant shim: rule 3: SITE must be HEX (main executable) or MODULE:HEX, then optionally #N; rule ignored');
      expect(bad.stderr).toContain('ptscope dormant shim: rule 4: SITE must be HEX (main executable) or MODULE:HEX, then optionally #N; rule ignored');
      expect(bad.stdout).toContain('done');
    } finally {
      rmSync(bad.workDir, { recursive: true, force: true });
    }
  }, 300_000);
});
