/**
 * `ptscope jobs`: the fleet's jobs with their state and progress.
 */
import type { JobStateName, JobStatus } from '../fleet/job-status.js';
import { LISTED_STATES } from '../fleet/job-states.js';
import { summarizeResult } from '../fleet/job-summary.js';
import { defineCommand, integer, list, parseCommand } from './command.js';
import { atRedis, FLEET_HELP, redisTarget, withFleetOptions, type FleetCliOptions } from './fleet-options.js';
import { CliError, type LineWriter } from './output.js';

export function jobsCommand() {
  return withFleetOptions(
    defineCommand('jobs', "List the fleet's jobs: state, progress, attempts, the worker that ran each, and its result or failure.")
      .option('--state <list>', `states to list, comma-separated (default: all: ${LISTED_STATES.join(',')})`, list)
      .option('--limit <n>', 'jobs listed per state, newest first', integer(1, 100_000), 50)
      .option('--json', 'one JSON object per job, with its whole result'),
  ).addHelpText('after', `${FLEET_HELP}

examples:
  ptscope jobs --redis redis://127.0.0.1
  ptscope jobs --state failed --json | jq .failedReason`);
}

interface JobsCliOptions extends FleetCliOptions {
  state?: string[];
  limit: number;
  json?: boolean;
}

function line(s: JobStatus): string {
  const tries = `${s.attemptsMade}/${s.attempts}`;
  const outcome = s.state === 'completed' ? summarizeResult(s.kind, s.result) : s.state === 'failed' || s.failedReason ? (s.failedReason ?? '') : '';
  return `${s.id.padStart(6)}  ${s.kind.padEnd(8)}  ${s.state.padEnd(16)}  ${String(s.progress).padStart(3)}%  ${tries.padStart(5)}  ${(s.worker ?? '-').padEnd(20)}  ${s.target}${outcome ? `  ${outcome}` : ''}`;
}

/** `ptscope jobs`. */
export async function runJobsCommand(args: string[], out: LineWriter): Promise<number> {
  const { help, opts: o } = parseCommand<JobsCliOptions>(jobsCommand(), args, out);
  if (help) return 0;
  const states = (o.state ?? [...LISTED_STATES]) as JobStateName[];
  for (const s of states) {
    if (!LISTED_STATES.includes(s)) throw new CliError(`--state: unknown state '${s}' (known: ${LISTED_STATES.join(', ')}).`);
  }
  // BullMQ loads only for the fleet commands.
  const { JobBoard } = await import('../fleet/job-status.js');
  const redis = redisTarget(o);
  return atRedis(o, async () => {
    const board = new JobBoard(redis, o.queue);
    try {
      const jobs = await board.list(states, o.limit);
      if (o.json) {
        for (const j of jobs) out.line(JSON.stringify(j));
        return 0;
      }
      const counts = await board.counts();
      out.line(LISTED_STATES.map((s) => `${s} ${counts[s] ?? 0}`).join(', '));
      if (jobs.length > 0) out.line(`${'id'.padStart(6)}  ${'kind'.padEnd(8)}  ${'state'.padEnd(16)}  done  tries  ${'worker'.padEnd(20)}  target`);
      for (const j of jobs) out.line(line(j));
      return 0;
    } finally {
      await board.close();
    }
  });
}
