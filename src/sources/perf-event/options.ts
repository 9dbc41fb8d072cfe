/**
 * Command-line options for perf_event sideband, as libipt's ptdump and
 * ptxed accept them:
 *
 *   --pevent:primary <file>[:<from>[-<to>]]   (flow; dump also takes --pevent)
 *   --pevent:secondary <file>[:<from>[-<to>]]
 *   --pevent:sample-type <n>   --pevent:time-zero <n>   --pevent:time-shift <n>
 *   --pevent:time-mult <n>     --pevent:tsc-offset <n>  --pevent:kernel-start <n>
 *   --pevent:sysroot <dir>     --pevent:kcore <file>[:<base>]
 *   --pevent:vdso-x64 <file>   --pevent:vdso-x32 <file> --pevent:vdso-ia32 <file>
 *   --sb | --sb:compact   --sb:verbose   --sb:filename   --sb:offset
 *   --sb:time   --sb:warn   --sb:switch (flow only)
 *
 * Order matters, as in libipt: a --pevent:primary/secondary file takes a
 * snapshot of the --pevent:* settings seen before it.
 *
 * Numbers are parsed like C's strtoull(arg, &rest, 0): decimal, 0x hex or
 * leading-0 octal, optional leading whitespace and sign ("-1" wraps to
 * 2^64-1, which is how a negative --pevent:tsc-offset is given).
 */

/** Which flags libipt's pt_sb_dump/pt_sb_event print with (`enum pt_sb_print_flag`). */
export enum SbPrintFlag {
  Compact = 1 << 0,
  Verbose = 1 << 1,
  Filename = 1 << 2,
  FileOffset = 1 << 3,
  Tsc = 1 << 4,
}

/** One perf_event sideband file and the settings it was given. */
export interface PeventFileConfig {
  /** Path as given, without a range suffix. */
  filename: string;
  /** Byte range to load: [begin, end); end 0 means to the end of the file. */
  begin: number;
  end: number;
  /** Primary sideband drives context switches and trace-loss warnings (flow). */
  primary: boolean;
  sampleType: bigint;
  timeZero: bigint;
  timeShift: number;
  timeMult: number;
  /** Apply records this many TSC ticks earlier (two's complement: negative = later). */
  tscOffset: bigint;
  /** Addresses at or above are kernel space (flow: for placing context switches). */
  kernelStart: bigint;
  sysroot?: string;
  vdsoX64?: string;
  vdsoX32?: string;
  vdsoIa32?: string;
}

export interface SidebandConfig {
  files: PeventFileConfig[];
  /** {@link SbPrintFlag} bits; 0 prints no records. */
  printFlags: number;
  /** Print warnings (positive sideband codes); errors are always printed. */
  warn: boolean;
  /** Print `[context: <name>]` on context switches (flow, --sb:switch). */
  printSwitch: boolean;
  /** --pevent:kcore images for the kernel address space (flow loads them). */
  kcore: { filename: string; base?: bigint; verbose?: boolean }[];
}

/** A bad sideband option; `message` is one line, without the program name. */
export class SidebandOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SidebandOptionError';
  }
}

export type SidebandTool = 'dump' | 'flow';

const UINT64_MAX = (1n << 64n) - 1n;

/**
 * C strtoull with base 0. Returns the value and the unparsed rest, or
 * `undefined` for out of range (ERANGE).
 */
