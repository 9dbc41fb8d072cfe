/**
 * `ptscope record`: run a program and write a trace bundle (bundle.ts).
 *
 * With hardware Intel PT (/sys/bus/event_source/devices/intel_pt) it runs
 * `perf record -e intel_pt//u` and keeps perf.data (importing it into
 * trace.pt is the perf.data importer's job). Everywhere else it emulates:
 * the program runs under qemu-user with TB logging streamed through a pipe
 * (`-D /proc/self/fd/3`, never stored), the executed path is rebuilt
 * (path-reconstruction.ts) and encoded as a user-only PT trace
 * (pt-encoder-session.ts).
 *
 * The bundle is built in a temporary directory beside the output and
 * renamed into place at the end, so a failed recording never leaves a
 * bundle that looks complete.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, chmodSync, closeSync, constants, copyFileSync, openSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { bundleImages, BUNDLE_FORMAT, BUNDLE_VERSION, decodeCommands, MANIFEST_NAME, TRACE_NAME, type BundleManifest } from './bundle.js';
import { takeQemuCore } from './core-dump.js';
import { MemoryMap } from './memory-map.js';
import { PathReconstruction } from './path-reconstruction.js';
import { DEFAULT_TIMING, PtEncoderSession, type EncoderSettings, type TimingSettings } from './pt-encoder-session.js';
import { QemuLogParser } from './qemu-log.js';
import { sandboxArgv, sandboxUnavailable } from './sandbox.js';
import { TraceOutput } from './trace-output.js';

/** A recording that cannot be made: one line for the user. */
export class RecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordError';
  }
}

export interface RecordOptions {
  /** Program and arguments. */
  argv: string[];
  /** Bundle directory to create. */
  output: string;
  /** Replace an existing output directory. */
  force?: boolean;
  sandbox: boolean;
  /** Wall-clock limit in seconds (0: none). */
  timeoutSec: number;
  /** Instruction budget. */
  maxInsns: number;
  psbPeriod: number;
  retCompression: boolean;
  longTnt: boolean;
  ranges: Array<{ from: number; to: number }>;
  timing: Partial<TimingSettings>;
  /** Snapshot ring size in bytes (0: keep the whole trace). */
  snapshotBytes: number;
  /** Use perf and hardware PT when available (default), or always emulate. */
  hardware?: boolean;
  /** Where the target's stdout/stderr go (default: inherited). */
  stdio?: 'inherit' | 'pipe' | 'ignore';
  /** A file the target reads as its standard input (default: none, like /dev/null). */
  stdin?: string;
  /**
   * Variables added to the target's environment only (qemu's QEMU_SET_ENV,
   * so the emulator itself is unaffected), e.g. an LD_PRELOAD shim. Values
   * must not contain commas.
   */
  guestEnv?: Record<string, string>;
  /** More host files the confined target may read (bound read-only at the same path). */
  readOnlyPaths?: string[];
  /**
   * Give the target only a fixed minimal environment (PATH, plus `guestEnv`)
   * instead of the recorder's own, so that its initial stack is the same on
   * every machine (reproducible recordings, e.g. of crashes).
   */
  cleanEnv?: boolean;
  /** One-line notices (emulation in use, warnings); default stderr. */
  notice?: (line: string) => void;
}

export interface RecordResult {
  bundle: string;
  manifest: BundleManifest;
  /** Captured output when stdio is 'pipe'. */
  stdout: string;
  stderr: string;
  /** Recording wall time in seconds. */
  seconds: number;
}

export const INTEL_PT_SYSFS = '/sys/bus/event_source/devices/intel_pt';
const QEMU = 'qemu-x86_64';
const LOG_ITEMS = 'in_asm,exec,nochain,page,strace';

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

function checkElf(path: string): void {
  let head: Buffer;
  try {
    head = readFileSync(path).subarray(0, 20);
  } catch (e) {
    throw new RecordError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) {
    throw new RecordError(`${path} is not an ELF executable (run scripts through their interpreter, e.g. 'python3 script.py')`);
  }
  if (head[4] !== 2 || head.readUInt16LE(18) !== 62) throw new RecordError(`${path} is not an x86-64 ELF executable`);
}

