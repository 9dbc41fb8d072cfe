/**
 * Resource limits of a confined run, so that a hostile program cannot fill
 * the host's disk or memory or fork without end:
 *
 * - the sandbox's writable places are size-limited tmpfs mounts (its /tmp,
 *   which holds the scratch directory, and /dev/shm): bwrap `--size`;
 * - per process (prlimit, inherited by every descendant, and not raisable
 *   without CAP_SYS_RESOURCE, which the sandbox drops): file size
 *   (RLIMIT_FSIZE, also bounding an unconfined run's files), address space
 *   (RLIMIT_AS), open files (RLIMIT_NOFILE), and the core size;
 * - the number of processes and threads: a pids cgroup where this process
 *   may create one (root, or a delegated cgroup v2), else RLIMIT_NPROC set
 *   inside the sandbox's user namespace. RLIMIT_NPROC does not apply to uid
 *   0 (the kernel exempts root), so a root recorder needs the cgroup; when
 *   it has none, the recording says that the process count is not bounded;
 * - the memory of the whole tree, tmpfs pages included, where a memory
 *   cgroup can be created.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ResourceLimits {
  /** Size of the sandbox's /tmp, which holds the scratch directory (bytes). */
  tmpBytes: number;
  /** Size of the sandbox's /dev/shm (bytes). */
  shmBytes: number;
  /** Processes and threads of the run. */
  processes: number;
  /** Address space of each process (bytes); also the whole tree's memory where a memory cgroup exists. */
  memoryBytes: number;
  /** Open files per process. */
  openFiles: number;
}

export const MIB = 1 << 20;

export const DEFAULT_LIMITS: ResourceLimits = {
  tmpBytes: 256 * MIB,
  shmBytes: 64 * MIB,
  processes: 64,
  memoryBytes: 4096 * MIB,
  openFiles: 1024,
};

/** Processes of the sandbox's own making (bwrap's pid 1, the wrapper shell, qemu's helper thread). */
const OWN_TASKS = 4;

/**
 * The prlimit argv prefix for the command. `nproc` is set only where it
 * counts the run's processes alone (inside the sandbox's user namespace).
 */
export function prlimitArgv(limits: ResourceLimits, nproc: boolean): string[] {
  const argv = [
    'prlimit',
    `--fsize=${limits.tmpBytes}`,
    `--core=${limits.tmpBytes}`,
    `--as=${limits.memoryBytes}`,
    `--nofile=${limits.openFiles}`,
  ];
  if (nproc) argv.push(`--nproc=${limits.processes + OWN_TASKS}`);
  argv.push('--');
  return argv;
}

interface Mount {
  point: string;
  root: string;
  type: string;
  options: string[];
}

function mounts(): Mount[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    if (a.length < 5 || b.length < 3) continue;
    out.push({ root: unescapeMount(a[3]), point: unescapeMount(a[4]), type: b[0], options: b[2].split(',') });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** This process's cgroup path per v1 controller, and its v2 path (key ''). */
function ownCgroups(): Map<string, string> {
  const out = new Map<string, string>();
  let text = '';
  try {
    text = readFileSync('/proc/self/cgroup', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '') out.set('', m[2]);
    else for (const c of m[1].split(',')) out.set(c, m[2]);
  }
  return out;
}

/** The directory of this process's cgroup for `controller` (v1), or of its v2 cgroup. */
function cgroupDir(controller: string | null): string | null {
  const own = ownCgroups();
  for (const m of mounts()) {
    let path: string | undefined;
    if (controller !== null && m.type === 'cgroup' && m.options.includes(controller)) path = own.get(controller);
    else if (controller === null && m.type === 'cgroup2') path = own.get('');
    if (path === undefined) continue;
    if (!path.startsWith(m.root)) continue;
    return join(m.point, path.slice(m.root.length));
  }
  return null;
}

let sequence = 0;

/**
 * A cgroup (v1 pids and memory hierarchies, or one v2 group) that the run
 * is placed in before it starts; null where none can be created.
 */
export class RunCgroup {
  private constructor(
    /** Directories created, each with its `cgroup.procs`. */
    private readonly dirs: string[],
    readonly bounds: { processes: boolean; memory: boolean },
  ) {}

  static create(limits: ResourceLimits): RunCgroup | null {
    const name = `ptscope-${process.pid}-${++sequence}`;
    const made: string[] = [];
    let processes = false;
    let memory = false;
    const tryMake = (parent: string | null, setup: (dir: string) => void): boolean => {
      if (parent === null || !existsSync(parent)) return false;
      const dir = join(parent, name);
      try {
        mkdirSync(dir);
      } catch {
        return false;
      }
      made.push(dir);
      try {
        setup(dir);
        return true;
      } catch {
        return false;
      }
    };
    const v2 = cgroupDir(null);
    if (v2 !== null && existsSync(join(v2, 'cgroup.subtree_control'))) {
      for (const c of ['+pids', '+memory']) {
        try {
          appendFileSync(join(v2, 'cgroup.subtree_control'), c);
        } catch {
          // not delegated here, or processes in this group (memory): try what is available
        }
      }
      tryMake(v2, (dir) => {
        if (existsSync(join(dir, 'pids.max'))) {
          writeFileSync(join(dir, 'pids.max'), String(limits.processes + OWN_TASKS));
          processes = true;
        }
        if (existsSync(join(dir, 'memory.max'))) {
          writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
          memory = true;
        }
      });
    }
    if (!processes) {
      tryMake(cgroupDir('pids'), (dir) => {
        writeFileSync(join(dir, 'pids.max'), String(limits.processes + OWN_TASKS));
        processes = true;
      });
    }
    if (!memory) {
      tryMake(cgroupDir('memory'), (dir) => {
        writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
        memory = true;
      });
    }
    const group = new RunCgroup(made, { processes, memory });
    if (!processes && !memory) {
      group.remove();
      return null;
    }
    return group;
  }

  /**
   * The argv that runs `command` inside the group: a host shell writes its
   * own pid into every `cgroup.procs`, then execs the command, so that
   * nothing the command starts is outside.
   */
  wrap(command: string[]): string[] {
    const procs = this.dirs.map((d) => join(d, 'cgroup.procs'));
    const script = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';
    return ['/bin/sh', '-c', script, 'sh', String(procs.length), ...procs, ...command];
  }

  /** Kill whatever is left in the group and remove it. */
  remove(): void {
    for (const dir of this.dirs) {
      for (let attempt = 0; attempt < 50; attempt++) {
        killMembers(dir);
        try {
          rmdirSync(dir);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    }
  }
}

function killMembers(dir: string): void {
  if (existsSync(join(dir, 'cgroup.kill'))) {
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1');
      return;
    } catch {
      // fall back to signalling each member
    }
  }
  let text = '';
  try {
    text = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    const pid = Number(line);
    if (Number.isInteger(pid) && pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}

/** Cgroups this process made that still exist (tests check that none leak). */
export function leftoverCgroups(): string[] {
  const out: string[] = [];
  for (const c of ['pids', 'memory', null]) {
    const dir = cgroupDir(c);
    if (dir === null || !existsSync(dir)) continue;
    try {
      for (const n of readdirSync(dir)) if (n.startsWith(`ptscope-${process.pid}-`)) out.push(join(dir, n));
    } catch {
      // unreadable
    }
  }
  return out;
}
