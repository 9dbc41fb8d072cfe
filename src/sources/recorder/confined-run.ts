/**
 * The one way ptscope executes a recorded program: the recorder, the crash
 * analysis's re-run for a core, and the dormant-code snapshot and patched
 * runs all come here. Whether the run is confined is the caller's
 * parameter, which only ever comes from the analyst's command line (never
 * from a bundle); unconfined runs still get the resource limits.
 *
 * Inside the sandbox (sandbox.ts) the run's pid 1 is a small wrapper shell:
 *
 *   0. for a run the recorder follows live, it starts a watcher that kills
 *      every process of the sandbox when the recorder's end of a lifeline
 *      pipe closes (the recorder stopped it, or died): bwrap's
 *      --die-with-parent alone leaves the sandbox running if bwrap is
 *      killed while it is still setting up;
 *   1. it runs the command (qemu-x86_64 ...) under prlimit;
 *   2. when the command has ended, it kills every process left in the
 *      sandbox (the target's children), and closes the emulator's log;
 *   3. only then, with nothing of the target running, it hands the files
 *      the caller asked for (qemu's core, executables the target wrote, a
 *      snapshot file) out through descriptor 9, framed as
 *      `path NUL size NUL bytes`, regular files only, never a link;
 *   4. it exits with the command's status.
 *
 * The recorder reads those bytes with a bound and treats them as hostile
 * (they are what the target left behind).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { INPUT_LIMITS, readBoundedFile } from '../import/safe-files.js';
import { prlimitArgv, RunCgroup, type ResourceLimits } from './resource-limits.js';
import { openSeccompFilter, SCRATCH_DIR, SECCOMP_FD, sandboxArgv } from './sandbox.js';
import { generatedEtc, sandboxView, type SandboxView, type ViewRequest } from './sandbox-view.js';

/** The descriptor the wrapper hands collected files out on. */
const COLLECT_FD = 9;
/** The lifeline: the sandbox is killed when the recorder's end of it closes. */
const LIFELINE_FD = 8;
/** The descriptor the emulator's log is handed in on. */
export const LOG_FD = 3;

export interface CollectSpec {
  /** qemu's core file(s) in the scratch directory (`qemu_*.core`). */
  core?: boolean;
  /** ELF files the target left in /tmp or /dev/shm (for code it mapped from files it wrote). */
  executables?: boolean;
  /** Files of the scratch directory: these names, or all of its entries. */
  files?: readonly string[] | 'all';
}

export interface ConfinedRunSpec {
  /** The command (argv[0] absolute): qemu-x86_64 and its arguments. */
  command: readonly string[];
  /** Confine with bwrap (the analyst's choice, from the command line only). */
  sandbox: boolean;
  /** What the program sees besides the system (sandbox only). */
  view: ViewRequest;
  limits: ResourceLimits;
  /** Variables added to the target's minimal environment. */
  env?: Readonly<Record<string, string>>;
  /** Descriptor of the target's standard input, or 'pipe' to write it (default: none). */
  stdin?: number | 'pipe';
  output: 'inherit' | 'pipe' | 'ignore';
  /** A descriptor the command gets as fd 3 (the emulator's log). */
  logFd?: number;
  /** More descriptors the command gets: its number (above 9) -> the recorder's descriptor (the per-thread logs). */
  handedIn?: ReadonlyMap<number, number>;
  collect: CollectSpec;
  /** Wall-clock limit in seconds (0: none); for runSync only (the recorder keeps its own timer). */
  timeoutSec: number;
  /** The run is started with {@link ConfinedRun.start} and followed live (it gets a lifeline). */
  live?: boolean;
  /**
   * A program that runs the sandbox (or, unconfined, the wrapped command) as
   * its own child, outside it (the exec follower, exec-follow.ts; perf
   * record, perf-record.ts): its argv, to which `--` and the command line
   * are appended.
   */
  supervisor?: readonly string[];
}

export interface ConfinedResult {
  /** Exit status (a signal death of the target shows as 128 + signal), or null when killed. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Files brought out: absolute path as the program saw it -> bytes. */
  files: Map<string, Buffer>;
  timedOut: boolean;
}

/** The target's environment: a fixed minimum, and only the time zone and locale of the analyst's. */
export function targetEnvironment(home: string, tmp: string, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home, TMPDIR: tmp };
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || v.length > 256 || v.includes('\0')) continue;
    if (k === 'TZ' || k === 'LANG' || k === 'LANGUAGE' || k.startsWith('LC_')) env[k] = v;
  }
  return { ...env, ...extra };
}

