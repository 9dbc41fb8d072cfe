/**
 * `ptscope record`: run a program and write a trace bundle (bundle.ts).
 *
 * With hardware Intel PT (/sys/bus/event_source/devices/intel_pt) perf
 * records it (perf-record.ts: `perf record -e intel_pt//u` around the same
 * sandbox, perf.data kept). Everywhere else it emulates: the program runs confined
 * (confined-run.ts) under qemu-user with TB logging streamed through a FIFO
 * that is outside the sandbox's view and reaches qemu as descriptor 3
 * (`-D /proc/self/fd/3`), never stored; the executed path is rebuilt
 * (path-reconstruction.ts) and encoded as a user-only PT trace
 * (pt-encoder-session.ts). The log is the program's neighbour (qemu-user
 * runs the guest in its own process), so the parser checks it
 * (qemu-log.ts, path-reconstruction.ts) and refuses a log that the program
 * altered: "recording tampered: ...".
 *
 * The bundle is built in a temporary directory beside the output and
 * renamed into place at the end, so a failed or interrupted recording never
 * leaves a bundle that looks complete; --force replaces only a directory
 * that holds a ptscope bundle.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, chownSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readSync, realpathSync, rmSync, statSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { ElfFile } from '../../flow/elf.js';
import { INPUT_LIMITS, readBoundedFile } from '../import/safe-files.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, decodeCommands, TRACE_NAME, type BundleManifest } from './bundle.js';
import { imageEpochs, withEpochs, writeAddressSpaceImages } from './bundle-images.js';
import { ConfinedRun, LOG_FD } from './confined-run.js';
import { GuestFiles } from './guest-files.js';
import { MemoryMap } from './memory-map.js';
import { LOG_DESCRIPTORS, PathReconstruction, SHIMMED_LOG_DESCRIPTORS, type StopReason } from './path-reconstruction.js';
import { buildNativeShim } from '../native-build.js';
import { shimPlacement } from './exec-follow.js';
import { PtEncoderSession } from './pt-encoder-session.js';
import { QemuLogParser } from './qemu-log.js';
import { DEFAULT_LIMITS, type ResourceLimits } from './resource-limits.js';
import { TraceOutput } from './trace-output.js';
import { confinementRequest } from './confinement-request.js';
import { INTEL_PT_SYSFS, readIntelPtCaps } from './perf-command.js';
import { recordWithPerf } from './perf-record.js';
import { recordThreads } from './record-threads.js';
import {
  checkReplaceable, confinedRun, keepCore, readCores, limitStopWarning, DEFAULT_MAX_RECORDER_BYTES, DEFAULT_MAX_TRACE_BYTES, guestEnvArgs, LOG_ITEMS,
  encoderSettings, followOutput, manifestConfig, manifestEncoder, publishBundle, openStdin, type ProgramOutput, QEMU, RecordError, recordingFailed, programExit, wallClockLimit,
} from './record-support.js';

export { RecordError, DEFAULT_MAX_RECORDER_BYTES, DEFAULT_MAX_TRACE_BYTES } from './record-support.js';
export type { RecordOptions, RecordResult } from './record-options.js';
import { DEFAULT_MAX_INSNS, type RecordOptions, type RecordResult } from './record-options.js';
import type { ThreadFifos } from './thread-fifos.js';
import { ShownOutput } from './shown-output.js';

/** Output of the first run kept to recognise it in the second (shown-output.ts). */
const SHOWN_OUTPUT_KEPT = 16 << 20;


export { INTEL_PT_SYSFS } from './perf-command.js';
/** The uid that owns the log FIFO when the recorder is root, so that the target cannot change its mode. */
const FIFO_OWNER = 65534;

