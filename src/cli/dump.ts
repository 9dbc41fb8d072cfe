import { ErrorCode, errorName } from '../packets/errors.js';
import { Packet } from '../packets/packet.js';
import { PacketStream } from '../packets/packet-stream.js';
import type { PacketDecoderOptions } from '../packets/decoder.js';
import { PACKET_NAMES, PACKET_TYPE_COUNT, PacketType } from '../packets/packet-type.js';
import { FileSource, StreamSource, type TraceSource } from '../packets/trace-source.js';
import { openSync, statSync } from 'node:fs';
import { diagLine, PtdumpFormatter, type PtdumpLineOptions } from '../reports/ptdump-format.js';
import { packetToJson } from '../reports/packet-json.js';
import { parseCNumber, splitFileRange } from './args.js';
import { CliError, LineWriter } from './output.js';
import { SidebandOptionError, SidebandOptionParser } from '../sources/perf-event/options.js';

/** Options of `ptscope dump`: ptdump's, plus --json and --stat. */
export interface DumpOptions extends PtdumpLineOptions {
  file: string;
  noSync: boolean;
  quiet: boolean;
  json: boolean;
  stat: boolean;
  /** Decode PEBS-via-PT block packets (BBP/BIP/BEP), which ptdump reports as unknown opcodes. */
  pebs: boolean;
  cpu?: string;
  track: DumpTimeOptions;
  /** The perf_event sideband options (`--pevent:*`, `--sb:*`), in argv order. */
  sideband: SidebandOptionParser;
  /** `--jobs N` as given. */
  jobs?: string;
}

/** ptdump's time-related options. */
export interface DumpTimeOptions {
  time: boolean;
  tcal: boolean;
  timeDelta: boolean;
  noTcal: boolean;
  noWallClock: boolean;
  keepTcalOnOvf: boolean;
  mtcFreq?: number;
  nomFreq?: number;
  cpuid15Eax?: number;
  cpuid15Ebx?: number;
}

export const DUMP_HELP = `usage: ptscope dump [<options>] <ptfile>[:<from>[-<to>]] | -

Print the packets of an Intel PT trace, in libipt ptdump's format. The trace is
a regular file, a pipe, or - for standard input (pipes are read as streams).

options:
  --help|-h                 this text.
  --no-sync                 don't sync to the first PSB; assume one at the start.
  --quiet                   don't print anything but errors.
  --no-pad                  don't show PAD packets.
  --no-timing               don't show timing packets.
  --no-cyc                  don't show CYC packets and ignore them when tracking time.
  --no-offset               don't show the offset as the first column.
  --raw                     show raw packet bytes.
  --lastip                  show last IP updates on packets with IP payloads.
  --exec-mode               show the current execution mode on mode.exec packets.
  --time                    show the estimated TSC on timing packets.
  --tcal                    show time calibration information.
  --time-delta              show timing information as delta.
  --no-tcal                 skip timing calibration.
  --no-wall-clock           suppress the no-time error and print relative time.
  --keep-tcal-on-ovf        preserve timing calibration on overflow.
  --sb:compact | --sb       show sideband records in compact format.
  --sb:verbose              show sideband records in verbose format.
  --sb:filename             show the filename on sideband records.
  --sb:offset               show the offset on sideband records.
  --sb:time                 show the time on sideband records.
  --sb:warn                 show sideband warnings.
  --pevent[:primary/:secondary] <file>[:<from>[-<to>]]
                            load a perf_event sideband stream from <file>.
  --pevent:sample-type <val>, --pevent:time-zero <val>, --pevent:time-shift <val>,
  --pevent:time-mult <val>, --pevent:tsc-offset <val>, --pevent:kernel-start <val>
                            perf_event sideband configuration.
  --cpu none|auto|f/m[/s]   decode for the given cpu (applies its errata).
  --mtc-freq <n>            set the MTC frequency (IA32_RTIT_CTL[17:14]) to <n>.
  --nom-freq <n>            set the nominal frequency (MSR_PLATFORM_INFO[15:8]) to <n>.
  --cpuid-0x15.eax <n>      set the value of cpuid[0x15].eax.
  --cpuid-0x15.ebx <n>      set the value of cpuid[0x15].ebx.
  --json                    print one JSON object per packet (JSON Lines).
  --stat                    print only per-packet-type counts and totals.
  --pebs                    decode PEBS-via-PT block packets (BBP, BIP, BEP), which
                            libipt does not know and reports as unknown opcodes.
  --jobs <n>                decode a trace file in pieces cut at PSBs on <n> worker
                            threads; the output is the same as without.

examples:
  ptscope dump trace.pt
  ptscope dump --lastip --no-pad trace.pt:0x1000-0x2000
  ptscope dump --stat big.pt
`;

