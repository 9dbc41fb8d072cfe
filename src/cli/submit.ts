/**
 * `ptscope submit`: enqueue work for the fleet and print the job ids; with
 * --wait, follow the jobs (a progress bar per job on a terminal) until they
 * finish and print their results.
 */
import { basename } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Option } from 'commander';
import cliProgress from 'cli-progress';
import { DETECTOR_NAMES } from '../analyses/detector.js';
import type { JobBoard, JobStatus } from '../fleet/job-status.js';
import { resultStatus, summarizeResult } from '../fleet/job-summary.js';
import { jobTarget, type JobKind } from '../fleet/job-types.js';
import { DEFAULT_RETRY, printable } from '../fleet/queue.js';
import type { JobRequest, SubmittedJob, planDecode as PlanDecode } from '../fleet/submit.js';
import type { Store } from '../fleet/store.js';
import { InputError } from '../sources/import/safe-files.js';
import { defineCommand, integer, list, parseCommand } from './command.js';
import { atRedis, FLEET_HELP, openStore, redisTarget, withFleetOptions, type FleetCliOptions } from './fleet-options.js';
import { CliError, type LineWriter } from './output.js';

const INPUT_JOBS = ['analyze', 'dormant', 'crash', 'classify', 'report', 'decode'] as const;

/** Default segment group size of a `decode` job: one group per this many trace bytes. */
const SEGMENT_BYTES = 64 << 20;

export function submitCommand() {
  return withFleetOptions(
    defineCommand('submit', 'Enqueue work for the fleet\'s workers and print the job ids: record a program (after --), or run a job on recordings in the store. A large trace becomes a flow: one segment job per group of PSB-delimited segments, merged by a parent job.')
      .argument('[inputs...]', 'bundles or perf.data files under the store; or -- and a program under the store with its arguments')
      .option('--store <dir>', 'the storage root the workers share; inputs and outputs must be under it')
      .addOption(new Option('--job <kind>', 'what to run on the inputs').choices([...INPUT_JOBS]).default('analyze'))
      .option('-o, --output <path>', 'record: the bundle to write; report: the HTML file (default: under <store>/runs or <store>/reports)')
      .option('--analyze', 'record: run the detectors on the new bundle in the same job')
      .option('--timeout <sec>', 'record: wall-clock limit of the program', integer(1, 3600), 60)
      .option('--max-insns <n>', 'record: instruction budget', integer(1, 10_000_000_000))
      .option('--stdin <file>', 'record: a file under the store the program reads as standard input')
      .option('--detect <list>', `analyze, report, decode: detectors, comma-separated (decode: those analyze --jobs runs, default analyze's)`, list)
      .option('--segments <n>', `decode: segment groups per stream (default: one per ${SEGMENT_BYTES >> 20} MiB of trace)`, integer(1, 1 << 20))
      .option('--rerun', 'dormant: re-record with the solved call results to prove them')
      .option('--core <file>', 'crash: the core dump (under the store)')
      .option('--pid <n>', 'crash: the crashed process to analyse, when several crashed', integer(1, 4_194_304))
      .option('--title <text>', 'report: page title')
      .option('--attempts <n>', 'attempts per job before it fails for good', integer(1, 100), DEFAULT_RETRY.attempts)
      .option('--backoff <ms>', 'delay before the first retry (doubling after)', integer(0, 3_600_000), DEFAULT_RETRY.backoffMs)
      .option('--wait', 'follow the jobs until they finish, then print their results')
      .option('--json', 'with --wait: one JSON object per job (its whole result)')
      .option('-q, --quiet', 'with --wait: no progress bar'),
  ).addHelpText('after', `${FLEET_HELP}

exit status: 0 submitted (with --wait: every job completed); 1 with --wait, a job's
trace could only partly be decoded or a recorded program did not exit cleanly;
2 usage or input error, or with --wait a job failed.

examples:
  ptscope submit --redis redis://127.0.0.1 --store /srv/pt runs/a.ptscope --wait
  ptscope submit --redis redis://127.0.0.1 --store /srv/pt --analyze -- /srv/pt/samples/x.elf -v
  ptscope submit --redis redis://127.0.0.1 --store /srv/pt --job decode --segments 8 big.ptscope`);
}

