/**
 * `ptscope dormant`: code that never ran, the branch that decided it, the
 * library call results that would flip it, and (with rerun) the proof.
 *
 *   coverage-merge.ts  static CFG + trace → executed blocks → regions
 *   guards.ts          each region's guards, calls, rank and target block
 *   snapshot.ts        concrete state after each library call (shim run)
 *   slice.ts           which call outputs are symbols; the slice report
 *   symbolic.ts        path segment → constraints → Z3 → call results
 *   rerun.ts           shim rules, patched recording, coverage diff
 *
 * A region is "proven" only when the patched re-recording executes its
 * target block; "solved" means the solver found call results but no re-run
 * was asked for (or it did not reach the target); "unsolved" carries the
 * reason of the most advanced attempt.
 */
import { rmSync } from 'node:fs';
import { importBundle } from '../../sources/import/bundle-import.js';
import type { Recording } from '../../sources/model/recording.js';
import { findRegions, mergeCoverage, newlyExecuted, tracedMainModule, type BlockExecution, type TracedModule } from './coverage-merge.js';
import { rankRegions, type RankedRegion } from './guards.js';
import { isDynamic, patchedRecording, rulesFor, snapshotRun } from './rerun.js';
import type { CallSnapshot } from './snapshot.js';
import { cfgPath, getZ3, ModuleCode, SymbolicExecutor, type Solution } from './symbolic.js';

export interface DormantOptions {
  /** Regions to report and solve, the highest ranked first (default 10). */
  maxRegions?: number;
  /** Re-record with the solved call results and check the region runs. */
  rerun?: boolean;
  /** Where re-run bundles go (default: beside the bundle, `<bundle>.dormant-<id>`). */
  rerunDir?: (regionId: number) => string;
  /** Keep re-run bundles (default false: removed after the coverage diff). */
  keepRerun?: boolean;
  /** Solver timeout per query (ms). */
  timeoutMs?: number;
  /** Run the program's re-runs confined (default true; false only from the analyst's --no-sandbox). */
  sandbox?: boolean;
  /** Snapshots tried per guard (default 12). */
  maxAttempts?: number;
}

export type RegionStatus = 'proven' | 'solved' | 'unsolved';

export interface TriggerCall {
  call: string;
  /** Link-time return site. */
  site: string;
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
}

export interface DormantReport {
  bundle: string;
  program: string;
  coverage: { blocks: number; blocksRan: number; moduleInstructions: number; traceInstructions: number };
  regionsFound: number;
  regions: RegionReport[];
  snapshots: number;
  summary: { attempted: number; solved: number; proven: number };
}

function hex(v: number): string {
  return '0x' + v.toString(16);
}

