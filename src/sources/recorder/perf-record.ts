/**
 * The hardware recorder: perf records the program with Intel PT
 * (`perf record -e intel_pt//u`, its command line from perf-command.ts),
 * and the bundle keeps perf.data. Turning that into trace.pt + images is the
 * perf.data importer's job (manifest `perf.imported: false` marks the seam).
 *
 * The program runs through the same confined run as under emulation
 * (confined-run.ts): perf is the run's supervisor, so its workload is bwrap's
 * command line (or, with --no-sandbox, the wrapper under the same resource
 * limits). perf stays outside the sandbox: the sandbox's seccomp filter
 * denies perf_event_open to everything inside it (and perf in a user
 * namespace without capabilities would meet perf_event_paranoid), so the
 * program is confined exactly as under emulation, with no way to open perf
 * events of its own. perf's events are inherited by every process of its
 * workload, across the sandbox's namespaces, and perf writes perf.data to
 * the bundle's staging directory on the host. The trace therefore also
 * holds the user-space code of the sandbox's launcher (bwrap, the wrapper
 * shell, prlimit) before the program's exec; the sideband's COMM and MMAP
 * records tell them apart.
 *
 * --timeout: perf record has no time limit of its own. The recorder sends
 * perf SIGINT, as Ctrl-C would (perf then ends its workload with SIGTERM),
 * and kills everything inside the sandbox through its lifeline (bwrap can
 * outlive a SIGTERM during its set-up); perf sees its workload end and
 * completes perf.data. Should perf not end, the run is killed after a
 * grace period and nothing is kept.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ElfFile } from '../../flow/elf.js';
import { FILE_HEADER_SIZE, PERF_MAGIC } from '../perf-data/header.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, type BundleManifest } from './bundle.js';
import { confinementRequest } from './confinement-request.js';
import type { ConfinedRun } from './confined-run.js';
import { perfRecordArgs, type IntelPtCaps } from './perf-command.js';
import { DEFAULT_LIMITS, type ResourceLimits } from './resource-limits.js';
import { confinedRun, DEFAULT_MAX_TRACE_BYTES, followOutput, openStdin, publishBundle, RecordError, wallClockLimit } from './record-support.js';
import type { RecordOptions, RecordResult } from './record-options.js';

/** perf.data's name in the bundle. */
export const PERF_DATA_NAME = 'perf.data';
/** How long perf may take to end its workload and complete perf.data after SIGINT. */
const PERF_GRACE_MS = 10_000;

export interface PerfRecording {
  opts: RecordOptions;
  /** perf's executable (absolute). */
  perf: string;
  caps: IntelPtCaps;
  /** The program's host file and its ELF. */
  program: string;
  exe: { bytes: Buffer; elf: ElfFile };
  /** The bundle directory to create. */
  output: string;
}

/**
 * True if `path` is a completed perf.data: its magic, and a data section
 * whose size perf filled in (perf writes the header first with size 0, and
 * rewrites it when the recording ends: header.ts).
 */
function isCompletePerfData(path: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(FILE_HEADER_SIZE);
    if (readSync(fd, head, 0, FILE_HEADER_SIZE, 0) !== FILE_HEADER_SIZE) return false;
    // struct perf_file_header: magic, size, attr_size, attrs {offset, size}, data {offset, size}.
    return head.readBigUInt64LE(0) === PERF_MAGIC && head.readBigUInt64LE(48) > 0n;
  } finally {
    closeSync(fd);
  }
}

