/**
 * Evaluation of the detectors on the exploit corpus
 * (build/corpus/exploits/<case>/{prog,payload.bin,benign.bin,run.json},
 * built by tools/corpus/build-exploits.ts): each exploit and its benign run
 * are recorded with the emulated recorder and analysed with every default
 * detector, and with FlowGuard trained on the benign run. The table shows,
 * per case and detector:
 * - "hit" / "MISS": a detector the case's ground truth requires fired / stayed silent;
 * - "caught" / "missed": a detector the attack was built to evade fired / stayed silent;
 * - "FP": a detector required to stay silent fired; "-": silent, not expected;
 * and the benign run's findings (there must be none).
 *
 * Every stream of a recording is analysed (a threaded program gives one
 * per thread, each with its own detectors): a chain run in a worker thread
 * is found in that thread's stream, and the table names the threads that
 * had findings when a case has several.
 *
 * A case that needs something the recorder cannot follow yet (a process it
 * did not trace) is reported as pending, with what the recorder said.
 *
 *   node dist/tools/eval-detectors.js [--corpus DIR] [--work DIR] [--json FILE] [--markdown] [--only a,b]
 *
 * The corpus programs read their input from stdin: the recorder's `stdin`
 * option (`ptscope record --stdin FILE`) gives it to them. A case whose
 * payload depends on a leak (jmpbuf_overwrite) is recorded through the CLI
 * with a FIFO as stdin: the leak is read from the program's output while
 * it runs, and the payload is written to the FIFO.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeRecording, defaultDetectors, type AnalyzeOptions } from '../src/analyses/analyze.js';
import type { Finding } from '../src/analyses/finding.js';
import { traceInputs } from '../src/analyses/trace-input.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import type { Recording } from '../src/sources/model/recording.js';
import { trainFlowGuardPolicy } from '../src/analyses/flowguard.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';
import { cachedDirectory, codeKey, contentKey } from './corpus/content-cache.js';
import { applyPointerGuard } from './corpus/exploits.js';
import type { RunJson } from './corpus/build-exploits.js';

/**
 * Record `argv` with `stdinFile` as its standard input, in a fixed
 * environment (the recorder's minimal one, Python's hash seed fixed): the
 * same program and input give the same trace on every run and machine.
 */
export async function recordWithStdin(argv: string[], output: string, stdinFile: string | null): Promise<string> {
  const { record } = await import('../src/sources/recorder/record.js');
  const r = await record(withRecordDefaults({ argv, output, stdin: stdinFile ?? undefined, ...FIXED_RECORDING, notice: () => {} }));
  return r.stdout;
}

/** The recorder options recordWithStdin sets apart from the defaults (also part of a cached recording's key). */
const FIXED_RECORDING = { force: true, timeoutSec: 120, hardware: false, stdio: 'pipe' as const, guestEnv: { PYTHONHASHSEED: '0', LC_ALL: 'C' } };

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/**
 * Record `prog` through the CLI with a FIFO as its standard input: when its
 * output matches `leak`, `payloadFor(match)` is written to the FIFO and the
 * FIFO closed. Returns the program's output.
 */
export async function recordLive(prog: string, output: string, leak: RegExp, payloadFor: (m: RegExpExecArray) => Uint8Array): Promise<string> {
  const fifo = `${output}.stdin`;
  rmSync(fifo, { force: true });
  const mk = spawnSync('mkfifo', ['-m', '0600', fifo]);
  if (mk.status !== 0) throw new Error(`mkfifo ${fifo} failed`);
  // Held open for writing, so the recorder's open for reading does not wait.
  const w = openSync(fifo, constants.O_RDWR);
  let closed = false;
  const close = () => {
    if (!closed) closeSync(w);
    closed = true;
  };
  try {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'ptscope.js'), 'record', '--force', '--stdin', fifo, '-o', output, '--', prog], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('latin1');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      const m = leak.exec(out);
      if (m && !closed) {
        writeSync(w, payloadFor(m));
        close();
      }
    });
    child.stderr.on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    const code = await new Promise<number | null>((res) => child.on('close', res));
    clearTimeout(timer);
    if (code !== 0 && !existsSync(join(output, 'manifest.json'))) throw new Error(`record failed: ${err.trim().split('\n').pop() ?? code}`);
    return out;
  } finally {
    close();
    rmSync(fifo, { force: true });
  }
}

