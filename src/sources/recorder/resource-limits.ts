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

/**
 * Directories where a run's cgroup may be made for `controller` (v1) or in
 * the v2 hierarchy (null): this process's own cgroup first, then the
 * hierarchy's root (root may place a process anywhere, and a v2 root is not
 * bound by the rule that keeps controllers off groups with processes).
 */
function cgroupParents(controller: string | null): string[] {
  const own = ownCgroups();
  const out: string[] = [];
  for (const m of mounts()) {
    let path: string | undefined;
    if (controller !== null && m.type === 'cgroup' && m.options.includes(controller)) path = own.get(controller);
    else if (controller === null && m.type === 'cgroup2') path = own.get('');
    if (path === undefined || !path.startsWith(m.root)) continue;
    out.push(join(m.point, path.slice(m.root.length)));
    out.push(m.point);
  }
  return [...new Set(out)];
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
    const bounds = { processes: false, memory: false };
    const pids = String(limits.processes + OWN_TASKS);
    const mem = String(limits.memoryBytes);
    /** Make `name` under the first parent where `usable` holds for the new group. */
    const place = (parents: string[], enable: string | null, usable: (dir: string) => boolean): boolean => {
      for (const parent of parents) {
        if (enable !== null) {
          try {
            appendFileSync(join(parent, 'cgroup.subtree_control'), enable);
          } catch {
            // not delegated, or not allowed here: the group may still have it
          }
        }
        const dir = join(parent, name);
        try {
          mkdirSync(dir);
        } catch {
          continue;
        }
        try {
          if (usable(dir)) {
            made.push(dir);
            return true;
          }
        } catch {
          // a limit that cannot be written: not this place
        }
        try {
          rmdirSync(dir);
        } catch {
          made.push(dir);
        }
      }
      return false;
    };
    // cgroup v2: one group with pids and, where available, memory.
    place(cgroupParents(null), '+pids', (dir) => {
      if (!existsSync(join(dir, 'pids.max'))) return false;
      writeFileSync(join(dir, 'pids.max'), pids);
      bounds.processes = true;
      if (existsSync(join(dir, 'memory.max'))) {
        writeFileSync(join(dir, 'memory.max'), mem);
        bounds.memory = true;
      }
      return true;
    });
    // cgroup v1: a group in the pids and in the memory hierarchy.
    if (!bounds.processes) {
      bounds.processes = place(cgroupParents('pids'), null, (dir) => {
        writeFileSync(join(dir, 'pids.max'), pids);
        return true;
      });
    }
    if (!bounds.memory) {
      bounds.memory = place(cgroupParents('memory'), null, (dir) => {
        writeFileSync(join(dir, 'memory.limit_in_bytes'), mem);
        return true;
      });
    }
    const group = new RunCgroup(made, bounds);
    if (!bounds.processes && !bounds.memory) {
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

  /** Kill every process in the group (the run's whole tree, wherever it was reparented). */
  kill(): void {
    for (const dir of this.dirs) killMembers(dir);
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
    for (const dir of cgroupParents(c)) {
      try {
        for (const n of readdirSync(dir)) if (n.startsWith(`ptscope-${process.pid}-`)) out.push(join(dir, n));
      } catch {
        // unreadable
      }
    }
  }
  return [...new Set(out)];
}
