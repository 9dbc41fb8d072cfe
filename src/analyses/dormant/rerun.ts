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
 *
 * Every run executes the bundle's own copy of the program with its recorded
 * arguments (rerun-program.ts), confined unless the analyst passed
 * --no-sandbox to `ptscope dormant`: the bundle never decides.
 * - {@link patchedRecording}: `ptscope record` again with the shim in rule
 *   mode; the new bundle's coverage, compared with the region's blocks, is
 *   the proof (coverage-merge.ts `newlyExecuted`).
 *   With rules, the snapshots are those of a patched run (the next round of
 *   an iterative solve, dormant.ts).
 * - {@link patchedRun}: the same patched program run confined in a scratch
 *   directory that is kept, so that its side effects can be checked.
 *
 * Statically linked programs have no dynamic loader: nothing is interposed
 * and every region of them is reported unsolved with that reason.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ElfFile } from '../../flow/elf.js';
import type { Recording } from '../../sources/model/recording.js';
import type { BundleManifest } from '../../sources/recorder/bundle.js';
import { ConfinedRun, type CollectSpec } from '../../sources/recorder/confined-run.js';
import { record, RecordError } from '../../sources/recorder/record.js';
import { withRecordDefaults } from '../../sources/recorder/record-options.js';
import { rerunProgram } from '../../sources/recorder/rerun-program.js';
import { DEFAULT_LIMITS } from '../../sources/recorder/resource-limits.js';
import { buildNativeShim } from '../../sources/native-build.js';
import { prepareRerun } from '../rerun-setup.js';
import { LIBRARY_MODELS, shimModelHeader } from './library-models.js';
import type { Solution } from './symbolic.js';
import { readSnapshots, type CallSnapshot } from './snapshot.js';

export { packageRoot } from '../../sources/native-build.js';

/** Build the shim (or reuse the cached build of the same source). Throws with gcc's message. */
export function buildShim(): string {
  // The model table (library-models.ts) goes into the shim as a generated header.
  return buildNativeShim('dormant-shim', 'dormant-code shim', { 'dormant-models.h': shimModelHeader() });
}

/** True if the executable has a dynamic loader (PT_INTERP), so that LD_PRELOAD applies. */
export function isDynamic(path: string): boolean {
  const bytes = readFileSync(path);
  return ElfFile.parse(bytes, path).segments.some((s) => s.type === 3);
}

/**
 * A later round's rule for the call an earlier rule patched: the later
 * rule was solved from a run with the earlier one in force, so what it
 * does not restate still holds. Its result action (ret=, retstr=,
 * retarg=, devnull), if any, replaces the earlier one; its mem= writes
 * replace the earlier writes they overlap, and the others stay.
 */
export function mergeRule(earlier: string, later: string): string {
  const [name, site, ...was] = earlier.split(' ');
  const now = later.split(' ').slice(2);
  const isResult = (a: string): boolean => !a.startsWith('mem=');
  const span = (a: string): { base: string; lo: number; hi: number } => {
    const [base, off, hex] = a.slice(4).split(':');
    const lo = parseInt(off, 16);
    return { base, lo, hi: lo + hex.length / 2 };
  };
  const writes = now.filter((a) => !isResult(a)).map(span);
  const kept = was.filter((a) => {
    if (isResult(a)) return !now.some(isResult);
    const w = span(a);
    return !writes.some((x) => x.base === w.base && x.lo < w.hi && w.lo < x.hi);
  });
  // Result actions first, as rulesFor writes them.
  const actions = [...kept.filter(isResult), ...now.filter(isResult), ...kept.filter((a) => !isResult(a)), ...now.filter((a) => !isResult(a))];
  return [name, site, ...actions].join(' ');
}

/** Hex encoding of the rules text, as the shim reads PTSCOPE_SHIM_RULES. */
export function encodeRules(rules: string[]): string {
  return Buffer.from(rules.join('\n') + '\n', 'latin1').toString('hex');
}

export interface ConfinedRunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  /** A host directory holding the files the run left in its working directory; the caller removes it. */
  workDir: string;
}

