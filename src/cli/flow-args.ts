/**
 * flow's arguments (libipt ptxed's, accepted as-is), processed in order as
 * ptxed does: the decoder configuration is taken at `--pt`. Shared by the
 * serial command (flow.ts) and the pieces decoded on workers
 * (parallel/flow-pieces.ts), which rebuild the same image and configuration
 * from the same arguments.
 */
import { statSync } from 'node:fs';
import { detectInputKind, openRecording } from '../sources/import/open-recording.js';
import { streamTitle, type Recording, type TraceStream } from '../sources/model/recording.js';
import { CliError, type LineWriter } from './output.js';
import { describeFileError } from './dump.js';
import { defaultConfig, AddrCfg, type DecoderConfig } from '../packets/config.js';
import { errataFor, parseCpu } from '../packets/cpu.js';
import { PtError, errorMessage } from '../packets/errors.js';
import { PacketStream } from '../packets/packet-stream.js';
import { FileSource, type TraceSource } from '../packets/trace-source.js';
import { ANY_ASID } from '../flow/address-space.js';
import { Image } from '../flow/image.js';
import type { FlowFlags } from '../flow/block-decoder.js';
import { parseCUnsigned, parseElfArg, parseRawArg, isImageArgError } from '../flow/raw-image-arg.js';
import { ByteSourceCache } from '../flow/section.js';
import { SidebandOptionError, SidebandOptionParser } from '../sources/perf-event/options.js';
import { loadElf, type LoadedElf } from '../flow/elf.js';
import { formatIpShort } from '../packets/address.js';
import type { FlowPrintOptions } from './flow-decode.js';

export const FLOW_HELP = `usage: ptscope flow [<options>] --pt <file>[:<from>[-<to>]]
       ptscope flow [<options>] <bundle-dir | perf.data>

Print the instructions executed in an Intel PT trace (libipt ptxed compatible).

options:
  --pt <file>[:<from>[-<to>]]   the trace (bytes [from, to) of file); a regular file
  --raw <file>[:<from>[-<to>]]:<base>  load raw code at <base>
  --elf <file>[:<base>]          load an ELF file's PT_LOAD segments (at <base>)
  --cpu none|auto|f/m[/s]       decode for the given cpu (applies its errata)
  --insn-decoder                 use the instruction decoder (default)
  --block-decoder                use the block decoder
  --block:show-blocks            show block boundaries
  --block:end-on-call            end a block after a call
  --block:end-on-jump            end a block after a jump
  --no-inst                      do not disassemble instructions
  --att                          disassemble in AT&T syntax
  --verbose, -v                  print the segments each later --elf (or --pevent:kcore) maps
  --iscache-limit <size>         accepted for ptxed compatibility (image files are read once)
  --raw-insn                     print the bytes of each instruction
  --quiet, -q                    print no instructions and events
  --offset                       print the trace offset
  --time                         print the time of the last event before instructions
  --event:ip                     print event addresses
  --event:time                   print event times
  --event:tick                   report timing changes as tick events
  --event:iflags                 report interrupt flag changes
  --check                        check decoded instructions
  --json                         JSON Lines: one object per instruction (or block), event and error
  --sysroot DIR                  find a perf.data's mapped files under DIR
  --jobs <n>                     decode in pieces cut at PSBs on <n> worker threads; the
                                 output is the same as without (instruction decoder; not
                                 with --offset, --check or --pevent)
  --stat, --stat:insn, --stat:blocks  print statistics
  --resync-on-error              after an error, continue at the next IP in the trace
                                 (default: at the next PSB)
  --filter:addrN_cfg/_a/_b <n>   address filter configuration (N = 0..3)
  --pevent:primary/secondary <file>[:<from>[-<to>]]  perf_event sideband (with
                                 --pevent:sample-type, time-zero, time-shift, time-mult,
                                 tsc-offset, kernel-start, sysroot, vdso-*, kcore)
  --sb:compact, --sb:verbose, --sb:filename, --sb:offset, --sb:time, --sb:switch, --sb:warn
                                 how sideband records are shown
  --mtc-freq, --nom-freq, --cpuid-0x15.eax, --cpuid-0x15.ebx <n>  timing configuration
  --insn:keep-tcal-on-ovf, --block:keep-tcal-on-ovf  keep timing calibration on overflow

exit status: 0 ok; 1 the trace could only partly be decoded; 2 usage or input error
(no PSB, or no instruction could be decoded).
`;

/** What `--pt` created: the decoder kind and the configuration and flags at that point. */
export interface Created {
  kind: 'insn' | 'block';
  flags: FlowFlags;
  config: DecoderConfig;
}

