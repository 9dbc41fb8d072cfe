import { basename, join } from 'node:path';
import { exportInputFromBundle, exportPerfData } from '../sources/perf-data/bundle-to-perf.js';
import { RecordError, record, type RecordOptions } from '../sources/recorder/record.js';
import { parseCNumber } from './args.js';
import { CliError, type LineWriter } from './output.js';

export const RECORD_HELP = `usage: ptscope record [options] [--] program [args...]

Run a program and write a trace bundle (trace.pt, images, manifest.json).
With Intel PT hardware, perf records it (intel_pt//u); elsewhere the program
runs under qemu-user and ptscope encodes the PT trace a CPU configured for
user-only tracing would have written.

options:
  -o, --output DIR      bundle directory to create (default: <program>.ptscope)
  --force               replace an existing bundle directory
  --timeout SEC         kill the program after SEC seconds of wall time (default 60; 0: none)
  --max-insns N         stop after about N instructions (default 1000000000); the trace is kept
  --filter A-B          trace only IPs in [A, B] (repeatable; like perf address filters)
  --snapshot KIB        keep only the last KIB KiB of trace, at PSB granularity
  --psb-period BYTES    bytes of trace between PSB packets (default 4096)
  --noretcomp           no return compression (every ret is a TIP)
  --long-tnt            use TNT-64 packets (up to 47 branches) instead of TNT-8
  --timing LIST         timing packets, any of tsc,mtc,cyc (default: none)
  --mtc-freq N          MTC period exponent (default 3)
  --emulate             emulate even where Intel PT hardware exists
  --stdin FILE          the program reads FILE as its standard input (default: none)
  --format bundle|perf  perf: also write the trace as <bundle>/perf.data for Linux perf
  --no-sandbox          run without bubblewrap confinement (unsafe for untrusted programs)
  -h, --help            this help

The program runs confined: read-only file system, private /tmp, no network,
own PID namespace; its working directory is a fresh scratch directory, and
files named on its command line stay readable.

examples:
  ptscope record -o ls.ptscope -- /bin/ls -la /
  ptscope record --snapshot 64 --timing tsc,cyc -- ./a.out
`;

function parseRange(text: string | undefined): { from: number; to: number } {
  const m = text === undefined ? null : /^([^-]+)-(.+)$/.exec(text);
  if (!m) throw new CliError(`--filter: expected A-B, got '${text ?? ''}'.`);
  const from = parseCNumber(m[1], '--filter');
  const to = parseCNumber(m[2], '--filter');
  if (to < from) throw new CliError(`--filter: empty range ${text}.`);
  return { from, to };
}

/** `ptscope record`. */
export async function runRecordCommand(args: string[], out: LineWriter): Promise<number> {
  let format: 'bundle' | 'perf' = 'bundle';
  const opts: RecordOptions = {
    argv: [],
    output: '',
    sandbox: true,
    timeoutSec: 60,
    maxInsns: 1_000_000_000,
    psbPeriod: 4096,
    retCompression: true,
    longTnt: false,
    ranges: [],
    timing: {},
    snapshotBytes: 0,
  };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-')) break;
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new CliError(`${a}: missing argument.`);
      return v;
    };
    switch (a) {
      case '-h':
      case '--help':
        out.line(RECORD_HELP.trimEnd());
        return 0;
      case '-o':
      case '--output':
        opts.output = value();
        break;
      case '--force':
        opts.force = true;
        break;
      case '--timeout':
        opts.timeoutSec = parseCNumber(value(), a);
        break;
      case '--max-insns':
        opts.maxInsns = parseCNumber(value(), a);
        break;
      case '--filter':
        opts.ranges.push(parseRange(value()));
        break;
      case '--snapshot':
        opts.snapshotBytes = parseCNumber(value(), a) * 1024;
        if (opts.snapshotBytes === 0) throw new CliError('--snapshot: the size must be at least 1 KiB.');
        break;
      case '--psb-period':
        opts.psbPeriod = parseCNumber(value(), a);
        if (opts.psbPeriod < 64) throw new CliError('--psb-period: at least 64 bytes.');
        break;
      case '--noretcomp':
        opts.retCompression = false;
        break;
      case '--long-tnt':
        opts.longTnt = true;
        break;
      case '--timing': {
        for (const t of value().split(',')) {
          if (t !== 'tsc' && t !== 'mtc' && t !== 'cyc') throw new CliError(`--timing: unknown '${t}' (tsc, mtc, cyc).`);
          opts.timing[t] = true;
        }
        break;
      }
      case '--mtc-freq':
        opts.timing.mtcFreq = parseCNumber(value(), a, 15);
        break;
      case '--emulate':
        opts.hardware = false;
        break;
      case '--no-sandbox':
        opts.sandbox = false;
        break;
      case '--stdin':
        opts.stdin = value();
        break;
      case '--format': {
        const f = value();
        if (f !== 'bundle' && f !== 'perf') throw new CliError(`--format: '${f}' is not one of bundle, perf.`);
        format = f;
        break;
      }
      default:
        throw new CliError(`record: unknown option '${a}'. Run 'ptscope record --help'.`);
    }
  }
  opts.argv = args.slice(i);
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
      const exported = exportPerfData(perfPath, exportInputFromBundle(res.bundle));
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
