/**
 * `ptscope report`: one self-contained HTML report (findings with their
 * evidence, coverage, call timeline) for one or more trace bundles.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadBundleInput, type TraceInput } from '../analyses/analyze.js';
import { DETECTOR_NAMES } from '../analyses/detector.js';
import { PolicyError } from '../analyses/policy.js';
import { readManifest, type BundleManifest } from '../sources/recorder/bundle.js';
import { renderHtmlReport } from '../reports/html-report.js';
import { buildReportModel, DEFAULT_LIMITS, verdict, type DormantSection, type DormantTrigger, type ReportLimits, type ReportModel } from '../reports/report-model.js';
import { parseCNumber, optionValue } from './args.js';
import { CliError, type LineWriter } from './output.js';
import { createProgress } from './progress.js';

export const REPORT_HELP = `usage: ptscope report <bundle-dir>... [-o report.html] [options]

Decode trace bundles (from 'ptscope record'), run the security detectors and
write one self-contained HTML report: what was traced, findings with their
evidence (transfer, disassembly, symbols, call path, gadget chain), what could
not be checked, coverage per module and function, and a timeline of calls.
The file loads nothing from the network and reads without JavaScript.

options:
  -o, --output FILE      HTML file to write (default: ptscope-report.html)
  --json                 print the report model as JSON lines (one per bundle)
                         on stdout; the HTML is written only if -o is given too
  --title TEXT           page title
  --detect LIST          detectors to run, comma-separated (default: the default set)
  --policy FILE          policy JSON for cfi, inter-module and flowguard
  --dormant FILE         attach dormant-code results ('ptscope dormant --json' output)
  --max-calls N          calls listed in the timeline (default ${DEFAULT_LIMITS.calls})
  --max-functions N      executed functions listed per module (default ${DEFAULT_LIMITS.functionsPerModule})
  --max-findings N       findings shown (default ${DEFAULT_LIMITS.findings})
  --fail-on-findings     exit status 1 if any bundle has findings
  -q, --quiet            no progress bar
  -h, --help             this help

exit status: 0 ok, 1 findings with --fail-on-findings, 2 usage or input error.

examples:
  ptscope report demo/rop_stack.exploit -o report.html
  ptscope report exploit.ptscope benign.ptscope -o compare.html
  ptscope report --json app.ptscope | jq '.findings.total'
`;

/** A bundle directory as analysis input, with its manifest; input errors become CliErrors. */
export function loadBundleForCli(dir: string): { input: TraceInput; manifest: BundleManifest } {
  if (!existsSync(dir)) throw new CliError(`${dir}: no such file or directory.`);
  if (!statSync(dir).isDirectory()) throw new CliError(`${dir}: not a bundle directory (record one with 'ptscope record').`);
  try {
    const manifest = readManifest(dir);
    return { input: loadBundleInput(dir), manifest };
  } catch (e) {
    throw new CliError((e as Error).message.split('\n')[0]);
  }
}

/** The parts of `ptscope dormant --json` output (a DormantReport) the report shows. */
interface DormantRegionJson {
  function?: string;
  target?: string;
  entries?: string[];
  guard?: string | null;
  status?: string;
  reason?: string | null;
  trigger?: { call?: string; values?: { symbol?: string; value?: string }[] }[];
  constraints?: string[];
  proof?: { targetRan?: boolean } | null;
}

/** One dormant region of `ptscope dormant --json` as a report trigger. */
function regionTrigger(r: DormantRegionJson): DormantTrigger {
  const calls = (r.trigger ?? []).map((c) => `${c.call ?? '?'} returns ${(c.values ?? []).map((v) => `${v.symbol ?? '?'}=${v.value ?? '?'}`).join(', ')}`);
  const condition = calls.length > 0 ? calls.join(' and ') : (r.constraints ?? []).join(' && ') || (r.reason ?? 'no condition found');
  return {
    function: String(r.function ?? '?'),
    address: String(r.target ?? r.entries?.[0] ?? '?'),
    guard: r.guard ?? null,
    condition,
    input: null,
    confirmed: r.proof ? r.proof.targetRan === true : r.status === 'proven' ? true : null,
    notes: [r.status ?? 'unknown', ...(r.reason ? [r.reason] : [])],
  };
}

/**
 * Read dormant-code results into the report's slot: the JSON of
 * `ptscope dormant --json` (regions), or a plain {"source", "triggers": [...]}.
 */