export function parseCUnsigned(arg: string): { value: bigint; rest: string } | undefined {
  let i = 0;
  while (i < arg.length && ' \t\n\v\f\r'.includes(arg[i]!)) ++i;
  let negative = false;
  if (arg[i] === '+' || arg[i] === '-') {
    negative = arg[i] === '-';
    ++i;
  }
  let base = 10;
  if (arg[i] === '0' && (arg[i + 1] === 'x' || arg[i + 1] === 'X') && /[0-9a-fA-F]/.test(arg[i + 2] ?? '')) {
    base = 16;
    i += 2;
  } else if (arg[i] === '0') {
    base = 8;
  }
  const digits = base === 16 ? /[0-9a-fA-F]/ : base === 8 ? /[0-7]/ : /[0-9]/;
  const start = i;
  let value = 0n;
  const b = BigInt(base);
  while (i < arg.length && digits.test(arg[i]!)) {
    value = value * b + BigInt(parseInt(arg[i]!, base));
    ++i;
  }
  // No digits: strtoull parses nothing and leaves the whole string.
  if (i === start) return { value: 0n, rest: arg };
  if (value > UINT64_MAX) return undefined;
  return { value: negative ? BigInt.asUintN(64, -value) : value, rest: arg.slice(i) };
}

/** libipt's get_arg_uint64 and friends: the value of `option`, limited to `max`. */
export function parseNumberArg(option: string, arg: string | undefined, max: bigint = UINT64_MAX): bigint {
  if (arg === undefined || arg === '' || arg.startsWith('--')) {
    throw new SidebandOptionError(`${option}: missing argument.`);
  }
  const parsed = parseCUnsigned(arg);
  if (!parsed || parsed.rest !== '') throw new SidebandOptionError(`${option}: bad argument: ${arg}.`);
  if (parsed.value > max) throw new SidebandOptionError(`${option}: value too big: ${arg}.`);
  return parsed.value;
}

/**
 * Split an optional `:<from>[-<to>]` suffix off a file argument, like
 * libipt's preprocess_filename: the last ':' starts the range only if what
 * follows parses as one; otherwise the ':' belongs to the name.
 */
export function splitFileRange(arg: string): { filename: string; begin: number; end: number } {
  const colon = arg.lastIndexOf(':');
  if (colon < 0) return { filename: arg, begin: 0, end: 0 };
  const range = arg.slice(colon + 1);
  const first = range === '' ? undefined : parseCUnsigned(range);
  if (!first || first.rest === range) return { filename: arg, begin: 0, end: 0 };
  const filename = arg.slice(0, colon);
  if (first.rest === '') return { filename, begin: toOffset(first.value, arg), end: 0 };
  if (!first.rest.startsWith('-')) return { filename: arg, begin: 0, end: 0 };
  const second = parseCUnsigned(first.rest.slice(1));
  if (!second || second.rest !== '' || second.rest === first.rest.slice(1)) {
    return { filename: arg, begin: 0, end: 0 };
  }
  if (second.value <= first.value) throw new SidebandOptionError(`bad file ${arg}: invalid argument.`);
  return { filename, begin: toOffset(first.value, arg), end: toOffset(second.value, arg) };
}

function toOffset(v: bigint, arg: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new SidebandOptionError(`bad offset in ${arg}.`);
  return Number(v);
}

/**
 * Collects sideband options while the command's own argv loop runs:
 *
 *   const sb = new SidebandOptionParser('dump');
 *   for (let i = 0; i < argv.length; ) {
 *     const n = sb.tryParse(argv, i);   // throws SidebandOptionError
 *     if (n) { i += n; continue; }
 *     ... the command's own options ...
 *   }
 *   const config = sb.config;
 */
export class SidebandOptionParser {
  readonly config: SidebandConfig = { files: [], printFlags: 0, warn: false, printSwitch: false, kcore: [] };

  /** The --pevent:* settings the next file will be given. */
  private pending: Omit<PeventFileConfig, 'filename' | 'begin' | 'end' | 'primary'>;

  constructor(readonly tool: SidebandTool) {
    this.pending = {
      sampleType: 0n,
      timeZero: 0n,
      timeShift: 0,
      timeMult: 1,
      tscOffset: 0n,
      // ptxed treats everything as user space unless told; ptdump never asks.
      kernelStart: tool === 'flow' ? UINT64_MAX : 0n,
    };
  }

