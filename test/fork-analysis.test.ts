/**
 * A forked child continues its parent's history: a longjmp in the child to
 * a setjmp made before the fork is prepared in the parent's stream, which
 * the child's detectors never saw. Analysed per thread, the child's stream
 * takes such a switch as prepared before its start (unchecked), never as a
 * CFI or inter-module violation; a transfer nothing could have prepared is
 * still judged.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeTrace } from '../src/analyses/analyze.js';
import { inheritsHistory, traceInputs } from '../src/analyses/trace-input.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { REPO_ROOT } from './helpers/oracle.js';
import { recordProbe } from './helpers/probe.js';

let work: string;
let bundle: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ptscope-fork-analysis-'));
  const exe = join(work, 'fork-longjmp');
  const cc = spawnSync('gcc', ['-O1', '-o', exe, join(REPO_ROOT, 'test', 'fixtures', 'threads', 'fork-longjmp.c')], { encoding: 'utf8' });
  expect(cc.status, cc.stderr).toBe(0);
  const res = await recordProbe(work, [exe]);
  expect(res.stdout).toBe('child resumed at the setjmp\nparent\n');
  bundle = res.bundle;
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a forked child analysed per thread', () => {
  it('only the child\'s first stream inherits a history; its longjmp to the parent\'s setjmp is no finding', () => {
    const rec = openRecording(bundle);
    try {
      const inputs = traceInputs(rec);
      expect(inputs.map(inheritsHistory)).toEqual([false, true]);
      const [parent, child] = inputs.map((i) => analyzeTrace(i));
      expect(parent!.findings).toEqual([]);
      expect(child!.findings).toEqual([]);
      const stats = Object.fromEntries(child!.detectors.map((d) => [d.name, d.stats]));
      for (const name of ['cfi', 'inter-module', 'shadow-stack']) expect(stats[name]!['switch.prepared-unseen'], name).toBe(1);
    } finally {
      rec.close();
    }
  });
});
