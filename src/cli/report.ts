/**
 * `ptscope report`: one self-contained HTML report (findings with their
 * evidence, coverage, call timeline) for one or more recordings of any
 * input format.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { analysisGroups, nothingDecodedError } from '../analyses/analyze.js';
import { DETECTOR_NAMES } from '../analyses/detector.js';
import { PolicyError } from '../analyses/policy.js';
import { traceInputs } from '../analyses/trace-input.js';
import { renderHtmlReport } from '../reports/html-report.js';
import { buildReportModels, DEFAULT_LIMITS, verdict, type DormantSection, type ReportLimits, type ReportModel } from '../reports/report-model.js';
import { asInputError, defineCommand, integer, list, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { readDormantFile } from './dormant-file.js';
import { CliError, type LineWriter } from './output.js';
import { createProgress } from './progress.js';

export function reportCommand() {
  return withInputOptions(
    defineCommand('report', 'Write one self-contained HTML report: what was traced, findings with their evidence, what could not be checked, coverage per module and function, and a timeline of calls.')
      .argument('<inputs...>', 'bundle directories, perf.data files, or one raw trace (with --raw/--elf)')
      .option('-o, --output <file>', 'HTML file to write (default: ptscope-report.html)')
      .option('--json', 'print the report model as JSON lines (one per stream; per thread for per-CPU perf.data) on stdout; the HTML is written only if -o is given too')
      .option('--title <text>', 'page title')
      .option('--detect <list>', 'detectors to run, comma-separated (default: the default set)', list)
      .option('--policy <file>', 'policy JSON for cfi, inter-module and flowguard')
      .option('--dormant <file>', "attach dormant-code results ('ptscope dormant --json' output)")
      .option('--max-calls <n>', `calls listed in the timeline (default ${DEFAULT_LIMITS.calls})`, integer(0))
      .option('--max-functions <n>', `executed functions listed per module (default ${DEFAULT_LIMITS.functionsPerModule})`, integer(0))
      .option('--max-findings <n>', `findings shown (default ${DEFAULT_LIMITS.findings})`, integer(0))
      .option('--fail-on-findings', 'exit status 1 if any input has findings')
      .option('-q, --quiet', 'no progress bar'),
  ).addHelpText('after', `
The file loads nothing from the network and reads without JavaScript.

exit status: 0 ok; 1 findings with --fail-on-findings, or a trace that could only
partly be decoded; 2 usage or input error (including a trace with nothing decodable).

examples:
  ptscope report demo/rop_stack.exploit -o report.html
  ptscope report exploit.ptscope benign.ptscope -o compare.html
  ptscope report --json app.ptscope | jq '.findings.total'`);
}

interface ReportCliOptions extends InputOptions {
  output?: string;
  json?: boolean;
  title?: string;
  detect?: string[];
  policy?: string;
  dormant?: string;
  maxCalls?: number;
  maxFunctions?: number;
  maxFindings?: number;
  failOnFindings?: boolean;
  quiet?: boolean;
}

export interface ReportBuildArgs {
  detectors?: string[];
  policyFile: string | null;
  limits: Partial<ReportLimits>;
  dormant: DormantSection | null;
  quiet: boolean;
}

/**
 * Build the models of one input for a CLI command (progress bar, CLI
 * errors): one per stream, or for per-CPU streams one per thread life.
 */
export function buildModelsForCli(target: string, a: ReportBuildArgs, title?: string, input: InputOptions = {}): ReportModel[] {
  const recording = openInput(target, input);
  try {
    return asInputError(() => analysisGroups(traceInputs(recording))).flatMap((group) => {
      const size = group.reduce((n, ti) => n + ti.stream.size, 0);
      const progress = createProgress(target.replace(/\/+$/, '').replace(/.*\//, ''), size, a.quiet);
      const options = { detectors: a.detectors, policyFile: a.policyFile, limits: a.limits, dormant: a.dormant, progress, title };
      try {
        return buildReportModels(group, options);
      } catch (e) {
        progress?.done();
        if (e instanceof PolicyError) throw new CliError(e.message);
        throw e;
      }
    });
  } finally {
    recording.close();
  }
}

/** Nothing decoded is an input error: a report must not show a green verdict for it. */
export function modelStatus(m: ReportModel): number {
  const nothing = nothingDecodedError(m.source, m.trace.instructions, m.trace.decodeErrors);
  if (nothing !== null) throw new CliError(nothing);
  return m.trace.decodeErrors > 0 ? 1 : 0;
}

/** `ptscope report`. */
export function runReportCommand(args: string[], out: LineWriter): number {
  const { help, opts: o, args: inputs } = parseCommand<ReportCliOptions>(reportCommand(), args, out);
  if (help) return 0;
  for (const d of o.detect ?? []) {
    if (!DETECTOR_NAMES.includes(d)) throw new CliError(`--detect: unknown detector '${d}' (known: ${DETECTOR_NAMES.join(', ')}).`);
  }
  const limits: Partial<ReportLimits> = {};
  if (o.maxCalls !== undefined) limits.calls = o.maxCalls;
  if (o.maxFunctions !== undefined) limits.functionsPerModule = o.maxFunctions;
  if (o.maxFindings !== undefined) limits.findings = o.maxFindings;
  const build: ReportBuildArgs = {
    detectors: o.detect,
    policyFile: o.policy ?? null,
    limits,
    dormant: o.dormant !== undefined ? readDormantFile(o.dormant) : null,
    quiet: o.quiet === true,
  };
  const models = inputs.flatMap((b) => buildModelsForCli(b, build, undefined, o));
  let status = 0;
  for (const m of models) status = Math.max(status, modelStatus(m));
  if (o.json) for (const m of models) out.line(JSON.stringify(m));
  if (!o.json || o.output !== undefined) {
    const path = resolve(o.output ?? 'ptscope-report.html');
    const html = renderHtmlReport(models, { title: o.title, generated: new Date().toISOString() });
    try {
      writeFileSync(path, html);
    } catch (e) {
      throw new CliError(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const target = o.json ? (line: string) => process.stderr.write(line + '\n') : (line: string) => out.line(line);
    for (const m of models) target(`${m.source}: ${verdict(m)}`);
    target(`report: ${path} (${Math.ceil(html.length / 1024)} KiB)`);
  }
  if (o.failOnFindings && models.some((m) => m.findings.total > 0)) return 1;
  return status;
}
