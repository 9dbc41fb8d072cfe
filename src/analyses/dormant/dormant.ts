/**
 * `ptscope dormant`: code that never ran, the branch that decided it, the
 * library call results that would flip it, and (with rerun) the proof.
 *
 *   coverage-merge.ts  static CFG + trace → executed blocks → regions
 *   guards.ts          each region's guards, calls, rank and target block
 *   snapshot.ts        concrete state after each library call (shim run)
 *   code-space.ts      the program's own code: the main executable and its own shared libraries
 *   library-models.ts  the modelled calls and their out-object layouts (one table for slice.ts and the shim)
 *   slice.ts           which call outputs are symbols; the slice report
 *   symbolic.ts        the executor: path segment → constraints → call results
 *   path-search.ts     static paths to the target; the search over guards and snapshots
 *   z3-context.ts      the solver's lifecycle
 *   rerun.ts           shim rules, patched recording, coverage diff
 *
 * With rerun, solving is iterative ({@link iterateRegion}): each round's
 * patched re-run reaches further and observes calls the earlier runs did
 * not, for the next round to solve.
 *
 * A region is "proven" only when the patched re-recording executes its
 * target block; "solved" means the solver found call results but no re-run
 * was asked for (or it did not reach the target); "unsolved" carries the
 * reason of the most advanced attempt.
 */
import { readFileSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { hex } from '../finding.js';
import { importBundle } from '../../sources/import/bundle-import.js';
import type { Recording } from '../../sources/model/recording.js';
import { findRegions, mergeCoverageOf, newlyExecuted, tracedMainModule, tracedOwnLibraries, type BlockExecution, type TracedModule } from './coverage-merge.js';
import { CodeSpace } from './code-space.js';
import { rankRegions, type Guard, type RankedRegion } from './guards.js';
import { isDynamic, mergeRule, patchedOccurrence, patchedRecording, rulesFor, snapshotRun } from './rerun.js';
import type { CallSnapshot } from './snapshot.js';
import { fieldAt, LIBRARY_MODELS, type Field } from './library-models.js';
import { solveGuards } from './path-search.js';
import { solverLosses } from './z3-context.js';
import type { Solution } from './symbolic.js';

export interface DormantOptions {
  /** Regions to report and solve, the highest ranked first (default 10). */
  maxRegions?: number;
  /** Re-record with the solved call results and check the region runs. */
  rerun?: boolean;
  /** Where re-run bundles go, with `-r<round>` appended (default: beside the bundle, `<bundle>.dormant-<id>`). */
  rerunDir?: (regionId: number) => string;
  /** Keep re-run bundles (default false: removed after the coverage diff). */
  keepRerun?: boolean;
  /** Solver timeout per query (ms). */
  timeoutMs?: number;
  /** Run the program's re-runs confined (default true; false only from the analyst's --no-sandbox). */
  sandbox?: boolean;
  /** Snapshots tried per guard (default 12). */
  maxAttempts?: number;
  /** With rerun: solve-and-re-record rounds per region (default 8). */
  maxRounds?: number;
  /** With rerun: wall-clock budget for all rounds of one region, in ms (default 10 minutes). */
  roundBudgetMs?: number;
}

/** Default bound on the rounds of one region. */
export const DEFAULT_MAX_ROUNDS = 8;
/** Default wall-clock budget for the rounds of one region. */
export const DEFAULT_ROUND_BUDGET_MS = 600_000;

/**
 * One round of an iterative solve: the call results patched (cumulative
 * shim rules), what the patched re-run newly executed, and which guard
 * stopped it short of the target.
 */
export interface RoundReport {
  round: number;
  /** The guard this round's solution flips. */
  guard: string | null;
  /** Shim rules that this round added or changed. */
  patched: string[];
  /** Whether the solution reaches the target, or stops at a block the recording cannot decide yet. */
  reach: 'target' | 'partial' | 'none';
  /** Why the solution stops short (reach 'partial'), or why nothing was solved (reach 'none'). */
  note: string | null;
  /** Blocks of the program the re-run executed that no earlier run had. */
  newlyExecutedBlocks: number;
  /** Library calls the re-run's snapshot run observed that no earlier run had (name at site). */
  newCalls: string[];
  targetRan: boolean;
  /** Executed branches that still keep the target from running after this round. */
  stoppedBy: string[];
}

export type RegionStatus = 'proven' | 'solved' | 'unsolved';

export interface TriggerCall {
  call: string;
  /** Link-time return site. */
  site: string;
  /** For a call that reads on through its input, which call at the site the rule patches (SITE#N); else null. */
  occurrence: number | null;
  values: Array<{ symbol: string; value: string }>;
}

export interface RegionReport {
  id: number;
  function: string;
  entries: string[];
  instructions: number;
  blocks: number;
  calls: string[];
  categories: string[];
  score: number;
  target: string;
  guards: Array<{ branch: string; regionSide: string }>;
  status: RegionStatus;
  reason: string | null;
  /** The guard the solution flips. */
  guard: string | null;
  trigger: TriggerCall[];
  constraints: string[];
  slice: Array<{ ip: string; text: string }>;
  rules: string[];
  proof: { bundle: string | null; newlyExecutedBlocks: number; targetRan: boolean; output: string } | null;
  /** With rerun: each solve-and-re-record round, in order. */
  rounds: RoundReport[];
}

export interface DormantReport {
  bundle: string;
  program: string;
  coverage: { blocks: number; blocksRan: number; moduleInstructions: number; traceInstructions: number };
  regionsFound: number;
  regions: RegionReport[];
  snapshots: number;
  /** `solverLost`: Z3 checks lost (their solver process died or stayed silent), each run again on a new process (solver-process.ts). */
  summary: { attempted: number; solved: number; proven: number; solverLost: number };
}

/** Analyse a bundle. */
export async function analyzeDormant(input: string | Recording, options: DormantOptions = {}): Promise<DormantReport> {
  const recording = typeof input === 'string' ? importBundle(input) : input;
  const lostBefore = solverLosses();
  const dir = recording.name;
  const module = tracedMainModule(recording);
  // The program's own libraries: the executor follows calls into them, and their coverage counts as progress.
  const libraries = tracedOwnLibraries(recording, module);
  const coverage = mergeCoverageOf(recording, [module, ...libraries]);
  const exec = coverage[0];
  const cfg = module.cfg;
  const regions = findRegions(exec);
  const code = new CodeSpace(module, libraries);
  const ranked = rankRegions(exec, regions, (name) => code.libraryApis(name)).slice(0, options.maxRegions ?? 10);
  let blocksRan = 0;
  for (const r of exec.ran) blocksRan += r;

  let snapshots: CallSnapshot[] = [];
  let noSnapshots: string | null = null;
  if (ranked.length > 0) {
    if (!isDynamic(module.file)) noSnapshots = 'statically linked: no library call can be interposed';
    else {
      snapshots = snapshotRun(recording, 60, options.sandbox !== false);
      if (snapshots.length === 0) noSnapshots = 'the program made none of the library calls the shim models';
    }
  }
  const reports: RegionReport[] = [];
  for (const r of ranked) {
    const report = baseReport(r, module);
    if (noSnapshots !== null) report.reason = noSnapshots;
    else if (options.rerun) await iterateRegion(dir, recording, r, coverage, report, code, snapshots, options);
    else {
      const attempt = await solveGuards(r.guards, r.target, code, snapshots, options);
      if (attempt.found !== null && attempt.found.partial === null) fillSolution(report, attempt.found.solution, attempt.found.guard);
      else report.reason = attempt.found?.partial?.reason ?? attempt.reason;
    }
    reports.push(report);
  }
  const attempted = reports.length;
  return {
    bundle: dir,
    program: recording.program?.path ?? module.path,
    coverage: { blocks: cfg.blockCount, blocksRan, moduleInstructions: exec.moduleInstructions, traceInstructions: exec.totalInstructions },
    regionsFound: regions.length,
    regions: reports,
    snapshots: snapshots.length,
    summary: {
      attempted,
      solved: reports.filter((x) => x.status !== 'unsolved').length,
      proven: reports.filter((x) => x.status === 'proven').length,
      solverLost: solverLosses() - lostBefore,
    },
  };
}

function baseReport(r: RankedRegion, module: TracedModule): RegionReport {
  const cfg = module.cfg;
  const fn = r.region.function >= 0 ? cfg.functionName[r.region.function] || hex(cfg.functionEntry[r.region.function]) : '?';
  return {
    id: r.region.id,
    function: fn,
    entries: r.region.entries.map((b) => hex(cfg.blockStart[b])),
    instructions: r.region.instructions,
    blocks: r.region.blocks.length,
    calls: [...new Set(r.calls.map((c) => c.name))],
    categories: r.categories,
    score: r.score,
    target: hex(cfg.blockStart[r.target]),
    guards: r.guards.map((g) => ({ branch: hex(g.branchIp), regionSide: g.regionSide })),
    status: 'unsolved',
    reason: null,
    guard: null,
    trigger: [],
    constraints: [],
    slice: [],
    rules: [],
    proof: null,
    rounds: [],
  };
}

function fillSolution(report: RegionReport, s: Solution, guard: string): void {
  report.status = 'solved';
  report.reason = null;
  report.guard = guard;
  report.constraints = s.constraints;
  report.slice = s.slice.map((x) => ({ ip: siteText(x.module, x.ip), text: x.text }));
  report.trigger = s.calls.map((c) => ({
    call: c.text,
    site: siteText(c.module, c.site),
    occurrence: patchedOccurrence(c),
    values: describeValues(c, s),
  }));
  report.rules = rulesFor(s);
}

/** Solved values of one call for people: results, strings, and the out-object's fields (library-models.ts layouts). */
function describeValues(call: Solution['calls'][number], s: Solution): TriggerCall['values'] {
  const mine = s.assignments.filter((a) => a.symbol.call === call);
  const value = new Map(mine.map((a) => [a.symbol.name, a.value]));
  const out: TriggerCall['values'] = [];
  for (const a of mine) {
    if (a.symbol.role.kind === 'ret') out.push({ symbol: 'result', value: formatValue(a.value, a.symbol.bits) });
    if (a.symbol.role.kind === 'present') out.push({ symbol: 'non-NULL', value: formatValue(a.value, 1) });
  }
  const mem = call.symbols.filter((x) => x.role.kind === 'mem');
  const layout = LIBRARY_MODELS[call.name]?.out?.layout;
  if (layout === undefined) {
    // Bytes: a string, or a buffer of file contents; the prefix the constraints fix.
    const bytes: number[] = [];
    for (const m of mem) {
      const v = value.get(m.name);
      if (v === undefined || v === 0n) break;
      bytes.push(Number(v));
    }
    if (mem.some((m) => value.has(m.name))) out.push({ symbol: 'string', value: JSON.stringify(Buffer.from(bytes).toString('latin1')) });
    return out;
  }
  // Each field of the struct that the constraints touch, from its bytes (free bytes keep the observed value).
  const fields = new Set<Field>();
  for (const m of mem) if (value.has(m.name) && m.role.kind === 'mem') {
    const f = fieldAt(layout, m.role.offset);
    if (f !== null) fields.add(f);
  }
  for (const f of [...fields].sort((x, y) => x.offset - y.offset)) {
    const byteAt = (i: number): bigint => {
      const m = mem.find((x) => x.role.kind === 'mem' && x.role.offset === f.offset + i);
      return m ? (value.get(m.name) ?? m.observed) : 0n;
    };
    if (f.size > 8) {
      // A char array (utsname's fields): the string up to its NUL.
      const bytes: number[] = [];
      for (let i = 0; i < f.size && byteAt(i) !== 0n; i++) bytes.push(Number(byteAt(i)));
      out.push({ symbol: f.name, value: JSON.stringify(Buffer.from(bytes).toString('latin1')) });
      continue;
    }
    const size = f.size;
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | byteAt(i);
    out.push({ symbol: f.name, value: formatValue(v, size * 8) });
  }
  return out;
}

/** A link-time address for reports: `0x11f9` in the main executable, `libcheck.so:0x11f9` in a library. */
function siteText(module: string, link: number): string {
  return module === '' ? hex(link) : `${module}:${hex(link)}`;
}

function formatValue(v: bigint, bits: number): string {
  if (bits === 1) return v === 1n ? 'yes' : 'no';
  if (bits === 8) return v >= 0x20n && v < 0x7fn ? `'${String.fromCharCode(Number(v))}'` : `0x${v.toString(16)}`;
  const sv = BigInt.asIntN(bits, v);
  return sv < 0n ? `${sv}` : `${v} (0x${v.toString(16)})`;
}

/** Rules keyed by call and site: a later round's rule for the same call replaces the earlier one. */
function ruleKey(rule: string): string {
  return rule.split(' ').slice(0, 2).join(' ');
}

/** The calls a snapshot run observed, as `name@site` (the site with its module, as in reports). */
function callsSeen(snapshots: CallSnapshot[]): Set<string> {
  return new Set(snapshots.map((s) => `${s.name}@${siteText(s.caller === 0 ? '' : basename(s.modules[s.caller].path), s.site)}`));
}

/**
 * With rerun: rounds of solve, patch, re-record. Each round solves what the
 * current snapshots let it solve (the whole way to the target, or the guard
 * and the conditions up to the first one they cannot decide), re-records
 * the program with every rule so far, and takes the new trace's guards and
 * a new snapshot run (with the same rules) into the next round. Stops when
 * the target runs, when a round executes nothing new, when nothing is
 * solved, or at the round and time bounds.
 */
async function iterateRegion(dir: string, recording: Recording, r: RankedRegion, coverage: BlockExecution[], report: RegionReport, code: CodeSpace, initial: CallSnapshot[], options: DormantOptions): Promise<void> {
  const maxRounds = options.maxRounds ?? DEFAULT_MAX_ROUNDS;
  const deadline = Date.now() + (options.roundBudgetMs ?? DEFAULT_ROUND_BUDGET_MS);
  const sandbox = options.sandbox !== false;
  const base = options.rerunDir ? options.rerunDir(r.region.id) : `${(recording.root ?? dir).replace(/\/+$/, '')}.dormant-${r.region.id}`;
  const rules = new Map<string, string>();
  // What ran so far, per module of the code space (the main executable first).
  const ranBefore = coverage.map((c) => Uint8Array.from(c.ran));
  const modules = coverage.map((c) => c.module);
  let seen = callsSeen(initial);
  const ranInMain = (link: number): boolean => {
    const b = code.mainCfg.blockAt(link);
    return b >= 0 && ranBefore[0][b] === 1;
  };
  let snapshots = initial;
  let guards = r.guards;
  let lastReason = '';
  for (let round = 1; round <= maxRounds; round++) {
    if (round > 1 && Date.now() > deadline) {
      lastReason = `stopped after ${round - 1} rounds: the time budget of ${Math.round((options.roundBudgetMs ?? DEFAULT_ROUND_BUDGET_MS) / 1000)} s is spent`;
      break;
    }
    const attempt = await solveGuards(guards, r.target, code, snapshots, { ...options, ran: ranInMain });
    const roundReport: RoundReport = { round, guard: null, patched: [], reach: 'none', note: attempt.reason, newlyExecutedBlocks: 0, newCalls: [], targetRan: false, stoppedBy: guards.map((g) => hex(g.branchIp)) };
    report.rounds.push(roundReport);
    if (attempt.found === null) {
      lastReason = attempt.reason;
      break;
    }
    const { solution, partial, guard } = attempt.found;
    roundReport.guard = guard;
    roundReport.reach = partial === null ? 'target' : 'partial';
    roundReport.note = partial?.reason ?? null;
    for (const solved of rulesFor(solution)) {
      const earlier = rules.get(ruleKey(solved));
      const rule = earlier === undefined ? solved : mergeRule(earlier, solved);
      if (earlier !== rule) roundReport.patched.push(rule);
      rules.set(ruleKey(rule), rule);
    }
    accumulate(report, solution, guard, [...rules.values()]);
    const out = `${base}-r${round}`;
    let execs: Array<BlockExecution | null>;
    let exec: BlockExecution;
    try {
      const res = await patchedRecording(recording, [...rules.values()], out, 60, sandbox);
      const rerun = importBundle(out);
      execs = rerunCoverage(rerun, modules);
      exec = execs[0]!;
      report.proof = { bundle: options.keepRerun ? out : null, newlyExecutedBlocks: newlyExecuted(r.region, exec).length, targetRan: exec.ran[r.target] === 1, output: res.stdout };
    } catch (e) {
      lastReason = `re-run failed: ${(e as Error).message}`;
      roundReport.note = lastReason;
      break;
    } finally {
      if (!options.keepRerun) rmSync(out, { recursive: true, force: true });
    }
    // Progress: blocks of the program that no earlier run executed (a
    // round may first open a path outside the region, in a check function).
    // Blocks of the program's own libraries count too (a round may only
    // open a path inside the library's check).
    let newBlocks = 0;
    execs.forEach((e, m) => {
      if (e === null) return;
      for (let b = 0; b < e.ran.length; b++) {
        if (e.ran[b] === 1 && ranBefore[m][b] === 0) {
          ranBefore[m][b] = 1;
          newBlocks++;
        }
      }
    });
    roundReport.newlyExecutedBlocks = newBlocks;
    roundReport.targetRan = exec.ran[r.target] === 1;
    if (roundReport.targetRan) {
      roundReport.stoppedBy = [];
      report.status = 'proven';
      report.reason = null;
      return;
    }
    // The guards that now keep the target from running: those of the new trace's region holding it.
    const now = rankRegions(exec, findRegions(exec), (name) => code.libraryApis(name)).find((x) => x.region.blocks.includes(r.target));
    guards = now?.guards ?? [];
    roundReport.stoppedBy = guards.map((g) => hex(g.branchIp));
    if (newBlocks === 0) {
      lastReason = `round ${round} executed no block that earlier runs had not: no progress`;
      break;
    }
    snapshots = snapshotRun(recording, 60, sandbox, [...rules.values()]);
    const nowSeen = callsSeen(snapshots);
    roundReport.newCalls = [...nowSeen].filter((c) => !seen.has(c));
    seen = new Set([...seen, ...nowSeen]);
    if (round === maxRounds) lastReason = `the target did not run within ${maxRounds} rounds`;
  }
  report.status = report.rules.length > 0 && report.rounds.some((x) => x.reach === 'target') ? 'solved' : 'unsolved';
  report.reason = report.status === 'solved' ? `the re-run with the solved call results did not reach the target block (${lastReason})` : lastReason;
}

/**
 * Coverage of a re-run on the modules of the first recording (same CFGs),
 * matched by recorded path, else by file name (an unconfined re-run loads
 * the bundle's copy of a library from beside the program); null for a
 * module the re-run did not map.
 */
function rerunCoverage(rerun: Recording, modules: TracedModule[]): Array<BlockExecution | null> {
  const main = tracedMainModule(rerun, modules[0].cfg);
  const sameAs = (path: string, file: string): TracedModule | undefined => {
    const m = modules.slice(1).find((x) => x.path === path) ?? modules.slice(1).find((x) => basename(x.path) === basename(path));
    // The same bytes as in the first recording: its CFG applies.
    return m !== undefined && readFileSync(m.file).equals(readFileSync(file)) ? m : undefined;
  };
  const libs = tracedOwnLibraries(rerun, main, (path, file) => sameAs(path, file)?.cfg);
  const ordered = modules.map((m, i) => (i === 0 ? main : libs.find((l) => l.cfg === m.cfg) ?? null));
  const present = ordered.filter((m): m is TracedModule => m !== null);
  const execs = mergeCoverageOf(rerun, present);
  return ordered.map((m) => (m === null ? null : execs[present.indexOf(m)]));
}

/** Fold one round's solution into the region's report (rules are the cumulative set). */
function accumulate(report: RegionReport, s: Solution, guard: string, rules: string[]): void {
  const before = { trigger: report.trigger, constraints: report.constraints, slice: report.slice };
  fillSolution(report, s, guard);
  report.status = 'unsolved';
  report.trigger = [...before.trigger.filter((t) => !report.trigger.some((n) => n.call === t.call && n.site === t.site)), ...report.trigger];
  report.constraints = [...before.constraints, ...report.constraints];
  report.slice = [...before.slice, ...report.slice];
  report.rules = rules;
}