/** The timing options: the configuration field each sets and its largest value. */
const TIMING_OPTIONS: Record<string, [keyof Pick<DecoderConfig, 'mtcFreq' | 'nomFreq' | 'cpuid15Eax' | 'cpuid15Ebx'>, bigint]> = {
  '--mtc-freq': ['mtcFreq', 255n],
  '--nom-freq': ['nomFreq', 255n],
  '--cpuid-0x15.eax': ['cpuid15Eax', 0xffffffffn],
  '--cpuid-0x15.ebx': ['cpuid15Ebx', 0xffffffffn],
};

function u64Arg(args: string[], i: number, option: string, max = (1n << 64n) - 1n): bigint {
  const text = args[i];
  if (text === undefined || text === '' || text.startsWith('--')) throw new CliError(`${option}: missing argument.`);
  const v = parseCUnsigned(text);
  if (v === null) throw new CliError(`${option}: bad argument: ${text}.`);
  if (v > max) throw new CliError(`${option}: value too big: ${text}.`);
  return v;
}

/**
 * ptxed's `--verbose` lines for an ELF file it mapped (load_elf.c): one per
 * PT_LOAD segment, with the file name as given and the link-time address.
 */
export function mappedSegmentLines(name: string, loaded: LoadedElf): string[] {
  return loaded.mapped.map((seg) => `${name}: offset=0x${seg.offset.toString(16)} size=0x${seg.filesz.toString(16)} vaddr=0x${formatIpShort(seg.vaddr)}.`);
}

/** Where flow reports problems that are not part of ptxed's output (standard error by default). */
export type ErrorSink = (message: string) => void;


/** What flow's arguments say, processed in order as ptxed does (`--pt` opens the trace). */
export interface FlowArgs {
  config: DecoderConfig;
  opts: FlowPrintOptions;
  kind: 'insn' | 'block';
  insnFlags: FlowFlags;
  blockFlags: FlowFlags;
  image: Image;
  files: ByteSourceCache;
  sideband: SidebandOptionParser;
  container: string | null;
  sysroot: string | undefined;
  trace: TraceSource | null;
  created: Created | null;
  stats: { insn: boolean; blocks: boolean };
  nextIsid: () => number;
  /** `--jobs N` as given. */
  jobs: string | undefined;
}

