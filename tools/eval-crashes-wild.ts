/**
 * The second crash corpus (corpus/crashes-wild/*.c): programs written as
 * ordinary code, built as ordinary builds (`gcc -g -O0` and `gcc -g -O2`,
 * no -fno-builtin, no -fno-stack-protector: the compiler's defaults),
 * recorded crashing with their input from argv, stdin or a file, then
 * analysed by `crash`. Each source says in its first comment:
 *
 *   crash-args: ["..."]   arguments (JSON array)
 *   crash-stdin: "..."    standard input (JSON string, bytes as latin1)
 *   crash-file: "..."     a file's contents; its path is the last argument
 *   crash-lib: x.c        a shared library built from lib/x.c, loaded by the program
 *   crash-set: tuned | held-out
 *   crash-cflags: ["..."] compiler flags added to both builds (a hardening flag
 *                         Debian's packages build with: dpkg-buildflags)
 *
 * and marks its root line with `ROOT CAUSE` (in the library's source for
 * a bug there). A case is found when a root cause of the report is on the
 * marked line: its own line, or for code in a library without that line,
 * the program's call into the library.
 *
 * Builds and recordings are cached under build/crashes-wild/, keyed by
 * content (tools/corpus/content-cache.ts).
 * Run: `node dist/tools/eval-crashes-wild.js [name...] [--json]`.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeCrash, type CrashReport } from '../src/analyses/crash/crash.js';
import { bundleCore } from '../src/analyses/crash/core-capture.js';
import { importBundle } from '../src/sources/import/bundle-import.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { cachedDirectory, cachedGcc, codeKey, contentKey } from './corpus/content-cache.js';
import { REPO } from './eval-crashes.js';

export const WILD = join(REPO, 'corpus', 'crashes-wild');
export const WILD_OUT = join(REPO, 'build', 'crashes-wild');
export const BUILDS: Record<string, string[]> = { O0: ['-g', '-O0'], O2: ['-g', '-O2'] };

export interface WildCase {
  /** `<source>-<build>`. */
  name: string;
  source: string;
  build: keyof typeof BUILDS;
  set: 'tuned' | 'held-out';
  args: string[];
  stdin: string | null;
  file: string | null;
  lib: string | null;
  /** Compiler flags added to the build's. */
  cflags: string[];
  /** `file:line` of the marked root lines (program and library sources). */
  roots: string[];
  binary: string;
  bundle: string;
}

function header(text: string, key: string): string | null {
  const m = new RegExp(`${key}:\\s*(\\[[^\\]]*\\]|"(?:[^"\\\\]|\\\\.)*"|[\\w.-]+)`).exec(text);
  return m === null ? null : m[1];
}

function rootLines(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .flatMap((l, i) => (l.includes('/* ROOT CAUSE */') ? [`${path}:${i + 1}`] : []));
}

export function wildCases(): WildCase[] {
  const out: WildCase[] = [];
  for (const f of readdirSync(WILD).filter((x) => x.endsWith('.c')).sort()) {
    const source = join(WILD, f);
    const text = readFileSync(source, 'utf8');
    const first = text.slice(0, text.indexOf('*/') + 2);
    const args = header(first, 'crash-args');
    const stdin = header(first, 'crash-stdin');
    const file = header(first, 'crash-file');
    const lib = header(first, 'crash-lib');
    const set = header(first, 'crash-set');
    const cflags = header(first, 'crash-cflags');
    if (set !== 'tuned' && set !== 'held-out') throw new Error(`${f}: crash-set must be tuned or held-out`);
    const libSource = lib === null ? null : join(WILD, 'lib', lib);
    const roots = [...rootLines(source), ...(libSource === null ? [] : rootLines(libSource))];
    if (roots.length === 0) throw new Error(`${f}: no ROOT CAUSE line`);
    for (const build of Object.keys(BUILDS)) {
      const name = `${basename(f, '.c')}-${build}`;
      out.push({
        name,
        source,
        build,
        set,
        args: args === null ? [] : (JSON.parse(args) as string[]),
        stdin: stdin === null ? null : (JSON.parse(stdin) as string),
        file: file === null ? null : (JSON.parse(file) as string),
        lib: libSource,
        cflags: cflags === null ? [] : (JSON.parse(cflags) as string[]),
        roots,
        binary: join(WILD_OUT, name),
        bundle: join(WILD_OUT, `${name}.ptscope`),
      });
    }
  }
  return out;
}

/** Bumped when the recording's options below change; with the recorder's code, the binaries and the input, the recording's key. */
const RECORD_KEY = 'crash-wild recording v1';

