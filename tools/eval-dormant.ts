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
 */
import { shutdownZ3 } from '../src/analyses/dormant/z3-context.js';
import { BUILDS, buildByName, evaluate, SAMPLES, type EvalRow } from './eval-dormant-corpus.js';

function table(rows: EvalRow[]): string[] {
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

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const bi = argv.indexOf('--builds');
  const builds = bi >= 0 ? argv[bi + 1].split(',').map(buildByName) : [...BUILDS];
  const names = argv.filter((a, i) => !a.startsWith('--') && (bi < 0 || i !== bi + 1));
  const samples = names.length > 0 ? SAMPLES.filter((s) => names.includes(s.name)) : [...SAMPLES];
  const rows: EvalRow[] = [];
  for (const s of samples) {
    for (const b of builds) {
      let row: EvalRow;
      try {
        row = await evaluate(s, b);
      } catch (e) {
        process.stderr.write(`${s.name} ${b.name}: ${(e as Error).message.split('\n')[0]}\n`);
        continue;
      }
      process.stderr.write(`${s.name} ${b.name}: found ${row.found} proved ${row.proved} rounds ${row.rounds}\n`);
      rows.push(row);
    }
  }
  await shutdownZ3();
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