function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir && existsSync(join(dir, name))) return true;
  }
  return false;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The script that closes every descriptor the recorder did not hand in on
 * purpose, then runs the wrapper: a descriptor the analyst's shell leaked
 * into ptscope (not close-on-exec) would otherwise reach the program. bash,
 * because sh cannot name a descriptor above 9.
 */
function closerScript(keep: readonly number[]): string {
  return `for f in /proc/self/fd/*; do n=\${f##*/}; case " ${keep.join(' ')} " in *" $n "*) ;; *) { exec {n}>&-; } 2>/dev/null;; esac; done; exec "$@"`;
}

/** The wrapper shell's script; "$@" is the command. */
function wrapperScript(spec: ConfinedRunSpec, lifeline: boolean): string {
  const lines: string[] = [];
  // The closer (below) ran bash, which exports `_` and SHLVL: the program gets neither.
  lines.push('unset _ SHLVL');
  if (lifeline) lines.push(`( read _ <&${LIFELINE_FD}; kill -KILL -1 ) &`, `exec ${LIFELINE_FD}<&-`);
  lines.push(`"$@" ${COLLECT_FD}>&-`, 's=$?');
  if (spec.sandbox) lines.push('kill -KILL -1 2>/dev/null');
  if (spec.logFd !== undefined) lines.push(`exec ${LOG_FD}>&-`);
  const emitBody = 'n=$(wc -c < "$f") || continue; printf \'%s\\0%s\\0\' "$f" "$n"; head -c "$n" -- "$f"';
  const loop = (words: string): string => `for f in ${words}; do f="$PWD/$f"; [ -f "$f" ] && [ ! -h "$f" ] || continue; ${emitBody}; done`;
  const parts: string[] = [];
  if (spec.collect.core) parts.push(loop('qemu_*.core'));
  if (spec.collect.files === 'all') parts.push(loop('* .[!.]* ..?*'));
  else if (spec.collect.files && spec.collect.files.length > 0) parts.push(loop(spec.collect.files.map(shellQuote).join(' ')));
  if (spec.collect.executables && spec.sandbox) {
    const inner = `m=$(printf '\\177ELF'); for f do [ -f "$f" ] && [ ! -h "$f" ] || continue; [ "$(head -c 4 -- "$f")" = "$m" ] || continue; ${emitBody}; done`;
    parts.push(`find /tmp /dev/shm -xdev -type f -size +51c ! -name 'qemu_*.core' -exec sh -c ${shellQuote(inner)} sh {} +`);
  }
  if (parts.length > 0) lines.push(`{ ${parts.join('; ')}; } >&${COLLECT_FD} 2>/dev/null`);
  lines.push('exit $s');
  return lines.join('\n');
}

/** Parse the wrapper's framed output; stops at the first malformed or oversized frame. */
export function parseCollected(buf: Buffer, maxFiles = 4096): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let p = 0;
  while (p < buf.length && files.size < maxFiles) {
    const a = buf.indexOf(0, p);
    if (a < 0 || a - p > 4096) break;
    const b = buf.indexOf(0, a + 1);
    if (b < 0 || b - a > 21) break;
    const path = buf.toString('utf8', p, a);
    const sizeText = buf.toString('latin1', a + 1, b).trim();
    if (!/^\d+$/.test(sizeText)) break;
    const size = Number(sizeText);
    if (b + 1 + size > buf.length) break;
    if (!files.has(path)) files.set(path, buf.subarray(b + 1, b + 1 + size));
    p = b + 1 + size;
  }
  return files;
}

/** A prepared run: build it, start it (or run it to the end), then dispose of it. */
export class ConfinedRun {
  /** The program's working directory as it sees it. */
  readonly scratch: string;
  readonly view: SandboxView | null;
  /** Limits that could not be set here (for the recording's warnings). */
  readonly notes: string[] = [];
  private readonly hostDir: string;
  private readonly argv: string[];
  private readonly env: Record<string, string>;
  private readonly cgroup: RunCgroup | null;
  /** Bytes the wrapper may hand out. */
  readonly collectLimit: number;
  private child: ChildProcess | null = null;
  /** The seccomp filter's file, handed to bwrap (sandbox only). */
  private seccompFd: number | null = null;