/** Parse ptdump's argument list. Returns null for --help. */
export function parseDumpArgs(argv: string[]): DumpOptions | null {
  const o: DumpOptions = {
    file: '', showOffset: true, showRawBytes: false, showLastIp: false, showExecMode: false,
    noPad: false, noTiming: false, noCyc: false, noSync: false, quiet: false, json: false, stat: false, pebs: false,
    track: { time: false, tcal: false, timeDelta: false, noTcal: false, noWallClock: false, keepTcalOnOvf: false },
    sideband: new SidebandOptionParser('dump'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    // A file name; `-` is standard input.
    if (!a.startsWith('-') || a === '-') {
      if (i < argv.length - 1) throw new CliError(`dump: unexpected argument after the trace file: ${argv[i + 1]}. Use --help.`);
      o.file = a;
      break;
    }
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new CliError(`${a}: missing argument.`);
      return v;
    };
    switch (a) {
      case '-h': case '--help': return null;
      case '--no-sync': o.noSync = true; break;
      case '--quiet': o.quiet = true; o.sideband.clearPrintFlags(); break;
      case '--no-pad': o.noPad = true; break;
      case '--no-timing': o.noTiming = true; break;
      case '--no-cyc': o.noCyc = true; break;
      case '--no-offset': o.showOffset = false; break;
      case '--raw': o.showRawBytes = true; break;
      case '--lastip': o.showLastIp = true; break;
      case '--exec-mode': o.showExecMode = true; break;
      case '--time':
        if (o.track.tcal) throw new CliError('specify either --time or --tcal.');
        o.track.time = true;
        break;
      case '--tcal':
        if (o.track.time) throw new CliError('specify either --time or --tcal.');
        o.track.tcal = true;
        break;
      case '--time-delta': o.track.timeDelta = true; break;
      case '--no-tcal': o.track.noTcal = true; break;
      case '--no-wall-clock': o.track.noWallClock = true; break;
      case '--keep-tcal-on-ovf': o.track.keepTcalOnOvf = true; break;
      case '--cpu': o.cpu = value(); break;
      case '--mtc-freq': o.track.mtcFreq = parseCNumber(value(), a, 0xff); break;
      case '--nom-freq': o.track.nomFreq = parseCNumber(value(), a, 0xff); break;
      case '--cpuid-0x15.eax': o.track.cpuid15Eax = parseCNumber(value(), a, 0xffffffff); break;
      case '--cpuid-0x15.ebx': o.track.cpuid15Ebx = parseCNumber(value(), a, 0xffffffff); break;
      case '--json': o.json = true; break;
      case '--stat': o.stat = true; break;
      case '--pebs': o.pebs = true; break;
      case '--jobs': o.jobs = value(); break;
      default: {
        let used = 0;
        try {
          used = o.sideband.tryParse(argv, i);
        } catch (e) {
          if (e instanceof SidebandOptionError) throw new CliError(e.message);
          throw e;
        }
        if (used === 0) throw new CliError(`dump: unknown option: ${a}. Use --help.`);
        i += used - 1;
      }
    }
  }
  if (!o.file) throw new CliError('dump: no processor trace file specified. Use --help.');
  return o;
}