interface SubmitCliOptions extends FleetCliOptions {
  store?: string;
  job: (typeof INPUT_JOBS)[number];
  output?: string;
  analyze?: boolean;
  timeout: number;
  maxInsns?: number;
  stdin?: string;
  detect?: string[];
  segments?: number;
  rerun?: boolean;
  core?: string;
  pid?: number;
  title?: string;
  attempts: number;
  backoff: number;
  wait?: boolean;
  json?: boolean;
  quiet?: boolean;
}

function storePath(store: Store, path: string, what: string): string {
  try {
    return store.relativeOf(path, what);
  } catch (e) {
    if (e instanceof InputError) throw new CliError(e.message);
    throw e;
  }
}

/** A name for a default output: the base name, and a random tag so that jobs never collide. */
function outputName(dir: string, from: string, ext: string): string {
  return `${dir}/${basename(from).replace(/\.ptscope$/, '').replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'job'}-${randomBytes(4).toString('hex')}${ext}`;
}

/** The jobs a command line asks for (flows as parent and children). */
function requests(o: SubmitCliOptions, store: Store, inputs: string[], program: string[] | null, planDecode: typeof PlanDecode): { single: JobRequest[]; flows: ReturnType<typeof PlanDecode> } {
  const detectors = o.detect;
  for (const d of detectors ?? []) {
    if (!DETECTOR_NAMES.includes(d)) throw new CliError(`--detect: unknown detector '${d}' (known: ${DETECTOR_NAMES.join(', ')}).`);
  }
  if (program !== null) {
    if (inputs.length > 0) throw new CliError('submit: give either inputs or -- and a program, not both.');
    if (program.length === 0) throw new CliError("submit: no program after --. Run 'ptscope submit --help'.");
    const rel = storePath(store, program[0]!, 'program');
    return {
      single: [{
        kind: 'record',
        data: {
          program: rel,
          args: program.slice(1),
          output: o.output !== undefined ? storePath(store, o.output, '--output') : outputName('runs', rel, '.ptscope'),
          stdin: o.stdin !== undefined ? storePath(store, o.stdin, '--stdin') : undefined,
          timeoutSec: o.timeout,
          maxInsns: o.maxInsns,
          analyze: o.analyze === true,
        },
      }],
      flows: [],
    };
  }
  if (inputs.length === 0) throw new CliError("submit: no input given. Run 'ptscope submit --help'.");
  const rels = inputs.map((i) => storePath(store, i, 'input'));
  switch (o.job) {
    case 'report':
      return {
        single: [{
          kind: 'report',
          data: { inputs: rels, output: o.output !== undefined ? storePath(store, o.output, '--output') : outputName('reports', rels[0]!, '.html'), title: o.title, detectors },
        }],
        flows: [],
      };
    case 'decode':
      return {
        single: [],
        flows: rels.flatMap((rel) => {
          try {
            return planDecode(store, rel, { groups: o.segments, segmentBytes: SEGMENT_BYTES }, detectors);
          } catch (e) {
            throw new CliError((e as Error).message.split('\n')[0]!);
          }
        }),
      };
    case 'analyze':
      return { single: rels.map((input) => ({ kind: 'analyze', data: { input, detectors } })), flows: [] };
    case 'dormant':
      return { single: rels.map((input) => ({ kind: 'dormant', data: { input, rerun: o.rerun === true } })), flows: [] };
    case 'crash':
      return { single: rels.map((input) => ({ kind: 'crash', data: { input, core: o.core !== undefined ? storePath(store, o.core, '--core') : undefined, pid: o.pid } })), flows: [] };
    case 'classify':
      return { single: rels.map((input) => ({ kind: 'classify', data: { input } })), flows: [] };
  }
}

