/**
 * `ptscope analyze`: run the security detectors over every stream of a
 * recording (bundle, perf.data, or a raw trace with images) and print the
 * findings (text or JSON lines).
 */
import { analysisGroups, analyzeGroup, defaultDetectors, nothingDecodedError, type AnalyzeResult } from '../analyses/analyze.js';
import { DETECTORS, DETECTOR_NAMES, validateDetectorParams } from '../analyses/detector.js';
import { PolicyError } from '../analyses/policy.js';
import { trainFlowGuardPolicy } from '../analyses/flowguard.js';
import { traceInputs, type TraceInput } from '../analyses/trace-input.js';
import { analyzeParallel } from '../analyses/parallel/parallel-analyze.js';
import { poolDecoder } from '../analyses/parallel/piece-pool.js';
import { jobsRefusal } from '../analyses/summaries/summary.js';
import { formatFindingsJsonl } from '../reports/findings-jsonl.js';
import { formatFindingsText } from '../reports/findings-text.js';
import { asInputError, collect, defineCommand, list, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { CliError, type LineWriter } from './output.js';
import { createProgress } from './progress.js';
import { parseJobs } from './jobs-option.js';

interface AnalyzeCliOptions extends InputOptions {
  detect?: string[];
  json?: boolean;
  failOnFindings?: boolean;
  policy?: string;
  monitor?: string[];
  flowguardTrain?: string;
  param?: string[];
  jobs?: string;
}

export function analyzeCommand() {
  return withInputOptions(
    defineCommand('analyze', 'Decode a trace and run security detectors over its control flow.')
      .argument('<input>', 'a bundle directory, a perf.data, or a raw trace (with --raw/--elf)')
      .option('--detect <list>', `detectors to run, comma-separated (default: ${defaultDetectors().join(',')})`, list)
      .option('--json', 'JSON lines: one object per finding, per unchecked note, then a summary')
      .option('--fail-on-findings', 'exit status 1 if anything was found')
      .option('--policy <file>', 'policy JSON for cfi, inter-module and flowguard (format "ptscope-policy")')
      .option('--monitor <syms>', 'functions hook-skip watches, comma-separated (name or module!name)', list)
      .option('--flowguard-train <out>', 'learn the FlowGuard edges of this (benign) trace into policy OUT (merged if it exists)')
      .option('--param <D.K=V>', 'detector parameter (e.g. rop.minChain=3); repeatable', collect)
      .option('--jobs <n>', 'decode on N worker threads (default: serial); the output is the same as serial'),
  ).addHelpText('after', `
detectors:
${DETECTORS.map((d) => `  ${d.name.padEnd(13)} ${d.description}`).join('\n')}

exit status: 0 no findings (or findings without --fail-on-findings); 1 findings with
--fail-on-findings, or a trace that could only partly be decoded; 2 usage or input
error (including a trace with nothing decodable).

examples:
  ptscope analyze demo/rop_stack.exploit
  ptscope analyze perf.data --sysroot /mnt/target
  ptscope analyze trace.pt --elf ./a.out --json`);
}

function parseParams(items: readonly string[]): Record<string, Record<string, string>> {
  const params: Record<string, Record<string, string>> = {};
  for (const item of items) {
    const m = /^([a-z-]+)\.([A-Za-z]+)=(.+)$/.exec(item);
    if (!m) throw new CliError(`--param: expected DETECTOR.KEY=VALUE, got '${item}'.`);
    if (!DETECTOR_NAMES.includes(m[1]!)) throw new CliError(`--param ${item}: unknown detector '${m[1]}' (known: ${DETECTOR_NAMES.join(', ')}).`);
    (params[m[1]!] ??= {})[m[2]!] = m[3]!;
  }
  try {
    validateDetectorParams(params);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  return params;
}

/** The exit status a decode result gives: nothing decoded is an input error, errors a partial read. */
export function decodeStatus(name: string, r: AnalyzeResult): number {
  // FlowGuard alone checks packets and decodes only the windows it must: no instruction count to judge.
  if (!r.walked) return 0;
  const nothing = nothingDecodedError(name, r.flow.instructions, r.flow.errors);
  if (nothing !== null) throw new CliError(nothing);
  return r.flow.errors > 0 ? 1 : 0;
}

/** `ptscope analyze`. */
export function runAnalyzeCommand(args: string[], out: LineWriter): number | Promise<number> {
  const { help, opts: o, args: operands } = parseCommand<AnalyzeCliOptions>(analyzeCommand(), args, out);
  if (help) return 0;
  const jobs = parseJobs(o.jobs);
  const detectors = o.detect;
  for (const d of detectors ?? []) {
    if (!DETECTOR_NAMES.includes(d)) throw new CliError(`--detect: unknown detector '${d}' (known: ${DETECTOR_NAMES.join(', ')}).`);
  }
  const params = parseParams(o.param ?? []);
  const recording = openInput(operands[0]!, o);
  let parallel = false;
  try {
    const inputs = asInputError(() => traceInputs(recording));
    if (o.flowguardTrain !== undefined) {
      const path = o.flowguardTrain;
      // Each stream read in windows (memory flat in its size).
      const sources = inputs.map((i) => i.stream.open());
      const n = asInputError(() => {
        try {
          return trainFlowGuardPolicy(path, sources);
        } finally {
          for (const s of sources) s.close();
        }
      });
      out.line(`${path}: ${n} flowguard edges`);
      return 0;
    }
    // Only on request: the pool keeps each piece's flow in memory until it is
    // replayed, so it is not flat in trace size as the serial walk is.
    if (o.jobs !== undefined && jobs > 1) {
      const refusal = jobsRefusal(detectors ?? defaultDetectors());
      if (refusal !== null) throw new CliError(refusal);
      const closing = recording;
      parallel = true;
      return analyzeInParallel(inputs, jobs).finally(() => closing.close());
    }
    // perf.data and multi-thread bundles hold several streams: each is analysed (a perf.data's per-CPU streams together).
    let status = 0;
    let findings = 0;
    for (const group of analysisGroups(inputs)) {
      const r = analyzeOne(group);
      findings += r.findings.length;
      status = Math.max(status, decodeStatus(r.input, r));
      for (const line of o.json ? formatFindingsJsonl(r) : formatFindingsText(r)) out.line(line);
    }
    return o.failOnFindings && findings > 0 ? 1 : status;
  } finally {
    if (!parallel) recording.close();
  }

  /** The same output as the loop above, each stream decoded on a worker pool (src/analyses/parallel). */
  async function analyzeInParallel(inputs: TraceInput[], workers: number): Promise<number> {
    let status = 0;
    let findings = 0;
    for (const group of analysisGroups(inputs)) {
      // Per-CPU streams change task (and image) at their context switches: they are decoded together, serially.
      const r = group[0]!.stream.tasks !== undefined ? analyzeOne(group) : await analyzeOnPool(group[0]!, workers);
      findings += r.findings.length;
      status = Math.max(status, decodeStatus(r.input, r));
      for (const line of o.json ? formatFindingsJsonl(r) : formatFindingsText(r)) out.line(line);
    }
    return o.failOnFindings && findings > 0 ? 1 : status;
  }

  async function analyzeOnPool(input: TraceInput, workers: number): Promise<AnalyzeResult> {
    const decoder = poolDecoder(input, { path: operands[0]!, options: { raw: o.raw ?? [], elf: o.elf ?? [], cpu: o.cpu, sysroot: o.sysroot } }, workers);
    try {
      return await asAnalyzeError(() => analyzeParallel(input, { detectors, params, policyFile: o.policy ?? null, monitor: o.monitor ?? [] }, decoder, {}, createProgress('analyze', input.stream.size, false)));
    } finally {
      await decoder.close();
    }
  }

  function analyzeOne(group: TraceInput[]): AnalyzeResult {
    let result: AnalyzeResult;
    try {
      result = analyzeGroup(group, { detectors, params, policyFile: o.policy ?? null, monitor: o.monitor ?? [] });
    } catch (e) {
      throw analyzeError(e);
    }
    return result;
  }
}

/** A policy or parameter error is the user's: one line. */
function analyzeError(e: unknown): unknown {
  if (e instanceof PolicyError) return new CliError(e.message);
  const msg = (e as Error).message;
  if (/^[a-z-]+\.[A-Za-z]+: /.test(msg)) return new CliError(msg);
  return e;
}

async function asAnalyzeError<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw analyzeError(e);
  }
}
