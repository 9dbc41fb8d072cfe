import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDumpCommand } from '../src/cli/dump-command.js';
import { LineWriter } from '../src/cli/output.js';
import { loadManifest, normalizeLines, VECTORS } from './helpers/vectors.js';

/** Run `ptscope dump <argv>` in-process inside the case folder. */
function dump(argv: string[], cwd: string): string {
  const out = new LineWriter(null);
  const prev = process.cwd();
  process.chdir(cwd);
  try {
    runDumpCommand(argv, out);
  } finally {
    process.chdir(prev);
  }
  out.flush();
  return out.text;
}

describe('ptdump conformance on the libipt vectors', () => {
  const cases = loadManifest();
  const failures: string[] = [];
  let passed = 0;

  it('has every case of the shared set', () => {
    expect(cases.length).toBe(391);
  });

  for (const c of cases) {
    it(c.name, () => {
      const dir = join(VECTORS, c.name);
      const expected = readFileSync(join(dir, c.ptdump.exp), 'utf8');
      const actual = dump(c.ptdump.argv, dir);
      const ok = JSON.stringify(normalizeLines(actual)) === JSON.stringify(normalizeLines(expected));
      if (ok) passed++;
      else failures.push(c.name);
      expect(normalizeLines(actual)).toEqual(normalizeLines(expected));
    });
  }

  it('reports the count that passed', () => {
    console.log(`ptdump conformance: ${passed}/${cases.length} passed${failures.length ? `; failing: ${failures.join(', ')}` : ''}`);
    expect(passed).toBe(cases.length);
  });
});
