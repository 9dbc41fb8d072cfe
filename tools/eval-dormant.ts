/**
 * Dormant code on ordinary builds: every multi-step sample of
 * corpus/dormant/ at every build of tools/eval-dormant-corpus.ts, recorded
 * under emulation and analysed with `dormant --rerun` (iterative rounds).
 * Prints one Markdown table per set (tuned, held out) and the totals:
 * found (a never-run region calling the payload), proved (a patched
 * re-run executed the payload), rounds (solve-and-re-record rounds used).
 *
 * Run: `npm run build && node dist/tools/eval-dormant.js [sample...] [--builds O1,O2-pie]`.
 * Slow (two recordings a round under qemu); the tests run a few builds.
 *
 * Each sample is evaluated in a process of its own (this script with
 * --one): Z3's WebAssembly heap cannot grow past 2 GiB, and one process
 * analysing the whole matrix once ran out of it part-way.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { shutdownZ3 } from '../src/analyses/dormant/z3-context.js';
import { BUILDS, buildByName, evaluate, SAMPLES, type Build, type EvalRow } from './eval-dormant-corpus.js';

function table(rows: TableRow[]): string[] {
  const out = ['| sample | build | found | proved | rounds | note |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const note = !r.dormant ? 'payload ran in the first run (not a case)' : r.proved ? '' : (r.reason ?? '').slice(0, 90);
    out.push(`| ${r.sample} | ${r.build} | ${r.found ? 'yes' : 'no'} | ${r.proved ? 'yes' : 'no'} | ${r.rounds} | ${note} |`);
  }
  const cases = rows.filter((r) => r.dormant);
  out.push('');
  out.push(`total: ${cases.filter((r) => r.found).length}/${cases.length} found, ${cases.filter((r) => r.proved).length}/${cases.length} proved, ${cases.filter((r) => r.proved).reduce((n, r) => n + r.rounds, 0)} rounds over the proved cases`);
  return out;
}

/** What the table needs of a row (a child process hands these back as JSON). */
type TableRow = Omit<EvalRow, 'report'>;

/** --one SAMPLE: evaluate one sample's builds in this process; one JSON row a line on stdout. */
async function one(name: string, builds: readonly Build[]): Promise<void> {
  const s = SAMPLES.find((x) => x.name === name);
  if (s === undefined) throw new Error(`no sample ${name}`);
  for (const b of builds) {
    let row: EvalRow;
    try {
      row = await evaluate(s, b);
    } catch (e) {
      process.stderr.write(`${s.name} ${b.name}: ${(e as Error).message.split('\n')[0]}\n`);
      continue;
    }
    process.stderr.write(`${s.name} ${b.name}: found ${row.found} proved ${row.proved} rounds ${row.rounds}\n`);
    const { report: _report, ...line } = row;
    process.stdout.write(JSON.stringify(line) + '\n');
  }
  await shutdownZ3();
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const bi = argv.indexOf('--builds');
  const builds = bi >= 0 ? argv[bi + 1].split(',').map(buildByName) : [...BUILDS];
  const oi = argv.indexOf('--one');
  if (oi >= 0) return one(argv[oi + 1], builds);
  const names = argv.filter((a, i) => !a.startsWith('--') && (bi < 0 || i !== bi + 1));
  const samples = names.length > 0 ? SAMPLES.filter((s) => names.includes(s.name)) : [...SAMPLES];
  const rows: TableRow[] = [];
  const self = fileURLToPath(import.meta.url);
  for (const s of samples) {
    const child = spawnSync(process.execPath, [self, '--one', s.name, '--builds', builds.map((b) => b.name).join(',')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 24,
    });
    if (child.status !== 0) process.stderr.write(`${s.name}: the evaluating process exited with ${child.status ?? child.signal}\n`);
    for (const line of child.stdout.split('\n')) if (line.trim() !== '') rows.push(JSON.parse(line) as TableRow);
  }
  for (const [title, held] of [['tuned samples', false], ['held-out samples', true]] as const) {
    const part = rows.filter((r) => r.heldOut === held);
    if (part.length === 0) continue;
    console.log(`### ${title}`);
    console.log('');
    for (const l of table(part)) console.log(l);
    console.log('');
  }
}

main().catch((e) => {
  process.stderr.write(`eval-dormant: ${(e as Error).message}\n`);
  process.exit(1);
});
