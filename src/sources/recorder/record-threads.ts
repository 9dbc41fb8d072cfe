/**
 * The emulated recording of a program that starts threads or processes:
 * qemu-user writes one log per thread (`-d ...,tid`, thread-fifos.ts), and
 * task-tracer.ts turns each into its own PT stream. The bundle is manifest
 * version 2 (processes, threads, one stream per thread; ../bundle/manifest.ts)
 * unless only one thread ran, which is written as version 1 like a one-log
 * recording.
 *
 * Only inside the sandbox: its PID namespace keeps tids small, so a FIFO
 * for each exists beforehand (record.ts records unconfined programs with one
 * log, up to their first clone).
 */
import { closeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ElfFile } from '../../flow/elf.js';
import type { ManifestV2 } from '../bundle/manifest.js';
import { BUNDLE_FORMAT, decodeCommands, TRACE_NAME, type BundleImage, type BundleManifest } from './bundle.js';
import { imageEpochs, withEpochs, writeAddressSpaceImages } from './bundle-images.js';
import { ConfinedRun } from './confined-run.js';
import { confinementRequest } from './confinement-request.js';
import { GuestFiles } from './guest-files.js';
import { MemoryMap } from './memory-map.js';
import type { StopReason } from './path-reconstruction.js';
import { DEFAULT_MAX_INSNS, type RecordOptions, type RecordResult } from './record-options.js';
import {
  confinedRun, crashIps, keepCore, keepOtherCores, readCores, limitStopWarning, DEFAULT_MAX_RECORDER_BYTES, DEFAULT_MAX_TRACE_BYTES, errorText, guestEnvArgs, LOG_ITEMS,
  encoderSettings, followOutput, manifestConfig, manifestEncoder, publishBundle, openStdin, type ProgramOutput, QEMU, RecordError, recordingFailed, programExit, coreSignalName, wallClockLimit,
} from './record-support.js';
import type { ResourceLimits } from './resource-limits.js';
import { TaskTracer, type TracedProcess } from './task-tracer.js';
import { MAX_TASK_ID, THREAD_LOG_TEMPLATE, ThreadFifos } from './thread-fifos.js';
import { execFollowing } from './exec-follow.js';
import { INPUT_LIMITS, readBoundedFile } from '../import/safe-files.js';
import type { ShownOutput } from './shown-output.js';

