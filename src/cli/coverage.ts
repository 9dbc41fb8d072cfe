/**
 * `ptscope coverage`: what a trace executed, as a drcov log (for Lighthouse,
 * bncov and other drcov readers) or a per-function summary (text, JSON).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { modulesOf, traceInputs, type TraceInput } from '../analyses/trace-input.js';
import { walkCpuStreams } from '../analyses/cpu-walk.js';
import type { ModuleMap } from '../analyses/modules.js';
import { TaskDetectors } from '../analyses/task-detectors.js';
import type { AddressSpaceLife, ImageMapping, StreamTask } from '../sources/model/recording.js';
import type { SegmentRange } from '../flow/parallel/psb-split.js';
import { parseJobs } from './jobs-option.js';
import { coverageInPieces } from './parallel/coverage-in-pieces.js';
import type { CoveragePiece } from '../reports/coverage-pieces.js';
import { LinePool } from './parallel/line-pieces.js';
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
      .option('-q, --quiet', 'no progress bar')
      .option('--jobs <n>', 'decode on N worker threads (default: serial); the output is the same as serial'),
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
  jobs?: string;
}

/** `ptscope coverage`. */
export function runCoverageCommand(args: string[], out: LineWriter): number | Promise<number> {
  const { help, opts: o, args: operands } = parseCommand<CoverageCliOptions>(coverageCommand(), args, out);
  if (help) return 0;
  const source = operands[0]!;
  const jobs = o.jobs === undefined ? 1 : parseJobs(o.jobs);
  if (o.edges && jobs > 1) throw new CliError('--jobs: --edges reads the packets in one pass; run it without --jobs.');
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
  const all = asInputError(() => traceInputs(recording));
  // Per-CPU streams hold several processes' runs: their coverage is split by the task that ran (cpuCoverage).
  const cpus = all.filter((ti) => ti.stream.tasks !== undefined);
  const inputs = all.filter((ti) => ti.stream.tasks === undefined);
  // Threads of one process share their mappings: one coverage per address space.
  const groups = new Map<unknown, typeof inputs>();
  for (const ti of inputs) {
    const g = groups.get(ti.stream.mappings);
    if (g) g.push(ti);
    else groups.set(ti.stream.mappings, [ti]);
  }
  const drcovOne = (n: number): void => {
    if (n <= 1 || format !== 'drcov') return;
    recording.close();
    throw new CliError(`${source}: ${n} address spaces (processes): drcov holds one; use --format json or text.`);
  };
  if (cpus.length === 0) drcovOne(groups.size);
  const label = (list: TraceInput[]): string | null => (list.length === all.length ? null : list.map((t) => t.name).join(', '));
  const progress = (ti: TraceInput) => createProgress('coverage', ti.stream.size, o.quiet === true || format === 'json');
  if (jobs > 1 && cpus.length > 0) {
    recording.close();
    throw new CliError(`--jobs: ${source} has per-CPU streams, whose image changes at each context switch; run it without --jobs.`);
  }
  if (jobs > 1) {
    const pool = new LinePool(jobs);
    const open = { path: source, options: { raw: o.raw ?? [], elf: o.elf ?? [], cpu: o.cpu, sysroot: o.sysroot } };
    const inPieces = async (): Promise<CoverageSpace[]> => {
      const spaces: CoverageSpace[] = [];
      for (const list of groups.values()) {
        const blocks = new ExecutedBlocks();
        let instructions = 0;
        for (const ti of list) {
          const run = (range: SegmentRange, limit: number) => pool.run({ command: 'coverage', argv: [], open, stream: ti.stream.index, size: ti.stream.size, range, limit }) as Promise<CoveragePiece>;
          instructions += await coverageInPieces(ti, run, jobs, blocks, progress(ti));
        }
        spaces.push({ ...spaceOf(list[0]!), blocks, instructions, label: label(list), ...threadsOf(list) });
      }
      return spaces;
    };
    return inPieces()
      .finally(async () => {
        recording.close();
        await pool.close();
      })
      .then((spaces) => writeCoverage(spaces, { source, format, output, table, limit }, out));
  }
  const spaces: CoverageSpace[] = [...groups.values()].map((list) => {
    const blocks = new ExecutedBlocks();
    let instructions = 0;
    for (const ti of list) instructions += walkTrace(ti, [blocks], progress(ti)).instructions;
    return { ...spaceOf(list[0]!), blocks, instructions, label: label(list), ...threadsOf(list) };
  });
  if (cpus.length > 0) spaces.push(...cpuCoverage(source, cpus));
  drcovOne(spaces.length);
  recording.close();
  return writeCoverage(spaces, { source, format, output, table, limit }, out);
}