export async function record(opts: RecordOptions): Promise<RecordResult> {
  const notice = opts.notice ?? ((l: string) => process.stderr.write(`ptscope: ${l}\n`));
  if (opts.argv.length === 0) throw new RecordError('record: no program given');
  const program = findOnPath(opts.argv[0]);
  if (program === null) throw new RecordError(`record: program not found: ${opts.argv[0]}`);
  checkElf(program);
  const output = resolve(opts.output);
  if (existsSync(output)) {
    if (!opts.force) throw new RecordError(`record: ${output} already exists (use --force to replace it)`);
  }
  const parent = dirname(output);
  if (!existsSync(parent)) throw new RecordError(`record: directory ${parent} does not exist`);

  if (opts.hardware !== false && existsSync(INTEL_PT_SYSFS)) return recordWithPerf(opts, program, output);
  if (findOnPath(QEMU) === null) throw new RecordError(`record: ${QEMU} not found: install qemu-user (Debian package qemu-user)`);
  notice('no Intel PT on this machine: recording under emulation (qemu-user)');
  return recordEmulated(opts, program, output);
}

/** Paths on the command line under /tmp (hidden by the sandbox's private /tmp) to bind read-only. */
function visibleInputs(argv: string[], program: string): { argv: string[]; readOnly: string[] } {
  const readOnly = new Set<string>();
  const out = [program];
  if (program.startsWith('/tmp/')) readOnly.add(program);
  for (const a of argv.slice(1)) {
    if (!a.startsWith('-') && existsSync(a)) {
      const abs = resolve(a);
      if (abs.startsWith('/tmp/')) readOnly.add(abs);
      out.push(abs);
    } else {
      out.push(a);
    }
  }
  return { argv: out, readOnly: [...readOnly] };
}

