/**
 * The fuzzing demo (tools/fuzz-demo.ts): afl-fuzz's has_new_bits rule, the
 * mutator, and a short real run — each run recorded with the emulated
 * recorder, its bitmap from the edge decoder checked against the exact
 * decoder's — with its self-contained HTML plot.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fuzzReportHtml, hasNewBits, mutate, runFuzzDemo } from '../tools/fuzz-demo.js';

describe('fuzzing demo', () => {
  const work = mkdtempSync(join(tmpdir(), 'ptscope-fuzz-demo-test-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("keeps what afl-fuzz's has_new_bits keeps", () => {
    const virgin = new Uint8Array(8).fill(0xff);
    const map = new Uint8Array(8);
    map[1] = 1;
    expect(hasNewBits(map, virgin)).toBe(2);
    expect(hasNewBits(map, virgin)).toBe(0);
    map[1] = 4;
    expect(hasNewBits(map, virgin)).toBe(1);
    map[1] = 1;
    map[5] = 128;
    expect(hasNewBits(map, virgin)).toBe(2);
    expect(virgin[1]).toBe(0xff & ~1 & ~4);
  });

  it('mutates reproducibly and within bounds', () => {
    const seq = (seed: number): string[] => {
      let x = seed;
      const rand = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
      const corpus = [Buffer.from('{"a": [1, 2]}'), Buffer.from('"s"')];
      const out: string[] = [];
      let cur: Uint8Array = corpus[0]!;
      for (let i = 0; i < 200; i++) {
        cur = mutate(cur, corpus, rand);
        expect(cur.length).toBeLessThanOrEqual(1024);
        out.push(Buffer.from(cur).toString('latin1'));
      }
      return out;
    };
    expect(seq(5)).toEqual(seq(5));
    expect(new Set(seq(5)).size).toBeGreaterThan(100);
  });

  it('runs: coverage grows, every bitmap equals the exact decoder\'s, the page plots it', async () => {
    const lines: string[] = [];
    const r = await runFuzzDemo({ runs: 3, seed: 1, work, check: true, log: (l) => lines.push(l) });
    expect(r.runs.length).toBe(6);
    expect(r.checked).toBe(6);
    // The three seeds each reach new code.
    expect(r.corpus.length).toBeGreaterThanOrEqual(3);
    expect(r.runs.every((p, i) => i === 0 || p.covered >= r.runs[i - 1]!.covered)).toBe(true);
    expect(r.runs[r.runs.length - 1]!.covered).toBeGreaterThan(40);
    expect(lines.length).toBe(r.corpus.length);
    expect(r.runs.every((p) => p.path === 'fast')).toBe(true);
    const html = fuzzReportHtml(r);
    expect(html).toMatch(/<svg [^>]*>/);
    expect((html.match(/<path d="M/g) ?? []).length).toBe(1);
    expect((html.match(/ L/g) ?? []).length).toBe(5);
    // Self-contained: nothing loaded from elsewhere.
    expect(html).not.toMatch(/\b(src|href)=/);
  });
});