/** `ptscope submit`. */
export async function runSubmitCommand(args: string[], out: LineWriter): Promise<number> {
  const dash = args.indexOf('--');
  const { help, opts: o, args: inputs } = parseCommand<SubmitCliOptions>(submitCommand(), dash >= 0 ? args.slice(0, dash) : args, out);
  if (help) return 0;
  const redis = redisTarget(o);
  const store = openStore(o.store);
  // BullMQ loads only for the fleet commands.
  const { planDecode, Submitter } = await import('../fleet/submit.js');
  const { single, flows } = requests(o, store, inputs, dash >= 0 ? args.slice(dash + 1) : null, planDecode);
  return atRedis(o, async () => {
    const submitter = new Submitter(redis, o.queue, { attempts: o.attempts, backoffMs: o.backoff });
    const submitted: { job: SubmittedJob; target: string }[] = [];
    try {
      for (const r of single) {
        const job = await submitter.add(r);
        submitted.push({ job, target: jobTarget(r.kind, r.data) });
        out.line(`job ${job.id} ${r.kind} ${jobTarget(r.kind, r.data)}`);
      }
      for (const f of flows) {
        const job = await submitter.addFlow(f.parent, f.children);
        submitted.push({ job, target: jobTarget('decode', f.parent.data) });
        out.line(`job ${job.id} decode ${jobTarget('decode', f.parent.data)} stream ${f.parent.data.stream}: ${job.children.length} segment jobs (${job.children.join(' ')})`);
      }
    } finally {
      out.flush();
      await submitter.close();
    }
    if (!o.wait) return 0;
    const { JobBoard } = await import('../fleet/job-status.js');
    const board = new JobBoard(redis, o.queue);
    try {
      return await follow(board, submitted, o, out);
    } finally {
      await board.close();
    }
  });
}

const FINAL = new Set(['completed', 'failed']);

/** Poll the jobs until every one is completed or failed; print results; the exit status. */
async function follow(board: JobBoard, jobs: { job: SubmittedJob; target: string }[], o: SubmitCliOptions, out: LineWriter): Promise<number> {
  const ids = jobs.map((j) => j.job.id);
  const showBars = o.quiet !== true && process.stderr.isTTY === true;
  const multi = showBars
    ? new cliProgress.MultiBar(
        { stream: process.stderr, format: '{job} [{bar}] {percentage}% | {state}', barsize: 24, hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const bars = multi ? jobs.map((j) => multi.create(100, 0, { job: printable(`job ${j.job.id} ${j.job.kind} ${j.target}`, 60), state: 'waiting' })) : [];
  let statuses: (JobStatus | null)[] = [];
  for (;;) {
    statuses = await board.status(ids);
    statuses.forEach((s, i) => bars[i]?.update(s?.progress ?? 0, { state: s?.state ?? 'gone' }));
    if (statuses.every((s) => s === null || FINAL.has(s.state))) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  multi?.stop();
  let status = 0;
  statuses.forEach((s, i) => {
    const { job, target } = jobs[i]!;
    if (s === null) {
      process.stderr.write(`ptscope: job ${job.id} ${job.kind} ${target}: no longer in the queue (removed)\n`);
      status = 2;
      return;
    }
    if (o.json) out.line(JSON.stringify({ id: s.id, kind: s.kind, target: s.target, state: s.state, worker: s.worker, attemptsMade: s.attemptsMade, failedReason: s.failedReason, result: s.result }));
    if (s.state === 'failed') {
      process.stderr.write(`ptscope: job ${s.id} ${s.kind} ${s.target}: ${s.failedReason ?? 'failed'}\n`);
      status = 2;
      return;
    }
    if (!o.json) out.line(`job ${s.id} ${s.kind} ${s.target}: ${summarizeResult(s.kind as JobKind, s.result)}`);
    status = Math.max(status, resultStatus(s.result));
  });
  return status;
}
