import { basename, join } from 'node:path';
import { closeExportInput, exportInputFrom, exportPerfData } from '../sources/perf-data/bundle-to-perf.js';
import { importBundle } from '../sources/import/bundle-import.js';
import { DEFAULT_MAX_TRACE_BYTES, RecordError, record, type RecordOptions } from '../sources/recorder/record.js';
import { callerStdin } from '../sources/recorder/caller-stdin.js';
import { DEFAULT_LIMITS } from '../sources/recorder/resource-limits.js';
import { DEFAULT_MAX_INSNS, DEFAULT_PSB_PERIOD, DEFAULT_TIMEOUT_SEC } from '../sources/recorder/record-options.js';

/** The most of a piped standard input kept to give a second run (caller-stdin.ts). */
const MAX_STDIN_COPY = 256 << 20;
import { InvalidArgumentError, Option } from 'commander';
import { parseCNumber } from './args.js';
import { collect, defineCommand, integer, list, parseCommand } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function recordCommand() {
  return defineCommand('record', 'Run a program and write a trace bundle (trace, images, manifest.json). With Intel PT hardware, perf records it (intel_pt//u); elsewhere the program runs under qemu-user and ptscope encodes the PT trace a CPU configured for user-only tracing would have written.')
    .argument('<program...>', 'the program and its arguments (put -- before them if they start with -)')
    .passThroughOptions()
    .option('-o, --output <dir>', 'bundle directory to create (default: <program>.ptscope)')
    .option('--force', 'replace an existing bundle directory (only a ptscope bundle)')
    .option('--timeout <sec>', 'kill the program after SEC seconds of wall time (0: none)', integer(0), DEFAULT_TIMEOUT_SEC)
    .option('--max-insns <n>', `stop after about N instructions; the trace is kept (default ${DEFAULT_MAX_INSNS}; emulation only: perf has no instruction limit)`, integer(1))
    .option('--filter <A-B>', 'trace only IPs in [A, B] (repeatable; like perf address filters)', collect)
    .option('--snapshot <kib>', 'keep only the last KIB KiB of trace, at PSB granularity', integer(1))
    .option('--psb-period <bytes>', `bytes of trace between PSB packets (default ${DEFAULT_PSB_PERIOD}; with Intel PT hardware, the CPU's default unless given)`, integer(64))
    .option('--noretcomp', 'no return compression (every ret is a TIP)')
    .option('--long-tnt', 'use TNT-64 packets (up to 47 branches) instead of TNT-8')
    .option('--timing <list>', 'timing packets, any of tsc,mtc,cyc (default: none)', list)
    .option('--mtc-freq <n>', 'MTC period exponent (default 3)', integer(0, 15))
    .option('--emulate', 'emulate even where Intel PT hardware exists')
    .option('--stdin <file>', 'the program reads FILE as its standard input (default: this command\'s own standard input, as with perf record; a terminal gives it nothing)')
    .addOption(new Option('--format <f>', 'perf: also write the trace as <bundle>/perf.data for Linux perf').choices(['bundle', 'perf']).default('bundle'))
    .option('--max-trace-size <size>', `stop when the trace reaches SIZE bytes (K, M, G suffixes; 0: no limit); the trace so far is kept (default ${DEFAULT_MAX_TRACE_BYTES >> 20}M)`, size)
    .option('--allow-read <path>', 'also show PATH (a file or directory) to the program, read-only (repeatable)', collect)
    .option('--scratch-size <size>', `size of the program's writable /tmp and working directory (default ${DEFAULT_LIMITS.tmpBytes >> 20}M)`, size)
    .option('--max-memory <size>', `address space of each of the program's processes (default ${DEFAULT_LIMITS.memoryBytes >> 20}M)`, size)
    .option('--max-procs <n>', `processes and threads the program may have (default ${DEFAULT_LIMITS.processes})`, integer(1, 1 << 16))
    .option('--no-sandbox', 'run without bubblewrap confinement (unsafe for untrusted programs)')
    .addHelpText('after', `
The program runs confined (SECURITY.md): it sees the system's programs and
libraries, a filtered /etc, itself, the files and directories named on its
command line (read-only) and --allow-read paths; nothing of /root, /home,
/run, /var or the host's /tmp. No network, no unix sockets, no host
environment variables; a size-limited private /tmp holds its working
directory. Ctrl-C stops the recording and keeps nothing.

With Intel PT hardware, perf records the program in the same sandbox
(perf runs outside it). --filter, --snapshot, --timeout, --max-trace-size,
--psb-period, --timing, --mtc-freq and --noretcomp become perf's options;
--max-insns and --long-tnt cannot be honoured there and are refused (use
--emulate).

examples:
  ptscope record -o ls.ptscope -- /bin/ls -la /
  ptscope record --snapshot 64 --timing tsc,cyc -- ./a.out`);
}

