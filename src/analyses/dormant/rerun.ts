/**
 * Dormant code, step 5: run the target again, with the library call results
 * that the solver found, and prove that the dormant region now runs.
 *
 * Both runs use the LD_PRELOAD shim (native/dormant-shim.c),
 * built here with gcc and cached under build/dormant/ by the hash of its
 * source. The shim goes into the target only: qemu-user's `-E` and
 * `QEMU_SET_ENV` set the *guest's* environment, so the emulator itself is
 * never preloaded.
 *
 * - {@link snapshotRun}: the program runs confined (bwrap, as the recorder
 *   runs it) under qemu-x86_64 with the shim in snapshot mode; the result
 *   is the concrete state after each interposed call (snapshot.ts).
 * - {@link patchedRecording}: `ptscope record` again with the shim in rule
 *   mode; the new bundle's coverage, compared with the region's blocks, is
 *   the proof (coverage-merge.ts `newlyExecuted`).
 * - {@link patchedRun}: the same patched program run confined in a scratch
 *   directory that is kept, so that its side effects can be checked.
 *
 * Statically linked programs have no dynamic loader: nothing is interposed
 * and every region of them is reported unsolved with that reason.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ElfFile } from '../../flow/elf.js';
import type { BundleManifest } from '../../sources/recorder/bundle.js';

/** What a re-run needs of a recording: the program and its argv (never how to confine it). */
export interface RerunProgram {
  program: { path: string; argv: readonly string[] } | null;
}
import { record } from '../../sources/recorder/record.js';
import { sandboxArgv } from '../../sources/recorder/sandbox.js';
import type { Solution } from './symbolic.js';
import { readSnapshots, type CallSnapshot } from './snapshot.js';

/** The package root (holds package.json and native/), from this file's place in src/ or dist/src/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native', 'dormant-shim.c'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('this copy of ptscope has no native/dormant-shim.c: reinstall the package');
}

/** Where built helpers are cached: per user, outside the (possibly read-only) package. */
function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || (homedir() ? join(homedir(), '.cache') : tmpdir());
  return join(base, 'ptscope');
}

/** Build the shim (or reuse the cached build of the same source). Throws with gcc's message. */
export function buildShim(): string {
  const source = join(packageRoot(), 'native', 'dormant-shim.c');
  const text = readFileSync(source);
  const hash = createHash('sha1').update(text).digest('hex').slice(0, 12);
  const out = join(cacheDir(), `dormant-shim-${hash}.so`);
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const res = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', tmp, source, '-ldl'], { encoding: 'utf8' });
  if (res.error) throw new Error(`cannot run gcc (needed to build the dormant-code shim): ${res.error.message}`);
  if (res.status !== 0) throw new Error(`gcc failed on the shim: ${res.stderr.trim().split('\n')[0]}`);
  renameSync(tmp, out);
  return out;
}

/** True if the executable has a dynamic loader (PT_INTERP), so that LD_PRELOAD applies. */
export function isDynamic(path: string): boolean {
  const bytes = readFileSync(path);
  return ElfFile.parse(bytes, path).segments.some((s) => s.type === 3);
}

/** Hex encoding of the rules text, as the shim reads PTSCOPE_SHIM_RULES. */
export function encodeRules(rules: string[]): string {
  return Buffer.from(rules.join('\n') + '\n', 'latin1').toString('hex');
}

/** The program and its arguments as the recording ran them. */
function programArgv(m: RerunProgram): string[] {
  if (m.program === null) throw new Error('the recording does not say which program ran: nothing to re-run');
  return [m.program.path, ...m.program.argv.slice(1)];
}

function readOnlyInputs(argv: string[], shim: string): string[] {
  const out = new Set<string>();
  for (const a of [...argv, shim]) if (a.startsWith('/tmp/') && existsSync(a)) out.add(resolve(a));
  return [...out];
}

export interface ConfinedRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Scratch directory (the program's cwd); the caller removes it. */
  workDir: string;
}