/** Parse flow's argv; null after printing the help. `errors` gets the ELF loader's warnings. */
export function parseFlowArgs(args: string[], out: LineWriter, errors: ErrorSink): FlowArgs | null {
  const config: DecoderConfig = defaultConfig();
  const opts: FlowPrintOptions = {
    fmt: { eventIp: false, eventTime: false, offset: false },
    noInst: false,
    quiet: false,
    time: false,
    rawInsn: false,
    check: false,
    showBlocks: false,
    resync: false,
    json: false,
    stat: false,
    att: false,
  };
  /** `--verbose`: the ELF files mapped after it print their segments (ptxed's track_image). */
  let verbose = false;
  let statInsn = false;
  let statBlocks = false;
  let kind: 'insn' | 'block' = 'insn';
  const insnFlags: FlowFlags = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false };
  const blockFlags: FlowFlags = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false, endOnCall: false, endOnJump: false };
  const image = new Image();
  const files = new ByteSourceCache();
  const sideband = new SidebandOptionParser('flow');
  /** A bundle directory or perf.data given instead of --pt/--raw. */
  let container: string | null = null;
  /** Where a perf.data's mapped files are found (the recording machine's root). */
  let sysroot: string | undefined;
  let nextIsid = 1;
  let trace: TraceSource | null = null;
  let created: Created | null = null;
  let jobs: string | undefined;

  for (let i = 0; i < args.length; ) {
    const arg = args[i++]!;
    switch (arg) {
      case '--help':
      case '-h':
        out.line(FLOW_HELP.trimEnd());
        return null;
      case '--pt': {
        const file = args[i++];
        if (file === undefined) throw new CliError('--pt: missing argument.');
        if (created) throw new CliError(`duplicate pt sources: ${file}.`);
        if (config.cpu.vendor === 'intel') {
          const errata = errataFor(config.cpu);
          if (typeof errata === 'number') out.line(`[0, 0: config error: ${errorMessage(errata)}]`);
          else config.errata = errata;
        }
        trace = openTraceFile(file);
        created = { kind, flags: kind === 'insn' ? { ...insnFlags } : { ...blockFlags }, config: structuredClone(config) };
        break;
      }
      case '--raw': {
        const spec = args[i++];
        if (spec === undefined) throw new CliError('--raw: missing argument.');
        const raw = parseRawArg(spec);
        if (isImageArgError(raw)) throw new CliError(`${raw.error}.`);
        const size = raw.size === null ? Infinity : Number(raw.size);
        let err: number;
        try {
          err = image.addFile(files, raw.file, Number(raw.offset), size, Number(BigInt.asIntN(64, raw.base)), ANY_ASID, nextIsid++);
        } catch (e) {
          if (e instanceof PtError) throw new CliError(`--raw: failed to load '${spec}': ${e.message}.`);
          throw e;
        }
        if (err < 0) throw new CliError(`failed to add ${raw.file} at 0x${raw.base.toString(16)}: ${errorMessage(err)}.`);
        break;
      }
      case '--elf': {
        const spec = args[i++];
        if (spec === undefined) throw new CliError('--elf: missing argument.');
        const elf = parseElfArg(spec);
        try {
          const loaded = loadElf(image, files, elf.file, elf.base);
          if (verbose) for (const line of mappedSegmentLines(elf.file, loaded)) out.line(line);
          for (const w of loaded.warnings) errors(w);
        } catch (e) {
          if (e instanceof PtError) throw new CliError(`--elf: failed to load ${elf.file}: ${e.message}.`);
          throw e;
        }
        break;
      }
      case '--no-inst':
        opts.noInst = true;
        break;
      case '--att':
        opts.att = true;
        break;
      case '--verbose':
      case '-v':
        verbose = true;
        break;
      case '--iscache-limit':
        // libipt's limit on the section bytes its image section cache keeps
        // mapped: it changes no output. ptscope reads each image file once
        // and keeps it (ByteSourceCache), so only the argument is checked.
        u64Arg(args, i++, arg);
        break;
      case '--raw-insn':
        opts.rawInsn = true;
        break;
      case '--quiet':
      case '-q':
        opts.quiet = true;
        break;
      case '--offset':
        opts.fmt.offset = true;
        break;
      case '--time':
        opts.time = true;
        break;
      case '--event:time':
        opts.fmt.eventTime = true;
        break;
      case '--event:ip':
        opts.fmt.eventIp = true;
        break;
      case '--event:tick':
        insnFlags.enableTickEvents = true;
        blockFlags.enableTickEvents = true;
        break;
      case '--event:iflags':
        insnFlags.enableIflags = true;
        blockFlags.enableIflags = true;
        break;
      case '--check':
        opts.check = true;
        break;
      case '--json':
        opts.json = true;
        break;
      case '--jobs':
        jobs = args[i++];
        if (jobs === undefined) throw new CliError('--jobs: missing argument.');
        break;
      case '--sysroot':
        sysroot = args[i++];
        if (sysroot === undefined) throw new CliError('--sysroot: missing argument.');
        break;
      case '--stat':
        opts.stat = true;
        break;
      case '--stat:insn':
        opts.stat = true;
        statInsn = true;
        break;
      case '--stat:blocks':
        opts.stat = true;
        statBlocks = true;
        break;
      case '--resync-on-error':
        opts.resync = true;
        break;
      case '--cpu': {
        if (created) throw new CliError('please specify cpu before the pt source file.');
        const text = args[i++];
        if (text === undefined) throw new CliError('--cpu: missing argument.');
        const cpu = parseCpu(text);
        if (!cpu) throw new CliError('cpu must be specified as f/m[/s]');
        config.cpu = cpu;
        break;
      }
      case '--mtc-freq':
      case '--nom-freq':
      case '--cpuid-0x15.eax':
      case '--cpuid-0x15.ebx': {
        const [field, max] = TIMING_OPTIONS[arg];
        config[field] = Number(u64Arg(args, i++, arg, max));
        break;
      }
      case '--insn-decoder':
      case '--block-decoder':
        if (created) throw new CliError(`please specify ${arg} before the pt source file.`);
        kind = arg === '--insn-decoder' ? 'insn' : 'block';
        break;
      case '--insn:keep-tcal-on-ovf':
        insnFlags.keepTcalOnOvf = true;
        break;
      case '--block:keep-tcal-on-ovf':
        blockFlags.keepTcalOnOvf = true;
        break;
      case '--block:show-blocks':
        opts.showBlocks = true;
        break;
      case '--block:end-on-call':
        blockFlags.endOnCall = true;
        break;
      case '--block:end-on-jump':
        blockFlags.endOnJump = true;
        break;
      default: {
        let used: number;
        try {
          used = sideband.tryParse(args, i - 1);
        } catch (e) {
          if (e instanceof SidebandOptionError) throw new CliError(e.message);
          throw e;
        }
        if (used) {
          // ptxed loads a kcore image where it parses it, printing its segments if --verbose came before.
          if (arg === '--pevent:kcore') sideband.config.kcore[sideband.config.kcore.length - 1]!.verbose = verbose;
          i += used - 1;
          break;
        }
        const m = /^--filter:addr([0-3])_(cfg|a|b)$/.exec(arg);
        if (m) {
          if (created) throw new CliError(`please specify ${arg} before --pt.`);
          const n = Number(m[1]);
          const range = config.addrFilter.ranges[n]!;
          if (m[2] === 'cfg') range.cfg = Number(u64Arg(args, i++, arg, 15n)) as AddrCfg;
          else if (m[2] === 'a') range.a = u64Arg(args, i++, arg);
          else range.b = u64Arg(args, i++, arg);
          break;
        }
        if (!arg.startsWith('-') && container === null && !created) {
          container = arg;
          break;
        }
        throw new CliError(`unknown option: ${arg}.`);
      }
    }
  }
  // Without a choice, the statistics of the decoder that runs.
  const stats = { insn: statInsn, blocks: statBlocks };
  if (opts.stat && !statInsn && !statBlocks) {
    stats.insn = true;
    stats.blocks = kind === 'block';
  }
  return { config, opts, kind, insnFlags, blockFlags, image, files, sideband, container, sysroot, trace, created, stats, nextIsid: () => nextIsid++, jobs };
}