export function readDormantFile(path: string): DormantSection {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CliError(`--dormant ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  const d = doc as { source?: unknown; triggers?: unknown; notes?: unknown; regions?: unknown; regionsFound?: unknown };
  if (d !== null && typeof d === 'object' && Array.isArray(d.regions)) {
    const triggers = (d.regions as DormantRegionJson[]).map(regionTrigger);
    const found = typeof d.regionsFound === 'number' ? d.regionsFound : triggers.length;
    return { source: 'ptscope dormant', triggers: { items: triggers, total: triggers.length }, notes: [`${found} dormant regions found, ${triggers.length} analysed`] };
  }
  if (d === null || typeof d !== 'object' || !Array.isArray(d.triggers)) throw new CliError(`--dormant ${path}: expected 'ptscope dormant --json' output or an object with a "triggers" array.`);
  const str = (v: unknown): string | null => (v === undefined || v === null ? null : String(v));
  const triggers: DormantTrigger[] = (d.triggers as Record<string, unknown>[]).map((t) => ({
    function: String(t.function ?? '?'),
    address: String(t.address ?? '?'),
    guard: str(t.guard),
    condition: String(t.condition ?? ''),
    input: str(t.input),
    confirmed: typeof t.confirmed === 'boolean' ? t.confirmed : null,
    notes: Array.isArray(t.notes) ? t.notes.map(String) : [],
  }));
  return {
    source: typeof d.source === 'string' ? d.source : path,
    triggers: { items: triggers, total: triggers.length },
    notes: Array.isArray(d.notes) ? d.notes.map(String) : [],
  };
}

export interface ReportBuildArgs {
  detectors?: string[];
  policyFile: string | null;
  limits: Partial<ReportLimits>;
  dormant: DormantSection | null;
  quiet: boolean;
}

/** Build the model of one bundle for a CLI command (progress bar, CLI errors). */
export function buildModelForCli(dir: string, a: ReportBuildArgs, title?: string): ReportModel {
  const { input, manifest } = loadBundleForCli(dir);
  const progress = createProgress(dir.replace(/\/+$/, '').replace(/.*\//, ''), input.trace.length, a.quiet);
  try {
    return buildReportModel(input, manifest, { detectors: a.detectors, policyFile: a.policyFile, limits: a.limits, dormant: a.dormant, progress, title });
  } catch (e) {
    progress?.done();
    if (e instanceof PolicyError) throw new CliError(e.message);
    throw e;
  }
}

/** `ptscope report`. */
export function runReportCommand(args: string[], out: LineWriter): number {
  const bundles: string[] = [];
  let output: string | null = null;
  let json = false;
  let title: string | undefined;
  let failOnFindings = false;
  const build: ReportBuildArgs = { policyFile: null, limits: {}, dormant: null, quiet: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '-h':
      case '--help':
        out.line(REPORT_HELP.trimEnd());
        return 0;
      case '-o':
      case '--output':
        output = optionValue(args, ++i, a);
        break;
      case '--json':
        json = true;
        break;
      case '--title':
        title = optionValue(args, ++i, a);
        break;
      case '--detect':
        build.detectors = optionValue(args, ++i, a).split(',').map((s) => s.trim()).filter((s) => s.length > 0);
        for (const d of build.detectors) {
          if (!DETECTOR_NAMES.includes(d)) throw new CliError(`--detect: unknown detector '${d}' (known: ${DETECTOR_NAMES.join(', ')}).`);
        }
        break;
      case '--policy':
        build.policyFile = optionValue(args, ++i, a);
        break;
      case '--dormant':
        build.dormant = readDormantFile(optionValue(args, ++i, a));
        break;
      case '--max-calls':
        build.limits.calls = parseCNumber(optionValue(args, ++i, a), a);
        break;
      case '--max-functions':
        build.limits.functionsPerModule = parseCNumber(optionValue(args, ++i, a), a);
        break;
      case '--max-findings':
        build.limits.findings = parseCNumber(optionValue(args, ++i, a), a);
        break;
      case '--fail-on-findings':
        failOnFindings = true;
        break;
      case '-q':
      case '--quiet':
        build.quiet = true;
        break;
      default:
        if (a.startsWith('-')) throw new CliError(`unknown option '${a}'. Run 'ptscope report --help'.`);
        bundles.push(a);
    }
  }
  if (bundles.length === 0) throw new CliError(`no bundle given. Run 'ptscope report --help'.`);
  const models = bundles.map((b) => buildModelForCli(b, build));
  if (json) for (const m of models) out.line(JSON.stringify(m));
  if (!json || output !== null) {
    const path = resolve(output ?? 'ptscope-report.html');
    const html = renderHtmlReport(models, { title, generated: new Date().toISOString() });
    try {
      writeFileSync(path, html);
    } catch (e) {
      throw new CliError(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const target = json ? (line: string) => process.stderr.write(line + '\n') : (line: string) => out.line(line);
    for (const m of models) target(`${m.source}: ${verdict(m)}`);
    target(`report: ${path} (${Math.ceil(html.length / 1024)} KiB)`);
  }
  return failOnFindings && models.some((m) => m.findings.total > 0) ? 1 : 0;
}