/** Analyse a bundle. */
export async function analyzeDormant(input: string | Recording, options: DormantOptions = {}): Promise<DormantReport> {
  const recording = typeof input === 'string' ? importBundle(input) : input;
  const dir = recording.name;
  const module = tracedMainModule(recording);
  const exec = mergeCoverage(recording, module);
  const cfg = module.cfg;
  const regions = findRegions(exec);
  const ranked = rankRegions(exec, regions).slice(0, options.maxRegions ?? 10);
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
  const code = new ModuleCode(module.file, cfg);
  const reports: RegionReport[] = [];
  for (const r of ranked) {
    const report = baseReport(r, module);
    if (noSnapshots !== null) report.reason = noSnapshots;
    else {
      const target = await solveRegion(r, report, code, snapshots, options);
      if (report.status === 'solved' && options.rerun) await proveRegion(dir, recording, r, target, report, module, options);
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
  };
}

/** Solve a region; returns the target block the solution reaches, or -1. */
async function solveRegion(r: RankedRegion, report: RegionReport, code: ModuleCode, snapshots: CallSnapshot[], options: DormantOptions): Promise<number> {
  const cfg = code.cfg;
  const z3 = await getZ3();
  let best: { reason: string; reached: boolean } | null = null;
  const maxAttempts = options.maxAttempts ?? 12;
  for (const g of r.guards.slice(0, 4)) {
    // The target if a path leads there from this guard, else the region entry itself.
    const toTarget = cfgPath(cfg, g.entry, r.target);
    const path = toTarget ?? [cfg.blockStart[g.entry]];
    const target = toTarget !== null ? r.target : g.entry;
    const candidates = [...snapshots].reverse().slice(0, maxAttempts);
    for (const s of candidates) {
      const ex = new SymbolicExecutor(z3, code, {
        snapshot: s,
        snapshots,
        guardIp: g.branchIp,
        regionSide: g.regionSide,
        path,
        timeoutMs: options.timeoutMs,
      });
      const res = await ex.run();
      if (res.solved) {
        fillSolution(report, res.solution, hex(g.branchIp));
        report.target = hex(cfg.blockStart[target]);
        return target;
      }
      if (res.reached && (best === null || !best.reached)) best = res;
    }
  }
  report.reason =
    best?.reason ??
    (r.guards.length === 0
      ? 'no executed conditional branch leads into the region'
      : 'the guard was not reached from the return of any modelled library call: its condition does not come from one');
  return -1;
}

function fillSolution(report: RegionReport, s: Solution, guard: string): void {
  report.status = 'solved';
  report.reason = null;
  report.guard = guard;
  report.constraints = s.constraints;
  report.slice = s.slice.map((x) => ({ ip: hex(x.ip), text: x.text }));
  report.trigger = s.calls.map((c) => ({
    call: c.text,
    site: hex(c.site),
    values: describeValues(c, s),
  }));
  report.rules = rulesFor(s);
}

const TM_FIELDS = ['tm_sec', 'tm_min', 'tm_hour', 'tm_mday', 'tm_mon', 'tm_year', 'tm_wday', 'tm_yday', 'tm_isdst'];

/** Solved values of one call for people: results, strings, and 32-bit fields of out-parameters. */
function describeValues(call: Solution['calls'][number], s: Solution): TriggerCall['values'] {
  const mine = s.assignments.filter((a) => a.symbol.call === call);
  const value = new Map(mine.map((a) => [a.symbol.name, a.value]));
  const out: TriggerCall['values'] = [];
  for (const a of mine) {
    if (a.symbol.role.kind === 'ret') out.push({ symbol: 'result', value: formatValue(a.value, a.symbol.bits) });
    if (a.symbol.role.kind === 'present') out.push({ symbol: 'non-NULL', value: formatValue(a.value, 1) });
  }
  const mem = call.symbols.filter((x) => x.role.kind === 'mem');
  if (call.result === 'string' || call.name === 'gethostname') {
    const bytes: number[] = [];
    for (const m of mem) {
      const v = value.get(m.name);
      if (v === undefined || v === 0n) break;
      bytes.push(Number(v));
    }
    if (mem.some((m) => value.has(m.name))) out.push({ symbol: 'string', value: JSON.stringify(Buffer.from(bytes).toString('latin1')) });
    return out;
  }
  // 4-byte fields (struct tm, timeval, stat...) at the offsets the constraints touch.
  const fields = new Set<number>();
  for (const m of mem) if (value.has(m.name) && m.role.kind === 'mem') fields.add(m.role.offset & ~3);
  for (const f of [...fields].sort((x, y) => x - y)) {
    let v = 0n;
    for (let i = 3; i >= 0; i--) {
      const m = mem.find((x) => x.role.kind === 'mem' && x.role.offset === f + i);
      v = (v << 8n) | (m ? (value.get(m.name) ?? m.observed) : 0n);
    }
    const label = call.result === 'struct' && f / 4 < TM_FIELDS.length ? TM_FIELDS[f / 4] : `+${f}`;
    out.push({ symbol: label, value: formatValue(v, 32) });
  }
  return out;
}

function formatValue(v: bigint, bits: number): string {
  if (bits === 1) return v === 1n ? 'yes' : 'no';
  if (bits === 8) return v >= 0x20n && v < 0x7fn ? `'${String.fromCharCode(Number(v))}'` : `0x${v.toString(16)}`;
  const sv = BigInt.asIntN(bits, v);
  return sv < 0n ? `${sv}` : `${v} (0x${v.toString(16)})`;
}

async function proveRegion(dir: string, recording: Recording, r: RankedRegion, target: number, report: RegionReport, module: TracedModule, options: DormantOptions): Promise<void> {
  // Beside a bundle; beside the trace file for other inputs.
  const out = options.rerunDir ? options.rerunDir(r.region.id) : `${(recording.root ?? dir).replace(/\/+$/, '')}.dormant-${r.region.id}`;
  try {
    const res = await patchedRecording(recording, report.rules, out, 60, options.sandbox !== false);
    const rerun = importBundle(out);
    const after = tracedMainModule(rerun, module.cfg);
    const exec: BlockExecution = mergeCoverage(rerun, after);
    const newly = newlyExecuted(r.region, exec);
    const targetRan = exec.ran[target] === 1;
    report.proof = { bundle: options.keepRerun ? out : null, newlyExecutedBlocks: newly.length, targetRan, output: res.stdout };
    if (targetRan) report.status = 'proven';
    else report.reason = 'the re-run with the solved call results did not reach the target block';
  } catch (e) {
    report.reason = `re-run failed: ${(e as Error).message}`;
  } finally {
    if (!options.keepRerun) rmSync(out, { recursive: true, force: true });
  }
}
