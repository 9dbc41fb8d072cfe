/**
 * `ptscope coverage`: what a trace executed, as a drcov log (for Lighthouse,
 * bncov and other drcov readers) or a per-function summary (text, JSON).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { coverageModules, ExecutedBlocks, formatCoverageText, functionCoverage, writeDrcov, type DrcovTableVersion } from '../reports/drcov.js';
import { walkTrace } from '../reports/report-model.js';
import { parseCNumber, optionValue } from './args.js';
import { CliError, type LineWriter } from './output.js';
import { createProgress } from './progress.js';
import { loadBundleForCli } from './report.js';

export const COVERAGE_HELP = `usage: ptscope coverage <bundle-dir> [--format drcov|text|json] [-o FILE] [options]

Which code a trace executed.
  drcov  DynamoRIO's drcov log (version 2: module table + binary basic-block
         table) for Lighthouse (IDA, Binary Ninja), bncov and other drcov
         readers; blocks are the dynamic blocks the trace ran
  text   per module and function: blocks that ran of the static CFG's blocks,
         functions that never ran (default)
  json   the same as one JSON document

options:
  --format F           drcov, text or json (default text)
  -o, --output FILE    write to FILE (required for drcov; default stdout otherwise)
  --drcov-table N      drcov module table version 2, 3 or 4 (default 2)
  --limit N            functions listed per module in text (default 50; 0: all)
  --json               same as --format json
  -q, --quiet          no progress bar
  -h, --help           this help

exit status: 0 ok, 2 usage or input error.

examples:
  ptscope coverage demo/rop_stack.benign --format drcov -o benign.drcov
  ptscope coverage demo/rop_stack.exploit --limit 0
  ptscope coverage app.ptscope --json | jq '.modules[0].functionsRan'
`;

/** `ptscope coverage`. */
export function runCoverageCommand(args: string[], out: LineWriter): number {
  let bundle: string | null = null;
  let format: 'drcov' | 'text' | 'json' = 'text';
  let output: string | null = null;
  let table: DrcovTableVersion = 2;
  let limit = 50;
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case '-h':
      case '--help':
        out.line(COVERAGE_HELP.trimEnd());
        return 0;
      case '--format': {
        const f = args[++i];
        if (f !== 'drcov' && f !== 'text' && f !== 'json') throw new CliError(`--format: expected drcov, text or json, got '${f ?? ''}'.`);
        format = f;
        break;
      }
      case '--json':
        format = 'json';
        break;
      case '-o':
      case '--output':
        output = optionValue(args, ++i, a);
        break;
      case '--drcov-table': {
        const v = parseCNumber(args[++i], a);
        if (v !== 2 && v !== 3 && v !== 4) throw new CliError('--drcov-table: 2, 3 or 4.');
        table = v;
        break;
      }
      case '--limit':
        limit = parseCNumber(args[++i], a);
        break;
      case '-q':
      case '--quiet':
        quiet = true;
        break;
      default:
        if (a.startsWith('-')) throw new CliError(`unknown option '${a}'. Run 'ptscope coverage --help'.`);
        if (bundle !== null) throw new CliError(`more than one bundle given ('${bundle}', '${a}').`);
        bundle = a;
    }
  }
  if (bundle === null) throw new CliError(`no bundle given. Run 'ptscope coverage --help'.`);
  if (format === 'drcov' && output === null) throw new CliError('--format drcov writes a binary file: give -o FILE.');
  const { input, manifest } = loadBundleForCli(bundle);
  const blocks = new ExecutedBlocks();
  const stats = walkTrace(input, [blocks], createProgress('coverage', input.trace.length, quiet));
  const write = (data: string | Uint8Array): string => {
    const path = resolve(output!);
    try {
      writeFileSync(path, data);
    } catch (e) {
      throw new CliError(`${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return path;
  };
  if (format === 'drcov') {
    const originals = new Map(manifest.images.map((im) => [resolve(bundle!, im.file), im.path]));
    const modules = coverageModules(input.modules, (m) => (m.path === null ? null : originals.get(m.path) ?? null));
    const d = writeDrcov(blocks, modules, table);
    const path = write(d.bytes);
    out.line(`${path}: drcov, ${modules.length} module${modules.length === 1 ? '' : 's'}, ${d.blocks} basic blocks from ${stats.instructions} instructions`);
    if (d.outside > 0) out.line(`note: ${d.outside} executed blocks lie outside every module and are not in the log`);
    return 0;
  }
  const coverage = functionCoverage(blocks, input.modules);
  if (format === 'json') {
    const doc = { format: 'ptscope-coverage', version: 1, source: bundle, instructions: stats.instructions, executedBlocks: blocks.size, modules: coverage };
    const text = JSON.stringify(doc) + '\n';
    if (output === null) out.line(text.trimEnd());
    else out.line(`${write(text)}: coverage JSON`);
    return 0;
  }
  const lines = [`${bundle}: ${stats.instructions} instructions, ${blocks.size} distinct executed blocks`, ...formatCoverageText(coverage, limit)];
  if (output === null) for (const l of lines) out.line(l);
  else out.line(`${write(lines.join('\n') + '\n')}: coverage text`);
  return 0;
}
