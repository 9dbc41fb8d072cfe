/**
 * A small coverage-guided fuzzer built on the edge decoder: it mutates
 * inputs of corpus/fuzz/json_check.c, records each run with the emulated
 * recorder (traced inside the target's .text, as kAFL traces its target),
 * decodes the trace into an AFL bitmap with {@link EdgeCoverage} (one
 * reused bitmap, no allocation per run) and keeps an input when the bitmap
 * has a new edge or a new hit-count bucket (afl-fuzz's has_new_bits).
 * With --check (the default) every bitmap is also compared with the exact
 * decoder's. The recorder dominates the time (qemu start-up); the point is
 * that the bitmap path is real and exact.
 *
 *   node dist/tools/fuzz-demo.js [--runs N] [--seed S] [--out FILE.html] [--work DIR] [--no-check]
 *
 * It prints one line per run that found something and a summary, and
 * writes a self-contained HTML page with the coverage plot.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { xorshift32 } from '../bench/synthetic-trace.js';
import { EdgeCoverage } from '../src/flow/edges/edge-coverage.js';
import { buildTarget, recordRun } from './fuzz-demo-target.js';

export interface FuzzDemoOptions {
  runs: number;
  seed: number;
  /** Scratch directory (the target binary, inputs, bundles). */
  work: string;
  /** Compare each bitmap with the exact decoder's. */
  check: boolean;
  /** One line per event worth showing. */
  log: (line: string) => void;
}

/** One run of the target. */
export interface FuzzRun {
  run: number;
  /** Map entries (edge ids) covered so far, after this run. */
  covered: number;
  corpus: number;
  /** This run's input was kept: 2 new edges, 1 new bucket only, 0 nothing new. */
  found: 0 | 1 | 2;
  traceBytes: number;
  edges: number;
  recordSeconds: number;
  decodeSeconds: number;
  path: 'fast' | 'exact';
}

export interface FuzzDemoResult {
  runs: FuzzRun[];
  corpus: { run: number; input: string; newIds: number }[];
  checked: number;
  seconds: number;
}

/** Seeds: a minimal document of each kind. */
const SEEDS = ['{}', '[1]', '"s"'];

/** JSON tokens and keys the mutator inserts (an AFL dictionary). */
const TOKENS = ['{', '}', '[', ']', '"', ':', ',', 'true', 'false', 'null', '\\u00', '\\n', '-', '.', 'e+', '0', '12', '"version"', '"tags"', '"limits"', ' '];

/** AFL-style havoc: a few random edits of `input` (bytes), with tokens and splicing. */
export function mutate(input: Uint8Array, corpus: readonly Uint8Array[], rand: () => number): Uint8Array {
  let bytes = Array.from(input);
  const edits = 1 + (rand() % 4);
  for (let e = 0; e < edits; e++) {
    const at = bytes.length === 0 ? 0 : rand() % (bytes.length + 1);
    switch (rand() % 7) {
      case 0:
        if (bytes.length > 0) bytes[at % bytes.length] ^= 1 << (rand() % 8);
        break;
      case 1:
        if (bytes.length > 0) bytes[at % bytes.length] = 32 + (rand() % 95);
        break;
      case 2:
      case 3: {
        const t = TOKENS[rand() % TOKENS.length]!;
        bytes.splice(at, 0, ...Buffer.from(t, 'latin1'));
        break;
      }
      case 4:
        if (bytes.length > 1) bytes.splice(at % bytes.length, 1 + (rand() % Math.min(8, bytes.length)));
        break;
      case 5: {
        // Duplicate a chunk (nesting, repetition).
        if (bytes.length === 0) break;
        const from = rand() % bytes.length;
        const len = 1 + (rand() % Math.min(16, bytes.length - from));
        bytes.splice(at, 0, ...bytes.slice(from, from + len));
        break;
      }
      default: {
        // Splice in part of another corpus entry.
        const other = corpus[rand() % corpus.length]!;
        if (other.length === 0) break;
        const from = rand() % other.length;
        bytes.splice(at, 0, ...other.subarray(from, from + 1 + (rand() % (other.length - from))));
        break;
      }
    }
  }
  if (bytes.length > 1024) bytes = bytes.slice(0, 1024);
  return Uint8Array.from(bytes);
}

