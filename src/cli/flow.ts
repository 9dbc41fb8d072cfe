/**
 * `ptscope flow`: the executed instructions of a trace, printed like libipt's
 * ptxed (ptxed/src/ptxed.c), which accepts the same arguments.
 *
 * As in ptxed, arguments are processed in order: the decoder is created at
 * `--pt` from the configuration given so far (`--cpu`, `--filter:*`,
 * `--mtc-freq`, `--insn-decoder`/`--block-decoder`, `--event:tick`, ...).
 */
import { readFileSync } from 'node:fs';
import { detectInputKind, openRecording } from '../sources/import/open-recording.js';
import { readStream } from '../sources/model/decoders.js';
import { streamTitle, type Recording } from '../sources/model/recording.js';
import { CliError, type LineWriter } from './output.js';
import { describeFileError } from './dump.js';
import { defaultConfig, AddrCfg, type DecoderConfig } from '../packets/config.js';
import { errataFor, parseCpu } from '../packets/cpu.js';
import { PacketDecoder } from '../packets/decoder.js';
import { ErrorCode, PtError, errorMessage, errorName } from '../packets/errors.js';
import { EventType, PtEvent } from '../events/event.js';
import { hex64 } from '../reports/hex.js';
import { Status } from '../events/status.js';
import { ANY_ASID, formatIp } from '../flow/address-space.js';
import { Image } from '../flow/image.js';
import { InsnClass, InstructionInfo } from '../flow/instruction.js';
import { InsnDecoder, type FlowFlags } from '../flow/insn-decoder.js';
import { BlockDecoder, Block } from '../flow/block-decoder.js';
import { parseCUnsigned, parseRawArg, isImageArgError } from '../flow/raw-image-arg.js';
import { ByteSourceCache } from '../flow/section.js';
import { InstructionDecoder } from '../flow/instruction-decoder.js';
import { formatDiagnostic, formatEvent, type PtxedFormatOptions } from '../reports/ptxed-format.js';
import { SidebandOptionError, SidebandOptionParser } from '../sources/perf-event/options.js';
import { SbEventKind, SidebandSession, type SidebandTraceEvent } from '../sources/perf-event/sideband-session.js';
import { ContextImages, sidebandEventOf } from '../flow/sideband-image-host.js';
import { loadElf } from '../flow/elf.js';
import { checkBlock, checkInsn } from '../flow/insn-check.js';
import { decodeInstruction } from '../flow/instruction-decoder.js';

export const FLOW_HELP = `usage: ptscope flow [<options>] --pt <file>[:<from>[-<to>]]
       ptscope flow [<options>] <bundle-dir | perf.data>

Print the instructions executed in an Intel PT trace (libipt ptxed compatible).

options:
  --pt <file>[:<from>[-<to>]]   the trace (bytes [from, to) of file)
  --raw <file>[:<from>[-<to>]]:<base>  load raw code at <base>
  --cpu none|auto|f/m[/s]       decode for the given cpu (applies its errata)
  --insn-decoder                 use the instruction decoder (default)
  --block-decoder                use the block decoder
  --block:show-blocks            show block boundaries
  --block:end-on-call            end a block after a call
  --block:end-on-jump            end a block after a jump
  --no-inst                      do not disassemble instructions
  --quiet, -q                    print no instructions and events
  --offset                       print the trace offset
  --time                         print the time
  --event:ip                     print event addresses
  --event:time                   print event times
  --event:tick                   report timing changes as tick events
  --event:iflags                 report interrupt flag changes
  --check                        check decoded instructions
  --json                         JSON Lines: one object per instruction (or block), event and error
  --sysroot DIR                  find a perf.data's mapped files under DIR
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
`;

interface FlowOptions {
  decoder: 'insn' | 'block';
  fmt: PtxedFormatOptions;
  noInst: boolean;
  quiet: boolean;
  time: boolean;
  check: boolean;
  stat: boolean;
  statInsn: boolean;
  statBlocks: boolean;
  showBlocks: boolean;
  resync: boolean;
  /** JSON Lines instead of ptxed's text. */
  json: boolean;
}

