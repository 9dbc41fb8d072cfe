/**
 * ptscope's own conformance vectors (test/conformance/vectors) are what
 * libipt's pttc, ptdump and ptxed make of the .ptt files in
 * test/conformance/ptt, and nothing else: regenerate each case with the
 * vectors' libipt and compare every file and the manifest entry.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatePtt, libiptTools, pttFiles, VECTOR_DIR, type ManifestEntry } from '../tools/conformance/ptt-vectors.js';

const manifest = JSON.parse(readFileSync(join(VECTOR_DIR, 'MANIFEST.json'), 'utf8')) as ManifestEntry[];
const byName = new Map(manifest.map((e) => [e.name, e]));

describe('ptscope conformance vectors are reproduced by libipt', () => {
  const tools = libiptTools();
  const seen = new Set<string>();

  for (const ptt of pttFiles()) {
    it(ptt.slice(ptt.lastIndexOf('/') + 1), () => {
      for (const c of generatePtt(ptt, tools)) {
        seen.add(c.entry.name);
        expect(byName.get(c.entry.name), c.entry.name).toEqual(c.entry);
        for (const [file, data] of c.files) {
          const have = readFileSync(join(VECTOR_DIR, c.entry.name, file));
          expect(have.equals(data), `${c.entry.name}/${file}`).toBe(true);
        }
      }
    });
  }

  it('has no case without its .ptt', () => {
    expect([...byName.keys()].filter((n) => !seen.has(n))).toEqual([]);
  });
});
