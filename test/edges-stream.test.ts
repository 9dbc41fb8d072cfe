/**
 * The edge decoder over a trace read through a window (a PacketStream over
 * a source, as `coverage --edges` reads a file or a recording's stream):
 * the fast path's inline packet loop and its look-aheads slide the window,
 * so with a small window and a source that hands out odd-sized pieces,
 * packets cross window ends everywhere. Each decode must take the same
 * path, give up for the same reason and count the same edges as the
 * decode of the trace in memory.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openTraceInput, type TraceInput } from '../src/analyses/trace-input.js';
import { EdgeCoverage } from '../src/flow/edges/edge-coverage.js';
import { EdgePairs } from '../src/flow/edges/edge-pairs.js';
import { Rng } from '../bench/synthetic-trace.js';
import { mutate } from '../tools/conformance/mutate.js';
import { ChunkedSource } from './helpers/chunked-source.js';
import { REAL_TRACES, realTraces } from './helpers/vectors.js';

/** The smallest window a PacketStream takes. */
const WINDOW = 4096;

function inputOf(name: string): TraceInput {
  const t = realTraces().find((r) => r.name === name)!;
  const dir = join(REAL_TRACES, name);
  const cpu = t.ptxed.argv[t.ptxed.argv.indexOf('--cpu') + 1]!;
  return openTraceInput(join(dir, t.pt), { raw: t.images.map((i) => `${join(dir, i.file)}:${i.address}`), cpu });
}

/** An edge decoder for traces in memory and one that reads through a small window. */
function decoders(input: TraceInput): [EdgeCoverage, EdgeCoverage] {
  return [new EdgeCoverage(input.image, input.config), new EdgeCoverage(input.image, input.config, { streamWindow: WINDOW })];
}

/** Decode `trace` in memory and through a window; expect the same result. Returns the path. */
function compare(label: string, [memory, windowed]: [EdgeCoverage, EdgeCoverage], trace: Uint8Array, chunk: number): string {
  const want = new EdgePairs();
  const got = new EdgePairs();
  const path = memory.count(trace, want);
  const source = new ChunkedSource(trace, chunk);
  expect(windowed.count(source, got), `${label}: path`).toBe(path);
  expect(windowed.lastBailReason, `${label}: why the fast path gave up`).toBe(memory.lastBailReason);
  if (!got.equals(want)) expect(got.list(), `${label}: edges`).toEqual(want.list());
  expect(got.total, `${label}: edges taken`).toBe(want.total);
  if (trace.length > 4 * WINDOW) expect(source.reads, `${label}: read in pieces`).toBeGreaterThan(trace.length / WINDOW);
  return path;
}

describe('edge decoder through a window', () => {
  it.each(realTraces().map((t) => t.name))('%s: the same edges as in memory, read in odd pieces', (name) => {
    const input = inputOf(name);
    const trace = input.trace;
    const decs = decoders(input);
    for (const chunk of [WINDOW, 997, 61]) compare(`${name} chunk ${chunk}`, decs, trace, chunk);
    // Three copies in a row: the copies' joins land at other window offsets.
    const three = new Uint8Array(trace.length * 3);
    for (let i = 0; i < 3; i++) three.set(trace, i * trace.length);
    compare(`${name} x3`, decs, three, 1021);
  });

  it('mutants of the real traces (flips, cuts, dropped PSBs): the same path and edges', () => {
    const rng = new Rng(20261206);
    const paths: Record<string, number> = { fast: 0, exact: 0 };
    for (const name of ['unzip', 'mruby', 'dyn_test']) {
      const input = inputOf(name);
      const decs = decoders(input);
      // mruby's first 64 KiB: TNT-heavy code, and quick enough for many mutants.
      const base = input.trace.subarray(0, 64 << 10);
      for (let i = 0; i < 40; i++) {
        const m = mutate(rng, base);
        paths[compare(`${name} mutant ${i}`, decs, m, 509 + rng.int(3000))]!++;
      }
    }
    console.log(`edges through a window: 120 mutants, ${paths.fast} by the fast path, ${paths.exact} by the exact decoder`);
    // Both paths are exercised through the window.
    expect(paths.fast).toBeGreaterThan(10);
    expect(paths.exact).toBeGreaterThan(10);
  });
});
