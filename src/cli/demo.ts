/**
 * `ptscope demo`: analyse the sample recordings shipped in demo/ (made by
 * tools/make-demo-data.ts with `ptscope record`), print what they show and
 * write an HTML report. Needs nothing but Node: the bundles carry the
 * traced binary and the trace, so no qemu or compiler runs here.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { checkJson, readJsonFile } from '../sources/import/json-input.js';
import { renderHtmlReport } from '../reports/html-report.js';
import { longestChain, verdict, type ReportModel } from '../reports/report-model.js';
import { defineCommand, parseCommand } from './command.js';
import { readDormantFile } from './dormant-file.js';
import { CliError, type LineWriter } from './output.js';
import { buildModelsForCli } from './report.js';

export const DEMO_FORMAT = 'ptscope-demo';

/** demo/demo.json. */
export interface DemoIndex {
  format: typeof DEMO_FORMAT;
  version: 1;
  samples: DemoSample[];
}

export interface DemoSample {
  /** Bundle directory, relative to demo/. */
  bundle: string;
  title: string;
  /** One or two sentences: what the program is and what the run does. */
  about: string;
  /** How it was run, for the reader (e.g. `prog < payload.bin`). */
  command: string;
  kind: 'exploit' | 'benign' | 'dormant';
  /** Dormant-code triggers to attach (relative to demo/), when the sample has them. */
  dormant?: string;
}

export function demoCommand() {
  return defineCommand('demo', "Analyse the small sample recordings that ship with ptscope (emulated Intel PT traces made with 'ptscope record'): a ROP exploit against a vulnerable program and its benign run. Prints what ran and what the detectors found, and writes an HTML report. Needs no hardware, qemu or compiler.")
    .option('-o, --output <file>', 'HTML report to write', 'ptscope-report.html')
    .option('--data <dir>', 'sample directory (default: the demo/ shipped with ptscope)')
    .option('--json', 'print a JSON summary instead of text')
    .option('-q, --quiet', 'no progress bar')
    .addHelpText('after', `
exit status: 0 ok, 2 usage or input error (e.g. the samples are missing).

examples:
  ptscope demo
  ptscope demo -o /tmp/demo.html`);
}

const demoIndex = z.object({
  format: z.literal(DEMO_FORMAT),
  version: z.literal(1),
  samples: z.array(z.object({
    bundle: z.string().min(1).max(4096),
    title: z.string().max(1000),
    about: z.string().max(10_000),
    command: z.string().max(10_000),
    kind: z.enum(['exploit', 'benign', 'dormant']),
    dormant: z.string().max(4096).optional(),
  })).max(1000),
});

/** The demo/ directory shipped with the package (searched upward from this file). */
export function defaultDemoDir(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'demo');
    if (existsSync(join(candidate, 'demo.json'))) return candidate;
    dir = dirname(dir);
  }
  return null;
}

/** Read and check demo.json. */
export function readDemoIndex(dir: string): DemoIndex {
  try {
    return checkJson(readJsonFile(join(dir, 'demo.json')), demoIndex, `${dir}/demo.json`);
  } catch (e) {
    throw new CliError(/no such file/.test((e as Error).message) ? `${dir}: no demo samples (no demo.json).` : (e as Error).message);
  }
}

function group(names: string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return [...counts].map(([n, c]) => (c > 1 ? `${n} x${c}` : n)).join(', ');
}

