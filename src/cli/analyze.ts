/**
 * `ptscope analyze`: run the security detectors over a trace bundle or a
 * raw trace with images, print findings (text or JSON lines).
 */
import { existsSync, statSync } from 'node:fs';
import { analyzeTrace, loadRawInput, loadTraceInputs, type TraceInput } from '../analyses/analyze.js';
import { detectInputKind } from '../sources/trace-import.js';
import { DETECTORS, DETECTOR_NAMES } from '../analyses/detector.js';
import { PolicyError } from '../analyses/policy.js';
import { trainFlowGuardPolicy } from '../analyses/flowguard.js';
import { validateDetectorParams } from '../analyses/detector.js';
import { formatFindingsJsonl } from '../reports/findings-jsonl.js';
import { formatFindingsText } from '../reports/findings-text.js';
import { CliError, type LineWriter } from './output.js';
import { optionValue } from './args.js';

export const ANALYZE_HELP = `usage: ptscope analyze <bundle-dir> [options]
       ptscope analyze <trace.pt> --raw <file>[:<from>-<to>]:<base> ... [--elf <file>[:<base>] ...] [options]

Decode a trace and run security detectors over its control flow.

options:
  --detect LIST          detectors to run, comma-separated (default: ${DETECTORS.filter((d) => d.byDefault).map((d) => d.name).join(',')})
  --json                 JSON lines: one object per finding, per unchecked note, then a summary
  --fail-on-findings     exit status 1 if anything was found
  --policy FILE          policy JSON for cfi, inter-module and flowguard (format "ptscope-policy")
  --monitor SYMS         functions hook-skip watches, comma-separated (name or module!name)
  --flowguard-train OUT  learn the FlowGuard edges of this (benign) trace into policy OUT (merged if it exists)
  --param D.K=V          detector parameter (e.g. rop.minChain=3); repeatable
  --raw, --elf           images for a raw trace (ptxed syntax)
  --cpu F/M[/S]          the CPU a raw trace was recorded on (errata)
  --sysroot DIR          find a perf.data's mapped files under DIR
  -h, --help             this help

detectors:
${DETECTORS.map((d) => `  ${d.name.padEnd(13)} ${d.description}`).join('\n')}

exit status: 0 no findings (or findings without --fail-on-findings), 1 findings with
--fail-on-findings, 2 usage or input error.
`;

/** `ptscope analyze`. */
export function runAnalyzeCommand(args: string[], out: LineWriter): number {
  let target: string | null = null;
  const raw: string[] = [];
  const elf: string[] = [];
  let cpu: string | undefined;
  let detectors: string[] | undefined;
  let json = false;
  let failOnFindings = false;
  let policyFile: string | null = null;
  let monitor: string[] = [];
  const params: Record<string, Record<string, string>> = {};
  let trainOut: string | null = null;
  let sysroot: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '-h':
      case '--help':
        out.line(ANALYZE_HELP.trimEnd());
        return 0;
      case '--raw':
        raw.push(optionValue(args, ++i, a));
        break;
      case '--elf':
        elf.push(optionValue(args, ++i, a));
        break;
      case '--cpu':
        cpu = optionValue(args, ++i, a);
        if (cpu === 'none') cpu = undefined;
        break;
      case '--detect':
        detectors = optionValue(args, ++i, a).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
        for (const d of detectors) {
          if (!DETECTOR_NAMES.includes(d)) throw new CliError(`--detect: unknown detector '${d}' (known: ${DETECTOR_NAMES.join(', ')}).`);
        }
        break;
      case '--sysroot':
        sysroot = optionValue(args, ++i, a);
        break;
      case '--json':
        json = true;
        break;
      case '--fail-on-findings':
        failOnFindings = true;
        break;
      case '--policy':
        policyFile = optionValue(args, ++i, a);
        break;
      case '--monitor':
        monitor = optionValue(args, ++i, a).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
        break;
      case '--flowguard-train':
        trainOut = optionValue(args, ++i, a);
        break;
      case '--param': {
        const m = /^([a-z-]+)\.([A-Za-z]+)=(.+)$/.exec(optionValue(args, ++i, a));
        if (!m) throw new CliError(`--param: expected DETECTOR.KEY=VALUE, got '${args[i]}'.`);
        (params[m[1]] ??= {})[m[2]] = m[3];
        break;
      }
      default:
        if (a.startsWith('-')) throw new CliError(`unknown option '${a}'. Run 'ptscope analyze --help'.`);
        if (target !== null) throw new CliError(`more than one trace given ('${target}', '${a}').`);
        target = a;
    }
  }
  if (target === null) throw new CliError(`no trace given. Run 'ptscope analyze --help'.`);
  try {
    validateDetectorParams(params);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (!existsSync(target)) throw new CliError(`${target}: no such file or directory.`);
  let inputs: TraceInput[];
  try {
    const kind = detectInputKind(target);
    if (kind !== 'raw') {
      if (raw.length > 0 || elf.length > 0) throw new CliError('--raw/--elf are for a raw trace, not a bundle directory or perf.data.');
      inputs = loadTraceInputs(target, { sysroot });
    } else {
      if (raw.length === 0 && elf.length === 0) throw new CliError(`${target}: a raw trace needs its images (--raw or --elf).`);
      inputs = [loadRawInput({ trace: target, raw, elf, cpu })];
    }
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError((e as Error).message.split('\n')[0]);
  }
  // perf.data may hold several streams (per CPU or thread): each is analysed.
  let status = 0;
  for (const input of inputs) {
    const s = analyzeOne(input);
    if (s !== 0) status = s;
  }
  return status;

  function analyzeOne(input: TraceInput): number {
  if (trainOut !== null) {
    try {
      const n = trainFlowGuardPolicy(trainOut, [input.trace]);
      out.line(`${trainOut}: ${n} flowguard edges`);
      return 0;
    } catch (e) {
      throw new CliError((e as Error).message.split('\n')[0]);
    }
  }
  let result;
  try {
    result = analyzeTrace(input, { detectors, params, policyFile, monitor });
  } catch (e) {
    if (e instanceof PolicyError) throw new CliError(e.message);
    const msg = (e as Error).message;
    if (/^[a-z-]+\.[A-Za-z]+: not a number/.test(msg)) throw new CliError(msg);
    throw e;
  }
  for (const line of json ? formatFindingsJsonl(result) : formatFindingsText(result)) out.line(line);
  return failOnFindings && result.findings.length > 0 ? 1 : 0;
  }
}