interface RecordCliOptions {
  maxTraceSize?: number;
  allowRead?: string[];
  scratchSize?: number;
  maxMemory?: number;
  maxProcs?: number;
  output?: string;
  force?: boolean;
  timeout: number;
  maxInsns?: number;
  filter?: string[];
  snapshot?: number;
  psbPeriod?: number;
  noretcomp?: boolean;
  longTnt?: boolean;
  timing?: string[];
  mtcFreq?: number;
  emulate?: boolean;
  stdin?: string;
  format: 'bundle' | 'perf';
  sandbox: boolean;
}

/** `64M`, `1G`, `4096`: bytes. */
function size(text: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`'${text}' is not a size (a number of bytes, or with K, M or G).`);
  const v = Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`'${text}' is too large.`);
  return v;
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
    maxTraceBytes: o.maxTraceSize,
    allowRead: o.allowRead,
    limits: {
      ...(o.scratchSize !== undefined ? { tmpBytes: o.scratchSize } : {}),
      ...(o.maxMemory !== undefined ? { memoryBytes: o.maxMemory } : {}),
      ...(o.maxProcs !== undefined ? { processes: o.maxProcs } : {}),
    },
  };
  if (o.scratchSize !== undefined && o.scratchSize < 1 << 20) throw new CliError('record: --scratch-size: at least 1M.');
  if (o.maxMemory !== undefined && o.maxMemory < 64 << 20) throw new CliError('record: --max-memory: at least 64M (the emulator needs it).');
  for (const t of o.timing ?? []) {
    if (t !== 'tsc' && t !== 'mtc' && t !== 'cyc') throw new CliError(`--timing: unknown '${t}' (tsc, mtc, cyc).`);
    opts.timing[t] = true;
  }
  if (o.mtcFreq !== undefined) opts.timing.mtcFreq = o.mtcFreq;
  if (opts.argv.length === 0) throw new CliError('record: no program given. Run \'ptscope record --help\'.');
  if (opts.output === '') opts.output = `${basename(opts.argv[0])}.ptscope`;
  // Ctrl-C (or a TERM) stops the recording: the target is killed, nothing is kept.
  const abort = new AbortController();
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupted ??= sig;
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  opts.signal = abort.signal;
  try {
    if (opts.stdin === undefined) {
      const caller = callerStdin(MAX_STDIN_COPY);
      opts.stdin = caller.stdin;
      if (caller.notice !== null) process.stderr.write(`ptscope: ${caller.notice}\n`);
    }
    const res = await record(opts);
    const m = res.manifest;
    out.line(`bundle      ${res.bundle}`);
    out.line(`recorder    ${m.recorder}`);
    if (m.instructions) out.line(`instructions ${m.instructions.executed} executed, ${m.instructions.traced} traced (fnv1a64 ${m.instructions.fnv1a64})`);
    if (m.trace) out.line(`trace       ${m.trace.bytes} bytes`);
    out.line(`images      ${m.images.length}`);
    const how = m.exit.stopped ? `stopped (${m.exit.stopped})` : m.exit.signal ? `killed by ${m.exit.signal}` : `exit status ${m.exit.status}`;
    out.line(`program     ${how}`);
    if (format === 'perf' && m.trace !== null) {
      // Also as a perf.data that Linux perf decodes (perf script --itrace=i0ns):
      // every thread's stream (a version-2 bundle has no single `trace`).
      const perfPath = join(res.bundle, 'perf.data');
      const recording = importBundle(res.bundle);
      const input = exportInputFrom(recording);
      let exported;
      try {
        exported = exportPerfData(perfPath, input);
      } finally {
        closeExportInput(input);
        recording.close();
      }
      for (const w of exported.warnings) process.stderr.write(`ptscope: record: ${w}\n`);
      out.line(`perf.data   ${perfPath}`);
    }
    out.flush();
    return m.exit.stopped === null && m.exit.signal === null && m.exit.status === 0 ? 0 : 1;
  } catch (e) {
    if (interrupted !== null) throw new CliError(`record: interrupted (${interrupted}): nothing was kept`, interrupted === 'SIGINT' ? 130 : 143);
    if (e instanceof RecordError) throw new CliError(e.message);
    throw e;
  } finally {
    if (typeof opts.stdin === 'object') opts.stdin.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