export async function recordThreads(
  opts: RecordOptions,
  program: string,
  exe: { bytes: Buffer; elf: ElfFile },
  qemu: string,
  output: string,
  staging: string,
  logDir: string,
  limits: ResourceLimits,
  started: bigint,
  keepFifos: (f: ThreadFifos) => void,
  keepRun: (r: ConfinedRun) => void,
  shown: ShownOutput | null,
): Promise<RecordResult> {
  const notice = opts.notice ?? ((l: string) => process.stderr.write(`ptscope: ${l}\n`));
  // The first run already said which arguments were not shown.
  const { guestProgram, guestArgv, view } = confinementRequest({ ...opts, sandbox: true }, program, exe, () => {});

  let failure: Error | null = null;
  let tracer: TaskTracer | null = null;
  let kill = (): void => {};
  const fifos = new ThreadFifos(join(logDir, 'threads'), (tid, chunk) => {
    if (failure !== null || tracer === null) return;
    try {
      tracer.feed(tid, chunk);
    } catch (e) {
      failure = e as Error;
      kill();
    }
  }, (e) => {
    failure ??= e;
  });
  keepFifos(fifos);

  // The log shim and the exec follower (exec-follow.ts) follow forks and
  // execs; without gcc to build them, the recording stops there as before.
  const copies = join(logDir, 'exec-copies');
  mkdirSync(copies, { mode: 0o700 });
  const follow = execFollowing({ qemu, logItems: `${LOG_ITEMS},tid`, logTemplate: THREAD_LOG_TEMPLATE, maxTaskId: MAX_TASK_ID, copies, sandbox: opts.sandbox, notice });
  const stdinFd = openStdin(opts.stdin) ?? null;
  const run = confinedRun({
    // LD_PRELOAD is qemu's own: -U keeps it from the program's environment.
    command: [...follow.preload, qemu, '-U', 'LD_PRELOAD', '-d', `${LOG_ITEMS},tid`, '-D', THREAD_LOG_TEMPLATE, ...guestEnvArgs(opts.guestEnv), ...guestArgv],
    sandbox: true,
    view: { ...view, helpers: follow.place },
    supervisor: follow.supervisor,
    handedIn: fifos.handedIn,
    limits,
    stdin: stdinFd ?? undefined,
    output: shown !== null ? 'pipe' : opts.stdio ?? 'inherit',
    collect: { core: true, executables: true },
    timeoutSec: 0,
    live: true,
  });
  keepRun(run);
  kill = (): void => run.kill();
  const warnings: string[] = [
    ...run.notes,
    'threads and processes were recorded from one log per thread: each thread of the emulator writes its log through a descriptor whose number the recorder does not learn, so a write there by the program is caught only by the log\'s consistency checks (a one-thread recording also checks the descriptor)',
  ];

  const settings = encoderSettings(opts);
  const timing = settings.timing;
  const maxRecorderBytes = opts.maxRecorderBytes ?? DEFAULT_MAX_RECORDER_BYTES;
  const maxTraceBytes = opts.maxTraceBytes ?? DEFAULT_MAX_TRACE_BYTES;
  const files = new GuestFiles(run.view, maxRecorderBytes);
  const memory = new MemoryMap(guestProgram, run.scratch, files);
  let stopped: StopReason | 'timeout' | null = null;
  tracer = new TaskTracer({
    dir: staging,
    firstFile: TRACE_NAME,
    settings,
    snapshotBytes: opts.snapshotBytes,
    memory,
    maxInsns: opts.maxInsns ?? DEFAULT_MAX_INSNS,
    maxBlockBytes: maxRecorderBytes,
    overLimit: (out) => (maxTraceBytes > 0 && opts.snapshotBytes === 0 && out.offset >= maxTraceBytes ? 'trace-size' : null),
    onStop: (reason) => {
      stopped ??= reason;
      kill();
    },
    followForks: follow.forks,
    followExecs: follow.execs,
    newMemory: (path, copy) => {
      if (copy !== '') {
        // A program with no path to read (a memfd, a deleted file), copied by the follower before it ran.
        try {
          files.addMade(new Map([[path, readBoundedFile(join(copies, copy), INPUT_LIMITS.imageBytes, path)]]));
        } catch (e) {
          warnings.push(`${path}: the copy of the program could not be read (${errorText(e)})`);
        }
      }
      return new MemoryMap(path, run.scratch, files);
    },
  });

  let printed: ProgramOutput = { stdout: '', stderr: '' };
  let aborted = false;
  const onAbort = (): void => {
    aborted = true;
    kill();
  };
  opts.signal?.addEventListener('abort', onAbort);
  let exit: { code: number | null; signal: NodeJS.Signals | null };
  try {
    const child = run.start();
    if (typeof opts.stdin === 'object') opts.stdin.feed(child.stdin!);
    const handedOut = run.collected();
    exit = await new Promise((resolveExit, reject) => {
      child.on('error', (e) => reject(new RecordError(`record: cannot start the sandbox: ${e.message}`)));
      printed = followOutput(child, shown);
      const timer = wallClockLimit(opts.timeoutSec, () => {
        stopped ??= 'timeout';
        kill();
      });
      child.on('close', (code, signal) => {
        if (typeof opts.stdin === 'object') opts.stdin.detach();
        if (timer) clearTimeout(timer);
        // Everything the threads logged is in the FIFOs now: read them to their ends.
        fifos.release();
        void fifos.done.then(() => resolveExit({ code, signal }));
      });
    });
    opts.signal?.removeEventListener('abort', onAbort);
    if (aborted) throw new RecordError('record: interrupted');
    const t = tracer;
    const fail = (f: Error): never => {
      throw recordingFailed(f);
    };
    if (failure !== null) fail(failure);
    if (t.allThreads().length === 0) {
      const last = printed.stderr.trim().split('\n').pop() ?? '';
      throw new RecordError(`record: the program did not start under ${QEMU}${last ? `: ${last}` : ''}`);
    }
    const handed = await handedOut;
    files.addMade(handed);
    // qemu writes a core for each emulated process a signal killed, naming its crashing thread:
    // that thread's path ends at the core's RIP (another process's would give it a false last branch).
    const cores = readCores(handed, warnings);
    try {
      t.finish(stopped === null ? crashIps(cores) : new Map(), stopped === 'timeout');
    } catch (e) {
      fail(e as Error);
    }

    // Every stream, in order (the tracer is finished: they no longer change).
    const threads = t.allThreads();
    const processOf = (tid: number): number => threads.find((th) => th.tid === tid)?.pid ?? tid;
    // The first thread's process: the program's (it has at least one thread, checked above).
    const rootPid = threads[0].pid;
    // The bundle keeps one core: the program's own if it crashed, else the first crashed child's
    // (a shell's child may crash while the shell goes on). Only the program's tells the program's end.
    const core = keepCore(cores, staging, cores.find((c) => processOf(c.file.pid) === rootPid)?.file.pid ?? null);
    const coreProcess = core === null ? null : processOf(core.pid);
    const rootCore = coreProcess === rootPid ? core : null;
    const { status, signal } = programExit(exit, stopped, rootCore, t.stats.signals.length > 0);
    // The other crashed processes' cores, as `core-<pid>` (`crash --pid`).
    const keptCores = keepOtherCores(cores, core, coreProcess, processOf, staging, warnings);
    // Every child a signal killed, by its core.
    const crashedChildren = new Map<number, string>();
    if (stopped === null) {
      for (const c of cores) {
        const pid = processOf(c.file.pid);
        if (pid === rootPid || crashedChildren.has(pid)) continue;
        crashedChildren.set(pid, coreSignalName(c.file));
        const file = keptCores.find((k) => k.pid === pid)?.file;
        warnings.push(`process ${pid} was killed by ${coreSignalName(c.file)}; ${file === 'core' ? "the bundle's core is of that process" : file !== undefined ? `its core is ${file} (crash --pid ${pid})` : 'its core is not kept'}`);
      }
    }

    // Images: each file copied once; each process's executable mappings.
    mkdirSync(join(staging, 'images'));
    const copies = new Map<string, string>();
    const allImages: BundleImage[] = [];
    const imageIndex = new Map<string, number>();
    const processImages = new Map<TracedProcess, number[]>();
    for (const p of t.allProcesses()) {
      const indices: number[] = [];
      for (const im of writeAddressSpaceImages(staging, p.memory, files, copies, warnings)) {
        const key = `${im.file}:${im.offset}:${im.size}:${im.address}`;
        let i = imageIndex.get(key);
        if (i === undefined) {
          i = allImages.length;
          allImages.push(im);
          imageIndex.set(key, i);
        }
        indices.push(i);
      }
      processImages.set(p, indices);
      warnings.push(...p.memory.warnings);
    }
    for (const th of threads) warnings.push(...th.path.warnings.map((w) => `[${th.pid}/${th.tid}] ${w}`));
    warnings.push(...t.warnings);
    const limitStop = limitStopWarning(stopped, { timeoutSec: opts.timeoutSec, maxInsns: opts.maxInsns ?? DEFAULT_MAX_INSNS, maxTraceBytes, maxRecorderBytes }, true);
    if (limitStop !== null) warnings.push(limitStop);
    if (t.stats.inexactFaults > 0) warnings.push(`${t.stats.inexactFaults} fault or signal position(s) could not be located exactly`);
    if (t.stats.unmappedTbs > 0) warnings.push(`${t.stats.unmappedTbs} TB executions at addresses no image maps`);
    for (const p of t.processes.values()) if (p.untraced !== null) warnings.push(`process ${p.pid}: ${p.untraced}`);

    const streams = threads.map((th) => {
      const written = th.out.finish();
      const indices = processImages.get(th.proc) ?? [];
      const hash = settings.snapshot ? th.session.hashFrom(written.start) : th.session.traced;
      return {
        thread: th,
        entry: {
          file: th.file,
          pid: th.pid,
          tid: th.tid,
          cpu: null,
          bytes: written.size,
          fullBytes: written.fullSize,
          snapshotStart: written.start,
          images: indices,
          ...withEpochs(imageEpochs(th.session.epochs, th.proc.memory.runtime, indices.filter((i) => allImages[i]!.runtime != null).length, written.start)),
          instructions: { executed: th.path.instructions, traced: hash.count, fnv1a64: hash.hex() },
          ...(th.proc.program !== null ? { program: { argv: th.proc.program.argv, path: th.proc.program.path } } : {}),
        },
      };
    });
    const exitInfo = { status, signal, stopped };
    const config = manifestConfig(opts, true, maxTraceBytes, limits, `${LOG_ITEMS},tid`);
    const encoder = manifestEncoder(timing);
    const stats = { tbExecutions: t.stats.tbExecutions, translations: t.stats.translations, signals: t.stats.signals, threads: t.threads.size, processes: t.processes.size };
    const single = streams.length === 1 && t.processes.size === 1 && t.allProcesses().every((p) => p.untraced === null && p.program === null);
    let manifest: BundleManifest | ManifestV2;
    if (single) {
      const s = streams[0].entry;
      const images = allImages;
      manifest = {
        format: BUNDLE_FORMAT,
        version: 1,
        recorder: 'qemu',
        program: { argv: opts.argv, path: guestProgram, cwd: run.scratch },
        exit: exitInfo,
        trace: { file: s.file, bytes: s.bytes, fullBytes: s.fullBytes, snapshotStart: s.snapshotStart, ...withEpochs(s.imageEpochs ?? null) },
        instructions: { executed: t.stats.instructions, traced: s.instructions.traced, fnv1a64: s.instructions.fnv1a64 },
        addressSpace: { mode: '64-bit', cpl: 'user', cr3: null },
        images,
        config,
        encoder,
        decode: decodeCommands(images, s.file, s.imageEpochs),
        stats: { ...stats, logBytes: null },
        warnings,
      };
    } else {
      manifest = {
        format: BUNDLE_FORMAT,
        version: 2,
        recorder: 'qemu',
        program: { argv: opts.argv, path: guestProgram, cwd: run.scratch },
        exit: exitInfo,
        processes: [...t.processes.values()].map((p) => ({
          pid: p.pid,
          ppid: p.ppid,
          program: p.program !== null ? { argv: p.program.argv, path: p.program.path } : p.pid === rootPid ? { argv: opts.argv, path: guestProgram, cwd: run.scratch } : null,
          exit:
            p.pid === rootPid
              ? exitInfo
              : crashedChildren.has(p.pid)
                ? { status: null, signal: crashedChildren.get(p.pid)!, stopped: null }
                : p.exitStatus != null
                  ? { status: p.exitStatus, signal: null, stopped: null }
                  : null,
          untraced: p.untraced,
        })),
        threads: [...t.threads.values()].map((th) => ({ tid: th.tid, pid: th.pid, name: null })),
        streams: streams.map((s) => s.entry),
        images: allImages.map((im) => ({ ...im, runtime: im.runtime ?? null })),
        core: core !== null ? { file: 'core', pid: coreProcess ?? rootPid } : null,
        cores: keptCores,
        addressSpace: { mode: '64-bit', cpl: 'user', cr3: null },
        config,
        encoder,
        stats,
        warnings,
      };
    }
    publishBundle(staging, output, manifest, opts);
    for (const w of warnings) notice(`warning: ${w}`);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // A version-2 manifest shares the fields callers print (recorder, exit, images); the rest they check before use.
    return { bundle: output, manifest: manifest as BundleManifest, stdout: printed.stdout, stderr: printed.stderr, seconds };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    if (typeof stdinFd === 'number') closeSync(stdinFd);
  }
}