async function recordEmulated(opts: RecordOptions, program: string, output: string): Promise<RecordResult> {
  const notice = opts.notice ?? ((l: string) => process.stderr.write(`ptscope: ${l}\n`));
  const started = process.hrtime.bigint();
  const staging = mkdtempSync(join(dirname(output), `.${basename(output)}.partial-`));
  const workDir = mkdtempSync(join(tmpdir(), 'ptscope-target-'));
  // The log streams through a FIFO (Node's stdio pipes are sockets, which
  // qemu cannot open by path); it is shown read-only inside the sandbox.
  const fifoDir = mkdtempSync(join(tmpdir(), 'ptscope-log-'));
  try {
    const fifo = join(fifoDir, 'qemu.log');
    const mk = spawnSync('mkfifo', ['-m', '0600', fifo]);
    if (mk.status !== 0) throw new RecordError(`record: cannot create a FIFO in ${fifoDir}`);
    const { argv, readOnly } = visibleInputs(opts.argv, program);
    readOnly.push(fifoDir);
    for (const p of opts.readOnlyPaths ?? []) readOnly.push(resolve(p));
    const inner = ['/bin/sh', '-c', 'ulimit -c unlimited 2>/dev/null; exec "$@"', 'sh', QEMU, '-d', LOG_ITEMS, '-D', fifo, ...argv];
    let command: string[];
    if (opts.sandbox) {
      const why = sandboxUnavailable(workDir);
      if (why !== null) throw new RecordError(`record: ${why}; install bubblewrap, or pass --no-sandbox to run the program unconfined`);
      command = sandboxArgv({ workDir, readOnly }, inner);
    } else {
      notice('warning: --no-sandbox: the program runs unconfined, with your network and files');
      command = inner;
    }

    const timing: TimingSettings = { ...DEFAULT_TIMING, ...opts.timing };
    const settings: EncoderSettings = {
      psbPeriod: opts.psbPeriod,
      retCompression: opts.retCompression,
      longTnt: opts.longTnt,
      ranges: opts.ranges,
      timing,
      snapshot: opts.snapshotBytes > 0,
    };
    const tracePath = join(staging, TRACE_NAME);
    const out = new TraceOutput(tracePath, opts.snapshotBytes);
    const session = new PtEncoderSession(out, settings);
    const memory = new MemoryMap(program, workDir);
    let child: ReturnType<typeof spawn> | null = null;
    let stopped: 'budget' | 'timeout' | 'exec' | null = null;
    const kill = (): void => {
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const path = new PathReconstruction(session, memory, opts.maxInsns, () => {
      stopped = path.stopReason;
      kill();
    });
    let placed = false;
    const parser = new QemuLogParser({
      translated: (tb) => path.translated(tb),
      executed: (cpu, ptr, pc) => {
        if (!placed) {
          placed = true;
          if (!memory.placeLoadedElves()) throw new Error('qemu log: no load layout (start_code/entry) before the first instruction');
        }
        path.executed(cpu, ptr, pc);
      },
      syscall: (line) => path.syscall(line),
      signal: (name, code, addr) => path.signal(name, code, addr),
      layout: (name, value) => path.layout(name, value),
    });

    // Debugging aid: PTSCOPE_RECORD_KEEP_LOG=FILE keeps a copy of qemu's log.
    const keepLog = process.env.PTSCOPE_RECORD_KEEP_LOG ? openSync(process.env.PTSCOPE_RECORD_KEEP_LOG, 'w') : null;
    const stdio = opts.stdio ?? 'inherit';
    const stdinFd = openStdin(opts.stdin);
    let stdoutText = '';
    let stderrText = '';
    let failure: Error | null = null;
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit, reject) => {
      child = spawn(command[0], command.slice(1), {
        stdio: [stdinFd ?? 'ignore', stdio, stdio],
        cwd: workDir,
        env: guestEnvironment(opts.guestEnv, opts.cleanEnv ?? false),
      });
      child.on('error', (e) => reject(new RecordError(`record: cannot start ${command[0]}: ${e.message}`)));
      if (stdio === 'pipe') {
        child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdoutText += d));
        child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderrText += d));
      }
      // Read the FIFO as a non-blocking stream (epoll): much faster than
      // fs reads on the thread pool. Linux reports no hang-up on a FIFO
      // that never had a writer, so opening before qemu does is safe.
      const log = new Socket({ fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false });
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
        if (failure !== null) return;
        try {
          parser.feed(chunk);
        } catch (e) {
          failure = e as Error;
          kill();
        }
      });
      const timer = opts.timeoutSec > 0
        ? setTimeout(() => {
            stopped ??= 'timeout';
            kill();
          }, opts.timeoutSec * 1000)
        : null;
      child.on('close', (code, signal) => {
        exited = { code, signal };
        // If qemu never opened the log, a writer that comes and goes ends the stream.
        try {
          closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
        } catch {
          // the stream has ended already
        }
        settle();
      });
    });
    if (keepLog !== null) closeSync(keepLog);
    if (failure !== null) throw new RecordError(`record: cannot follow the emulator's log: ${(failure as Error).message}`);
    if (!placed) {
      const why = stderrText.trim().split('\n').pop() ?? '';
      throw new RecordError(`record: the program did not start under ${QEMU}${why ? `: ${why}` : ''}`);
    }
    parser.end();
    // The guest's core (when it died of a signal) goes into the bundle as `core`.
    const core = takeQemuCore(workDir, join(staging, 'core'));
    path.finish(core !== null && stopped === null ? core.rip : null, stopped === 'timeout');
    const written = out.finish();
    const hash = settings.snapshot ? session.hashFrom(written.start) : session.traced;

    // Exit: qemu re-raises the target's fatal signal; bwrap reports it as 128 + signal.
    let signal: string | null = null;
    let status: number | null = exit.code;
    if (core !== null) signal = SIGNAL_NAMES[core.signal] ?? `SIG${core.signal}`;
    else if (exit.signal !== null && stopped === null) signal = exit.signal;
    else if (exit.code !== null && exit.code > 128 && stopped === null && path.stats.signals.length > 0) {
      signal = SIGNAL_NAMES[exit.code - 128] ?? null;
    }
    if (signal !== null) status = null;

    // Images: copy each file once.
    const imagesDir = join(staging, 'images');
    mkdirSync(imagesDir);
    const copies = new Map<string, string>();
    for (const m of memory.images()) {
      if (copies.has(m.path)) continue;
      const name = `images/${copies.size}-${basename(m.path)}`;
      copyFileSync(m.path, join(staging, name));
      copies.set(m.path, name);
    }
    const images = bundleImages(memory.images(), copies);
    const warnings = [...memory.warnings];
    if (path.stats.otherThreadTbs > 0) warnings.push(`threads: ${path.stats.otherThreadTbs} TB executions of other threads are not traced`);
    if (path.stats.inexactFaults > 0) warnings.push(`${path.stats.inexactFaults} fault or signal position(s) could not be located exactly`);
    if (path.stats.unmappedTbs > 0) warnings.push(`${path.stats.unmappedTbs} TB executions at addresses no image maps`);

    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      recorder: 'qemu',
      program: { argv: opts.argv, path: program, cwd: workDir },
      exit: { status, signal, stopped },
      trace: { file: TRACE_NAME, bytes: written.size, fullBytes: written.fullSize, snapshotStart: written.start },
      instructions: { executed: path.stats.instructions, traced: hash.count, fnv1a64: hash.hex() },
      addressSpace: { mode: '64-bit', cpl: 'user', cr3: null },
      images,
      config: {
        sandbox: opts.sandbox,
        timeoutSec: opts.timeoutSec,
        maxInsns: opts.maxInsns,
        filters: opts.ranges.map((r) => ({ from: '0x' + r.from.toString(16), to: '0x' + r.to.toString(16) })),
        snapshotBytes: opts.snapshotBytes,
        psbPeriod: opts.psbPeriod,
        retCompression: opts.retCompression,
        longTnt: opts.longTnt,
        timing: { tsc: timing.tsc, mtc: timing.mtc, cyc: timing.cyc },
        qemuLog: LOG_ITEMS,
      },
      encoder: {
        cpu: 'none',
        mtcFreq: timing.mtcFreq,
        cpuid15: { eax: 1, ebx: timing.ctcRatio },
        nominalFreq: null,
        tscBase: timing.tscBase,
      },
      decode: decodeCommands(images, TRACE_NAME),
      stats: {
        tbExecutions: path.stats.tbExecutions,
        translations: path.stats.translations,
        signals: path.stats.signals,
        logBytes: parser.bytesParsed,
      },
      warnings,
    };
    writeFileSync(join(staging, MANIFEST_NAME), JSON.stringify(manifest, null, 2) + '\n');
    chmodSync(staging, 0o755);
    if (existsSync(output)) rmSync(output, { recursive: true, force: true });
    renameSync(staging, output);
    for (const w of warnings) notice(`warning: ${w}`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { bundle: output, manifest, stdout: stdoutText, stderr: stderrText, seconds };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    rmSync(workDir, { recursive: true, force: true });
    rmSync(fifoDir, { recursive: true, force: true });
  }
}

