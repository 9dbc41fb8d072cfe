/**
 * What both emulated recording modes (record.ts: one log; record-threads.ts:
 * one log per thread) share: the one-line error, the program's arguments and
 * environment as the sandbox shows them, the output directory's checks.
 */
import type { ChildProcess } from 'node:child_process';
import { DEFAULT_TIMING, type EncoderSettings, type TimingSettings } from './pt-encoder-session.js';
import type { ResourceLimits } from './resource-limits.js';
import { DEFAULT_MAX_INSNS, DEFAULT_PSB_PERIOD, type RecordOptions } from './record-options.js';
import type { ShownOutput } from './shown-output.js';
import { RecordingTampered } from './qemu-log.js';
import { RecordError } from './record-error.js';
import type { StdinReplay } from './caller-stdin.js';
import type { StopReason } from './path-reconstruction.js';
import { chmodSync, existsSync, lstatSync, openSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { CoreFile } from '../core-file.js';
import { readJsonFile } from '../import/json-input.js';
import { BUNDLE_FORMAT, MANIFEST_NAME } from './bundle.js';
import { ConfinedRun } from './confined-run.js';
import { MIB } from './resource-limits.js';
import { INPUT_LIMITS } from '../import/safe-files.js';

export const QEMU = 'qemu-x86_64';
export const LOG_ITEMS = 'in_asm,exec,nochain,page,strace';
export const DEFAULT_MAX_TRACE_BYTES = 1024 * MIB;
export const DEFAULT_MAX_RECORDER_BYTES = 1024 * MIB;
/** Bytes of the target's stdout/stderr kept when they are captured. */
export const MAX_CAPTURED_OUTPUT = 16 * MIB;

export { RecordError } from './record-error.js';

/** What a path names: only regular files and directories are shown to the sandbox. */
export function showable(path: string): 'yes' | 'missing' | string {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 'missing';
  }
  if (st.isFile() || st.isDirectory()) return 'yes';
  return st.isSocket() ? 'a socket' : st.isFIFO() ? 'a FIFO' : 'a device';
}

/**
 * Arguments naming existing files (rewritten as absolute paths, which the
 * confined program can open from its own working directory), and those
 * paths. Sockets, FIFOs and devices are never shown (a socket stays
 * connectable through a read-only mount), and are reported.
 */
export function argumentPaths(argv: readonly string[], expose: boolean): { argv: string[]; paths: string[]; refused: string[] } {
  const out = [argv[0]];
  const paths = new Set<string>();
  const refused: string[] = [];
  for (const a of argv.slice(1)) {
    if (!expose) {
      out.push(a);
      continue;
    }
    const eq = a.startsWith('-') ? a.indexOf('=') : -1;
    const value = eq > 0 ? a.slice(eq + 1) : a.startsWith('-') ? '' : a;
    const kind = value === '' ? 'missing' : showable(value);
    if (kind === 'yes') {
      const abs = resolve(value);
      paths.add(abs);
      out.push(eq > 0 ? `${a.slice(0, eq + 1)}${abs}` : abs);
    } else {
      if (kind !== 'missing') refused.push(`${value} is ${kind}: not shown to the sandbox`);
      out.push(a);
    }
  }
  return { argv: out, paths: [...paths], refused };
}

/** qemu `-E` arguments for the guest-only environment. */
export function guestEnvArgs(env: Record<string, string> | undefined): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env ?? {})) {
    if (k.includes('=') || k.includes(',') || v.includes(',') || k.includes('\0') || v.includes('\0')) {
      throw new RecordError(`record: guest environment ${k}: no '=', ',' or NUL allowed`);
    }
    out.push('-E', `${k}=${v}`);
  }
  return out;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A confined run for the recorder; a run that cannot be prepared is a one-line RecordError. */
export function confinedRun(spec: ConstructorParameters<typeof ConfinedRun>[0]): ConfinedRun {
  try {
    return new ConfinedRun(spec);
  } catch (e) {
    throw new RecordError(`record: ${errorText(e)}`);
  }
}

