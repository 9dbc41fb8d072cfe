import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PtError } from '../../packets/errors.js';
import { Image } from '../../flow/image.js';
import { ByteSourceCache, Section } from '../../flow/section.js';
import { ipFromBigInt } from '../../flow/address-space.js';
import {
  PERF_RECORD_MISC_COMM_EXEC,
  PERF_RECORD_MISC_CPUMODE_MASK,
  PERF_RECORD_MISC_SWITCH_OUT,
  PerfRecord,
  PerfRecordType,
  SampleField,
} from '../perf-event/record.js';

/**
 * The sideband of a perf.data as a timeline: which processes and threads
 * existed, what each process had mapped when, and which task ran on each
 * cpu when (from ITRACE_START and context-switch records). Times are perf
 * clock nanoseconds as recorded; convert trace TSCs with the file's
 * TIME_CONV (../perf-event/time-conversion.ts) before asking.
 *
 * Records without a time (synthesized at the start of `perf record`) count
 * as time 0: in place before any trace.
 */

/** An executable (or data) mapping from MMAP/MMAP2. */
export interface Mapping {
  /** -1 for kernel mappings (they apply to every process). */
  pid: number;
  tid: number;
  time: bigint;
  addr: bigint;
  len: bigint;
  pgoff: bigint;
  filename: string;
  /** PROT_* bits (MMAP2 only; MMAP: 5, r-x). */
  prot: number;
  buildId: string;
  /** PERF_RECORD_MISC_USER / _KERNEL. */
  cpumode: number;
  /** File offset of the record, for messages. */
  recordOffset: number;
}

export interface Task {
  pid: number;
  tid: number;
  ppid: number;
  /** comm values in time order (an exec starts a new one). */
  comms: { time: bigint; comm: string; exec: boolean }[];
  forkTime: bigint | null;
  exitTime: bigint | null;
  /** Every EXIT of this tid, in file order: a tid reused after one is another thread. */
  exits: bigint[];
}

/** A task starting or stopping to run on a cpu. */
export interface CpuSwitch {
  time: bigint;
  pid: number;
  tid: number;
  /** false: switched in (also ITRACE_START); true: switched out. */
  out: boolean;
  /** SWITCH_CPU_WIDE: the task switched to (out) or from (in). */
  nextPrev: { pid: number; tid: number } | null;
}

const PROT_EXEC = 4;

export class SidebandTimeline {
  readonly mappings: Mapping[] = [];
  readonly tasks = new Map<number, Task>();
  /** Per cpu, in time order. */
  readonly switches = new Map<number, CpuSwitch[]>();
  /** Exec times per pid: mappings older than the last exec before `t` are gone at `t`. */
  private readonly execs = new Map<number, bigint[]>();

  /** Feed one parsed kernel record (any type; irrelevant ones are ignored). */
  add(rec: PerfRecord, fileOffset: number): void {
    const time = rec.samples & SampleField.Time ? rec.sampleTime : 0n;
    const cpu = rec.samples & SampleField.Cpu ? rec.sampleCpu : -1;
    switch (rec.type) {
      case PerfRecordType.Mmap:
      case PerfRecordType.Mmap2:
        this.mappings.push({
          pid: rec.pid | 0,
          tid: rec.tid | 0,
          time,
          addr: rec.addr,
          len: rec.len,
          pgoff: rec.pgoff,
          filename: rec.filename,
          prot: rec.type === PerfRecordType.Mmap2 ? rec.prot : 5,
          buildId: rec.type === PerfRecordType.Mmap2 ? rec.buildId : '',
          cpumode: rec.misc & PERF_RECORD_MISC_CPUMODE_MASK,
          recordOffset: fileOffset,
        });
        break;
      case PerfRecordType.Comm: {
        const exec = (rec.misc & PERF_RECORD_MISC_COMM_EXEC) !== 0;
        this.task(rec.pid, rec.tid).comms.push({ time, comm: rec.comm, exec });
        if (exec) {
          const list = this.execs.get(rec.pid) ?? [];
          list.push(time);
          this.execs.set(rec.pid, list);
        }
        break;
      }
      case PerfRecordType.Fork: {
        const t = this.task(rec.pid, rec.tid);
        t.ppid = rec.ppid | 0;
        t.forkTime = rec.time;
        // A new process inherits its parent's mappings: copy them, as perf's fork handling does.
        if (rec.pid !== rec.ppid) {
          for (const m of this.mappings.filter((x) => x.pid === (rec.ppid | 0) && x.time <= rec.time)) {
            this.mappings.push({ ...m, pid: rec.pid | 0, tid: rec.tid | 0, time: rec.time });
          }
        }
        break;
      }
      case PerfRecordType.Exit:
      {
        const t = this.task(rec.pid, rec.tid);
        t.exitTime = rec.time;
        t.exits.push(rec.time);
        break;
      }
      case PerfRecordType.ItraceStart:
        if (cpu >= 0) this.cpuList(cpu).push({ time, pid: rec.pid | 0, tid: rec.tid | 0, out: false, nextPrev: null });
        break;
      case PerfRecordType.Switch:
      case PerfRecordType.SwitchCpuWide:
        if (cpu >= 0 && rec.samples & SampleField.Tid) {
          this.cpuList(cpu).push({
            time,
            pid: rec.samplePid | 0,
            tid: rec.sampleTid | 0,
            out: (rec.misc & PERF_RECORD_MISC_SWITCH_OUT) !== 0,
            nextPrev: rec.type === PerfRecordType.SwitchCpuWide ? { pid: rec.nextPrevPid | 0, tid: rec.nextPrevTid | 0 } : null,
          });
        }
        break;
    }
  }

