import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDumpCommand } from '../src/cli/dump-command.js';
import { runIn } from '../tools/conformance/run-in.js';
import { loadManifest, normalizeLines, PTSCOPE_VECTORS, VECTORS } from './helpers/vectors.js';

/** `ptscope dump <argv>` in-process inside the case folder (a usage error prints nothing here). */
function dump(argv: string[], cwd: string): string {
  return runIn(runDumpCommand, argv, cwd, false);
}

const suites = [
  { name: 'the libipt vectors', dir: VECTORS, count: 391 },
  // Cases written for what the shared vectors leave out; expectations from libipt's own ptdump.
  { name: "ptscope's vectors", dir: PTSCOPE_VECTORS, count: loadManifest(PTSCOPE_VECTORS).length },
];

for (const suite of suites) {
  describe(`ptdump conformance on ${suite.name}`, () => {
    const cases = loadManifest(suite.dir);
    const failures: string[] = [];
    let passed = 0;

    it('has every case of the set', () => {
      expect(cases.length).toBe(suite.count);
      expect(cases.length).toBeGreaterThan(0);
    });

    for (const c of cases) {
      it(c.name, () => {
        const dir = join(suite.dir, c.name);
        const expected = readFileSync(join(dir, c.ptdump.exp), 'utf8');
        const actual = dump(c.ptdump.argv, dir);
        const ok = JSON.stringify(normalizeLines(actual)) === JSON.stringify(normalizeLines(expected));
        if (ok) passed++;
        else failures.push(c.name);
        expect(normalizeLines(actual)).toEqual(normalizeLines(expected));
      });
    }

    it('reports the count that passed', () => {
      console.log(`ptdump conformance on ${suite.name}: ${passed}/${cases.length} passed${failures.length ? `; failing: ${failures.join(', ')}` : ''}`);
      expect(passed).toBe(cases.length);
    });
  });
}