/** A file name for an image copy: the original's base name, printable and short. */
export function safeBaseName(path: string): string {
  const b = basename(path).replace(/[^A-Za-z0-9._+-]/g, '_').slice(0, 100);
  return b === '' || b === '.' || b === '..' ? 'image' : b;
}

export const SIGNAL_NAMES: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
  24: 'SIGXCPU', 25: 'SIGXFSZ', 31: 'SIGSYS',
};

/** The name of the signal a core names (`SIG<n>` for one without a name here). */
export function coreSignalName(core: CoreFile): string {
  return SIGNAL_NAMES[core.signal] ?? `SIG${core.signal}`;
}

/** Open the target's standard input file; a missing file is a one-line error. */
/** The PT encoder's settings from the recording options. */
export function encoderSettings(opts: Pick<RecordOptions, 'psbPeriod' | 'retCompression' | 'longTnt' | 'ranges' | 'timing' | 'snapshotBytes'>): EncoderSettings {
  return {
    psbPeriod: opts.psbPeriod ?? DEFAULT_PSB_PERIOD,
    retCompression: opts.retCompression,
    longTnt: opts.longTnt,
    ranges: opts.ranges,
    timing: { ...DEFAULT_TIMING, ...opts.timing },
    snapshot: opts.snapshotBytes > 0,
  };
}

/**
 * Put a finished emulated recording in place: its manifest written, the
 * staging directory readable, and `output` replaced only if --force allows
 * it (checkReplaceable). Ctrl-C up to here keeps nothing.
 */
export function publishBundle(staging: string, output: string, manifest: unknown, opts: Pick<RecordOptions, 'signal' | 'force'>): void {
  writeFileSync(join(staging, MANIFEST_NAME), JSON.stringify(manifest, null, 2) + '\n');
  chmodSync(staging, 0o755);
  if (opts.signal?.aborted) throw new RecordError('record: interrupted');
  checkReplaceable(output, opts.force === true);
  if (existsSync(output)) rmSync(output, { recursive: true, force: true });
  renameSync(staging, output);
}

/** The manifest's `config`: the settings this recording was made with. */
export function manifestConfig(opts: RecordOptions, sandbox: boolean, maxTraceBytes: number, limits: ResourceLimits, qemuLog: string) {
  const timing = encoderSettings(opts).timing;
  return {
    sandbox,
    timeoutSec: opts.timeoutSec,
    maxInsns: opts.maxInsns ?? DEFAULT_MAX_INSNS,
    maxTraceBytes,
    limits,
    filters: opts.ranges.map((r) => ({ from: '0x' + r.from.toString(16), to: '0x' + r.to.toString(16) })),
    snapshotBytes: opts.snapshotBytes,
    psbPeriod: opts.psbPeriod ?? DEFAULT_PSB_PERIOD,
    retCompression: opts.retCompression,
    longTnt: opts.longTnt,
    timing: { tsc: timing.tsc, mtc: timing.mtc, cyc: timing.cyc },
    qemuLog,
  };
}

/** The manifest's `encoder`: what a decoder needs to know about the encoder (no CPU errata: it is not a CPU). */
export function manifestEncoder(timing: TimingSettings) {
  return { cpu: 'none' as const, mtcFreq: timing.mtcFreq, cpuid15: { eax: 1, ebx: timing.ctcRatio }, nominalFreq: null, tscBase: timing.tscBase };
}

/** What the program printed, as far as it is kept: text when captured, and stderr's tail for messages. */
export interface ProgramOutput {
  stdout: string;
  stderr: string;
}

/**
 * Follow the program's output: shown once across two runs (shown-output.ts),
 * or captured as text (stdio 'pipe'), up to {@link MAX_CAPTURED_OUTPUT}.
 */