  private task(pid: number, tid: number): Task {
    let t = this.tasks.get(tid | 0);
    if (!t) {
      t = { pid: pid | 0, tid: tid | 0, ppid: -1, comms: [], forkTime: null, exitTime: null, exits: [] };
      this.tasks.set(tid | 0, t);
    }
    return t;
  }

  private cpuList(cpu: number): CpuSwitch[] {
    let l = this.switches.get(cpu);
    if (!l) {
      l = [];
      this.switches.set(cpu, l);
    }
    return l;
  }

  /** Sort per-cpu lists by time (records arrive in rounds, not strictly ordered). */
  finish(): void {
    for (const l of this.switches.values()) l.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  }

  /**
   * The mappings of process `pid` in effect at `time`, in the order to
   * apply them (a later mapping replaces what it overlaps): kernel mappings
   * first, then the process's own since its last exec at or before `time`.
   */
  mappingsAt(pid: number, time: bigint): Mapping[] {
    let since = -1n;
    for (const e of this.execs.get(pid) ?? []) if (e <= time && e > since) since = e;
    const own = this.mappings.filter((m) => m.pid === pid && m.time <= time && m.time >= since);
    const kernel = this.mappings.filter((m) => m.pid === -1 && m.time <= time);
    return [...kernel, ...own];
  }

  /** The task on `cpu` at `time`: the last switch-in (or ITRACE_START) at or before it, or null. */
  taskOn(cpu: number, time: bigint): { pid: number; tid: number } | null {
    const l = this.switches.get(cpu);
    if (!l) return null;
    let found: { pid: number; tid: number } | null = null;
    for (const s of l) {
      if (s.time > time) break;
      if (!s.out) found = { pid: s.pid, tid: s.tid };
      else if (s.nextPrev) found = { pid: s.nextPrev.pid, tid: s.nextPrev.tid };
      else found = null;
    }
    return found;
  }

  /** The times process `pid` exec'd (COMM with the exec flag), in file order. */
  execTimes(pid: number): readonly bigint[] {
    return this.execs.get(pid) ?? [];
  }

  /** The comm of thread `tid` at `time`, or ''. */
  commAt(tid: number, time: bigint): string {
    const t = this.tasks.get(tid);
    if (!t) return '';
    let comm = '';
    for (const c of t.comms) if (c.time <= time) comm = c.comm;
    return comm || (t.comms[0]?.comm ?? '');
  }
}

/**
 * Where a mapped file name is on this machine: under `sysroot` when given
 * (the recording machine's root file system), else the name itself.
 * Pseudo files (`[vdso]`, `[kernel.kallsyms]_text`, `//anon`) have no file:
 * null.
 */
export function resolveMappedFile(filename: string, sysroot?: string): string | null {
  if (!filename.startsWith('/') || filename.startsWith('//')) return null;
  const path = sysroot ? join(sysroot, filename) : filename;
  try {
    return existsSync(path) && statSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

/** An image for the flow decoder, and the mappings that could not be loaded. */
export interface ImageForTask {
  image: Image;
  /** One line per mapping without a file: `<name> at 0x<addr>: <why>`. */
  missing: string[];
}

/**
 * Builds images from the timeline: the executable mappings of a process at
 * a time, each mapping `len` bytes of its file from `pgoff` at `addr` (what
 * mmap did, so no ELF parsing is needed).
 */
export class SidebandImageProvider {
  private readonly files = new ByteSourceCache();
  private readonly cache = new Map<string, ImageForTask>();

  constructor(
    readonly timeline: SidebandTimeline,
    readonly sysroot?: string,
  ) {}

  /** The image of process `pid` at perf time `time` (cached per distinct mapping set). */
  imageFor(pid: number, time: bigint): ImageForTask {
    const maps = this.timeline.mappingsAt(pid, time).filter((m) => m.prot & PROT_EXEC);
    const key = `${pid}:${maps.map((m) => m.recordOffset).join(',')}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const image = new Image(`pid ${pid}`);
    const missing: string[] = [];
    for (const m of maps) {
      const where = `${m.filename} at 0x${m.addr.toString(16)}`;
      const path = resolveMappedFile(m.filename, this.sysroot);
      if (path === null) {
        missing.push(`${where}: no such file${this.sysroot ? ` under ${this.sysroot}` : ''}`);
        continue;
      }
      try {
        const src = this.files.file(path);
        const offset = Number(m.pgoff);
        if (offset >= src.size) {
          missing.push(`${where}: offset 0x${m.pgoff.toString(16)} beyond the end of ${path}`);
          continue;
        }
        const status = image.add(Section.create(src, offset, Number(m.len)), ipFromBigInt(m.addr));
        if (status < 0) missing.push(`${where}: cannot map`);
      } catch (e) {
        missing.push(`${where}: ${e instanceof PtError ? e.message : String(e)}`);
      }
    }
    const r = { image, missing };
    this.cache.set(key, r);
    return r;
  }
}
