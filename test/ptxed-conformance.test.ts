import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFlowCommand } from '../src/cli/flow.js';
import { runIn } from '../tools/conformance/run-in.js';
import { loadManifest, normalizeLines, PTSCOPE_VECTORS, VECTORS } from './helpers/vectors.js';

/** `ptscope flow <argv>` in-process inside the case folder. */
function flow(argv: string[], cwd: string): string {
  return runIn(runFlowCommand, argv, cwd, true);
}

const suites = [
  { name: 'the libipt vectors', dir: VECTORS, count: 354 },
  // Cases written for what the shared vectors leave out; expectations from libipt's own ptxed.
  { name: "ptscope's vectors", dir: PTSCOPE_VECTORS, count: loadManifest(PTSCOPE_VECTORS).filter((c) => c.ptxed).length },
];

for (const suite of suites) {
  const cases = loadManifest(suite.dir).filter((c) => c.ptxed);
  // libipt's test script runs every ptxed case with both decoders.
  for (const decoder of ['--insn-decoder', '--block-decoder']) {
    describe(`ptxed conformance (${decoder}) on ${suite.name}`, () => {
      const failures: string[] = [];
      let passed = 0;

      it('has every ptxed case of the set', () => {
        expect(cases.length).toBe(suite.count);
        expect(cases.length).toBeGreaterThan(0);
      });

      for (const c of cases) {
        it(c.name, () => {
          const dir = join(suite.dir, c.name);
          const expected = readFileSync(join(dir, c.ptxed!.exp), 'utf8');
          const actual = flow([decoder, ...c.ptxed!.argv], dir);
          const ok = JSON.stringify(normalizeLines(actual)) === JSON.stringify(normalizeLines(expected));
          if (ok) passed++;
          else failures.push(c.name);
          expect(normalizeLines(actual)).toEqual(normalizeLines(expected));
        });
      }

      it('reports the count that passed', () => {
        console.log(
          `ptxed conformance ${decoder} on ${suite.name}: ${passed}/${cases.length} passed${failures.length ? `; failing: ${failures.join(', ')}` : ''}`,
        );
        expect(passed).toBe(cases.length);
      });
    });
  }
}
