/**
 * The crash corpus (corpus/crashes/*.c): build each program with -g,
 * record it with `ptscope record` (emulated), take its core, run the crash
 * analysis and compare the root-cause set with the line marked
 * `ROOT CAUSE` in the source.
 *
 * Everything is cached under build/crashes/ (binary, bundle, core), keyed
 * by content (tools/corpus/content-cache.ts). Run: `node dist/tools/eval-crashes.js`.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeCrash, type CrashReport } from '../src/analyses/crash/crash.js';
import { bundleCore, captureCore } from '../src/analyses/crash/core-capture.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { cachedDirectory, cachedGcc, codeKey, contentKey } from './corpus/content-cache.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** The repository root, from tools/ or dist/tools/. */
export const REPO = existsSync(join(HERE, '..', 'corpus')) ? resolve(HERE, '..') : resolve(HERE, '..', '..');
export const CORPUS = join(REPO, 'corpus', 'crashes');
export const OUT = join(REPO, 'build', 'crashes');
export const CFLAGS = ['-g', '-O0', '-fno-stack-protector', '-fno-builtin'];

export interface CrashCase {
  name: string;
  source: string;
  /** The line marked ROOT CAUSE. */
  line: number;
  binary: string;
  bundle: string;
}

export function crashCases(): CrashCase[] {
  return readdirSync(CORPUS)
    .filter((f) => f.endsWith('.c'))
    .sort()
    .map((f) => {
      const source = join(CORPUS, f);
      const lines = readFileSync(source, 'utf8').split('\n');
      const line = lines.findIndex((l) => l.includes('/* ROOT CAUSE */')) + 1;
      if (line === 0) throw new Error(`${f}: no /* ROOT CAUSE */ line`);
      const name = basename(f, '.c');
      return { name, source, line, binary: join(OUT, name), bundle: join(OUT, `${name}.ptscope`) };
    });
}

/** Bumped when the recording's options below change; with the recorder's code and the binary, the recording's key. */
const RECORD_KEY = 'crash-corpus recording v1';

/** Build, record and take the core of one case (cached by content: content-cache.ts). */
export async function prepareCase(c: CrashCase): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  cachedGcc(c.binary, [...CFLAGS, c.source], [c.source], c.name);
  const key = contentKey([RECORD_KEY, codeKey(join(REPO, 'src', 'sources', 'recorder')), { file: c.binary }]);
  await cachedDirectory(c.bundle, key, async (output) => {
    // Some of these bugs (off_by_one) corrupt the stack in ways that depend on
    // its layout: record from a program path of fixed length with a fixed
    // environment, so the run is the same wherever the checkout lives.
    const stage = mkdtempSync('/tmp/ptscope-crash-');
    const program = join(stage, c.name);
    copyFileSync(c.binary, program);
    try {
      await record(withRecordDefaults({ argv: [program], output, force: true, timeoutSec: 60, maxInsns: 50_000_000, hardware: false, stdio: 'ignore', notice: () => {} }));
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
    if (bundleCore(output) === null) captureCore(output);
  });
}

export interface CaseResult {
  name: string;
  found: boolean;
  distance: number | null;
  setSize: number;
  lines: string[];
  report: CrashReport;
}

/** The root-cause lines of a report: each root cause's own line, or its call site's in a library. */
export function rootCauseLines(r: CrashReport): string[] {
  return r.rootCauses.map((c) => (c.location.inMain ? c.location.line : c.callSite?.location.line) ?? '?');
}

export function evaluateCase(c: CrashCase): CaseResult {
  const report = analyzeCrash(c.bundle);
  const lines = rootCauseLines(report);
  const want = `${c.source}:${c.line}`;
  const hit = report.rootCauses.find((_, i) => lines[i] === want);
  return { name: c.name, found: hit !== undefined, distance: hit?.distance ?? null, setSize: report.rootCauses.length, lines, report };
}

async function main(): Promise<void> {
  const rows: string[][] = [['case', 'found', 'distance', 'set', 'root-cause lines']];
  for (const c of crashCases()) {
    await prepareCase(c);
    const r = evaluateCase(c);
    rows.push([c.name, r.found ? 'yes' : 'no', r.distance === null ? '-' : String(r.distance), String(r.setSize), r.lines.map((l) => l.slice(l.lastIndexOf('/') + 1)).join(' ') || '-']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((x, i) => x.padEnd(widths[i])).join('  ').trimEnd());
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: Error) => {
    console.error(e.message);
    process.exitCode = 1;
  });
}
