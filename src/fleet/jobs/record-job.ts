/**
 * The `record` job: `ptscope record` of a program in the store, writing the
 * bundle into the store; optionally the `analyze` job on it right after.
 *
 * The program always runs under the emulated recorder in the sandbox
 * (SECURITY.md), whatever the job says: no field turns confinement off, and
 * the hardware path (perf, which runs the program unconfined) is never
 * taken. Its output is discarded rather than mixed into the worker's log.
 *
 * A job is not the worker's analyst: its arguments never show host files
 * to the sandbox. An argument naming a file or directory of the store
 * (store-relative, as every path of a job) becomes its absolute path and is
 * shown read-only; every other argument is passed as it is.
 *
 * A worker killed mid-recording leaves the recorder's staging directory
 * (`.NAME.partial-*`) beside the output; the retry removes it. A worker
 * killed after the bundle was renamed into place but before the job was
 * marked done leaves a finished bundle; the retry records it again in
 * place. Either way the store ends with one bundle per job.
 */
import { existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { MANIFEST_NAME } from '../../sources/bundle/manifest.js';
import { record, RecordError } from '../../sources/recorder/record.js';
import { withRecordDefaults } from '../../sources/recorder/record-options.js';
import { asJobError, JobError, subContext, type JobContext } from '../job-context.js';
import type { RecordJob } from '../job-types.js';
import { runAnalyzeJob, type AnalyzeJobResult } from './analyze-job.js';

export interface RecordJobResult {
  kind: 'record';
  /** The new bundle, store-relative. */
  bundle: string;
  recorder: string;
  instructions: { executed: number; traced: number; fnv1a64: string } | null;
  traceBytes: number;
  images: number;
  exit: { status: number | null; signal: string | null; stopped: string | null };
  /** `ptscope record`'s exit status: 0 for a clean exit of the program, else 1. */
  status: number;
  seconds: number;
  analyze: AnalyzeJobResult | null;
}

/** Remove what an earlier attempt of this job left: its staging directories. */
function removeLeftovers(output: string): void {
  const dir = dirname(output);
  const prefix = `.${basename(output)}.partial-`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const p = join(dir, name);
    // rmSync never follows symlinks; a symlink by that name is removed itself.
    if (lstatSync(p).isDirectory() || lstatSync(p).isSymbolicLink()) rmSync(p, { recursive: true, force: true });
  }
}

/** The job's arguments with store paths made absolute, and those paths (to show read-only). */
function storeArguments(ctx: JobContext, args: readonly string[]): { argv: string[]; shown: string[] } {
  const shown = new Set<string>();
  const argv = args.map((a) => {
    const eq = a.startsWith('-') ? a.indexOf('=') : -1;
    const value = eq > 0 ? a.slice(eq + 1) : a;
    if (value === '' || value.startsWith('-') || isAbsolute(value) || value.split('/').includes('..')) return a;
    let rel: string;
    try {
      rel = ctx.store.input(value, 'argument');
    } catch {
      return a;
    }
    const abs = join(ctx.store.root, rel);
    shown.add(abs);
    return eq > 0 ? `${a.slice(0, eq + 1)}${abs}` : abs;
  });
  return { argv, shown: [...shown] };
}

export async function runRecordJob(data: RecordJob, ctx: JobContext): Promise<RecordJobResult> {
  const program = asJobError(() => ctx.store.input(data.program, 'program'));
  const output = asJobError(() => ctx.store.output(data.output, 'output'));
  const stdin = data.stdin === undefined ? undefined : asJobError(() => ctx.store.input(data.stdin, 'stdin'));
  const args = storeArguments(ctx, data.args);
  let force = false;
  if (ctx.attempt > 1) {
    removeLeftovers(output);
    // Our own finished bundle from an attempt whose worker died before reporting it.
    force = existsSync(join(output, MANIFEST_NAME));
  }
  if (!force && existsSync(output)) throw new JobError(`record: ${output} already exists`);
  let res;
  try {
    res = await record(withRecordDefaults({
      // A path with a slash: never looked up on PATH.
      argv: [resolve(program), ...args.argv],
      output,
      force,
      hardware: false,
      timeoutSec: data.timeoutSec,
      maxInsns: data.maxInsns,
      psbPeriod: data.psbPeriod,
      stdio: 'ignore',
      exposeArguments: false,
      allowRead: args.shown,
      stdin,
      notice: (line) => ctx.log(line),
    }));
  } catch (e) {
    if (e instanceof RecordError) throw new JobError(e.message);
    throw e;
  }
  const m = res.manifest;
  const bundle = relative(ctx.store.root, res.bundle);
  const status = m.exit.stopped === null && m.exit.signal === null && m.exit.status === 0 ? 0 : 1;
  ctx.progress(data.analyze ? 0.5 : 1);
  const analyze = data.analyze ? runAnalyzeJob({ input: bundle }, subContext(ctx, 0.5, 1)) : null;
  return {
    kind: 'record',
    bundle,
    recorder: m.recorder,
    instructions: m.instructions,
    traceBytes: m.trace?.bytes ?? 0,
    images: m.images.length,
    exit: { status: m.exit.status, signal: m.exit.signal, stopped: m.exit.stopped },
    status,
    seconds: res.seconds,
    analyze,
  };
}