/** Run the recording's program under qemu-x86_64 with guest environment `env`, and bring out `collect`. */
function shimRun(r: Recording, env: Record<string, string>, shim: string, timeoutSec: number, sandbox: boolean, collect: CollectSpec): ConfinedRunResult {
  const { program, qemu } = prepareRerun(r, sandbox, 're-run the program with the shim');
  const envArgs = Object.entries(env).flatMap(([k, v]) => ['-E', `${k}=${v}`]);
  const run = new ConfinedRun({
    command: [qemu, ...envArgs, ...program.argv],
    sandbox,
    view: { programCopy: { host: program.host, guest: program.guest }, libraryCopies: program.libraries, allowRead: [shim] },
    limits: DEFAULT_LIMITS,
    output: 'pipe',
    collect,
    timeoutSec,
  });
  try {
    const res = run.runSync();
    const workDir = mkdtempSync(join(tmpdir(), 'ptscope-dormant-'));
    for (const [path, bytes] of res.files) {
      const name = basename(path);
      if (dirname(path) !== run.scratch || name === '' || name === '.' || name === '..') continue;
      writeFileSync(join(workDir, name), bytes);
    }
    return { status: res.status, stdout: res.stdout, stderr: res.stderr, workDir };
  } finally {
    run.dispose();
  }
}

/**
 * Run the recording's program with the shim in snapshot mode; the snapshots
 * of its interposed calls. With `rules`, the shim also applies them, and a
 * patched call's snapshot holds the patched result (iterative rounds).
 */
export function snapshotRun(r: Recording, timeoutSec = 60, sandbox = true, rules: string[] = []): CallSnapshot[] {
  const shim = buildShim();
  const snap = 'ptscope-dormant.snap';
  const env: Record<string, string> = { LD_PRELOAD: shim, PTSCOPE_SHIM_SNAP: snap };
  if (rules.length > 0) env.PTSCOPE_SHIM_RULES = encodeRules(rules);
  const run = shimRun(r, env, shim, timeoutSec, sandbox, { files: [snap] });
  try {
    const file = join(run.workDir, snap);
    return existsSync(file) ? readSnapshots(file) : [];
  } finally {
    rmSync(run.workDir, { recursive: true, force: true });
  }
}

/** Run the recording's program with the shim applying `rules`; its working directory's files are kept for the caller. */
export function patchedRun(r: Recording, rules: string[], timeoutSec = 60, sandbox = true): ConfinedRunResult & { files: string[] } {
  const shim = buildShim();
  const run = shimRun(r, { LD_PRELOAD: shim, PTSCOPE_SHIM_RULES: encodeRules(rules) }, shim, timeoutSec, sandbox, { files: 'all' });
  return { ...run, files: readdirSync(run.workDir) };
}

/** Record the program again with the shim applying `rules`, into bundle directory `output`. */
export async function patchedRecording(r: Recording, rules: string[], output: string, timeoutSec = 60, sandbox = true): Promise<{ stdout: string; manifest: BundleManifest }> {
  const shim = buildShim();
  const program = rerunProgram(r, sandbox);
  // The shim reaches only the guest (qemu -E; the hex rules hold no comma)
  // and is shown to the sandbox wherever it was built.
  try {
    const res = await record(withRecordDefaults({
      argv: program.argv,
      program: { host: program.host, guest: program.guest, libraries: program.libraries },
      exposeArguments: false,
      output,
      force: true,
      sandbox,
      timeoutSec,
      hardware: false,
      stdio: 'pipe',
      guestEnv: { LD_PRELOAD: shim, PTSCOPE_SHIM_RULES: encodeRules(rules) },
      allowRead: [shim],
      notice: () => {},
    }));
    return { stdout: res.stdout, manifest: res.manifest };
  } catch (e) {
    if (e instanceof RecordError) throw new Error(e.message.replace(/^record: /, ''));
    throw e;
  }
}

/** The one call at its site a rule for `call` patches (SITE#N): a read whose count the shim gave; else null, every call there. */
export function patchedOccurrence(call: Solution['calls'][number]): number | null {
  return LIBRARY_MODELS[call.name]?.readsOn && call.occurrence > 0 ? call.occurrence : null;
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
    } else if (call.result === 'buffer' && present) {
      // fgets: the buffer (argument 0) or NULL; its bytes follow as mem= actions.
      const want = valueOf(present.name, present.observed);
      if (want === 0n) actions.push('ret=0');
      else if (present.observed === 0n) actions.push('retarg=0');
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
    // The site: bare hex in the main executable (the shim's first rule format), `file:hex` in one of the program's libraries;
    // `#N` for a call that reads on through its input, whose solved result holds for that call only.
    const where = call.module === '' ? call.site.toString(16) : `${call.module}:${call.site.toString(16)}`;
    const occurrence = patchedOccurrence(call);
    const site = occurrence !== null ? `${where}#${occurrence}` : where;
    if (actions.length > 0) rules.push(`${call.name} ${site} ${actions.join(' ')}`);
  }
  return rules;
}
