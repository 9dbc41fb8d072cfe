import { basename, join } from 'node:path';
import { exportInputFrom, exportPerfData } from '../sources/perf-data/bundle-to-perf.js';
import { importBundle } from '../sources/import/bundle-import.js';
import { RecordError, record, type RecordOptions } from '../sources/recorder/record.js';
import { Option } from 'commander';
import { parseCNumber } from './args.js';
import { collect, defineCommand, integer, list, parseCommand } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function recordCommand() {
  return defineCommand('record', 'Run a program and write a trace bundle (trace, images, manifest.json). With Intel PT hardware, perf records it (intel_pt//u); elsewhere the program runs under qemu-user and ptscope encodes the PT trace a CPU configured for user-only tracing would have written.')
    .argument('<program...>', 'the program and its arguments (put -- before them if they start with -)')
    .passThroughOptions()
    .option('-o, --output <dir>', 'bundle directory to create (default: <program>.ptscope)')
    .option('--force', 'replace an existing bundle directory (only a ptscope bundle)')
    .option('--timeout <sec>', 'kill the program after SEC seconds of wall time (0: none)', integer(0), 60)
    .option('--max-insns <n>', 'stop after about N instructions; the trace is kept', integer(1), 1_000_000_000)
    .option('--filter <A-B>', 'trace only IPs in [A, B] (repeatable; like perf address filters)', collect)
    .option('--snapshot <kib>', 'keep only the last KIB KiB of trace, at PSB granularity', integer(1))
    .option('--psb-period <bytes>', 'bytes of trace between PSB packets', integer(64), 4096)
    .option('--noretcomp', 'no return compression (every ret is a TIP)')
    .option('--long-tnt', 'use TNT-64 packets (up to 47 branches) instead of TNT-8')
    .option('--timing <list>', 'timing packets, any of tsc,mtc,cyc (default: none)', list)
    .option('--mtc-freq <n>', 'MTC period exponent (default 3)', integer(0, 15))
    .option('--emulate', 'emulate even where Intel PT hardware exists')
    .option('--stdin <file>', 'the program reads FILE as its standard input (default: none)')
    .addOption(new Option('--format <f>', 'perf: also write the trace as <bundle>/perf.data for Linux perf').choices(['bundle', 'perf']).default('bundle'))
    .option('--no-sandbox', 'run without bubblewrap confinement (unsafe for untrusted programs)')
    .addHelpText('after', `
The program runs confined: read-only file system, private /tmp, no network,
own PID namespace; its working directory is a fresh scratch directory, and
files named on its command line stay readable.

examples:
  ptscope record -o ls.ptscope -- /bin/ls -la /
  ptscope record --snapshot 64 --timing tsc,cyc -- ./a.out`);
}

interface RecordCliOptions {
  output?: string;
  force?: boolean;
  timeout: number;
  maxInsns: number;
  filter?: string[];
  snapshot?: number;
  psbPeriod: number;
  noretcomp?: boolean;
  longTnt?: boolean;
  timing?: string[];
  mtcFreq?: number;
  emulate?: boolean;
  stdin?: string;
  format: 'bundle' | 'perf';
  sandbox: boolean;
}

function parseRange(text: string): { from: number; to: number } {
  const m = /^([^-]+)-(.+)$/.exec(text);
  if (!m) throw new CliError(`--filter: expected A-B, got '${text}'.`);
  const from = parseCNumber(m[1], '--filter');
  const to = parseCNumber(m[2], '--filter');
  if (to < from) throw new CliError(`--filter: empty range ${text}.`);
  return { from, to };
}

/** `ptscope record`. */
export async function runRecordCommand(args: string[], out: LineWriter): Promise<number> {
  const { help, opts: o, args: program } = parseCommand<RecordCliOptions>(recordCommand(), args, out);
  if (help) return 0;
  const format = o.format;
  const opts: RecordOptions = {
    argv: program,
    output: o.output ?? '',
    force: o.force === true,
    sandbox: o.sandbox,
    timeoutSec: o.timeout,
    maxInsns: o.maxInsns,
    psbPeriod: o.psbPeriod,
    retCompression: o.noretcomp !== true,
    longTnt: o.longTnt === true,
    ranges: (o.filter ?? []).map(parseRange),
    timing: {},
    snapshotBytes: (o.snapshot ?? 0) * 1024,
    hardware: o.emulate ? false : undefined,
    stdin: o.stdin,
  };
  for (const t of o.timing ?? []) {
    if (t !== 'tsc' && t !== 'mtc' && t !== 'cyc') throw new CliError(`--timing: unknown '${t}' (tsc, mtc, cyc).`);
    opts.timing[t] = true;
  }
  if (o.mtcFreq !== undefined) opts.timing.mtcFreq = o.mtcFreq;
  if (opts.argv.length === 0) throw new CliError('record: no program given. Run \'ptscope record --help\'.');
  if (opts.output === '') opts.output = `${basename(opts.argv[0])}.ptscope`;
  try {
    const res = await record(opts);
    const m = res.manifest;
    out.line(`bundle      ${res.bundle}`);
    out.line(`recorder    ${m.recorder}`);
    if (m.instructions) out.line(`instructions ${m.instructions.executed} executed, ${m.instructions.traced} traced (fnv1a64 ${m.instructions.fnv1a64})`);
    if (m.trace) out.line(`trace       ${m.trace.bytes} bytes`);
    out.line(`images      ${m.images.length}`);
    const how = m.exit.stopped ? `stopped (${m.exit.stopped})` : m.exit.signal ? `killed by ${m.exit.signal}` : `exit status ${m.exit.status}`;
    out.line(`program     ${how}`);
    if (format === 'perf' && m.trace) {
      // Also as a perf.data that Linux perf decodes (perf script --itrace=i0ns).
      const perfPath = join(res.bundle, 'perf.data');
      const exported = exportPerfData(perfPath, exportInputFrom(importBundle(res.bundle)));
      for (const w of exported.warnings) process.stderr.write(`ptscope: record: ${w}\n`);
      out.line(`perf.data   ${perfPath}`);
    }
    out.flush();
    return m.exit.stopped === null && m.exit.signal === null && m.exit.status === 0 ? 0 : 1;
  } catch (e) {
    if (e instanceof RecordError) throw new CliError(e.message);
    throw e;
  }
}