/** Hooks that add time and sideband columns; filled in by the tracking modules. */
export interface DumpTracker {
  /** Called for every packet before it is printed; may set tracking columns and push diagnostics. */
  onPacket(pkt: Packet, formatter: PtdumpFormatter): void;
  /** Called after a resync (libipt resets its tracking). */
  reset(): void;
  /** Called before each packet line is printed, with the time known so far; may print sideband lines. */
  beforePrint?(out: LineWriter): void;
  /** Called once at the end of the trace. */
  finish?(out: LineWriter): void;
}

/** Where dump reports problems that are not part of ptdump's output (standard error by default). */
export type DumpErrorSink = (message: string) => void;

const toStderr: DumpErrorSink = (message) => {
  process.stderr.write(`ptscope: ${message}\n`);
};

/**
 * The trace `file[:from[-to]]` names: a regular file (read in windows), or
 * a pipe or socket, or `-` for standard input (read as a stream). Devices
 * are refused: they may never end.
 */
export function openDumpSource(file: string): { source: TraceSource; path: string } {
  if (file === '-') return { source: new StreamSource(0), path: 'standard input' };
  const { path, from, to } = splitFileRange(file);
  let kind: 'file' | 'pipe';
  try {
    const st = statSync(path);
    if (st.isFile()) kind = 'file';
    // A pipe (a shell's is a FIFO, node's child processes get sockets).
    else if (st.isFIFO() || st.isSocket()) kind = 'pipe';
    else if (st.isDirectory()) throw Object.assign(new Error(), { code: 'EISDIR' });
    else throw new CliError(`dump: ${path} is neither a regular file nor a pipe`);
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`dump: ${describeFileError(e, path)}`);
  }
  if (kind === 'pipe') {
    if (from !== 0 || to !== undefined) throw new CliError(`dump: ${path} is a pipe: it has no byte range to select`);
    try {
      // Standard input as a socket cannot be opened again by name.
      return { source: new StreamSource(path === '/dev/stdin' ? 0 : openSync(path, 'r')), path };
    } catch (e) {
      throw new CliError(`dump: ${describeFileError(e, path)}`);
    }
  }
  try {
    return { source: new FileSource(path, from, to), path };
  } catch (e) {
    throw new CliError(`dump: ${describeFileError(e, path)}`);
  }
}

/**
 * Run `ptscope dump`. Returns the exit status: 0, or 1 if the trace could
 * only partly be decoded (decode errors, or a packet cut by the end). A
 * trace without a PSB is an input error (CliError, exit status 2).
 */
export function runDump(
  opts: DumpOptions,
  out: LineWriter,
  tracker?: DumpTracker,
  preamble: string[] = [],
  decoderOptions: PacketDecoderOptions = {},
  errors: DumpErrorSink = toStderr,
): number {
  const { source, path } = openDumpSource(opts.file);
  if (source.size === 0) {
    source.close();
    throw new CliError(`dump: ${path} is empty: not an Intel PT trace`);
  }
  for (const line of preamble) out.line(line);
  const stream = new PacketStream(source, { ...decoderOptions, pebs: opts.pebs });
  try {
    if (opts.stat) return dumpStat(stream, opts, out, path, errors);
    const formatter = new PtdumpFormatter(opts);
    const pkt = new Packet();
    const printLine = (): void => {
      for (const d of formatter.diags) out.line(d);
      formatter.diags.length = 0;
      const line = formatter.line;
      if (!line.skip && !opts.quiet) {
        tracker?.beforePrint?.(out);
        out.line(formatter.render(line));
      }
    };
    const emitJson = (): void => {
      if (!opts.quiet) out.line(JSON.stringify(packetToJson(pkt)));
    };

    let err = opts.noSync ? stream.syncSet(0) : stream.syncForward();
    if (err < 0) {
      if (err !== -ErrorCode.Eos) out.line(diagLine('sync error', 0, err));
      tracker?.finish?.(out);
      out.flush();
      throw new CliError(`dump: no PSB found in ${path} (0x${stream.size.toString(16)} bytes): not an Intel PT trace`);
    }
    let truncatedAt = -1;
    let decodeErrors = 0;
    for (;;) {
      // Decode until an error; then resync at the next PSB, as ptdump does.
      for (;;) {
        err = stream.next(pkt);
        if (err < 0) break;
        if (opts.json) {
          emitJson();
          continue;
        }
        formatter.describe(pkt, opts.showRawBytes ? stream.bytes : null, stream.bytesOffset);
        tracker?.onPacket(pkt, formatter);
        printLine();
      }
      if (err === -ErrorCode.Eos) {
        if (stream.offset < stream.size) truncatedAt = stream.offset;
        break;
      }
      decodeErrors++;
      const errOffset = stream.offset;
      if (opts.json) out.line(JSON.stringify({ error: errorName(err), offset: errOffset }));
      else out.line(diagLine('error decoding packet', errOffset, err));
      err = stream.syncForward();
      if (err < 0) {
        if (err !== -ErrorCode.Eos) out.line(diagLine('sync error', 0, err));
        break;
      }
      formatter.reset();
      tracker?.reset();
    }
    tracker?.finish?.(out);
    // Output errors (a full disk) are reported here, inside the command.
    out.flush();
    if (truncatedAt >= 0) errors(`dump: ${path}: trace ends inside a packet at offset 0x${truncatedAt.toString(16)}`);
    return decodeErrors || truncatedAt >= 0 ? 1 : 0;
  } finally {
    stream.close();
  }
}