/**
 * afl-fuzz's has_new_bits: 2 if `map` hits an edge `virgin` has not seen,
 * 1 if only a new count bucket, else 0; `virgin` forgets what `map` holds.
 */
export function hasNewBits(map: Uint8Array, virgin: Uint8Array): 0 | 1 | 2 {
  let ret: 0 | 1 | 2 = 0;
  for (let i = 0; i < map.length; i++) {
    const v = map[i]!;
    if (v === 0 || (v & virgin[i]!) === 0) continue;
    if (virgin[i] === 0xff) ret = 2;
    else if (ret === 0) ret = 1;
    virgin[i] &= ~v;
  }
  return ret;
}

export async function runFuzzDemo(o: FuzzDemoOptions): Promise<FuzzDemoResult> {
  const started = process.hrtime.bigint();
  const target = buildTarget(join(o.work, 'target'));
  const cov = new EdgeCoverage(target.image, target.config);
  const exact = new EdgeCoverage(target.image, target.config, { exactOnly: true });
  const map = new Uint8Array(cov.mapSize);
  const check = new Uint8Array(cov.mapSize);
  const virgin = new Uint8Array(cov.mapSize).fill(0xff);
  // A zero seed starts from the golden ratio's bits.
  const rand = xorshift32(o.seed >>> 0 || 0x9e3779b9);
  const corpus: Uint8Array[] = [];
  const result: FuzzDemoResult = { runs: [], corpus: [], checked: 0, seconds: 0 };
  let covered = 0;
  const total = SEEDS.length + o.runs;
  for (let run = 0; run < total; run++) {
    const input = run < SEEDS.length ? Buffer.from(SEEDS[run]!, 'latin1') : mutate(corpus[rand() % corpus.length]!, corpus, rand);
    const rec = await recordRun(target, input, join(o.work, 'run'));
    const t0 = process.hrtime.bigint();
    const edges = cov.decode(rec.trace, map);
    const decodeSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (o.check) {
      exact.decode(rec.trace, check);
      if (!Buffer.from(map).equals(Buffer.from(check))) throw new Error(`run ${run}: the edge decoder's bitmap differs from the exact decoder's`);
      result.checked++;
    }
    const found = hasNewBits(map, virgin);
    let newIds = 0;
    if (found !== 0) {
      const before = covered;
      covered = virgin.reduce((n, v) => n + (v !== 0xff ? 1 : 0), 0);
      newIds = covered - before;
      corpus.push(input);
      result.corpus.push({ run, input: Buffer.from(input).toString('latin1'), newIds });
      o.log(
        `run ${String(run).padStart(4)}  corpus ${String(corpus.length).padStart(3)}  map entries ${String(covered).padStart(4)}` +
          `  ${found === 2 ? `+${newIds} edges` : 'new counts'}  ${JSON.stringify(Buffer.from(input).toString('latin1').slice(0, 60))}  -> ${rec.stdout}`,
      );
    }
    result.runs.push({ run, covered, corpus: corpus.length, found, traceBytes: rec.trace.length, edges, recordSeconds: rec.seconds, decodeSeconds, path: cov.lastPath });
  }
  result.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return result;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A self-contained HTML page: the coverage curve (inline SVG), timings and the corpus. */
export function fuzzReportHtml(r: FuzzDemoResult, title = 'ptscope edge-coverage fuzzing demo'): string {
  const W = 760;
  const H = 300;
  const pad = 44;
  const last = r.runs[r.runs.length - 1];
  const maxX = Math.max(1, r.runs.length - 1);
  const maxY = Math.max(1, last?.covered ?? 1);
  const x = (i: number): number => pad + ((W - 2 * pad) * i) / maxX;
  const y = (v: number): number => H - pad - ((H - 2 * pad) * v) / maxY;
  const line = r.runs.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p.covered).toFixed(1)}`).join(' ');
  const dots = r.runs
    .filter((p) => p.found !== 0)
    .map((p) => `<circle cx="${x(p.run).toFixed(1)}" cy="${y(p.covered).toFixed(1)}" r="3" fill="${p.found === 2 ? '#c0392b' : '#e67e22'}"><title>run ${p.run}: ${p.covered} map entries</title></circle>`)
    .join('');
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const v = Math.round(maxY * f);
      return `<line x1="${pad}" x2="${W - pad}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${pad - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`;
    })
    .join('');
  const sum = (f: (p: FuzzRun) => number): number => r.runs.reduce((n, p) => n + f(p), 0);
  const rec = sum((p) => p.recordSeconds);
  const dec = sum((p) => p.decodeSeconds);
  const fast = r.runs.filter((p) => p.path === 'fast').length;
  const rows = r.corpus
    .map((c) => `<tr><td>${c.run}</td><td>${c.newIds}</td><td><code>${escapeHtml(c.input.length > 120 ? c.input.slice(0, 120) + '…' : c.input)}</code></td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
svg text{font-size:11px;fill:#555} table{border-collapse:collapse} td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
code{font-size:12px}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p>${r.runs.length} runs of <code>corpus/fuzz/json_check.c</code>, each recorded with ptscope's emulated recorder and decoded into an AFL edge bitmap by the edge decoder
(${fast} by its fast path${r.checked ? `, every bitmap checked against the exact decoder: ${r.checked} equal` : ''}).
${r.corpus.length} inputs kept; ${last?.covered ?? 0} map entries covered.
Time: recording ${rec.toFixed(1)} s, decoding ${(dec * 1e3).toFixed(1)} ms (${((dec / Math.max(1e-9, rec)) * 100).toFixed(3)}% of it).</p>
<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="map entries covered per run">
${ticks}
<line x1="${pad}" x2="${W - pad}" y1="${H - pad}" y2="${H - pad}" stroke="#999"/>
<line x1="${pad}" x2="${pad}" y1="${pad}" y2="${H - pad}" stroke="#999"/>
<path d="${line}" fill="none" stroke="#2c6fbb" stroke-width="2"/>
${dots}
<text x="${W / 2}" y="${H - 8}" text-anchor="middle">run</text>
<text x="12" y="${H / 2}" transform="rotate(-90 12 ${H / 2})" text-anchor="middle">map entries covered</text>
<text x="${W - pad}" y="${H - pad + 16}" text-anchor="end">${r.runs.length - 1}</text>
</svg>
<p>Red: an input that hit new edges; orange: only new hit-count buckets.</p>
<h2>Kept inputs</h2>
<table><tr><th>run</th><th>new map entries</th><th>input</th></tr>
${rows}
</table>
</body></html>
`;
}

