import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFlowCommand } from '../src/cli/flow.js';
import { LineWriter } from '../src/cli/output.js';
import { IpSequenceHash } from '../src/sources/recorder/ip-sequence-hash.js';
import { normalizeLines, REAL_TRACES } from './helpers/vectors.js';

interface RealTrace {
  name: string;
  insn: number;
  ipseq_fnv1a64: string;
  ptxed: { exp: string; argv: string[] };
}

function flow(argv: string[], cwd: string): string {
  const out = new LineWriter(null);
  const prev = process.cwd();
  process.chdir(cwd);
  try {
    runFlowCommand(argv, out);
  } finally {
    process.chdir(prev);
  }
  out.flush();
  return out.text;
}

const traces = JSON.parse(readFileSync(join(REAL_TRACES, 'MANIFEST.json'), 'utf8')) as RealTrace[];

describe('real-CPU traces', () => {
  for (const t of traces) {
    const dir = join(REAL_TRACES, t.name);
    it(`${t.name}: --insn-decoder matches ptxed --stat`, () => {
      const expected = readFileSync(join(dir, t.ptxed.exp), 'utf8');
      expect(normalizeLines(flow(['--insn-decoder', ...t.ptxed.argv], dir))).toEqual(normalizeLines(expected));
    });

    it(`${t.name}: --block-decoder gives the same instruction count`, () => {
      const text = flow(['--block-decoder', ...t.ptxed.argv], dir);
      expect(text).toContain(`insn: ${t.insn}.`);
    });

    it(`${t.name}: the listing's IP sequence hash`, () => {
      const argv = t.ptxed.argv.filter((a) => a !== '--quiet' && a !== '--stat' && a !== '--stat:insn');
      const text = flow(['--insn-decoder', '--no-inst', ...argv], dir);
      const hash = new IpSequenceHash();
      for (const line of text.split('\n')) {
        const m = /^(?:\? )?([0-9a-f]{16})$/.exec(line);
        if (m) hash.add(Number(BigInt.asIntN(64, BigInt('0x' + m[1]))));
      }
      expect(hash.count).toBe(t.insn);
      expect(hash.hex()).toBe(t.ipseq_fnv1a64);
    });
  }
});