export function followOutput(child: ChildProcess, shown: ShownOutput | null): ProgramOutput {
  const out: ProgramOutput = { stdout: '', stderr: '' };
  const capture = (s: string, add: string): string => (s.length < MAX_CAPTURED_OUTPUT ? s + add : s);
  if (shown !== null) {
    child.stdout?.on('data', (b: Buffer) => shown.write(1, b));
    child.stderr?.on('data', (b: Buffer) => {
      shown.write(2, b);
      out.stderr = capture(out.stderr, b.toString('utf8'));
    });
  } else {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out.stdout = capture(out.stdout, d)));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (out.stderr = capture(out.stderr, d)));
  }
  return out;
}

/**
 * The error for a recording whose log could not be turned into a trace:
 * tampering, or a path ptscope could not rebuild. In the analyst's words,
 * with what was kept and what to try; the technical detail last, for a
 * bug report.
 */
export function recordingFailed(e: unknown): RecordError {
  const detail = errorText(e);
  if (e instanceof RecordingTampered) return new RecordError(`record: recording tampered: ${detail}`);
  return new RecordError(`record: recording failed: the program's path could not be rebuilt, so nothing was kept; --max-insns N records up to an earlier point, and a report with the program helps (detail: ${detail})`);
}

/** The program's standard input: a file opened for the run, 'pipe' for a replayed pipe (caller-stdin.ts), or none. */
export function openStdin(stdin: string | StdinReplay | undefined): number | 'pipe' | undefined {
  if (stdin === undefined) return undefined;
  if (typeof stdin !== 'string') return 'pipe';
  try {
    return openSync(stdin, 'r');
  } catch (e) {
    throw new RecordError(`record: cannot read the standard input file ${stdin}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Refuse to replace `output` unless --force was given and it is a
 * directory holding a ptscope bundle manifest: --force must never delete
 * anything else.
 */
export function checkReplaceable(output: string, force: boolean): void {
  let st;
  try {
    st = lstatSync(output);
  } catch {
    return;
  }
  if (!force) throw new RecordError(`record: ${output} already exists (use --force to replace a bundle)`);
  if (!st.isDirectory()) throw new RecordError(`record: --force replaces only a ptscope bundle directory; ${output} is not a directory`);
  let manifest: unknown;
  try {
    manifest = readJsonFile(join(output, MANIFEST_NAME));
  } catch {
    manifest = null;
  }
  const format = manifest !== null && typeof manifest === 'object' ? (manifest as { format?: unknown }).format : undefined;
  if (format !== BUNDLE_FORMAT) {
    throw new RecordError(`record: --force replaces only a ptscope bundle; ${output} holds no ${MANIFEST_NAME} with format "${BUNDLE_FORMAT}"`);
  }
}

/**
 * qemu's cores among the files the run handed out: one per emulated
 * process that died of a signal (its crashing thread's NT_PRSTATUS pid is
 * the thread's tid), parsed and in pid order. One that cannot be read is
 * left out, with a warning.
 */
export function readCores(handed: Map<string, Buffer>, warnings: string[]): { file: CoreFile; bytes: Buffer }[] {
  const cores: { file: CoreFile; bytes: Buffer }[] = [];
  for (const [name, bytes] of handed) {
    if (!/\/qemu_[^/]*\.core$/.test(name)) continue;
    try {
      cores.push({ file: CoreFile.parse(bytes, 'core'), bytes });
    } catch (e) {
      warnings.push(`the emulator's core dump ${name.slice(name.lastIndexOf('/') + 1)} could not be read: ${errorText(e)}`);
    }
  }
  return cores.sort((a, b) => a.file.pid - b.file.pid);
}

/**
 * The core the bundle keeps, written into its staging directory as `core`:
 * the one of thread `preferTid` if there is one, else the first (null if
 * none).
 */
export function keepCore(cores: readonly { file: CoreFile; bytes: Buffer }[], staging: string, preferTid: number | null = null): CoreFile | null {
  const kept = cores.find((c) => c.file.pid === preferTid) ?? cores[0];
  if (kept === undefined) return null;
  writeFileSync(join(staging, 'core'), kept.bytes);
  return kept.file;
}