function dumpStat(stream: PacketStream, opts: DumpOptions, out: LineWriter, path: string, report: DumpErrorSink): number {
  const counts = new Float64Array(PACKET_TYPE_COUNT);
  const bytes = new Float64Array(PACKET_TYPE_COUNT);
  const pkt = new Packet();
  let errors = 0;
  let packets = 0;
  let truncatedAt = -1;
  let err = opts.noSync ? stream.syncSet(0) : stream.syncForward();
  if (err < 0) throw new CliError(`dump: no PSB found in ${path} (0x${stream.size.toString(16)} bytes): not an Intel PT trace`);
  const firstSync = stream.offset;
  while (err >= 0) {
    for (;;) {
      err = stream.next(pkt);
      if (err < 0) break;
      counts[pkt.type]++;
      bytes[pkt.type] += err;
      packets++;
    }
    if (err === -ErrorCode.Eos) {
      if (stream.offset < stream.size) truncatedAt = stream.offset;
      break;
    }
    errors++;
    err = stream.syncForward();
  }
  if (opts.json) {
    const byType: Record<string, { count: number; bytes: number }> = {};
    for (let t = 0; t < PACKET_TYPE_COUNT; t++) {
      if (counts[t]) byType[PACKET_NAMES[t]] = { count: counts[t], bytes: bytes[t] };
    }
    out.line(JSON.stringify({ traceBytes: stream.size, firstSync, packets, errors, byType }));
  } else {
    out.line(`${'packet'.padEnd(10)} ${'count'.padStart(14)} ${'bytes'.padStart(14)}`);
    for (let t = 0; t < PACKET_TYPE_COUNT; t++) {
      if (!counts[t]) continue;
      out.line(`${PACKET_NAMES[t].padEnd(10)} ${String(counts[t]).padStart(14)} ${String(bytes[t]).padStart(14)}`);
    }
    out.line(`${'total'.padEnd(10)} ${String(packets).padStart(14)} ${String(stream.size).padStart(14)}`);
    out.line(`decode errors: ${errors}`);
  }
  out.flush();
  // As without --stat: decode errors or a cut packet make a partial read.
  if (truncatedAt >= 0) report(`dump: ${path}: trace ends inside a packet at offset 0x${truncatedAt.toString(16)}`);
  return errors || truncatedAt >= 0 ? 1 : 0;
}

/** A one-line description of a file-open failure. */
export function describeFileError(e: unknown, path: string): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT': return `cannot open ${path}: no such file`;
    case 'EACCES': return `cannot open ${path}: permission denied`;
    case 'EISDIR': return `cannot open ${path}: is a directory`;
  }
  return err.message ? err.message.replace(/^Error: /, '') : `cannot open ${path}`;
}
