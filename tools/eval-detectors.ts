/**
 * Evaluation of the detectors:
 * - the exploit corpus (build/corpus/exploits/<case>/{prog,payload.bin,
 *   benign.bin,run.json}): each exploit and its benign run are recorded
 *   with the emulated recorder and analyzed with every default detector;
 *   the table shows detector x case: "hit" (fired, expected), "MISS"
 *   (expected, silent), "FP" (fired, not expected), "-" (silent, not
 *   expected), and the benign run must have no finding at all;
 * - a benign set (programs given with --benign, or a default set of
 *   system programs): false positives per million instructions.
 *
 *   node dist/tools/eval-detectors.js [--corpus DIR] [--work DIR] [--benign "prog args" ...]
 *
 * The corpus programs read their input from stdin: the recorder's `stdin`
 * option (`ptscope record --stdin FILE`) gives it to them.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { analyzeTrace, defaultDetectors } from '../src/analyses/analyze.js';
import { openTraceInput } from '../src/analyses/trace-input.js';

/** Record `argv` with `stdinFile` as its standard input. */
export async function recordWithStdin(argv: string[], output: string, stdinFile: string | null): Promise<string> {
  const { record } = await import('../src/sources/recorder/record.js');
  const r = await record({
    argv, output, force: true, sandbox: true, timeoutSec: 120, maxInsns: 1_000_000_000, psbPeriod: 4096,
    retCompression: true, longTnt: false, ranges: [], timing: {}, snapshotBytes: 0, hardware: false, stdio: 'pipe',
    stdin: stdinFile ?? undefined,
    notice: () => {},
  });
  return r.stdout;
}

interface CaseResult {
  name: string;
  expected: string[];
  silent: string[];
  fired: Set<string>;
  benignFindings: number;
  exploitWorked: boolean;
}

export async function evaluateCorpus(corpus: string, work: string): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const name of readdirSync(corpus).sort()) {
    const dir = join(corpus, name);
    if (!existsSync(join(dir, 'run.json'))) continue;
    out.push(await evaluateCorpusCase(dir, work));
  }
  return out;
}

/** Record and analyze one corpus case (its exploit and benign runs). */
export async function evaluateCorpusCase(dir: string, work: string): Promise<CaseResult> {
  {
    const name = dir.replace(/\/+$/, '').replace(/.*\//, '');
    const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    const prog = resolve(dir, run.program);
    const exploitBundle = join(work, `${name}.exploit`);
    const benignBundle = join(work, `${name}.benign`);
    const stdout = await recordWithStdin([prog, ...run.argv], exploitBundle, join(dir, run.exploit.runners?.qemu?.stdin ?? run.exploit.stdin));
    await recordWithStdin([prog, ...run.argv], benignBundle, join(dir, run.benign.stdin));
    const r = analyzeTrace(openTraceInput(exploitBundle), { detectors: defaultDetectors() });
    const b = analyzeTrace(openTraceInput(benignBundle), { detectors: defaultDetectors() });
    return {
      name,
      expected: run.groundTruth.detectors,
      silent: run.groundTruth.silentDetectors,
      fired: new Set(r.findings.map((f) => f.detector)),
      benignFindings: b.findings.length,
      exploitWorked: stdout.includes('PWNED'),
    };
  }
}

export async function evaluateBenign(commands: string[][], work: string): Promise<{ name: string; instructions: number; findings: number; perMillion: number }[]> {
  const out = [];
  for (const argv of commands) {
    const name = argv.map((a) => a.replace(/.*\//, '')).join('_').replace(/[^\w.-]/g, '_').slice(0, 40);
    const bundle = join(work, `benign-${name}`);
    await recordWithStdin(argv, bundle, null);
    const r = analyzeTrace(openTraceInput(bundle), { detectors: defaultDetectors() });
    out.push({ name: argv.join(' '), instructions: r.flow.instructions, findings: r.findings.length, perMillion: (r.findings.length * 1e6) / Math.max(1, r.flow.instructions) });
  }
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let corpus = 'build/corpus/exploits';
  let work = '/tmp/ptscope-eval';
  const benign: string[][] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--corpus') corpus = args[++i];
    else if (args[i] === '--work') work = args[++i];
    else if (args[i] === '--benign') benign.push(args[++i].split(' '));
  }
  if (benign.length === 0) benign.push(['/bin/ls', '-la', '/usr'], ['/bin/gzip', '-c', '-9', '/etc/passwd'], ['/usr/bin/python3', '-c', 'import json; print(json.dumps([i*i for i in range(100)]))']);
  mkdirSync(work, { recursive: true });
  const detectors = defaultDetectors();
  if (existsSync(corpus)) {
    const cases = await evaluateCorpus(corpus, work);
    console.log(['case'.padEnd(12), ...detectors.map((d) => d.padEnd(13)), 'benign', 'exploit ran'].join(' '));
    for (const c of cases) {
      const cells = detectors.map((d) => {
        const e = c.expected.includes(d);
        const f = c.fired.has(d);
        return (e ? (f ? 'hit' : 'MISS') : f ? (c.silent.includes(d) ? 'FP' : 'extra') : '-').padEnd(13);
      });
      console.log([c.name.padEnd(12), ...cells, `${c.benignFindings} findings`.padEnd(6), c.exploitWorked ? 'yes' : 'NO'].join(' '));
    }
  } else {
    console.log(`no corpus at ${corpus} (build it with tools/corpus/build-exploits.ts)`);
  }
  console.log('');
  console.log('benign program'.padEnd(60) + ' instructions  findings  FP/Minsn');
  for (const b of await evaluateBenign(benign, work)) {
    console.log(`${b.name.slice(0, 60).padEnd(60)} ${String(b.instructions).padStart(12)}  ${String(b.findings).padStart(8)}  ${b.perMillion.toFixed(3)}`);
  }
}

if (process.argv[1] && /eval-detectors\.[jt]s$/.test(process.argv[1])) {
  main().catch((e) => {
    console.error(`eval-detectors: ${(e as Error).message}`);
    process.exitCode = 2;
  });
}