  constructor(private readonly spec: ConfinedRunSpec) {
    if (!onPath('prlimit')) throw new Error('prlimit not found: install util-linux (it sets the resource limits of the run)');
    this.hostDir = mkdtempSync(join(tmpdir(), 'ptscope-run-'));
    const limits = spec.limits;
    this.collectLimit = limits.tmpBytes + limits.shmBytes + (1 << 20);
    try {
      // A bundle's copy of a program is data (mode 0644): the run executes a
      // copy of it made executable; unconfined, from that copy's path.
      let programCopy = spec.view.programCopy;
      let command = spec.command;
      if (programCopy !== undefined) {
        const host = join(this.hostDir, 'program');
        writeFileSync(host, readBoundedFile(programCopy.host, INPUT_LIMITS.imageBytes, programCopy.host), { mode: 0o755 });
        if (!spec.sandbox) command = command.map((a) => (a === programCopy!.guest ? host : a));
        programCopy = { host, guest: programCopy.guest };
      }
      // The program's own libraries beside it, where an unconfined run's
      // $ORIGIN finds them; confined, shown at their recorded paths.
      const libraryCopies: { host: string; guest: string }[] = [];
      const libDir = spec.sandbox ? join(this.hostDir, 'libraries') : this.hostDir;
      if (spec.sandbox && (spec.view.libraryCopies ?? []).length > 0) mkdirSync(libDir);
      for (const lib of spec.view.libraryCopies ?? []) {
        const name = basename(lib.guest);
        if (name === 'program' || name === 'work' || libraryCopies.some((c) => basename(c.host) === name)) continue;
        const host = join(libDir, name);
        writeFileSync(host, readBoundedFile(lib.host, INPUT_LIMITS.imageBytes, lib.host), { mode: 0o644 });
        libraryCopies.push({ host, guest: lib.guest });
      }
      const lifeline = spec.sandbox && spec.live === true;
      const keep = [0, 1, 2, COLLECT_FD, ...(spec.logFd !== undefined ? [LOG_FD] : []), ...(lifeline ? [LIFELINE_FD] : []), ...(spec.handedIn?.keys() ?? [])];
      const inner = ['/bin/bash', '-c', closerScript(keep), 'ptscope-close', '/bin/sh', '-c', wrapperScript(spec, lifeline), 'ptscope-run', ...prlimitArgv(limits, spec.sandbox), ...command];
      this.cgroup = RunCgroup.create(limits);
      if (this.cgroup === null || !this.cgroup.bounds.processes) {
        const root = process.geteuid?.() === 0;
        if (root || !spec.sandbox) this.notes.push(`the number of processes is not bounded here: no pids cgroup could be created${root ? ', and RLIMIT_NPROC does not apply to root' : ''}`);
      }
      if (spec.sandbox) {
        this.scratch = SCRATCH_DIR;
        const uid = process.geteuid?.() ?? 0;
        const gid = process.getegid?.() ?? 0;
        const generated: { host: string; guest: string }[] = [];
        for (const [name, text] of Object.entries(generatedEtc(uid, gid))) {
          const host = join(this.hostDir, name);
          writeFileSync(host, text, { mode: 0o644 });
          generated.push({ host, guest: `/etc/${name}` });
        }
        this.view = sandboxView({ ...spec.view, programCopy, libraryCopies, generated, allowRead: [...(spec.view.allowRead ?? []), spec.command[0]] });
        this.env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
        this.seccompFd = openSeccompFilter(this.hostDir);
        this.argv = sandboxArgv({ view: this.view, limits, env: targetEnvironment(SCRATCH_DIR, '/tmp', spec.env), seccompFd: SECCOMP_FD }, inner);
        if (spec.supervisor !== undefined) this.argv = [...spec.supervisor, '--', ...this.argv];
      } else {
        this.scratch = join(this.hostDir, 'work');
        mkdirSync(this.scratch);
        this.view = null;
        this.env = targetEnvironment(this.scratch, this.scratch, spec.env);
        this.argv = spec.supervisor !== undefined ? [...spec.supervisor, '--', ...inner] : inner;
      }
      if (this.cgroup !== null) this.argv = this.cgroup.wrap(this.argv);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  private stdio(): Array<'inherit' | 'pipe' | 'ignore' | number> {
    const s: Array<'inherit' | 'pipe' | 'ignore' | number> = [this.spec.stdin ?? 'ignore', this.spec.output, this.spec.output];
    for (let fd = 3; fd < COLLECT_FD; fd++) {
      if (fd === LOG_FD && this.spec.logFd !== undefined) s.push(this.spec.logFd);
      else if (fd === SECCOMP_FD && this.seccompFd !== null) s.push(this.seccompFd);
      else if (fd === LIFELINE_FD && this.spec.sandbox && this.spec.live === true) s.push('pipe');
      else s.push('ignore');
    }
    s.push('pipe');
    const more = this.spec.handedIn ?? new Map<number, number>();
    let top = COLLECT_FD;
    for (const fd of more.keys()) {
      if (!Number.isInteger(fd) || fd <= COLLECT_FD) throw new Error(`confined run: descriptor ${fd} cannot be handed in`);
      top = Math.max(top, fd);
    }
    for (let fd = COLLECT_FD + 1; fd <= top; fd++) s.push(more.get(fd) ?? 'ignore');
    return s;
  }

  private cwd(): string {
    return this.spec.sandbox ? this.hostDir : this.scratch;
  }

  /** Start the run; the caller reads the child's streams and calls {@link finish}. */
  start(): ChildProcess {
    this.child = spawn(this.argv[0], this.argv.slice(1), { stdio: this.stdio(), cwd: this.cwd(), env: this.env });
    return this.child;
  }

  /** The collected-files stream of a started run, read with the bound. */
  collected(): Promise<Map<string, Buffer>> {
    const stream = (this.child?.stdio as ReadonlyArray<NodeJS.ReadableStream | null | undefined> | undefined)?.[COLLECT_FD];
    if (!stream) return Promise.resolve(new Map());
    const chunks: Buffer[] = [];
    let size = 0;
    return new Promise((resolvePromise) => {
      stream.on('data', (c: Buffer | string) => {
        if (typeof c === 'string') return;
        if (size + c.length > this.collectLimit) return;
        chunks.push(c);
        size += c.length;
      });
      stream.on('error', () => resolvePromise(parseCollected(Buffer.concat(chunks))));
      stream.on('close', () => resolvePromise(parseCollected(Buffer.concat(chunks))));
    });
  }

  /**
   * Kill the run: bwrap (its pid 1 follows with --die-with-parent), every
   * process of its cgroup, and the lifeline (the sandbox's watcher kills the
   * rest).
   */
  kill(): void {
    const c = this.child;
    if (c?.pid !== undefined && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    this.cgroup?.kill();
    const lifeline = (c?.stdio as ReadonlyArray<{ destroy(): void } | null | undefined> | undefined)?.[LIFELINE_FD];
    lifeline?.destroy();
  }

  /**
   * Kill every process inside the sandbox through the lifeline, but not a
   * supervisor outside it: perf then sees its workload end and completes
   * perf.data. (Unconfined there is no lifeline: the supervisor ends its
   * workload itself.)
   */
  killInside(): void {
    const lifeline = (this.child?.stdio as ReadonlyArray<{ destroy(): void } | null | undefined> | undefined)?.[LIFELINE_FD];
    lifeline?.destroy();
  }

  /** Run to the end (bounded by the spec's timeout). */
  runSync(): ConfinedResult {
    const res = spawnSync(this.argv[0], this.argv.slice(1), {
      stdio: this.stdio(),
      cwd: this.cwd(),
      env: this.env,
      timeout: this.spec.timeoutSec > 0 ? this.spec.timeoutSec * 1000 : undefined,
      killSignal: 'SIGKILL',
      maxBuffer: this.collectLimit,
    });
    const err = res.error as NodeJS.ErrnoException | undefined;
    if (err && err.code === 'ENOENT') throw new Error(`cannot run ${this.argv[0]}: not installed`);
    const out = res.output ?? [];
    const text = (b: unknown): string => (Buffer.isBuffer(b) ? b.toString('utf8') : '');
    const collected = out[COLLECT_FD];
    return {
      status: res.status,
      signal: res.signal,
      stdout: text(out[1]),
      stderr: text(out[2]),
      files: Buffer.isBuffer(collected) ? parseCollected(collected) : new Map(),
      timedOut: err?.code === 'ETIMEDOUT',
    };
  }

  /** Remove the run's host directory and cgroup (idempotent). */
  dispose(): void {
    this.kill();
    if (this.seccompFd !== null) closeSync(this.seccompFd);
    this.seccompFd = null;
    this.cgroup?.remove();
    rmSync(this.hostDir, { recursive: true, force: true });
  }
}