/** `ptscope flow` from its argument list (ptxed's arguments are accepted as-is). */
/** A recorded stream's configuration with flow's `--cpu` and `--filter:*` applied. */
export function streamConfig(recorded: DecoderConfig, config: DecoderConfig): DecoderConfig {
  const cfg = { ...recorded, flags: { ...recorded.flags } };
  cfg.addrFilter = structuredClone(config.addrFilter);
  if (config.cpu.vendor === 'intel') {
    cfg.cpu = config.cpu;
    const errata = errataFor(config.cpu);
    if (typeof errata !== 'number') cfg.errata = errata;
  }
  return cfg;
}

/** The line that starts a stream's section when a recording has several: `[pid/tid]` as perf script prints it, or the stream's label. */
export function streamHeading(stream: TraceStream): string {
  return stream.pid !== null && stream.tid !== null ? streamTitle(stream) : `[stream: ${streamTitle(stream)}]`;
}

/** Open a bundle or perf.data given to flow (a raw trace is an error: it needs --pt). */
export function openFlowContainer(path: string, sysroot: string | undefined): Recording {
  const input = detectInputKind(path);
  if (input === 'raw') throw new CliError(`${path}: neither a trace bundle nor a perf.data file (for a raw trace use --pt with --raw).`);
  try {
    return openRecording(path, { sysroot });
  } catch (e) {
    throw new CliError((e as Error).message.split('\n')[0]!);
  }
}

/** Decode a bundle or perf.data: each of its streams, one after the other. */
/**
 * Open `--pt`'s `file[:from[-to]]` as a trace read in windows (flat memory
 * for any size). Only a regular file: a pipe or device has no end to seek
 * to (the decoders read ahead and back) and could grow without bound.
 * A file without a single PSB holds nothing to decode: that is an input error.
 */
function openTraceFile(spec: string): TraceSource {
  const m = /^(.*):([^:-]+)(?:-([^:]+))?$/.exec(spec);
  let path = spec;
  let from = 0;
  let to: number | undefined;
  if (m) {
    const a = parseCUnsigned(m[2]!);
    const b = m[3] === undefined ? null : parseCUnsigned(m[3]);
    if (a !== null && (m[3] === undefined || b !== null)) {
      path = m[1]!;
      from = Number(a);
      to = b === null ? undefined : Number(b);
    }
  }
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    throw new CliError(`flow: ${describeFileError(e, path)}`);
  }
  if (!isFile) throw new CliError(`flow: ${path} is not a regular file: --pt needs a trace file (not a pipe or device)`);
  let source: FileSource;
  try {
    source = new FileSource(path, from, to);
  } catch (e) {
    throw new CliError(`flow: ${(e as Error).message}`);
  }
  if (source.size === 0) {
    source.close();
    throw new CliError(`flow: ${path} is empty: not an Intel PT trace`);
  }
  const probe = new PacketStream(source, { pebs: false, windowSize: 1 << 20 });
  if (probe.syncForward() < 0) {
    source.close();
    throw new CliError(`flow: no PSB found in ${path} (0x${source.size.toString(16)} bytes): not an Intel PT trace`);
  }
  return source;
}

