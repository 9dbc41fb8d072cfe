/**
 * Flow-level differential against libipt: ptscope's instruction and block
 * decoders and libipt's pt_insn/pt_blk loops (test/oracle/ptoracle.c) print
 * the same neutral listing (sync points, instruction IPs or blocks, error
 * offsets, IPs and names) for
 *
 *   - the shared real traces (unzip, dyn_test, mruby: 6.3 M instructions),
 *   - the emulated recorder's traces (the demo bundles, and programs
 *     recorded here with and without timing packets and return compression),
 *   - the traces of libipt's vectors that come with code,
 *   - a few hundred mutants of these (byte flips, cuts, dropped PSBs).
 *
 * The reference is the vectors' libipt (../shared/libipt-src); Debian's
 * libipt 2.0.5 is compared too, and where it differs, the vectors' libipt
 * differs from it as well (ptscope equals the latter): those cases are
 * listed in docs/conformance.md. tools/conformance/flow-differential.ts
 * runs the same comparison over thousands of mutants.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { record, type RecordOptions } from '../src/sources/recorder/record.js';
import { DEFAULT_PSB_PERIOD, withRecordDefaults } from '../src/sources/recorder/record-options.js';
import {
  bundleInput,
  compareFlow,
  mutantComparisons,
  oracleBinaries,
  realTraceInputs,
  recorderTraceInputs,
  tally,
  vectorTraceInputs,
  type FlowComparison,
  type FlowInput,
} from '../tools/conformance/flow-differential.js';
import { REPO_ROOT } from './helpers/oracle.js';

const MUTANTS = 300;

let work: string;
let bins: { head: string; v205: string };
const all: FlowComparison[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-flow-diff-'));
  bins = oracleBinaries();
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  const t = tally(all);
  if (t.total) {
    console.log(
      `flow differential: ${t.matchesHead}/${t.total} decodes equal to the vectors' libipt; ` +
        `${t.matches205}/${t.total} equal to libipt 2.0.5 (${t.versionDifferences} differences are between the two libipt versions)`,
    );
  }
});

function check(input: FlowInput, modes: readonly ('insn' | 'blk')[] = ['insn', 'blk']): void {
  const file = join(input.dir, input.trace);
  const bytes = new Uint8Array(readFileSync(file));
  for (const mode of modes) {
    const c = compareFlow(input, bytes, file, mode, bins);
    all.push(c);
    expect(c.firstDifference, `${input.name} (${mode})`).toBeUndefined();
    // A difference to 2.0.5 is one between the two libipt versions.
    if (!c.matches205) expect(c.headMatches205, `${input.name} (${mode}) vs 2.0.5`).toBe(false);
  }
}

describe('flow differential: real traces', () => {
  for (const input of realTraceInputs()) {
    it(input.name, { timeout: 300_000 }, () => check(input));
  }
});

describe('flow differential: recorder traces', () => {
  for (const input of recorderTraceInputs()) {
    it(input.name, { timeout: 60_000 }, () => check(input));
  }

  const recordings: { name: string; argv: (dir: string) => string[]; opts: Partial<RecordOptions> }[] = [
    { name: 'workload, static, timing packets', argv: (d) => [join(d, 'workload-static'), '3000'], opts: { timing: { tsc: true, mtc: true, cyc: true } } },
    { name: 'workload, dynamic, no return compression', argv: (d) => [join(d, 'workload-dynamic'), '2000'], opts: { retCompression: false, psbPeriod: 1024 } },
  ];
  let built = false;
  function build(): void {
    if (built) return;
    built = true;
    const src = join(REPO_ROOT, 'test', 'fixtures', 'recorder', 'workload.c');
    for (const [out, flags] of [['workload-static', ['-static']], ['workload-dynamic', []]] as const) {
      const res = spawnSync('gcc', ['-O1', '-o', join(work, out), src, ...flags], { encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`gcc: ${res.stderr}`);
    }
  }
  for (const [i, r] of recordings.entries()) {
    it(r.name, { timeout: 300_000 }, async () => {
      build();
      const res = await record(withRecordDefaults({
        argv: r.argv(work),
        output: join(work, `b${i}.ptscope`),
        timeoutSec: 120,
        maxInsns: 20_000_000,
        psbPeriod: DEFAULT_PSB_PERIOD,
        stdio: 'pipe',
        notice: () => {},
        ...r.opts,
      }));
      expect(res.manifest.instructions!.traced).toBeGreaterThan(0);
      check(bundleInput(res.bundle, r.name));
    });
  }
});

describe('flow differential: libipt vector traces', () => {
  it('every vector with code, both decoders', { timeout: 600_000 }, () => {
    for (const input of vectorTraceInputs()) check(input);
  });
});

describe('flow differential: mutated traces', () => {
  it(`${MUTANTS} mutants of the real, recorder and vector traces, both decoders`, { timeout: 900_000 }, () => {
    const inputs = [...realTraceInputs().filter((i) => i.name !== 'mruby'), ...recorderTraceInputs(), ...vectorTraceInputs()];
    const failures: string[] = [];
    for (const c of mutantComparisons(inputs, MUTANTS, 20240611, work)) {
      all.push(c);
      if (!c.matchesHead) failures.push(`${c.name} (${c.mode}): ${c.firstDifference}`);
      else if (!c.matches205 && c.headMatches205) failures.push(`${c.name} (${c.mode}): differs from 2.0.5 where the vectors' libipt does not`);
    }
    expect(failures).toEqual([]);
  });
});