/** Run argv under qemu-x86_64 in the sandbox with guest environment `env`. */
function confinedRun(argv: string[], env: Record<string, string>, shim: string, timeoutSec: number): ConfinedRun {
  const workDir = mkdtempSync(join(tmpdir(), 'ptscope-dormant-'));
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-E', `${k}=${v}`]);
  const cmd = sandboxArgv({ workDir, readOnly: readOnlyInputs(argv, shim) }, ['qemu-x86_64', ...envArgs, ...argv]);
  const res = spawnSync(cmd[0], cmd.slice(1), { cwd: workDir, encoding: 'utf8', timeout: timeoutSec * 1000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.error && (res.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`cannot run ${cmd[0]}: not installed`);
  return { status: res.status, stdout: res.stdout ?? '', stderr: res.stderr ?? '', workDir };
}

/** Run the bundle's program with the shim in snapshot mode; the snapshots of its interposed calls. */
export function snapshotRun(m: RerunProgram, timeoutSec = 60): CallSnapshot[] {
  const shim = buildShim();
  const argv = programArgv(m);
  const run = confinedRun(argv, { LD_PRELOAD: shim, PTSCOPE_SHIM_SNAP: 'ptscope-dormant.snap' }, shim, timeoutSec);
  try {
    const file = join(run.workDir, 'ptscope-dormant.snap');
    return existsSync(file) ? readSnapshots(file) : [];
  } finally {
    rmSync(run.workDir, { recursive: true, force: true });
  }
}

/** Run the bundle's program with the shim applying `rules`; the scratch directory is kept for the caller. */
export function patchedRun(m: RerunProgram, rules: string[], timeoutSec = 60): ConfinedRun & { files: string[] } {
  const shim = buildShim();
  const run = confinedRun(programArgv(m), { LD_PRELOAD: shim, PTSCOPE_SHIM_RULES: encodeRules(rules) }, shim, timeoutSec);
  return { ...run, files: readdirSync(run.workDir) };
}

/** Record the program again with the shim applying `rules`, into bundle directory `output`. */
export async function patchedRecording(m: RerunProgram, rules: string[], output: string, timeoutSec = 60): Promise<{ stdout: string; manifest: BundleManifest }> {
  const shim = buildShim();
  // The shim reaches only the guest (QEMU_SET_ENV; the hex rules hold no
  // comma), and is bound into the sandbox wherever the checkout lives.
  const res = await record({
      argv: programArgv(m),
      output,
      force: true,
      sandbox: true,
      timeoutSec,
      maxInsns: 1_000_000_000,
      psbPeriod: 4096,
      retCompression: true,
      longTnt: false,
      ranges: [],
      timing: {},
      snapshotBytes: 0,
      hardware: false,
      stdio: 'pipe',
      guestEnv: { LD_PRELOAD: shim, PTSCOPE_SHIM_RULES: encodeRules(rules) },
      readOnlyPaths: [shim],
      notice: () => {},
  });
  return { stdout: res.stdout, manifest: res.manifest };
}

/**
 * Shim rules (see the shim's header) that make the interposed calls return
 * what the solution says. Bytes of a result the constraints leave free keep
 * their observed values.
 */
export function rulesFor(solution: Solution): string[] {
  const rules: string[] = [];
  for (const call of solution.calls) {
    const value = new Map<string, bigint>();
    for (const a of solution.assignments) if (a.symbol.call === call) value.set(a.symbol.name, a.value);
    const valueOf = (name: string, observed: bigint): bigint => value.get(name) ?? observed;
    const actions: string[] = [];
    const ret = call.symbols.find((s) => s.role.kind === 'ret');
    const present = call.symbols.find((s) => s.role.kind === 'present');
    if (call.result === 'string' && present) {
      if (valueOf(present.name, present.observed) === 0n) {
        actions.push('ret=0');
      } else {
        // The constrained prefix (free bytes inside it keep their observed
        // value, or 'A'); with no byte constrained, the observed string.
        const mem = call.symbols.filter((s) => s.role.kind === 'mem');
        let last = -1;
        mem.forEach((s, i) => {
          if (value.has(s.name)) last = i;
        });
        const bytes: number[] = [];
        for (let i = 0; i < (last >= 0 ? last + 1 : mem.length); i++) {
          const s = mem[i];
          let b = Number(valueOf(s.name, s.observed) & 0xffn);
          if (!value.has(s.name) && b === 0 && last >= 0) b = 0x41;
          if (b === 0) break;
          bytes.push(b);
        }
        actions.push(`retstr=${Buffer.from(bytes).toString('hex')}`);
      }
    } else if (call.result === 'file' && present) {
      const want = valueOf(present.name, present.observed);
      if (want === 0n) actions.push('ret=0');
      else if (present.observed === 0n) actions.push('devnull');
    } else if (call.result === 'fd' && ret) {
      const want = BigInt.asIntN(32, valueOf(ret.name, ret.observed));
      if (want >= 0n && BigInt.asIntN(32, ret.observed) < 0n) actions.push('devnull');
      else if (want < 0n) actions.push(`ret=${BigInt.asUintN(64, want).toString(16)}`);
    } else if (ret && value.has(ret.name)) {
      const v = BigInt.asIntN(ret.bits, value.get(ret.name)!);
      actions.push(`ret=${BigInt.asUintN(64, v).toString(16)}`);
    }
    if (call.result !== 'string') {
      // Out-parameter bytes the constraints fix, as runs of consecutive offsets.
      const bytes = call.symbols
        .filter((s) => s.role.kind === 'mem' && value.has(s.name))
        .map((s) => ({ role: s.role as { kind: 'mem'; base: 'ret' | number; offset: number }, v: Number(value.get(s.name)! & 0xffn) }))
        .sort((a, b) => String(a.role.base).localeCompare(String(b.role.base)) || a.role.offset - b.role.offset);
      let i = 0;
      while (i < bytes.length) {
        let j = i + 1;
        while (j < bytes.length && bytes[j].role.base === bytes[i].role.base && bytes[j].role.offset === bytes[j - 1].role.offset + 1) j++;
        const base = bytes[i].role.base === 'ret' ? 'ret' : `arg${bytes[i].role.base}`;
        actions.push(`mem=${base}:${bytes[i].role.offset.toString(16)}:${Buffer.from(bytes.slice(i, j).map((b) => b.v)).toString('hex')}`);
        i = j;
      }
    }
    if (actions.length > 0) rules.push(`${call.name} ${call.site.toString(16)} ${actions.join(' ')}`);
  }
  return rules;
}