/** The first executable `name` on PATH, or null. */
export function findOnPath(name: string): string | null {
  if (name.includes('/')) return existsSync(name) ? resolve(name) : null;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** The kernel reads at most this many bytes of a `#!` line (BINPRM_BUF_SIZE). */
const SHEBANG_BYTES = 256;

/**
 * A `#!` script's interpreter and its one optional argument (the rest of
 * the line, as execve passes it), or null when `path` is not a script.
 */
export function scriptInterpreter(path: string): { interpreter: string; argument: string | null } | null {
  let head: Buffer;
  try {
    const fd = openSync(path, 'r');
    try {
      head = Buffer.alloc(SHEBANG_BYTES);
      head = head.subarray(0, readSync(fd, head, 0, SHEBANG_BYTES, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
  if (head.length < 2 || head[0] !== 0x23 || head[1] !== 0x21) return null;
  const end = head.indexOf(0x0a);
  if (end < 0) throw new RecordError(`record: ${path}: its #! line is longer than ${SHEBANG_BYTES} bytes`);
  const line = head.subarray(2, end).toString('latin1').replace(/[ \t\r]+$/, '').replace(/^[ \t]+/, '');
  const cut = line.search(/[ \t]/);
  const interpreter = cut < 0 ? line : line.slice(0, cut);
  const argument = cut < 0 ? '' : line.slice(cut).trim();
  if (interpreter === '' || !interpreter.startsWith('/')) throw new RecordError(`record: ${path}: its #! line names no absolute interpreter`);
  return { interpreter, argument: argument === '' ? null : argument };
}

/** The program's ELF (read with a bound), checked to be an x86-64 executable. */
function readProgram(path: string): { bytes: Buffer; elf: ElfFile } {
  let bytes: Buffer;
  try {
    bytes = readBoundedFile(realpathSync(path), INPUT_LIMITS.imageBytes, path);
  } catch (e) {
    throw new RecordError(`record: cannot read ${path}: ${(e as Error).message.replace(`${path}: `, '')}`);
  }
  if (bytes.length < 64 || bytes.readUInt32BE(0) !== 0x7f454c46) {
    throw new RecordError(`record: ${path} is not an ELF executable (nor a #! script)`);
  }
  if (bytes[4] !== 2 || bytes.readUInt16LE(18) !== 62) throw new RecordError(`record: ${path} is not an x86-64 ELF executable`);
  try {
    return { bytes, elf: ElfFile.parse(bytes, path) };
  } catch (e) {
    throw new RecordError(`record: ${path}: ${(e as Error).message}`);
  }
}

export async function record(opts: RecordOptions): Promise<RecordResult> {
  const notice = opts.notice ?? ((l: string) => process.stderr.write(`ptscope: ${l}\n`));
  if (opts.argv.length === 0) throw new RecordError('record: no program given');
  const program = opts.program?.host ?? findOnPath(opts.argv[0]);
  if (program === null) throw new RecordError(`record: program not found: ${opts.argv[0]}`);
  const script = opts.program === undefined ? scriptInterpreter(program) : null;
  if (script !== null) {
    // What execve does with a `#!` script: run its interpreter on it.
    const argv = [script.interpreter, ...(script.argument !== null ? [script.argument] : []), program, ...opts.argv.slice(1)];
    if (scriptInterpreter(findOnPath(script.interpreter) ?? script.interpreter) !== null) throw new RecordError(`record: ${program}: its interpreter ${script.interpreter} is a script too (record that interpreter's own interpreter)`);
    notice(`${program} is a script: recording its interpreter (${argv.slice(0, argv.length - opts.argv.length + 1).join(' ')})`);
    return record({ ...opts, argv });
  }
  const exe = readProgram(program);
  const output = resolve(opts.output);
  checkReplaceable(output, opts.force === true);
  const parent = dirname(output);
  if (!existsSync(parent)) throw new RecordError(`record: directory ${parent} does not exist`);

  const sysfs = opts.intelPtSysfs ?? INTEL_PT_SYSFS;
  if (opts.hardware !== false && existsSync(sysfs)) {
    const perf = findOnPath('perf');
    if (perf === null) throw new RecordError('record: Intel PT is present but perf is not installed (Debian package linux-perf), or pass --emulate');
    return recordWithPerf({ opts, perf, caps: readIntelPtCaps(sysfs), program, exe, output });
  }
  notice('no Intel PT on this machine: recording under emulation (qemu-user)');
  const qemu = findOnPath(QEMU);
  if (qemu === null) throw new RecordError(`record: ${QEMU} not found: install qemu-user (Debian package qemu-user)`);
  // Inside the sandbox the program may be run twice: show its output once.
  const shown = opts.sandbox && (opts.stdio ?? 'inherit') === 'inherit' ? new ShownOutput(SHOWN_OUTPUT_KEPT) : null;
  const first = await recordEmulated(opts, program, exe, qemu, output, false, shown);
  if (first.startsTasks !== true || !opts.sandbox) return first;
  shown?.rerun();
  notice('the program starts threads or processes, or executes programs: recording it again, following each one');
  try {
    const second = await recordEmulated({ ...opts, force: true }, program, exe, qemu, output, true, shown);
    if (shown?.overflowed) notice(`warning: the first run printed over ${SHOWN_OUTPUT_KEPT >> 20} MiB before it started a thread or process: some of it may have been shown twice`);
    else if (shown?.diverged) notice('warning: the second run printed something else than the first before the first stopped: its output is shown from where they differ');
    // The cost of this recording is both runs.
    return { ...second, seconds: first.seconds + second.seconds };
  } catch (e) {
    // No bundle when the recording failed (or was refused as tampered): not
    // even the first run's, which would pass for the program's whole run.
    rmSync(first.bundle, { recursive: true, force: true });
    throw e;
  }
}

/** Make the log FIFO writable by the emulator through its descriptor, but not readable or re-modable by the target. */
function protectFifo(path: string): void {
  if (process.geteuid?.() === 0) {
    // Owned by another uid with only "other" write: the target (uid 0
    // without capabilities) can write through the descriptor it was given,
    // but neither read the log nor chmod it.
    chownSync(path, FIFO_OWNER, FIFO_OWNER);
    chmodSync(path, 0o002);
  } else {
    chmodSync(path, 0o200);
  }
}

async function recordEmulated(opts: RecordOptions, program: string, exe: { bytes: Buffer; elf: ElfFile }, qemu: string, output: string, perThread: boolean, shown: ShownOutput | null = null): Promise<RecordResult> {
  const notice = opts.notice ?? ((l: string) => process.stderr.write(`ptscope: ${l}\n`));
  const started = process.hrtime.bigint();
  if (opts.signal?.aborted) throw new RecordError('record: interrupted');
  const staging = mkdtempSync(join(dirname(output), `.${basename(output)}.partial-`));
  // The log FIFO lives in a directory the sandbox does not show.
  const logDir = mkdtempSync(join(tmpdir(), 'ptscope-log-'));
  const limits: ResourceLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  let run: ConfinedRun | null = null;
  let logRead: number | null = null;
  let logWrite: number | null = null;
  let keepLog: number | null = null;
  let stdinFd: number | 'pipe' | null = null;
  let fifos: ThreadFifos | null = null;
  try {
    if (perThread) return await recordThreads(opts, program, exe, qemu, output, staging, logDir, limits, started, (f) => (fifos = f), (r) => (run = r), shown);
    const fifo = join(logDir, 'qemu.log');
    const mk = spawnSync('mkfifo', ['-m', '0600', fifo]);
    if (mk.status !== 0) throw new RecordError(`record: cannot create a FIFO in ${logDir}`);
    logRead = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    logWrite = openSync(fifo, constants.O_WRONLY);
    protectFifo(fifo);

    const { guestProgram, guestArgv, view } = confinementRequest(opts, program, exe, notice);
    stdinFd = openStdin(opts.stdin) ?? null;
    // The log shim moves qemu's log out of the program's low descriptors (native/qemu-log-shim.c).
    const shim = oneLogShim(notice);
    const shimAt = shim !== null ? shimPlacement(shim, opts.sandbox) : null;
    const preload = shimAt !== null ? ['/usr/bin/env', `LD_PRELOAD=${shimAt.path}`, qemu, '-U', 'LD_PRELOAD'] : [qemu];
    run = confinedRun({
      command: [...preload, '-d', LOG_ITEMS, '-D', `/proc/self/fd/${LOG_FD}`, ...guestEnvArgs(opts.guestEnv), ...guestArgv],
      sandbox: opts.sandbox,
      view: { ...view, helpers: shimAt?.place ?? [] },
      limits,
      stdin: stdinFd ?? undefined,
      output: shown !== null ? 'pipe' : opts.stdio ?? 'inherit',
      logFd: logWrite,
      collect: { core: true, executables: true },
      timeoutSec: 0,
      live: true,
    });
    const warnings: string[] = [...run.notes];

    const settings = encoderSettings(opts);
    const timing = settings.timing;
    const maxRecorderBytes = opts.maxRecorderBytes ?? DEFAULT_MAX_RECORDER_BYTES;
    const maxTraceBytes = opts.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES;
    const tracePath = join(staging, TRACE_NAME);
    const out = new TraceOutput(tracePath, opts.snapshotBytes);
    const session = new PtEncoderSession(out, settings);
    const files = new GuestFiles(run.view, maxRecorderBytes);
    const memory = new MemoryMap(guestProgram, run.scratch, files);
    let stopped: StopReason | 'timeout' | null = null;
    const confined = run;
    const kill = (): void => confined.kill();
    const path = new PathReconstruction(session, memory, {
      maxInsns: opts.maxInsns ?? DEFAULT_MAX_INSNS,
      maxBlockBytes: maxRecorderBytes,
      logFds: shim !== null ? SHIMMED_LOG_DESCRIPTORS : LOG_DESCRIPTORS,
      overLimit: () => (maxTraceBytes > 0 && opts.snapshotBytes === 0 && out.offset >= maxTraceBytes ? 'trace-size' : null),
      onStop: () => {
        stopped = path.stopReason;
        kill();
      },
    });
    let placed = false;
    // Once the path stops (a limit, an exec or clone entry), nothing more of the log is read.
    const then = (): void => {
      if (path.stopped) parser.halt();
    };
    const parser: QemuLogParser = new QemuLogParser({
      translated: (tb) => path.translated(tb),
      executed: (cpu, ptr, pc) => {
        if (!placed) {
          placed = true;
          if (!memory.placeLoadedElves()) throw new Error('qemu log: no load layout (start_code/entry) before the first instruction');
        }
        path.executed(cpu, ptr, pc);
        then();
      },
      syscallEntry: (name, text) => {
        path.syscallEntry(name, text);
        then();
      },
      syscall: (line) => {
        path.syscall(line);
        then();
      },
      notExecuted: (ptr, pc) => path.notExecuted(ptr, pc),
      signal: (name, code, addr) => path.signal(name, code, addr),
      layout: (name, value) => path.layout(name, value),
    });

    // Debugging aid: PTSCOPE_RECORD_KEEP_LOG=FILE keeps a copy of qemu's log.
    keepLog = process.env.PTSCOPE_RECORD_KEEP_LOG ? openSync(process.env.PTSCOPE_RECORD_KEEP_LOG, 'w') : null;
    let printed: ProgramOutput = { stdout: '', stderr: '' };
    let failure: Error | null = null;
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      kill();
    };
    opts.signal?.addEventListener('abort', onAbort);
    const child = run.start();
    if (typeof opts.stdin === 'object') opts.stdin.feed(child.stdin!);
    closeSync(logWrite);
    logWrite = null;
    const handedOut = run.collected();
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit, reject) => {
      child.on('error', (e) => reject(new RecordError(`record: cannot start the sandbox: ${e.message}`)));
      printed = followOutput(child, shown);
      // Read the FIFO as a non-blocking stream (epoll): much faster than fs
      // reads on the thread pool. The stream ends when every holder of the
      // write end (qemu, the sandbox's wrapper) has exited.
      const log = new Socket({ fd: logRead!, readable: true, writable: false });
      logRead = null;
      let logDone = false;
      let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
      const settle = (): void => {
        if (logDone && exited !== null) {
          if (timer) clearTimeout(timer);
          resolveExit(exited);
        }
      };
      log.on('error', (e) => {
        failure ??= e;
        logDone = true;
        settle();
      });
      log.on('close', () => {
        logDone = true;
        settle();
      });
      log.on('data', (chunk: Buffer | string) => {
        if (typeof chunk === 'string') return;
        if (keepLog !== null) writeSync(keepLog, chunk);
        if (failure !== null || path.stopped) return;
        try {
          parser.feed(chunk);
        } catch (e) {
          failure = e as Error;
          kill();
        }
      });
      const timer = wallClockLimit(opts.timeoutSec, () => {
        stopped ??= 'timeout';
        kill();
      });
      child.on('close', (code, signal) => {
        if (typeof opts.stdin === 'object') opts.stdin.detach();
        exited = { code, signal };
        settle();
      });
    });
    opts.signal?.removeEventListener('abort', onAbort);
    if (aborted) throw new RecordError('record: interrupted');
    if (failure !== null) throw recordingFailed(failure);
    if (!placed) {
      const why = printed.stderr.trim().split('\n').pop() ?? '';
      throw new RecordError(`record: the program did not start under ${QEMU}${why ? `: ${why}` : ''}`);
    }
    try {
      parser.end();
    } catch (e) {
      throw recordingFailed(e);
    }
    const unfinished = parser.unfinishedSyscall;
    if (stopped === null && unfinished !== null && unfinished !== 'exit' && unfinished !== 'exit_group') {
      warnings.push(`the emulator's log ended inside the syscall ${unfinished}: what the program did after it is not recorded`);
    }
    // What the run handed out: qemu's core of the guest, and executables the program wrote.
    const handed = await handedOut;
    files.addMade(handed);
    // One process: at most one core.
    const core = keepCore(readCores(handed, warnings), staging);
    path.finish(core !== null && stopped === null ? core.rip : null, stopped === 'timeout');
    const written = out.finish();
    const hash = settings.snapshot ? session.hashFrom(written.start) : session.traced;

    const { status, signal } = programExit(exit, stopped, core, path.stats.signals.length > 0);

    // Images: copy each file once, as the program saw it.
    mkdirSync(join(staging, 'images'));
    const images = writeAddressSpaceImages(staging, memory, files, new Map(), warnings);
    warnings.push(...memory.warnings, ...path.warnings);
    const limitStop = limitStopWarning(stopped, { timeoutSec: opts.timeoutSec, maxInsns: opts.maxInsns ?? DEFAULT_MAX_INSNS, maxTraceBytes, maxRecorderBytes }, false);
    if (limitStop !== null) warnings.push(limitStop);
    if (path.stats.inexactFaults > 0) warnings.push(`${path.stats.inexactFaults} fault or signal position(s) could not be located exactly`);
    if (path.stats.unmappedTbs > 0) warnings.push(`${path.stats.unmappedTbs} TB executions at addresses no image maps`);

    const epochs = imageEpochs(session.epochs, memory.runtime, images.filter((im) => im.runtime != null).length, written.start);
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      recorder: 'qemu',
      program: { argv: opts.argv, path: guestProgram, cwd: run.scratch },
      exit: { status, signal, stopped },
      trace: { file: TRACE_NAME, bytes: written.size, fullBytes: written.fullSize, snapshotStart: written.start, ...withEpochs(epochs) },
      instructions: { executed: path.stats.instructions, traced: hash.count, fnv1a64: hash.hex() },
      addressSpace: { mode: '64-bit', cpl: 'user', cr3: null },
      images,
      config: manifestConfig(opts, opts.sandbox, maxTraceBytes, limits, LOG_ITEMS),
      encoder: manifestEncoder(timing),
      decode: decodeCommands(images, TRACE_NAME, epochs),
      stats: {
        tbExecutions: path.stats.tbExecutions,
        translations: path.stats.translations,
        signals: path.stats.signals,
        logBytes: parser.bytesParsed,
      },
      warnings,
    };
    publishBundle(staging, output, manifest, opts);
    // A thread, a forked process or an exec: recorded again with one log per
    // thread and the exec follower (record()), whose warnings are the ones that count.
    const startsTasks = stopped === 'clone' || stopped === 'exec';
    if (!(startsTasks && opts.sandbox)) for (const w of warnings) notice(`warning: ${w}`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { bundle: output, manifest, stdout: printed.stdout, stderr: printed.stderr, seconds, startsTasks };
  } finally {
    for (const fd of [logRead, logWrite, keepLog, stdinFd]) if (typeof fd === 'number') closeSync(fd);
    (fifos as ThreadFifos | null)?.destroy();
    (run as ConfinedRun | null)?.dispose();
    rmSync(staging, { recursive: true, force: true });
    rmSync(logDir, { recursive: true, force: true });
  }
}

/** The log shim for a one-log recording, or null (no compiler: qemu's log then stays at descriptor 4). */
function oneLogShim(notice: (line: string) => void): string | null {
  try {
    return buildNativeShim('qemu-log-shim', "emulator's log shim");
  } catch (e) {
    notice(`warning: the emulator's log stays at a low descriptor, where a script's own (exec 3>&1) meets it (${(e as Error).message.split('\n')[0]})`);
    return null;
  }
}