type Cell = 'hit' | 'MISS' | 'caught' | 'missed' | 'FP' | '-';

export interface CaseResult {
  name: string;
  expected: string[];
  silent: string[];
  evades: string[];
  fired: Set<string>;
  /** Findings of FlowGuard trained on the benign run. */
  flowguardFindings: number;
  benignFindings: number;
  exploitWorked: boolean;
  /** The exploit run's findings, each labelled with its thread. */
  findings: Finding[];
  /** Streams (threads) of the exploit run's recording. */
  threads: number;
  /** Why the case could not be evaluated (the recorder does not follow what it needs), or null. */
  pending: string | null;
}

/** The table cell of `detector` for a case. */
export function cell(c: CaseResult, detector: string): Cell {
  const fired = detector === 'flowguard' ? c.flowguardFindings > 0 : c.fired.has(detector);
  if (c.expected.includes(detector)) return fired ? 'hit' : 'MISS';
  if (c.evades.includes(detector)) return fired ? 'caught' : 'missed';
  if (c.silent.includes(detector)) return fired ? 'FP' : '-';
  return fired ? 'caught' : 'missed';
}

export async function evaluateCorpus(corpus: string, work: string, only: string[] | null = null): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const name of readdirSync(corpus).sort()) {
    const dir = join(corpus, name);
    if (!existsSync(join(dir, 'run.json')) || (only !== null && !only.includes(name))) continue;
    out.push(await evaluateCorpusCase(dir, work));
  }
  return out;
}

/** A corpus case's two recordings, or why it could not be recorded. */
export interface CaseRecordings {
  /** Bundle paths (in the recording cache). */
  exploit: string;
  benign: string;
  /** The exploit run's output. */
  stdout: string;
  /** Why the case could not be recorded (the recorder does not follow what it needs), or null. */
  pending: string | null;
}

/**
 * Record a corpus case's exploit and benign runs, once per recorder and
 * case: the recordings are cached under `cache` (default
 * build/corpus-recordings), keyed by the case's files (program, inputs,
 * run.json), the libraries a dynamic program loads, the recorder's
 * options and the code the recorder is built from (src/packets, events,
 * flow, sources, native/). Test files that run at once (vitest runs files
 * in separate processes) share them through tools/corpus/content-cache.ts:
 * one records while the others wait, and the recordings appear only whole.
 */
export async function recordCorpusCase(dir: string, cache = join(repoRoot(), 'build', 'corpus-recordings')): Promise<CaseRecordings> {
  const name = basename(dir.replace(/\/+$/, ''));
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunJson;
  const final = join(cache, name);
  await cachedDirectory(final, caseKey(dir, run), async (tmp) => {
    mkdirSync(tmp);
    const meta = await recordCase(dir, run, join(tmp, `${name}.exploit`), join(tmp, `${name}.benign`));
    writeFileSync(join(tmp, 'recorded.json'), JSON.stringify(meta));
  });
  const meta = JSON.parse(readFileSync(join(final, 'recorded.json'), 'utf8')) as { stdout: string; pending: string | null };
  return { exploit: join(final, `${name}.exploit`), benign: join(final, `${name}.benign`), ...meta };
}

/** Bumped when what recordCase writes changes. */
const RECORDING_CACHE_VERSION = 1;

/** What a case's recordings depend on, hashed. */
function caseKey(dir: string, run: RunJson): string {
  const caseFiles = readdirSync(dir).sort().filter((f) => statSync(join(dir, f)).isFile());
  const libs = run.linking === 'dynamic' ? DYNAMIC_LIBS.filter((lib) => existsSync(lib)).map((lib) => realpathSync(lib)) : [];
  const root = repoRoot();
  return contentKey([
    JSON.stringify({ RECORDING_CACHE_VERSION, FIXED_RECORDING, qemu: qemuVersionLine() }),
    ...caseFiles.flatMap((f) => [f, { file: join(dir, f) }]),
    ...libs.flatMap((lib) => [lib, { file: lib }]),
    codeKey(...['src/packets', 'src/events', 'src/flow', 'src/sources', 'native'].map((d) => join(root, d))),
  ]);
}