/** Build and record one case (cached by content: content-cache.ts); returns false when the program did not crash. */
export async function prepareWildCase(c: WildCase): Promise<boolean> {
  mkdirSync(WILD_OUT, { recursive: true });
  const flags = [...BUILDS[c.build], ...c.cflags];
  // The library is built and linked as an ordinary private .so: its own soname, found by the
  // program through `-Wl,-rpath,'$ORIGIN'` beside it (no LD_LIBRARY_PATH, no --allow-read).
  const libName = c.lib === null ? null : `lib${basename(c.lib, '.c').replace(/^lib/, '')}.so`;
  const libDir = join(WILD_OUT, `lib-${c.build}`);
  const libBinary = libName === null ? null : join(libDir, libName);
  if (c.lib !== null && libBinary !== null && libName !== null) {
    mkdirSync(libDir, { recursive: true });
    cachedGcc(libBinary, [...flags, '-shared', '-fPIC', `-Wl,-soname,${libName}`, c.lib], [c.lib]);
  }
  const link = libName === null ? [] : [`-L${libDir}`, `-l${libName.slice(3, -3)}`, '-Wl,-rpath,$ORIGIN'];
  cachedGcc(c.binary, [...flags, c.source, ...link], [c.source, ...(libBinary === null ? [] : [libBinary])], c.name);
  const input = JSON.stringify([c.args, c.stdin, c.file]);
  const key = contentKey([RECORD_KEY, codeKey(join(REPO, 'src', 'sources', 'recorder')), input, { file: c.binary }, ...(libBinary === null ? [] : [{ file: libBinary }])]);
  await cachedDirectory(c.bundle, key, async (output) => {
    // A program path of fixed length and a fixed environment: stack layouts are the same wherever the checkout lives.
    const stage = mkdtempSync('/tmp/ptscope-wild-');
    const program = join(stage, basename(c.source, '.c'));
    copyFileSync(c.binary, program);
    if (libBinary !== null && libName !== null) copyFileSync(libBinary, join(stage, libName));
    const argv = [program, ...c.args];
    if (c.file !== null) {
      const inputFile = join(stage, 'input.bin');
      writeFileSync(inputFile, Buffer.from(c.file, 'latin1'));
      argv.push(inputFile);
    }
    let stdin: string | undefined;
    if (c.stdin !== null) {
      stdin = join(stage, 'stdin.txt');
      writeFileSync(stdin, Buffer.from(c.stdin, 'latin1'));
    }
    try {
      await record(withRecordDefaults({
        argv, output, force: true, timeoutSec: 120, maxInsns: 50_000_000, hardware: false, stdio: 'ignore', stdin, exposeArguments: true, notice: () => {},
      }));
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  });
  const rec = importBundle(c.bundle);
  const crashed = rec.exit?.signal != null && bundleCore(c.bundle) !== null;
  rec.close();
  return crashed;
}

export interface WildResult {
  name: string;
  set: WildCase['set'];
  /** Null when the build did not crash (the compiler removed or changed the bug). */
  signal: string | null;
  found: boolean;
  distance: number | null;
  setSize: number;
  confidence: CrashReport['confidence'] | '-';
  lines: string[];
  report: CrashReport | null;
}

/** Each root cause's own line and, for one in a library, its call site's line. */
function candidateLines(r: CrashReport): string[][] {
  return r.rootCauses.map((c) => [c.location.line, c.callSite?.location.line].filter((x): x is string => x != null));
}

export function evaluateWildCase(c: WildCase, crashed: boolean): WildResult {
  if (!crashed) return { name: c.name, set: c.set, signal: null, found: false, distance: null, setSize: 0, confidence: '-', lines: [], report: null };
  return scoreWildReport(c, analyzeCrash(c.bundle));
}

/** Score a crash report of `c` (analysed here, or printed by `ptscope crash --json`) against its marked root lines. */
export function scoreWildReport(c: WildCase, report: CrashReport): WildResult {
  const cands = candidateLines(report);
  const hit = report.rootCauses.findIndex((_, i) => cands[i].some((l) => c.roots.includes(l)));
  return {
    name: c.name,
    set: c.set,
    signal: report.signal,
    found: hit >= 0,
    distance: hit >= 0 ? report.rootCauses[hit].distance : null,
    setSize: report.rootCauses.length,
    confidence: report.confidence,
    lines: cands.map((ls) => ls[0] ?? '?'),
    report,
  };
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => '| ' + r.map((x, i) => x.padEnd(widths[i])).join(' | ') + ' |');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const json = argv.includes('--json');
  const only = argv.filter((a) => !a.startsWith('--'));
  const cases = wildCases().filter((c) => only.length === 0 || only.some((o) => c.name === o || c.name.startsWith(`${o}-`)));
  const results: WildResult[] = [];
  for (const c of cases) {
    let r: WildResult;
    try {
      r = evaluateWildCase(c, await prepareWildCase(c));
    } catch (e) {
      console.error(`${c.name}: ${(e as Error).message.split('\n')[0]}`);
      r = { name: c.name, set: c.set, signal: 'error', found: false, distance: null, setSize: 0, confidence: '-', lines: [], report: null };
    }
    results.push(r);
    if (!json) process.stderr.write(`${c.name}: ${r.found ? 'found' : 'not found'}\n`);
  }
  if (json) {
    console.log(JSON.stringify(results.map(({ report: _, ...rest }) => rest), null, 2));
    return;
  }
  const rows = [['case', 'set', 'signal', 'found', 'distance', 'set size', 'confidence', 'root-cause lines']];
  for (const r of results) {
    rows.push([
      r.name, r.set, r.signal ?? 'no crash', r.found ? 'yes' : 'no', r.distance === null ? '-' : String(r.distance), String(r.setSize), r.confidence,
      r.lines.map((l) => l.slice(l.lastIndexOf('/') + 1)).join(' ') || '-',
    ]);
  }
  const lines = table(rows);
  lines.splice(1, 0, '|' + rows[0].map(() => '---').join('|') + '|');
  for (const l of lines) console.log(l);
  console.log('');
  for (const set of ['tuned', 'held-out'] as const) {
    for (const build of Object.keys(BUILDS)) {
      const part = results.filter((r) => r.set === set && r.name.endsWith(`-${build}`));
      const crashed = part.filter((r) => r.signal !== null && r.signal !== 'error');
      const found = part.filter((r) => r.found);
      const sizes = found.map((r) => r.setSize);
      const mean = sizes.length === 0 ? '-' : (sizes.reduce((a, b) => a + b, 0) / sizes.length).toFixed(1);
      console.log(`${set} ${build}: found ${found.length}/${crashed.length} crashing (${part.length} built); mean root-cause set size when found ${mean}`);
    }
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: Error) => {
    console.error(e.message.split('\n')[0]);
    process.exitCode = 1;
  });
}
