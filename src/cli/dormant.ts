import { analyzeDormant, DEFAULT_MAX_ROUNDS, DEFAULT_ROUND_BUDGET_MS, type DormantReport, type RegionReport } from '../analyses/dormant/dormant.js';
import { DEFAULT_SOLVER_TIMEOUT_MS, shutdownZ3 } from '../analyses/dormant/z3-context.js';
import { defineCommand, integer, openInput, parseCommand, withInputOptions, type InputOptions } from './command.js';
import { CliError, type LineWriter } from './output.js';

export function dormantCommand() {
  return withInputOptions(
    defineCommand('dormant', 'Find code of the traced program that never ran, the executed branch that kept it from running, and the library call results (time, localtime, getenv, setlocale, access, stat, fopen, getuid, uname, gethostname, ptrace, rand, read, ...) that would flip that branch. The concrete values come from a second, confined run of the program with an LD_PRELOAD shim (gcc builds it); Z3 solves the path conditions. With --rerun the program is recorded again with those call results replaced, and a region counts as proven only if its target block runs in the new trace.')
      .argument('<input>', 'a bundle directory, a perf.data, or a raw trace (with --raw/--elf)')
      .option('--json', 'print the report as JSON')
      .option('--rerun', 're-record with the solved call results and diff the coverage; repeat in rounds while each re-run reaches further')
      .option('--max-rounds <n>', 'with --rerun: solve-and-re-record rounds per region', integer(1, 32), DEFAULT_MAX_ROUNDS)
      .option('--round-budget <s>', 'with --rerun: seconds all rounds of one region may take', integer(1, 86_400), DEFAULT_ROUND_BUDGET_MS / 1000)
      .option('--keep-rerun', 'keep the re-run bundles (<bundle>.dormant-<region>-r<round>)')
      .option('--no-sandbox', 'run the program\'s re-runs unconfined (unsafe for untrusted programs; never taken from the bundle)')
      .option('--max-regions <n>', 'report and solve the N highest-ranked regions', integer(1), 10)
      .option('--timeout <ms>', 'solver timeout per query in milliseconds', integer(1), DEFAULT_SOLVER_TIMEOUT_MS),
  ).addHelpText('after', `
With --rerun the solve is iterative: a round solves what the recording
lets it solve (each check only runs after the previous one passed), the
program is recorded again with those results patched, and the new trace,
which reaches further, gives the next round its guard and its observed
calls. It stops when the target runs, when a round executes nothing new,
or at --max-rounds / --round-budget. Each round is reported.

Regions are ranked by size and by what they call: file, network, process
and crypto APIs rank higher. Programs must be dynamically linked for the
shim; everything else is reported as unsolved with the reason.

exit status: 0 ok, 2 usage or input error.

examples:
  ptscope record -o a.ptscope -- ./a.out
  ptscope dormant --rerun a.ptscope`);
}

interface DormantCliOptions extends InputOptions {
  json?: boolean;
  rerun?: boolean;
  keepRerun?: boolean;
  sandbox: boolean;
  maxRegions: number;
  timeout: number;
  maxRounds: number;
  roundBudget: number;
}