/** The C library a dynamic corpus program loads. */
const DYNAMIC_LIBS = ['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2'];

let qemuVersion: string | null = null;
function qemuVersionLine(): string {
  qemuVersion ??= spawnSync('qemu-x86_64', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0] ?? '';
  return qemuVersion;
}

/** Record the exploit and benign runs into the given bundles: the exploit's output, or why the case is pending. */
async function recordCase(dir: string, run: RunJson, exploitBundle: string, benignBundle: string): Promise<{ stdout: string; pending: string | null }> {
  const prog = resolve(dir, run.program);
  let stdout: string;
  try {
    if (run.pointerGuardLeak) {
      const leak = run.pointerGuardLeak;
      const template = readFileSync(join(dir, run.exploit.stdin));
      stdout = await recordLive(prog, exploitBundle, new RegExp(leak.regex), (m) => applyPointerGuard(template, leak, BigInt(`0x${m[1]}`)));
    } else {
      stdout = await recordWithStdin([prog, ...run.argv], exploitBundle, join(dir, run.exploit.runners?.qemu?.stdin ?? run.exploit.stdin));
    }
    await recordWithStdin([prog, ...run.argv], benignBundle, join(dir, run.benign.stdin));
  } catch (e) {
    if (run.groundTruth.needs) return { stdout: '', pending: `needs ${run.groundTruth.needs}s; recorder: ${(e as Error).message.split('\n')[0]}` };
    throw e;
  }
  // The recorder stops at a thread or process it does not follow, or records that it did not trace one.
  const untracedBy = (bundle: string): string | null =>
    withRecording(bundle, (rec) => {
      const stopped = rec.exit?.stopped === 'clone' || rec.exit?.stopped === 'exec';
      const untraced = rec.processes.filter((p) => p.untraced !== null).map((p) => `process ${p.pid}: ${p.untraced}`);
      return stopped || untraced.length > 0 ? untraced.join('; ') || `stopped at ${rec.exit?.stopped}` : null;
    });
  const untraced = untracedBy(exploitBundle) ?? untracedBy(benignBundle);
  if (untraced !== null) return { stdout, pending: `needs ${run.groundTruth.needs ?? 'what the recorder does not follow'}s; recorder: ${untraced}` };
  return { stdout, pending: null };
}

/** Record (or take from the recording cache) and analyse one corpus case (its exploit and benign runs); `work` holds the FlowGuard policy. */
export async function evaluateCorpusCase(dir: string, work: string, cache?: string): Promise<CaseResult> {
  const name = basename(dir.replace(/\/+$/, ''));
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunJson;
  const base: CaseResult = {
    name,
    expected: run.groundTruth.detectors,
    silent: run.groundTruth.silentDetectors,
    evades: run.groundTruth.evades ?? [],
    fired: new Set(),
    flowguardFindings: 0,
    benignFindings: 0,
    exploitWorked: false,
    findings: [],
    threads: 0,
    pending: null,
  };
  const rec = await recordCorpusCase(dir, cache);
  if (rec.pending !== null) return { ...base, pending: rec.pending };
  const r = analyzeAll(rec.exploit, { detectors: defaultDetectors() });
  const b = analyzeAll(rec.benign, { detectors: defaultDetectors() });
  // FlowGuard, trained on the benign run of the same program (every thread's trace).
  mkdirSync(work, { recursive: true });
  const policy = join(work, `${name}.flowguard.json`);
  rmSync(policy, { force: true });
  withRecording(rec.benign, (recording) => trainFlowGuardPolicy(policy, traceInputs(recording).map((i) => i.trace)));
  const fg = analyzeAll(rec.exploit, { detectors: ['flowguard'], policyFile: policy });
  return {
    ...base,
    fired: new Set(r.findings.map((f) => f.detector)),
    flowguardFindings: fg.findings.length,
    benignFindings: b.findings.length,
    exploitWorked: rec.stdout.includes('PWNED'),
    findings: r.findings,
    threads: r.streams,
  };
}

function withRecording<T>(bundle: string, f: (r: Recording) => T): T {
  const rec = openRecording(bundle);
  try {
    return f(rec);
  } finally {
    rec.close();
  }
}