  /** True when any sideband file was given: the dump must then track time. */
  get active(): boolean {
    return this.config.files.length > 0;
  }

  /** --quiet in ptdump also turns off sideband printing (at that point of argv). */
  clearPrintFlags(): void {
    this.config.printFlags = 0;
  }

  /**
   * If `argv[i]` is a sideband option, consume it and its argument and
   * return how many entries were used; otherwise return 0.
   */
  tryParse(argv: readonly string[], i: number): number {
    const opt = argv[i];
    const arg = argv[i + 1];
    const cfg = this.config;
    const p = this.pending;
    switch (opt) {
      case '--sb':
      case '--sb:compact':
        cfg.printFlags = (cfg.printFlags & ~SbPrintFlag.Verbose) | SbPrintFlag.Compact;
        return 1;
      case '--sb:verbose':
        cfg.printFlags = (cfg.printFlags & ~SbPrintFlag.Compact) | SbPrintFlag.Verbose;
        return 1;
      case '--sb:filename':
        cfg.printFlags |= SbPrintFlag.Filename;
        return 1;
      case '--sb:offset':
        cfg.printFlags |= SbPrintFlag.FileOffset;
        return 1;
      case '--sb:time':
        cfg.printFlags |= SbPrintFlag.Tsc;
        return 1;
      case '--sb:warn':
        cfg.warn = true;
        return 1;
      case '--sb:switch':
        if (this.tool !== 'flow') return 0;
        cfg.printSwitch = true;
        return 1;
      case '--pevent':
        if (this.tool !== 'dump') return 0;
        return this.addFile(opt, arg, true);
      case '--pevent:primary':
        return this.addFile(opt, arg, true);
      case '--pevent:secondary':
        // ptdump does not distinguish; it never applies records.
        return this.addFile(opt, arg, this.tool === 'dump');
      case '--pevent:sample-type':
        p.sampleType = parseNumberArg(opt, arg);
        return 2;
      case '--pevent:time-zero':
        p.timeZero = parseNumberArg(opt, arg);
        return 2;
      case '--pevent:time-shift':
        p.timeShift = Number(parseNumberArg(opt, arg, 0xffffn));
        return 2;
      case '--pevent:time-mult':
        p.timeMult = Number(parseNumberArg(opt, arg, 0xffffffffn));
        return 2;
      case '--pevent:tsc-offset':
        p.tscOffset = parseNumberArg(opt, arg);
        return 2;
      case '--pevent:kernel-start':
        p.kernelStart = parseNumberArg(opt, arg);
        return 2;
      case '--pevent:sysroot':
        p.sysroot = requireArg(opt, arg);
        return 2;
      case '--pevent:vdso-x64':
        p.vdsoX64 = requireArg(opt, arg);
        return 2;
      case '--pevent:vdso-x32':
        p.vdsoX32 = requireArg(opt, arg);
        return 2;
      case '--pevent:vdso-ia32':
        p.vdsoIa32 = requireArg(opt, arg);
        return 2;
      case '--pevent:kcore': {
        const a = requireArg(opt, arg);
        const colon = a.lastIndexOf(':');
        const base = colon >= 0 ? parseCUnsigned(a.slice(colon + 1)) : undefined;
        if (base && base.rest === '' && colon + 1 < a.length) {
          cfg.kcore.push({ filename: a.slice(0, colon), base: base.value });
        } else {
          cfg.kcore.push({ filename: a });
        }
        return 2;
      }
      default:
        return 0;
    }
  }

  private addFile(opt: string, arg: string | undefined, primary: boolean): number {
    const a = requireArg(opt, arg);
    const { filename, begin, end } = splitFileRange(a);
    this.config.files.push({ ...this.pending, filename, begin, end, primary });
    return 2;
  }
}

function requireArg(option: string, arg: string | undefined): string {
  if (arg === undefined) throw new SidebandOptionError(`${option}: missing argument.`);
  return arg;
}
