/**
 * Importer for perf.data with Intel PT (perf's `intel_pt//` event): one
 * stream per AUX queue (per CPU or per thread), each with the image of the
 * task traced on it, and the processes and threads from the sideband
 * (COMM/FORK/EXIT records). The file stays open until the recording is
 * closed: streams read their bytes from it on demand.
 */
import { ByteSourceCache } from '../../flow/section.js';
import { Image } from '../../flow/image.js';
import { flowInputs, readPerfData } from '../perf-data/perf-data.js';
import { PerfDataError } from '../perf-data/file-access.js';
import type { ImageMapping, RecordedProcess, RecordedThread, Recording, StreamTask, TaskLife, TraceStream } from '../model/recording.js';
import { CpuTaskTracker, dueThread, migrationEpochs, TaskLives, type TaskFactory } from './cpu-tasks.js';
import { InputError, regularFileSize } from './safe-files.js';

function baseName(p: string): string {
  const i = p.lastIndexOf('/');
  return i >= 0 ? p.slice(i + 1) : p;
}

/** The file mappings of an image, for module maps and reports. */
function mappingsOf(image: Image): ImageMapping[] {
  return image.sections().map((m) => {
    const file = m.section.filename;
    return { file, originalPath: file, offset: m.sourceOffset, size: m.size, address: m.vaddr, displayName: baseName(file), runtime: null };
  });
}

/** The end of time, for "the task's mappings once it has loaded everything". */
const LATE = (1n << 63n) - 1n;

/** Import a perf.data file. Throws InputError with one line. */
export function importPerfDataFile(path: string, options: { sysroot?: string } = {}): Recording {
  regularFileSize(path, path);
  let model;
  try {
    model = readPerfData(path);
  } catch (e) {
    if (e instanceof PerfDataError) throw new InputError(e.message.split('\n')[0]!);
    throw e;
  }
  try {
    const inputs = flowInputs(model, options);
    if (inputs.length === 0) throw new InputError(`${path}: no Intel PT data (no AUXTRACE records)`);
    const input0 = inputs[0]!;
    const warnings = model.warnings.map((w) => `perf.data: ${w}`);
    let epochs: Map<number, Int32Array> | undefined;
    const lives = new TaskLives(model.sideband, (pid, time) => {
      const got = input0.imageFor(pid, time);
      return { image: got.image, mappings: mappingsOf(got.image) };
    });
    const streams: TraceStream[] = inputs.map((input, index) => {
      const s = input.stream;
      const task = input.taskAt(LATE);
      const notes: string[] = [];
      let image = new Image(path);
      let mappings: ImageMapping[] = [];
      if (task) {
        // The task's mappings at the end of the recording hold every library it loaded.
        const got = input.imageFor(task.pid, LATE);
        image = got.image;
        for (const miss of got.missing) notes.push(`unchecked: no image for ${miss}`);
        mappings = mappingsOf(image);
      } else notes.push('unchecked: no task found for the stream: no image');
      const perCpu = s.cpu >= 0;
      const switches = perCpu ? model.sideband.switches.get(s.cpu) ?? [] : [];
      let tasks: (() => CpuTaskTracker) | undefined;
      if (switches.length > 0) {
        // A task per (thread life, image, migration epoch); the lives are shared by all CPUs (see lifeOf).
        const known = new Map<TaskLife, Map<Image, Map<number, StreamTask>>>();
        const missed = new Set<string>();
        const factory: TaskFactory = (pid, tid, time, epoch) => {
          const got = input.imageFor(pid, time);
          for (const miss of got.missing) missed.add(miss);
          const life = lives.lifeOf(pid, tid, time);
          let byImage = known.get(life);
          if (byImage === undefined) known.set(life, (byImage = new Map()));
          let byEpoch = byImage.get(got.image);
          if (byEpoch === undefined) byImage.set(got.image, (byEpoch = new Map()));
          let t = byEpoch.get(epoch);
          if (t === undefined) {
            t = { pid, tid, image: got.image, mappings: mappingsOf(got.image), name: lives.nameAt(tid, time), life };
            byEpoch.set(epoch, t);
          }
          return t;
        };
        // Build each task's image now, so that what cannot be mapped is known before decoding.
        const cpuEpochs = (epochs ??= migrationEpochs(model.sideband.switches)).get(s.cpu);
        switches.forEach((sw, i) => {
          const who = dueThread(sw);
          if (who !== null && who.tid > 0) factory(who.pid, who.tid, sw.time, cpuEpochs?.[i] ?? 0);
        });
        for (const miss of missed) notes.push(`unchecked: no image for ${miss}`);
        tasks = () => new CpuTaskTracker(switches, model.timeConv, factory, cpuEpochs, (pid) => model.sideband.execTimes(pid));
        if (!model.timeConv.timeMult) notes.push('unchecked: no time conversion (time_mult 0): the context switches cannot be placed in the trace');
      } else if (perCpu) notes.push('unchecked: no context-switch records for this CPU: one image for the whole stream');
      return {
        index,
        label: perCpu ? `cpu ${s.cpu}` : `tid ${s.tid}`,
        pid: perCpu ? null : task?.pid ?? null,
        tid: perCpu ? null : s.tid,
        cpu: perCpu ? s.cpu : null,
        size: s.size,
        open: () => s.source(model.file),
        config: input.config,
        image,
        files: new ByteSourceCache(),
        mappings,
        expected: null,
        notes,
        ...(tasks !== undefined ? { tasks } : {}),
      };
    });
    const processes: RecordedProcess[] = [];
    const threads: RecordedThread[] = [];
    for (const t of model.sideband.tasks.values()) {
      const comm = t.comms.length > 0 ? t.comms[t.comms.length - 1]!.comm : null;
      threads.push({ tid: t.tid, pid: t.pid, name: comm });
      if (t.tid === t.pid) processes.push({ pid: t.pid, ppid: t.ppid >= 0 ? t.ppid : null, program: null, exit: null, untraced: null });
    }
    return {
      name: path,
      format: 'perf-data',
      root: null,
      recorder: 'perf',
      program: null,
      exit: null,
      processes,
      threads,
      streams,
      core: null,
      cores: [],
      settings: {},
      warnings,
      close: () => model.close(),
    };
  } catch (e) {
    model.close();
    throw e;
  }
}