function regionLines(r: RegionReport): string[] {
  const lines: string[] = [];
  const cats = r.categories.length > 0 ? ` [${r.categories.join(', ')}]` : '';
  lines.push(`region ${r.id}  ${r.function} ${r.entries.join(',')}  ${r.instructions} insns, ${r.blocks} blocks, score ${r.score}${cats}`);
  if (r.calls.length > 0) lines.push(`  calls     ${r.calls.join(', ')}`);
  lines.push(`  guards    ${r.guards.map((g) => `${g.branch} (${g.regionSide} side)`).join(', ') || 'none'}`);
  lines.push(`  target    ${r.target}`);
  lines.push(`  status    ${r.status}${r.reason ? `: ${r.reason}` : ''}`);
  if (r.status !== 'unsolved') {
    lines.push(`  guard     ${r.guard}`);
    for (const s of r.slice) lines.push(`  slice     ${s.ip}  ${s.text}`);
    for (const t of r.trigger) lines.push(`  trigger   ${t.call} at ${t.site}${t.occurrence !== null ? ` (call ${t.occurrence})` : ''}: ${t.values.map((v) => `${v.symbol}=${v.value}`).join(' ')}`);
    for (const rule of r.rules) lines.push(`  shim rule ${rule}`);
  }
  for (const k of r.rounds) {
    const reach = k.reach === 'target' ? 'to the target' : k.reach === 'partial' ? `part of the way (${k.note})` : `nothing (${k.note})`;
    lines.push(`  round ${k.round}   guard ${k.guard ?? '-'}: solved ${reach}`);
    for (const p of k.patched) lines.push(`    patched ${p}`);
    if (k.reach !== 'none') lines.push(`    ran     ${k.newlyExecutedBlocks} new blocks${k.newCalls.length > 0 ? `; new calls ${k.newCalls.join(', ')}` : ''}; target ${k.targetRan ? 'ran' : 'did not run'}`);
    if (!k.targetRan && k.stoppedBy.length > 0) lines.push(`    stopped by ${k.stoppedBy.join(', ')}`);
  }
  if (r.proof) {
    lines.push(`  rerun     target ${r.proof.targetRan ? 'ran' : 'did not run'}; ${r.proof.newlyExecutedBlocks} region blocks newly executed${r.proof.bundle ? ` (${r.proof.bundle})` : ''}`);
    for (const l of r.proof.output.trimEnd().split('\n').slice(0, 5)) if (l) lines.push(`  output    ${l}`);
  }
  return lines;
}

function printReport(rep: DormantReport, out: LineWriter): void {
  out.line(`bundle     ${rep.bundle}`);
  out.line(`program    ${rep.program}`);
  out.line(`coverage   ${rep.coverage.blocksRan}/${rep.coverage.blocks} blocks of the program ran (${rep.coverage.moduleInstructions} of ${rep.coverage.traceInstructions} traced instructions)`);
  out.line(`regions    ${rep.regionsFound} never-run regions reachable from executed code; ${rep.regions.length} analysed`);
  out.line(`snapshots  ${rep.snapshots} library calls observed in the shim run`);
  for (const r of rep.regions) {
    out.line('');
    for (const l of regionLines(r)) out.line(l);
  }
  out.line('');
  out.line(`summary    ${rep.summary.solved}/${rep.summary.attempted} regions solved, ${rep.summary.proven} proven by a re-run`);
  if (rep.summary.solverLost > 0) out.line(`solver     ${rep.summary.solverLost} Z3 quer${rep.summary.solverLost === 1 ? 'y' : 'ies'} lost (the solver process died or stayed silent); each ran again on a new one`);
}

/** `ptscope dormant`. */
export async function runDormantCommand(args: string[], out: LineWriter): Promise<number> {
  const { help, opts: o, args: operands } = parseCommand<DormantCliOptions>(dormantCommand(), args, out);
  if (help) return 0;
  if (!o.sandbox) process.stderr.write('ptscope: warning: --no-sandbox: the re-runs of the program run unconfined, with your network and files\n');
  const recording = openInput(operands[0]!, o);
  let report: DormantReport;
  try {
    report = await analyzeDormant(recording, { rerun: o.rerun === true, keepRerun: o.keepRerun === true, sandbox: o.sandbox, maxRegions: o.maxRegions, timeoutMs: o.timeout, maxRounds: o.maxRounds, roundBudgetMs: o.roundBudget * 1000 });
  } catch (e) {
    throw new CliError(`dormant: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    recording.close();
    await shutdownZ3();
  }
  if (o.json) out.line(JSON.stringify(report, null, 2));
  else printReport(report, out);
  return 0;
}
