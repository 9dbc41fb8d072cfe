/**
 * `ptscope coverage`: what a trace executed, as a drcov log (for Lighthouse,
 * bncov and other drcov readers) or a per-function summary (text, JSON).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { traceInputs } from '../analyses/trace-input.js';
import { coverageModules, ExecutedBlocks, formatCoverageText, functionCoverage, writeDrcov, type DrcovTableVersion } from '../reports/drcov.js';
import { walkTrace } from '../reports/report-model.js';
import { asInputError, defineCommand, integer, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { Option } from 'commander';
import { CliError, type LineWriter } from './output.js';
import { createProgress } from './progress.js';
import { runEdgeCoverage, type EdgeFormat } from './coverage-edges.js';

export function coverageCommand() {
  return withInputOptions(
    defineCommand('coverage', 'Which code a trace executed, as a drcov log (DynamoRIO drcov version 2, for Lighthouse, bncov and other drcov readers; blocks are the dynamic blocks the trace ran) or per module and function: blocks that ran of the static CFG\'s blocks, and functions that never ran (text or JSON).')
      .argument('<input>', 'a bundle directory, a perf.data, or a raw trace (with --raw/--elf)')
      .addOption(new Option('--format <f>', 'output format (default text; with --edges: showmap)').choices(['drcov', 'text', 'json', 'afl', 'showmap']))
      .option('--edges', 'AFL edge coverage: the edge bitmap a fuzzer keeps (formats afl, showmap, json, drcov)')
      .option('--map-size <n>', 'with --edges: bitmap size, a power of two', integer(256, 1 << 24), 65536)
      .option('-o, --output <file>', 'write to FILE (required for drcov; default stdout otherwise)')
      .addOption(new Option('--drcov-table <n>', 'drcov module table version').choices(['2', '3', '4']).default('2'))
      .option('--limit <n>', 'functions listed per module in text (0: all)', integer(0), 50)
      .option('--json', 'same as --format json')
      .option('-q, --quiet', 'no progress bar'),
  ).addHelpText('after', `
Streams of several threads of one process are merged; each distinct address
space (process image) is reported on its own.

With --edges: edges between basic blocks, hashed into an AFL map as AFL does
(prev_loc >> 1 ^ cur_loc, with a block's loc a hash of its address) and
bucketed as afl-fuzz does: afl writes the bitmap (binary), showmap prints
afl-showmap's id:class lines, json lists every edge by address with its
count, drcov lists each block once per time it was entered.

exit status: 0 ok, 2 usage or input error.

examples:
  ptscope coverage demo/rop_stack.benign --format drcov -o benign.drcov
  ptscope coverage demo/rop_stack.exploit --limit 0
  ptscope coverage app.ptscope --json | jq '.modules[0].functionsRan'
  ptscope coverage --edges --format afl -o map.bin app.ptscope
  ptscope coverage --edges trace.pt --raw code.bin:0x400000 --cpu 6/158`);
}

interface CoverageCliOptions extends InputOptions {
  format?: 'drcov' | 'text' | 'json' | 'afl' | 'showmap';
  edges?: boolean;
  mapSize: number;
  output?: string;
  drcovTable: '2' | '3' | '4';
  limit: number;
  json?: boolean;
  quiet?: boolean;
}

/** `ptscope coverage`. */
export function runCoverageCommand(args: string[], out: LineWriter): number {
  const { help, opts: o, args: operands } = parseCommand<CoverageCliOptions>(coverageCommand(), args, out);
  if (help) return 0;
  const source = operands[0]!;
  if (o.edges) {
    const f = o.json ? 'json' : o.format ?? 'showmap';
    if (f === 'text') throw new CliError('--edges: the formats are afl, showmap, json and drcov.');
    const recording = openInput(source, o);
    try {
      return runEdgeCoverage(source, asInputError(() => traceInputs(recording)), { format: f as EdgeFormat, output: o.output ?? null, mapSize: o.mapSize }, out);
    } finally {
      recording.close();
    }
  }
  const format = o.json ? 'json' : o.format ?? 'text';
  if (format === 'afl' || format === 'showmap') throw new CliError(`--format ${format} is for --edges.`);
  const output = o.output ?? null;
  const table = Number(o.drcovTable) as DrcovTableVersion;
  const limit = o.limit;
  if (format === 'drcov' && output === null) throw new CliError('--format drcov writes a binary file: give -o FILE.');
  const recording = openInput(source, o);
  const inputs = asInputError(() => traceInputs(recording));
  // Threads of one process share their mappings: one coverage per address space.
  const groups = new Map<unknown, typeof inputs>();
  for (const ti of inputs) {
    const g = groups.get(ti.stream.mappings);
    if (g) g.push(ti);
    else groups.set(ti.stream.mappings, [ti]);
  }
  if (groups.size > 1 && format === 'drcov') {
    recording.close();
    throw new CliError(`${source}: ${groups.size} address spaces (processes): drcov holds one; use --format json or text.`);
  }
  const spaces = [...groups.values()].map((list) => {
    const blocks = new ExecutedBlocks();
    let instructions = 0;
    for (const ti of list) instructions += walkTrace(ti, [blocks], createProgress('coverage', ti.stream.size, o.quiet === true)).instructions;
    const first = list[0]!;
    return { input: first, blocks, instructions, label: list.length === inputs.length ? null : list.map((t) => t.name).join(', ') };
  });
  recording.close();
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
    const { input, blocks, instructions } = spaces[0]!;
    const originals = new Map(input.stream.mappings.map((m) => [m.file, m.originalPath]));
    const modules = coverageModules(input.modules, (m) => (m.path === null ? null : originals.get(m.path) ?? null));
    const d = writeDrcov(blocks, modules, table);
    const path = write(d.bytes);
    out.line(`${path}: drcov, ${modules.length} module${modules.length === 1 ? '' : 's'}, ${d.blocks} basic blocks from ${instructions} instructions`);
    if (d.outside > 0) out.line(`note: ${d.outside} executed blocks lie outside every module and are not in the log`);
    return 0;
  }
  if (format === 'json') {
    const docs = spaces.map((sp) => ({ streams: sp.label, instructions: sp.instructions, executedBlocks: sp.blocks.size, modules: functionCoverage(sp.blocks, sp.input.modules) }));
    const doc = spaces.length === 1
      ? { format: 'ptscope-coverage', version: 1, source, instructions: docs[0]!.instructions, executedBlocks: docs[0]!.executedBlocks, modules: docs[0]!.modules }
      : { format: 'ptscope-coverage', version: 1, source, spaces: docs };
    const text = JSON.stringify(doc) + '\n';
    if (output === null) out.line(text.trimEnd());
    else out.line(`${write(text)}: coverage JSON`);
    return 0;
  }
  const lines: string[] = [];
  for (const sp of spaces) {
    lines.push(`${sp.label ?? source}: ${sp.instructions} instructions, ${sp.blocks.size} distinct executed blocks`);
    lines.push(...formatCoverageText(functionCoverage(sp.blocks, sp.input.modules), limit));
  }
  if (output === null) for (const l of lines) out.line(l);
  else out.line(`${write(lines.join('\n') + '\n')}: coverage text`);
  return 0;
}