/** Every stream of a recording, each with its own detectors (as `ptscope analyze` does). */
function analyzeAll(bundle: string, options: AnalyzeOptions): { findings: Finding[]; streams: number } {
  const results = withRecording(bundle, (rec) => analyzeRecording(rec, options));
  return { findings: results.flatMap((r) => r.findings), streams: results.length };
}

/** `pid/tid` of the threads with findings. */
function findingThreads(c: CaseResult): string {
  const seen = [...new Set(c.findings.map((f) => `${f.pid}/${f.tid}${f.pid === f.tid ? ' (main)' : ''}`))];
  return ` in thread${seen.length === 1 ? '' : 's'} ${seen.join(', ')}`;
}

export const TABLE_DETECTORS = [...defaultDetectors(), 'flowguard'];

/** The evaluation table, as text or as a Markdown table. */
export function corpusTable(cases: CaseResult[], markdown: boolean): string[] {
  const lines: string[] = [];
  if (markdown) {
    lines.push(`| case | ${TABLE_DETECTORS.join(' | ')} | benign run | exploit ran |`);
    lines.push(`|---|${TABLE_DETECTORS.map(() => '---').join('|')}|---|---|`);
    for (const c of cases) {
      if (c.pending !== null) lines.push(`| ${c.name} | ${TABLE_DETECTORS.map(() => 'pending').join(' | ')} | ${c.pending} | - |`);
      else lines.push(`| ${c.name} | ${TABLE_DETECTORS.map((d) => cell(c, d)).join(' | ')} | ${c.benignFindings} findings | ${c.exploitWorked ? 'yes' : 'NO'} |`);
    }
  } else {
    lines.push(['case'.padEnd(17), ...TABLE_DETECTORS.map((d) => d.padEnd(13)), 'benign', 'exploit ran'].join(' '));
    for (const c of cases) {
      if (c.pending !== null) lines.push(`${c.name.padEnd(17)} pending: ${c.pending}`);
      else lines.push([c.name.padEnd(17), ...TABLE_DETECTORS.map((d) => cell(c, d).padEnd(13)), `${c.benignFindings} findings`.padEnd(6), c.exploitWorked ? 'yes' : 'NO'].join(' '));
    }
  }
  const done = cases.filter((c) => c.pending === null);
  const threaded = done.filter((c) => c.threads > 1);
  if (threaded.length > 0) lines.push('');
  for (const c of threaded) lines.push(`${c.name}: ${c.threads} threads recorded, each analysed with its own detectors; ${c.findings.length} findings${findingThreads(c)}.`);
  const perDetector = TABLE_DETECTORS.map((d) => `${d} ${done.filter((c) => ['hit', 'caught'].includes(cell(c, d))).length}/${done.length}`);
  lines.push('');
  lines.push(`Caught, per detector at default thresholds (FlowGuard trained on each case's benign run): ${perDetector.join(', ')}; any detector: ${done.filter((c) => TABLE_DETECTORS.some((d) => ['hit', 'caught', 'FP'].includes(cell(c, d)))).length}/${done.length}; benign runs with findings: ${done.filter((c) => c.benignFindings > 0).length}; pending: ${cases.length - done.length}.`);
  return lines;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let corpus = join(repoRoot(), 'build/corpus/exploits');
  let work = '/tmp/ptscope-eval';
  let only: string[] | null = null;
  const markdown = args.includes('--markdown');
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--corpus') corpus = args[++i];
    else if (args[i] === '--work') work = args[++i];
    else if (args[i] === '--only') only = args[++i].split(',');
  }
  mkdirSync(work, { recursive: true });
  if (!existsSync(corpus)) {
    const { buildExploitCorpus } = await import('./corpus/build-exploits.js');
    buildExploitCorpus({ outDir: corpus, log: (l) => console.error(l) });
  }
  const cases = await evaluateCorpus(corpus, work, only);
  for (const l of corpusTable(cases, markdown)) console.log(l);
}

if (process.argv[1] && /eval-detectors\.[jt]s$/.test(process.argv[1])) {
  main().catch((e) => {
    console.error(`eval-detectors: ${(e as Error).message}`);
    process.exitCode = 2;
  });
}