function describe(s: DemoSample, m: ReportModel, i: number): string[] {
  const lines = [`[${i + 1}] ${s.title}`, `    ${s.about}`];
  lines.push(`    run       ${s.command}  (${m.program?.outcome ?? 'unknown outcome'})`);
  lines.push(`    traced    ${m.trace.instructions.toLocaleString('en-US')} instructions, ${m.trace.transfers.toLocaleString('en-US')} control transfers, ${m.trace.bytes.toLocaleString('en-US')} bytes of trace`);
  const cov = m.coverage.filter((c) => c.unavailable === null);
  if (cov.length > 0) {
    const ran = cov.reduce((a, c) => a + c.functionsRan, 0);
    const all = cov.reduce((a, c) => a + c.functions, 0);
    lines.push(`    coverage  ${ran} of ${all} functions ran`);
  }
  lines.push(`    verdict   ${verdict(m)}`);
  if (m.findings.total > 0) lines.push(`    findings  ${group(m.findings.items.map((f) => `${f.detector}/${f.kind}`))}`);
  const chain = longestChain(m);
  if (chain !== null && chain.chain !== null) {
    lines.push(`    chain     ${chain.chainTotal} gadgets (${chain.detector}/${chain.kind}):`);
    for (const g of chain.chain) lines.push(`                ${g.address.padEnd(10)} ${g.insns.map((x) => x.text).join('; ').padEnd(24)} ${g.symbol ?? ''}`);
  }
  if (m.dormant !== null) lines.push(`    dormant   ${m.dormant.triggers.total} trigger(s) for code that did not run`);
  return lines;
}

/** `ptscope demo`. */
export function runDemoCommand(args: string[], out: LineWriter): number {
  const { help, opts: o } = parseCommand<{ output: string; data?: string; json?: boolean; quiet?: boolean }>(demoCommand(), args, out);
  if (help) return 0;
  const { output, json } = { output: o.output, json: o.json === true };
  const data = o.data ?? null;
  const quiet = o.quiet === true;
  const dir = data ?? defaultDemoDir();
  if (dir === null) throw new CliError('the demo samples (demo/demo.json) are not installed with this copy of ptscope.');
  const index = readDemoIndex(dir);
  const started = Date.now();
  const models: ReportModel[] = [];
  for (const s of index.samples) {
    const bundle = join(dir, s.bundle);
    const dormant = s.dormant !== undefined && existsSync(join(dir, s.dormant)) ? readDormantFile(join(dir, s.dormant)) : null;
    models.push(...buildModelsForCli(bundle, { policyFile: null, limits: {}, dormant, quiet }, s.title));
  }
  const path = resolve(output);
  const html = renderHtmlReport(models, { title: 'ptscope demo report', generated: new Date().toISOString() });
  try {
    writeFileSync(path, html);
  } catch (e) {
    throw new CliError(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const seconds = (Date.now() - started) / 1000;
  if (json) {
    out.line(
      JSON.stringify({
        report: path,
        seconds,
        samples: index.samples.map((s, i) => {
          const m = models[i];
          const chain = longestChain(m);
          return {
            title: s.title,
            kind: s.kind,
            bundle: join(dir, s.bundle),
            instructions: m.trace.instructions,
            findings: m.findings.total,
            severity: m.severityCounts,
            detectors: [...new Set(m.findings.items.map((f) => f.detector))],
            chain: chain?.chain?.map((g) => ({ address: g.address, insns: g.insns.map((x) => x.text), symbol: g.symbol })) ?? null,
          };
        }),
      }),
    );
    return 0;
  }
  const rel = relative(process.cwd(), dir);
  const shown = rel === '' ? '.' : rel.startsWith('..') ? dir : rel;
  out.line(`ptscope demo: ${index.samples.length} sample recordings from ${shown}/ (emulated Intel PT, made with 'ptscope record')`);
  out.line('');
  index.samples.forEach((s, i) => {
    for (const l of describe(s, models[i], i)) out.line(l);
    out.line('');
  });
  out.line(`report    ${path}  (open it in a browser; ${Math.ceil(html.length / 1024)} KiB, self-contained)`);
  out.line(`time      ${seconds.toFixed(1)} s`);
  out.line('');
  out.line('next steps:');
  const first = index.samples.find((s) => s.kind === 'exploit') ?? index.samples[0];
  if (first) {
    const b = join(shown, first.bundle);
    out.line(`  ptscope analyze ${b}                  findings as text (--json for JSON lines)`);
    out.line(`  ptscope timeline ${b} -o trace.json   calls for Perfetto UI / speedscope`);
    out.line(`  ptscope coverage ${b} --format drcov -o cov.drcov   coverage for Lighthouse / bncov`);
  }
  out.line('  ptscope record -o my.ptscope -- /bin/ls   record your own program (needs qemu-user)');
  return 0;
}