/**
 * Hardware path: perf with Intel PT, user space only. The bundle keeps
 * perf.data; turning it into trace.pt + images is the perf.data importer's
 * job (manifest `perf.imported: false` marks the seam).
 */
async function recordWithPerf(opts: RecordOptions, program: string, output: string): Promise<RecordResult> {
  const started = process.hrtime.bigint();
  if (findOnPath('perf') === null) throw new RecordError('record: Intel PT is present but perf is not installed (or pass --emulate)');
  const staging = mkdtempSync(join(dirname(output), `.${basename(output)}.partial-`));
  try {
    const perfData = join(staging, 'perf.data');
    const args = ['record', '-q', '-e', 'intel_pt//u', '-o', perfData, '--', program, ...opts.argv.slice(1)];
    const res = spawnSync('perf', args, {
      stdio: [openStdin(opts.stdin) ?? 'ignore', opts.stdio ?? 'inherit', opts.stdio ?? 'inherit'],
      encoding: 'utf8',
      timeout: opts.timeoutSec > 0 ? opts.timeoutSec * 1000 : undefined,
    });
    if (res.error) throw new RecordError(`record: perf failed: ${res.error.message}`);
    if (!existsSync(perfData)) throw new RecordError(`record: perf wrote no perf.data (exit ${res.status})`);
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      recorder: 'perf',
      program: { argv: opts.argv, path: program, cwd: process.cwd() },
      exit: { status: res.status, signal: res.signal, stopped: null },
      trace: null,
      perf: { file: 'perf.data', imported: false },
      instructions: null,
      addressSpace: { mode: '64-bit', cpl: 'user', cr3: null },
      images: [],
      config: { perfArgs: args.slice(0, 5) },
      encoder: null,
      decode: null,
      stats: {},
      warnings: [],
    };
    writeFileSync(join(staging, MANIFEST_NAME), JSON.stringify(manifest, null, 2) + '\n');
    if (existsSync(output)) rmSync(output, { recursive: true, force: true });
    renameSync(staging, output);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { bundle: output, manifest, stdout: res.stdout ?? '', stderr: res.stderr ?? '', seconds };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

const SIGNAL_NAMES: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
  24: 'SIGXCPU', 25: 'SIGXFSZ', 31: 'SIGSYS',
};

/** Open the target's standard input file; a missing file is a one-line error. */
function openStdin(path: string | undefined): number | undefined {
  if (path === undefined) return undefined;
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new RecordError(`record: cannot read the standard input file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The recorder's environment with `guestEnv` passed to the target through qemu. */
function guestEnvironment(guestEnv: Record<string, string> | undefined, clean: boolean): NodeJS.ProcessEnv | undefined {
  const base: NodeJS.ProcessEnv = clean ? { PATH: '/usr/local/bin:/usr/bin:/bin' } : process.env;
  if (!guestEnv || Object.keys(guestEnv).length === 0) return clean ? base : undefined;
  const pairs = Object.entries(guestEnv).map(([k, v]) => {
    if (k.includes('=') || k.includes(',') || v.includes(',')) throw new RecordError(`record: guest environment ${k}: no '=' or ',' allowed`);
    return `${k}=${v}`;
  });
  const existing = base.QEMU_SET_ENV;
  return { ...base, QEMU_SET_ENV: existing ? `${existing},${pairs.join(',')}` : pairs.join(',') };
}