/** The executed blocks of one address space (the threads of one process). */
interface CoverageSpace {
  modules: ModuleMap;
  mappings: readonly ImageMapping[];
  blocks: ExecutedBlocks;
  instructions: number;
  label: string | null;
  /** The process and its threads whose runs these are (null and none when the streams do not say). */
  pid: number | null;
  tids: number[];
}

function spaceOf(ti: TraceInput): Pick<CoverageSpace, 'modules' | 'mappings'> {
  return { modules: ti.modules, mappings: ti.stream.mappings };
}

function threadsOf(list: readonly TraceInput[]): Pick<CoverageSpace, 'pid' | 'tids'> {
  const tids = [...new Set(list.flatMap((ti) => (ti.stream.tid !== null ? [ti.stream.tid] : [])))].sort((a, b) => a - b);
  return { pid: list[0]!.stream.pid, tids };
}

/**
 * The coverage of per-CPU streams, per address space: each task's runs go
 * to the blocks of its process's address space (a process between its fork
 * and its exec or exit), over every CPU, with that space's modules. Blocks
 * run before the sideband names any task form a space of their own.
 */
function cpuCoverage(source: string, cpus: readonly TraceInput[]): CoverageSpace[] {
  const spaces = new Map<AddressSpaceLife, CoverageSpace>();
  const unknown = new ExecutedBlocks();
  const router = new TaskDetectors<ExecutedBlocks>([unknown], (task) => {
    const { space, tid } = (task as StreamTask).life;
    let sp = spaces.get(space);
    if (sp === undefined) {
      const label = `${source} [${space.pid}]${space.name !== null ? ` ${space.name}` : ''}`;
      sp = { modules: modulesOf(space.mappings), mappings: space.mappings, blocks: new ExecutedBlocks(), instructions: 0, label, pid: space.pid, tids: [] };
      spaces.set(space, sp);
    }
    if (!sp.tids.includes(tid)) sp.tids.push(tid);
    return [sp.blocks];
  }, (task) => (task as StreamTask).life);
  walkCpuStreams(cpus, [router]);
  const out = [...spaces.values()];
  for (const sp of out) {
    sp.instructions = sp.blocks.instructions;
    sp.tids.sort((a, b) => a - b);
  }
  if (unknown.instructions > 0) out.push({ ...spaceOf(cpus[0]!), blocks: unknown, instructions: unknown.instructions, label: `${source}: before any task is known`, pid: null, tids: [] });
  return out;
}

/** Write the coverage of `spaces` as the options say. */
function writeCoverage(
  spaces: CoverageSpace[],
  { source, format, output, table, limit }: { source: string; format: 'drcov' | 'text' | 'json'; output: string | null; table: DrcovTableVersion; limit: number },
  out: LineWriter,
): number {
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
    const { mappings, modules: moduleMap, blocks, instructions } = spaces[0]!;
    const originals = new Map(mappings.map((m) => [m.file, m.originalPath]));
    const modules = coverageModules(moduleMap, (m) => (m.path === null ? null : originals.get(m.path) ?? null));
    const d = writeDrcov(blocks, modules, table);
    const path = write(d.bytes);
    out.line(`${path}: drcov, ${modules.length} module${modules.length === 1 ? '' : 's'}, ${d.blocks} basic blocks from ${instructions} instructions`);
    if (d.outside > 0) out.line(`note: ${d.outside} executed blocks lie outside every module and are not in the log`);
    return 0;
  }
  if (format === 'json') {
    const docs = spaces.map((sp) => ({ streams: sp.label, pid: sp.pid, tids: sp.tids, instructions: sp.instructions, executedBlocks: sp.blocks.size, modules: functionCoverage(sp.blocks, sp.modules) }));
    const doc = spaces.length === 1
      ? { format: 'ptscope-coverage', version: 1, source, pid: docs[0]!.pid, tids: docs[0]!.tids, instructions: docs[0]!.instructions, executedBlocks: docs[0]!.executedBlocks, modules: docs[0]!.modules }
      : { format: 'ptscope-coverage', version: 1, source, spaces: docs };
    const text = JSON.stringify(doc) + '\n';
    if (output === null) out.line(text.trimEnd());
    else out.line(`${write(text)}: coverage JSON`);
    return 0;
  }
  const lines: string[] = [];
  for (const sp of spaces) {
    lines.push(`${sp.label ?? source}: ${sp.instructions} instructions, ${sp.blocks.size} distinct executed blocks`);
    lines.push(...formatCoverageText(functionCoverage(sp.blocks, sp.modules), limit));
  }
  if (output === null) for (const l of lines) out.line(l);
  else out.line(`${write(lines.join('\n') + '\n')}: coverage text`);
  return 0;
}