/**
 * The cores of the crashed processes other than the kept one's (`kept`, of
 * process `keptPid`), written as `core-<pid>`, up to the bundle's bound:
 * the manifest's `cores` list, the kept core first.
 */
export function keepOtherCores(
  cores: readonly { file: CoreFile; bytes: Buffer }[],
  kept: CoreFile | null,
  keptPid: number | null,
  processOf: (tid: number) => number,
  staging: string,
  warnings: string[],
): { file: string; pid: number }[] {
  const list = kept !== null && keptPid !== null ? [{ file: 'core', pid: keptPid }] : [];
  for (const c of cores) {
    const pid = processOf(c.file.pid);
    if (c.file === kept || list.some((k) => k.pid === pid)) continue;
    if (list.length >= INPUT_LIMITS.cores) {
      warnings.push(`more than ${INPUT_LIMITS.cores} processes crashed: the cores of the others are not kept`);
      break;
    }
    const file = `core-${pid}`;
    writeFileSync(join(staging, file), c.bytes);
    list.push({ file, pid });
  }
  return list;
}

/** Each crashing thread's faulting RIP (by tid), for the path reconstruction's end. */
export function crashIps(cores: readonly { file: CoreFile }[]): Map<number, number> {
  return new Map(cores.map((c) => [c.file.pid, c.file.rip]));
}

/** A timer that calls `expire` once `seconds` of wall time have passed; null for no limit (0). */
export function wallClockLimit(seconds: number, expire: () => void): NodeJS.Timeout | null {
  return seconds > 0 ? setTimeout(expire, seconds * 1000) : null;
}

/**
 * How the recorded program ended, for the manifest: the signal that killed
 * it or else its exit status. qemu re-raises the target's fatal signal (its
 * core names it); the sandbox reports a signal as 128 + its number, taken
 * as one only when the program got signals. Neither when the recorder
 * stopped the run (the status is then the exit's, if any).
 */
export function programExit(
  exit: { code: number | null; signal: string | null },
  stopped: StopReason | 'timeout' | null,
  core: CoreFile | null,
  gotSignals: boolean,
): { status: number | null; signal: string | null } {
  let signal: string | null = null;
  if (stopped !== null) {
    // Stopped by the recorder: no exit of its own.
  } else if (core !== null) signal = coreSignalName(core);
  else if (exit.signal !== null) signal = exit.signal;
  else if (exit.code !== null && exit.code > 128 && gotSignals) signal = SIGNAL_NAMES[exit.code - 128] ?? null;
  return { status: signal !== null ? null : exit.code, signal };
}

/**
 * The warning for a recording a limit stopped, in the user's terms: which
 * limit, what was kept, and what to try. Null for other stops (an exec,
 * clone or closed log explains itself in the path's own warning).
 */
export function limitStopWarning(
  stopped: StopReason | 'timeout' | null,
  limits: { timeoutSec: number; maxInsns: number; maxTraceBytes: number; maxRecorderBytes: number },
  threads: boolean,
): string | null {
  const kept = threads ? 'the traces up to there are kept' : 'the trace up to there is kept';
  switch (stopped) {
    case 'timeout':
      return `recording stopped: the program ran past --timeout ${limits.timeoutSec} s (under emulation it runs far slower than natively); ${kept}; try a larger --timeout (0: none)`;
    case 'budget':
      return `recording stopped: the program ran --max-insns ${limits.maxInsns} instructions; ${kept}; try a larger --max-insns`;
    case 'trace-size':
      return `recording stopped: ${threads ? "a thread's trace" : 'the trace'} reached --max-trace-size (${limits.maxTraceBytes} bytes); ${kept}; try a larger --max-trace-size, or --snapshot`;
    case 'recorder-memory':
      return `recording stopped: the recorder's memory limit (${limits.maxRecorderBytes} bytes of translated code) was reached; ${kept}`;
    default:
      return null;
  }
}