async function main(argv: string[]): Promise<number> {
  let runs = 200;
  let seed = 1;
  let out = 'fuzz-demo.html';
  let work: string | null = null;
  let check = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a}: missing value`);
      return v;
    };
    if (a === '--runs') runs = Number(value());
    else if (a === '--seed') seed = Number(value());
    else if (a === '--out') out = value();
    else if (a === '--work') work = value();
    else if (a === '--no-check') check = false;
    else if (a === '-h' || a === '--help') {
      console.log('usage: node dist/tools/fuzz-demo.js [--runs N] [--seed S] [--out FILE.html] [--work DIR] [--no-check]');
      return 0;
    } else throw new Error(`unknown argument '${a}'`);
  }
  if (!Number.isInteger(runs) || runs < 0 || runs > 1_000_000) throw new Error('--runs: 0 to 1000000');
  const dir = work ?? mkdtempSync(join(tmpdir(), 'ptscope-fuzz-demo-'));
  try {
    const r = await runFuzzDemo({ runs, seed, work: dir, check, log: (l) => console.log(l) });
    const html = fuzzReportHtml(r);
    writeFileSync(resolve(out), html);
    const rec = r.runs.reduce((n, p) => n + p.recordSeconds, 0);
    const dec = r.runs.reduce((n, p) => n + p.decodeSeconds, 0);
    console.log(`${r.runs.length} runs in ${r.seconds.toFixed(1)} s: corpus ${r.corpus.length}, ${r.runs[r.runs.length - 1]?.covered ?? 0} map entries; ` +
      `recording ${rec.toFixed(1)} s, decoding ${(dec * 1e3).toFixed(1)} ms${r.checked ? `; ${r.checked} bitmaps equal to the exact decoder's` : ''}`);
    console.log(`wrote ${resolve(out)}`);
  } finally {
    if (work === null) rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`fuzz-demo: ${e.message}`);
      process.exit(2);
    },
  );
}