/** Statistics (ptxed's ptxed_stats). */
interface Stats {
  insn: number;
  blocks: number;
}

function u64Arg(args: string[], i: number, option: string, max = (1n << 64n) - 1n): bigint {
  const text = args[i];
  if (text === undefined || text === '' || text.startsWith('--')) throw new CliError(`${option}: missing argument.`);
  const v = parseCUnsigned(text);
  if (v === null) throw new CliError(`${option}: bad argument: ${text}.`);
  if (v > max) throw new CliError(`${option}: value too big: ${text}.`);
  return v;
}

/** `ptscope flow` from its argument list (ptxed's arguments are accepted as-is). */
export function runFlowCommand(args: string[], out: LineWriter): number {
  const config: DecoderConfig = defaultConfig();
  const opts: FlowOptions = {
    decoder: 'insn',
    fmt: { eventIp: false, eventTime: false, offset: false },
    noInst: false,
    quiet: false,
    time: false,
    check: false,
    stat: false,
    statInsn: false,
    statBlocks: false,
    showBlocks: false,
    resync: false,
    json: false,
  };
  const insnFlags: FlowFlags = { enableTickEvents: false, keepTcalOnOvf: false, enableIflags: false };
  const blockFlags: FlowFlags & { endOnCall: boolean; endOnJump: boolean } = {
    enableTickEvents: false,
    keepTcalOnOvf: false,
    enableIflags: false,
    endOnCall: false,
    endOnJump: false,
  };
  let image = new Image();
  const files = new ByteSourceCache();
  const sideband = new SidebandOptionParser('flow');
  /** A bundle directory or perf.data given instead of --pt/--raw. */
  let container: string | null = null;
  /** Where a perf.data's mapped files are found (the recording machine's root). */
  let sysroot: string | undefined;
  let nextIsid = 1;
  let trace: Uint8Array | null = null;
  let created: { kind: 'insn' | 'block'; flags: FlowFlags; config: DecoderConfig } | null = null;

  for (let i = 0; i < args.length; ) {
    const arg = args[i++]!;
    switch (arg) {
      case '--help':
      case '-h':
        out.line(FLOW_HELP.trimEnd());
        return 0;
      case '--pt': {
        const file = args[i++];
        if (file === undefined) throw new CliError('--pt: missing argument.');
        if (created) throw new CliError(`duplicate pt sources: ${file}.`);
        if (config.cpu.vendor === 'intel') {
          const errata = errataFor(config.cpu);
          if (typeof errata === 'number') out.line(`[0, 0: config error: ${errorMessage(errata)}]`);
          else config.errata = errata;
        }
        trace = loadTrace(file);
        const kind = opts.decoder;
        const flags = kind === 'insn' ? { ...insnFlags } : { ...blockFlags };
        created = { kind, flags, config: structuredClone(config) };
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
      case '--no-inst':
        opts.noInst = true;
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
      case '--sysroot':
        sysroot = args[i++];
        if (sysroot === undefined) throw new CliError('--sysroot: missing argument.');
        break;
      case '--stat':
        opts.stat = true;
        break;
      case '--stat:insn':
        opts.stat = true;
        opts.statInsn = true;
        break;
      case '--stat:blocks':
        opts.stat = true;
        opts.statBlocks = true;
        break;
      case '--resync-on-error':
        opts.resync = true;
        break;
      case '--cpu': {
        const text = args[i++];
        if (text === undefined) throw new CliError('--cpu: missing argument.');
        const cpu = parseCpu(text);
        if (!cpu) throw new CliError('cpu must be specified as f/m[/s]');
        config.cpu = cpu;
        break;
      }
      case '--mtc-freq':
        config.mtcFreq = Number(u64Arg(args, i++, arg, 255n));
        break;
      case '--nom-freq':
        config.nomFreq = Number(u64Arg(args, i++, arg, 255n));
        break;
      case '--cpuid-0x15.eax':
        config.cpuid15Eax = Number(u64Arg(args, i++, arg, 0xffffffffn));
        break;
      case '--cpuid-0x15.ebx':
        config.cpuid15Ebx = Number(u64Arg(args, i++, arg, 0xffffffffn));
        break;
      case '--insn-decoder':
        opts.decoder = 'insn';
        break;
      case '--block-decoder':
        opts.decoder = 'block';
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
  if (container !== null) {
    if (created) throw new CliError(`${container}: give either a bundle/perf.data or --pt, not both.`);
    let recording: Recording;
    try {
      if (detectInputKind(container) === 'raw') throw new CliError(`${container}: neither a trace bundle nor a perf.data file (for a raw trace use --pt with --raw).`);
      recording = openRecording(container, { sysroot });
    } catch (e) {
      if (e instanceof CliError) throw e;
      throw new CliError((e as Error).message.split('\n')[0]!);
    }
    // Several streams (threads, or perf.data's per-CPU queues) are decoded one after the other.
    let status = 0;
    for (const input of recording.streams) {
      if (recording.streams.length > 1) out.line(`[stream: ${streamTitle(input)}]`);
      for (const note of input.notes) process.stderr.write(`ptscope: flow: ${note}\n`);
      const cfg = { ...input.config, flags: { ...input.config.flags } };
      cfg.addrFilter = structuredClone(config.addrFilter);
      if (config.cpu.vendor === 'intel') {
        cfg.cpu = config.cpu;
        const errata = errataFor(config.cpu);
        if (typeof errata !== 'number') cfg.errata = errata;
      }
      image = input.image;
      trace = readStream(input);
      const kind2 = opts.decoder;
      created = { kind: kind2, flags: kind2 === 'insn' ? { ...insnFlags } : { ...blockFlags }, config: cfg };
      status = Math.max(status, decodeCreated(created, trace, image, opts, out, null));
    }
    recording.close();
    return status;
  }
  if (!created || !trace) throw new CliError('no pt file.');

  return decodeCreated(created, trace, image, opts, out, sideband.active ? { parser: sideband, files, nextIsid: () => nextIsid++ } : null);
}

/** Decode one trace with the decoder the options chose, printing as ptxed does. */
function decodeCreated(
  created: { kind: 'insn' | 'block'; flags: FlowFlags; config: DecoderConfig },
  trace: Uint8Array,
  image: Image,
  opts: FlowOptions,
  out: LineWriter,
  sideband: { parser: SidebandOptionParser; files: ByteSourceCache; nextIsid: () => number } | null,
): number {
  const stats: Stats = { insn: 0, blocks: 0 };
  let statInsn = opts.statInsn;
  let statBlocks = opts.statBlocks;
  if (opts.stat && !statInsn && !statBlocks) {
    statInsn = true;
    if (created.kind === 'block') statBlocks = true;
  }
  const packets = new PacketDecoder(trace, { pebs: false, skd007: created.config.errata.skd007 });
  let dec: InsnDecoder | BlockDecoder;
  if (created.kind === 'insn') {
    dec = new InsnDecoder(packets, created.config, image, created.flags);
  } else {
    const bf = created.flags as FlowFlags & { endOnCall: boolean; endOnJump: boolean };
    created.config.flags.endOnCall = bf.endOnCall;
    created.config.flags.endOnJump = bf.endOnJump;
    dec = new BlockDecoder(packets, created.config, image, bf);
  }
  const flowDec = dec;
  const sb = sideband
    ? openSideband(sideband.parser, image, sideband.files, sideband.nextIsid, (img) => (flowDec.image = img), out)
    : null;
  if (dec instanceof InsnDecoder) decodeInsn(dec, opts, stats, out, sb);
  else decodeBlocks(dec, opts, stats, out, sb);
  if (opts.stat) {
    if (statInsn) out.line(`insn: ${stats.insn}.`);
    if (statBlocks) out.line(`blocks:\t${stats.blocks}.`);
  }
  return 0;
}

/**
 * The perf_event sideband session (ptxed's `--pevent:*`): the `--raw` image
 * becomes the kernel image, processes get their own images, and context
 * switches change the image the decoder uses.
 */
function openSideband(
  parser: SidebandOptionParser,
  kernel: Image,
  files: ByteSourceCache,
  nextIsid: () => number,
  use: (image: Image) => void,
  out: LineWriter,
): SidebandSession {
  const config = parser.config;
  for (const k of config.kcore) {
    try {
      const elf = loadElf(kernel, files, k.filename, k.base ?? 0);
      for (const w of elf.warnings) out.line(`[${w}]`);
    } catch (e) {
      if (e instanceof PtError) throw new CliError(`--pevent:kcore: failed to load ${k.filename}: ${e.message}.`);
      throw e;
    }
  }
  const host = new ContextImages(kernel, files, nextIsid, use);
  let partial = '';
  const sink = {
    write(text: string): void {
      const parts = (partial + text).split('\n');
      partial = parts.pop()!;
      for (const line of parts) out.line(line);
    },
  };
  try {
    return SidebandSession.create(config, { out: sink, host });
  } catch (e) {
    if (e instanceof PtError) throw new CliError(e.message);
    throw e;
  }
}

function loadTrace(spec: string): Uint8Array {
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
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CliError(`flow: ${describeFileError(e, path)}`);
  }
  const trace = bytes.subarray(from, to);
  if (trace.length === 0) throw new CliError(`flow: ${path} is empty: not an Intel PT trace`);
  // A file without a single PSB holds nothing to decode: say so once
  // rather than printing nothing.
  if (new PacketDecoder(trace).syncForward() < 0) {
    throw new CliError(`flow: no PSB found in ${path} (0x${trace.length.toString(16)} bytes): not an Intel PT trace`);
  }
  return trace;
}

/** The line of one instruction (ptxed's print_insn). */
function insnLine(insn: InstructionInfo, opts: FlowOptions, offset: number): string {
  let s = '';
  if (opts.fmt.offset) s += offset.toString(16).padStart(16, '0') + '  ';
  if (insn.speculative) s += '? ';
  s += formatIp(insn.ip);
  if (!opts.noInst) {
    const text = disassemble(insn);
    s += '  ' + text;
  }
  return s;
}

/** One instruction as a JSON Lines object (`--json`). */
function insnJson(insn: InstructionInfo, opts: FlowOptions, offset: number): string {
  const o: Record<string, unknown> = { ip: '0x' + formatIp(insn.ip).replace(/^0+(?=.)/, ''), size: insn.size, class: INSN_CLASS_NAMES[insn.iclass] ?? 'unknown', bits: MODE_BITS[insn.mode] ?? 0 };
  if (opts.fmt.offset) o.offset = offset;
  if (insn.speculative) o.speculative = true;
  if (!opts.noInst) o.insn = disassemble(insn);
  return JSON.stringify(o);
}

const INSN_CLASS_NAMES: readonly string[] = ['unknown', 'other', 'call', 'return', 'jump', 'cond-jump', 'far-call', 'far-return', 'far-jump', 'ptwrite'];
const MODE_BITS: readonly number[] = [0, 16, 32, 64];

/** An event as a JSON Lines object: its type and every field that has a value. */
function eventJson(ev: PtEvent, offset: number): string {
  const o: Record<string, unknown> = { event: (EventType[ev.type] ?? 'unknown').toLowerCase() };
  if (!ev.ipSuppressed) o.ip = '0x' + formatIp(ev.ip).replace(/^0+(?=.)/, '');
  if (ev.type === EventType.AsyncBranch || ev.type === EventType.AsyncDisabled) o.from = '0x' + formatIp(ev.at).replace(/^0+(?=.)/, '');
  if (ev.hasTsc) o.tsc = '0x' + hex64(ev.tscHi, ev.tscLo);
  if (offset) o.offset = offset;
  return JSON.stringify(o);
}

/** A decode error as a JSON Lines object. */
function errorJson(offset: number, ip: number, what: string, status: number): string {
  return JSON.stringify({ error: errorName(status), message: `${what}: ${errorMessage(status)}`, offset, ip: '0x' + formatIp(ip).replace(/^0+(?=.)/, '') });
}

/** Print a diagnostic as ptxed does, or as JSON. */
function diag(out: LineWriter, opts: FlowOptions, offset: number, ip: number, what: string, status: number): void {
  out.line(opts.json ? errorJson(offset, ip, what, status) : formatDiagnostic(offset, ip, what, status));
}

/** Run a `--check` and print what it found. */
function printChecks(check: (lines: string[]) => void, out: LineWriter): void {
  const lines: string[] = [];
  check(lines);
  for (const l of lines) out.line(l);
}

/** Formats instructions for output (iced-x86, Intel syntax); created on first use. */
let formatter: InstructionDecoder | null = null;

function disassemble(insn: InstructionInfo): string {
  if (formatter === null) formatter = new InstructionDecoder(new Image());
  return formatter.disassemble(insn);
}

/** One decoder's events, printed (ptxed's drain_events_*). */
function drainEvents(
  status: number,
  event: (ev: PtEvent) => number,
  ev: PtEvent,
  opts: FlowOptions,
  out: LineWriter,
  offsetOf: () => number,
  sb: SidebandSession | null,
): number {
  while (status & Status.EventPending) {
    const offset = opts.fmt.offset ? offsetOf() : 0;
    status = event(ev);
    if (status < 0) return status;
    if (!opts.quiet && !ev.statusUpdate) out.line(opts.json ? eventJson(ev, offset) : formatEvent(ev, opts.fmt, offset));
    // Sideband records due by now are printed and applied after the event.
    if (sb) sb.onEvent(sidebandEventOf(ev, sbEvent));
  }
  return status;
}

const sbEvent: SidebandTraceEvent = { kind: SbEventKind.Other, tsc: 0n, ip: 0n, ipSuppressed: true, at: 0n };

/** {@link Restart.start}: stop decoding (end of trace, or a sync that made no progress). */
const RESTART_STOP = 1 << 30;
/** {@link Restart.start}: the restart failed; try again (at the next PSB). */
const RESTART_AGAIN = (1 << 30) + 1;

/**
 * ptxed's restart after the start or an error, shared by both decoders:
 * with --resync-on-error at the next IP the trace gives, otherwise at the
 * next PSB. Failures are printed; a PSB sync that makes no progress stops.
 */
class Restart {
  private sync = 0;

  constructor(
    private readonly dec: { resync(): number; syncForward(): number; readonly offset: number },
    private readonly opts: FlowOptions,
    private readonly out: LineWriter,
  ) {}

  /** The decoder's status, or RESTART_STOP / RESTART_AGAIN. `errorIp` gives the IP to report. */
  start(resync: boolean, errorIp: (status: number) => number): number {
    const dec = this.dec;
    const status = resync ? dec.resync() : dec.syncForward();
    if (status >= 0) return status;
    if (status === -ErrorCode.Eos) return RESTART_STOP;
    diag(this.out, this.opts, Math.max(0, dec.offset), errorIp(status), resync ? 'resync error' : 'sync error', status);
    if (resync) return RESTART_AGAIN;
    const newSync = dec.offset;
    if (newSync < 0 || newSync <= this.sync) return RESTART_STOP;
    this.sync = newSync;
    return RESTART_AGAIN;
  }
}

function decodeInsn(dec: InsnDecoder, opts: FlowOptions, stats: Stats, out: LineWriter, sb: SidebandSession | null): void {
  const insn = new InstructionInfo();
  const ev = new PtEvent();
  const eventFn = (e: PtEvent): number => dec.event(e);
  const offsetOf = (): number => dec.offset;
  let offset = 0;
  let resync = false;
  let lastErrorOffset = -1;
  const restart = new Restart(dec, opts, out);
  for (;;) {
    if (!resync) insn.ip = 0;
    let status = restart.start(resync, () => insn.ip);
    resync = false;
    if (status === RESTART_STOP) break;
    if (status === RESTART_AGAIN) continue;
    for (;;) {
      status = drainEvents(status, eventFn, ev, opts, out, offsetOf, sb);
      if (status < 0) break;
      if (status & Status.Eos) {
        if (!(status & Status.IpSuppressed) && !opts.quiet) out.line(opts.json ? '{"event":"end of trace"}' : '[end of trace]');
        status = -ErrorCode.Eos;
        break;
      }
      if (opts.fmt.offset || opts.check) offset = dec.offset;
      status = dec.next(insn);
      if (status < 0) {
        if (insn.iclass !== InsnClass.Unknown) {
          if (!opts.quiet) out.line(opts.json ? insnJson(insn, opts, offset) : insnLine(insn, opts, offset));
          stats.insn++;
          if (opts.check) printChecks((lines) => checkInsn(insn, offset, lines), out);
        }
        break;
      }
      if (!opts.quiet) out.line(opts.json ? insnJson(insn, opts, offset) : insnLine(insn, opts, offset));
      stats.insn++;
      if (opts.check) printChecks((lines) => checkInsn(insn, offset, lines), out);
    }
    if (status === 0) status = -ErrorCode.Internal;
    if (status === -ErrorCode.Eos) break;
    diag(out, opts, dec.offset, insn.ip, 'error', status);
    // Like ptxed: continue at the next PSB, or with --resync-on-error at
    // the next IP in the trace; if that made no progress, at the next PSB.
    resync = opts.resync && dec.offset !== lastErrorOffset;
    lastErrorOffset = dec.offset;
  }
}

function decodeBlocks(dec: BlockDecoder, opts: FlowOptions, stats: Stats, out: LineWriter, sb: SidebandSession | null): void {
  const block = new Block();
  const ev = new PtEvent();
  const eventFn = (e: PtEvent): number => dec.event(e);
  const offsetOf = (): number => dec.offset;
  let offset = 0;
  const scratch = new InstructionInfo();
  const fetch = (ip: number): InstructionInfo | null =>
    decodeInstruction(dec.insn.image, dec.insn.asid, ip, block.mode, scratch) < 0 ? null : scratch;
  const printBlock = (): void => {
    if (opts.json) {
      out.line(JSON.stringify({ block: '0x' + formatIp(block.ip).replace(/^0+(?=.)/, ''), end: '0x' + formatIp(block.endIp).replace(/^0+(?=.)/, ''), ninsn: block.ninsn, class: INSN_CLASS_NAMES[block.iclass] ?? 'unknown', bits: MODE_BITS[block.mode] ?? 0 }));
      return;
    }
    if (opts.showBlocks) out.line(opts.stat ? `[block ${stats.blocks.toString(16)}]` : '[block]');
    for (let k = 0; k < block.ninsn; k++) {
      let s = '';
      if (opts.fmt.offset) s += offset.toString(16).padStart(16, '0') + '  ';
      if (block.speculative) s += '? ';
      s += formatIp(block.ips[k]!);
      out.line(s);
    }
  };
  let resync = false;
  let lastErrorOffset = -1;
  const restart = new Restart(dec, opts, out);
  for (;;) {
    block.ninsn = 0;
    if (!resync) {
      block.ip = 0;
      block.failIp = 0;
    }
    let status = restart.start(resync, (st) => block.errorIp(st));
    resync = false;
    if (status === RESTART_STOP) break;
    if (status === RESTART_AGAIN) continue;
    for (;;) {
      status = drainEvents(status, eventFn, ev, opts, out, offsetOf, sb);
      if (status < 0) break;
      if (status & Status.Eos) {
        if (!(status & Status.IpSuppressed) && !opts.quiet) out.line(opts.json ? '{"event":"end of trace"}' : '[end of trace]');
        status = -ErrorCode.Eos;
        break;
      }
      if (opts.fmt.offset || opts.check) offset = dec.offset;
      status = dec.next(block);
      if (status < 0) {
        if (block.ninsn) {
          stats.insn += block.ninsn;
          stats.blocks++;
          if (!opts.quiet) printBlock();
          if (opts.check) printChecks((lines) => checkBlock(block, offset, fetch, lines), out);
        }
        break;
      }
      stats.insn += block.ninsn;
      stats.blocks++;
      if (!opts.quiet) printBlock();
      if (opts.check) printChecks((lines) => checkBlock(block, offset, fetch, lines), out);
    }
    if (status === 0) status = -ErrorCode.Internal;
    if (status === -ErrorCode.Eos) break;
    diag(out, opts, dec.offset, block.errorIp(status), 'error', status);
    resync = opts.resync && dec.offset !== lastErrorOffset;
    lastErrorOffset = dec.offset;
  }
}

