/**
 * What a recording is asked to do (record.ts) and what it gives back. In a
 * file of their own, so that the two recording modes and their helpers
 * share the types without importing record.ts.
 */
import type { BundleManifest } from './bundle.js';
import type { StdinReplay } from './caller-stdin.js';
import type { TimingSettings } from './pt-encoder-session.js';
import type { ResourceLimits } from './resource-limits.js';

/** The emulated recorder's instruction budget when none is given. */
export const DEFAULT_MAX_INSNS = 1_000_000_000;
/** The emulated encoder's PSB period when none is given (bytes). */
export const DEFAULT_PSB_PERIOD = 4096;
/** The wall-clock limit of `ptscope record` when none is given (seconds). */
export const DEFAULT_TIMEOUT_SEC = 60;

export interface RecordOptions {
  /** Program and arguments, as the program sees them. */
  argv: string[];
  /**
   * Run this host file as the program, shown to it at `guest` (argv[0] is
   * then not looked up): a re-run of a bundle's copy of its program at the
   * recorded path, with the bundle's copies of its own shared libraries
   * at theirs. Default: argv[0] found on PATH, shown at its own path.
   */
  program?: { host: string; guest: string; libraries?: { host: string; guest: string }[] };
  /** Bundle directory to create. */
  output: string;
  /** Replace an existing output directory that holds a ptscope bundle. */
  force?: boolean;
  /** Confine the program (from the analyst's command line only). */
  sandbox: boolean;
  /** Wall-clock limit in seconds (0: none). */
  timeoutSec: number;
  /** Instruction budget (default {@link DEFAULT_MAX_INSNS}; emulation only: the hardware path refuses it). */
  maxInsns?: number;
  /** Stop when the trace reaches this many bytes, keeping it (0: no limit; default 1 GiB). */
  maxTraceBytes?: number;
  /** Memory the recorder may hold for the emulator's translations and image files (default 1 GiB). */
  maxRecorderBytes?: number;
  /** Limits of the confined run (defaults: resource-limits.ts). */
  limits?: Partial<ResourceLimits>;
  /** Bytes of trace between PSB packets (default {@link DEFAULT_PSB_PERIOD}; on hardware, perf's default unless given). */
  psbPeriod?: number;
  retCompression: boolean;
  longTnt: boolean;
  ranges: Array<{ from: number; to: number }>;
  timing: Partial<TimingSettings>;
  /** Snapshot ring size in bytes (0: keep the whole trace). */
  snapshotBytes: number;
  /** Use perf and hardware PT when available (default), or always emulate. */
  hardware?: boolean;
  /** The intel_pt PMU's sysfs directory, whose presence means hardware PT (default perf-command.ts's INTEL_PT_SYSFS). */
  intelPtSysfs?: string;
  /** Where the target's stdout/stderr go (default: inherited). */
  stdio?: 'inherit' | 'pipe' | 'ignore';
  /** A file the target reads as its standard input, or the caller's pipe replayed to each run (caller-stdin.ts); default: none, like /dev/null. */
  stdin?: string | StdinReplay;
  /**
   * Variables added to the target's environment only (qemu's `-E`, so the
   * emulator itself is unaffected), e.g. an LD_PRELOAD shim. Values must
   * not contain commas.
   */
  guestEnv?: Record<string, string>;
  /** More host paths the confined target may read (shown read-only at the same path). */
  allowRead?: string[];
  /**
   * Show the files and directories named in argv to the target (the
   * analyst's own command line). A re-run from a bundle passes false: a
   * bundle's argv never opens host files to the sandbox.
   */
  exposeArguments?: boolean;
  /** Abort the recording (Ctrl-C): the target is killed and nothing is kept. */
  signal?: AbortSignal;
  /** One-line notices (emulation in use, warnings); default stderr. */
  notice?: (line: string) => void;
}

/** What a caller of {@link withRecordDefaults} names: the program, the bundle, and whatever it sets apart from the defaults. */
export type RecordRequest = Pick<RecordOptions, 'argv' | 'output'> & Partial<RecordOptions>;

/**
 * Complete options for `request`: a confined run of at most
 * {@link DEFAULT_TIMEOUT_SEC} seconds that keeps the whole trace, with
 * return compression, TNT-8, no address filter and no timing packets
 * (`ptscope record`'s defaults). The instruction budget and PSB period are
 * left unset unless given, so that the recorder applies
 * {@link DEFAULT_MAX_INSNS} and {@link DEFAULT_PSB_PERIOD} when it emulates
 * and the hardware path keeps perf's own.
 */
export function withRecordDefaults(request: RecordRequest): RecordOptions {
  return {
    sandbox: true,
    timeoutSec: DEFAULT_TIMEOUT_SEC,
    retCompression: true,
    longTnt: false,
    ranges: [],
    timing: {},
    snapshotBytes: 0,
    ...request,
  };
}

export interface RecordResult {
  bundle: string;
  manifest: BundleManifest;
  /** Captured output when stdio is 'pipe'. */
  stdout: string;
  stderr: string;
  /** Recording wall time in seconds. */
  seconds: number;
  /** A one-log recording stopped where the program started a thread or process, or executed a program (record() then follows each). */
  startsTasks?: boolean;
}