export async function recordWithPerf(r: PerfRecording): Promise<RecordResult> {
  const { opts, output } = r;
  const notice = opts.notice ?? ((l: string) => process.stderr.write(`ptscope: ${l}\n`));
  const started = process.hrtime.bigint();
  if (opts.signal?.aborted) throw new RecordError('record: interrupted');
  const staging = mkdtempSync(join(dirname(output), `.${basename(output)}.partial-`));
  const perfData = join(staging, PERF_DATA_NAME);
  let run: ConfinedRun | null = null;
  let stdinFd: number | 'pipe' | null = null;
  try {
    // Refusals first: nothing runs for an option perf cannot honour.
    const args = perfRecordArgs({ opts, caps: r.caps, program: { path: r.program, elf: r.exe.elf }, perfData });
    const request = confinementRequest(opts, r.program, r.exe, notice);
    const limits: ResourceLimits = { ...DEFAULT_LIMITS, ...opts.limits };
    stdinFd = openStdin(opts.stdin) ?? null;
    run = confinedRun({
      command: request.guestArgv,
      sandbox: opts.sandbox,
      view: request.view,
      limits,
      env: opts.guestEnv,
      stdin: stdinFd ?? undefined,
      output: opts.stdio ?? 'inherit',
      collect: {},
      timeoutSec: 0,
      live: true,
      supervisor: [r.perf, ...args],
    });
    const confined = run;
    const warnings = [...confined.notes];
    const child = confined.start();
    if (typeof opts.stdin === 'object') opts.stdin.feed(child.stdin!);
    const printed = followOutput(child, null);
    let timedOut = false;
    let aborted = false;
    let grace: NodeJS.Timeout | null = null;
    let perfKilled = false;
    const timer = wallClockLimit(opts.timeoutSec, () => {
      timedOut = true;
      child.kill('SIGINT');
      confined.killInside();
      grace = setTimeout(() => {
        perfKilled = true;
        confined.kill();
      }, PERF_GRACE_MS);
    });
    const onAbort = (): void => {
      aborted = true;
      confined.kill();
    };
    opts.signal?.addEventListener('abort', onAbort);
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      exit = await new Promise((resolveExit, reject) => {
        child.on('error', (e) => reject(new RecordError(`record: cannot start perf: ${e.message}`)));
        // When perf has ended, so has the recording: whatever is left of the
        // program (unconfined, its own children) is killed, and its output pipes close.
        child.on('exit', () => confined.kill());
        child.on('close', (code, signal) => resolveExit({ code, signal }));
      });
    } finally {
      if (timer !== null) clearTimeout(timer);
      if (grace !== null) clearTimeout(grace);
      opts.signal?.removeEventListener('abort', onAbort);
      if (typeof opts.stdin === 'object') opts.stdin.detach();
    }
    if (aborted) throw new RecordError('record: interrupted');
    if (perfKilled) throw new RecordError(`record: perf did not end within ${PERF_GRACE_MS / 1000} s of the timeout and was killed, so perf.data is incomplete; nothing was kept (try --emulate)`);
    if (!isCompletePerfData(perfData)) {
      const why = printed.stderr.trim().split('\n').pop() ?? '';
      throw new RecordError(`record: perf did not complete perf.data (exit ${exit.code ?? exit.signal})${why ? `: ${why}` : ''}; nothing was kept (try --emulate)`);
    }

    const maxTraceBytes = opts.snapshotBytes > 0 ? 0 : opts.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES;
    const stopped = timedOut ? 'timeout' : maxTraceBytes > 0 && statSync(perfData).size >= maxTraceBytes ? 'trace-size' : null;
    if (stopped === 'timeout') warnings.push(`recording stopped: the program ran for --timeout ${opts.timeoutSec} s; the trace up to there is kept`);
    if (stopped === 'trace-size') warnings.push(`recording stopped: perf.data reached --max-trace-size (${maxTraceBytes} bytes); the trace up to there is kept`);
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      version: BUNDLE_VERSION,
      recorder: 'perf',
      program: { argv: opts.argv, path: request.guestProgram, cwd: confined.scratch },
      // perf passes its workload's status on; a stopped program has none of its own.
      exit: { status: stopped === null ? exit.code : null, signal: stopped === null ? exit.signal : null, stopped },
      trace: null,
      perf: { file: PERF_DATA_NAME, imported: false },
      instructions: null,
      addressSpace: { mode: '64-bit', cpl: 'user', cr3: null },
      images: [],
      config: {
        perfArgs: args.map((a) => (a === perfData ? PERF_DATA_NAME : a)),
        sandbox: opts.sandbox,
        timeoutSec: opts.timeoutSec,
        maxTraceBytes,
        limits,
        filters: opts.ranges.map((x) => ({ from: '0x' + x.from.toString(16), to: '0x' + x.to.toString(16) })),
        snapshotBytes: opts.snapshotBytes,
      },
      encoder: null,
      decode: null,
      stats: {},
      warnings,
    };
    publishBundle(staging, output, manifest, opts);
    for (const w of warnings) notice(`warning: ${w}`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { bundle: output, manifest, stdout: printed.stdout, stderr: printed.stderr, seconds };
  } finally {
    if (typeof stdinFd === 'number') closeSync(stdinFd);
    (run as ConfinedRun | null)?.dispose();
    rmSync(staging, { recursive: true, force: true });
  }
}
