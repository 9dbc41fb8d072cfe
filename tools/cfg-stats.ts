/**
 * Static CFG statistics and timing for ELF files (opt-in; not part of the
 * test suite because libc takes a few seconds):
 *
 *   npm run build && node dist/tools/cfg-stats.js [--json | --markdown] [FILE...]
 *
 * Without files it analyses /bin/ls and the system libc. Prints per file the
 * time to disassemble and model it, and the counts of ModuleCfg.summary().
 * `--markdown` prints the README's table of indirect-jump recovery: how
 * many of each file's indirect jumps (PLT stubs aside) got a complete
 * target set, only a sample, or none.
 */
import { existsSync } from 'node:fs';
import { analyzeElfFile, BlockEndKind, BlockFlag, type ModuleCfg } from '../src/flow/static/cfg.js';

/**
 * Indirect jumps outside PLT stubs, by what the static analysis recovered:
 * a complete target set (a bounded table, a constant, a GOT import), a
 * sample (a table without a bound, or in writable data), an indexed load
 * whose table was not located, or nothing (a jump through a function
 * pointer, judged like an indirect call).
 */
function jumpRecovery(cfg: ModuleCfg): { jumps: number; complete: number; sample: number; indexed: number; pointer: number } {
  const r = { jumps: 0, complete: 0, sample: 0, indexed: 0, pointer: 0 };
  for (let b = 0; b < cfg.blockCount; b++) {
    if (cfg.blockEndKind[b] !== BlockEndKind.IndirectJump || (cfg.blockFlags[b] & BlockFlag.Plt) !== 0) continue;
    r.jumps++;
    const t = cfg.jumpTableAt(cfg.blockLast[b]);
    if (t === null) r.pointer++;
    else if (t.source === 'indexed') r.indexed++;
    else if (t.bounded) r.complete++;
    else r.sample++;
  }
  return r;
}

const DEFAULT_FILES = ['/bin/ls', '/lib/x86_64-linux-gnu/libc.so.6'];

function main(argv: string[]): number {
  const json = argv.includes('--json');
  const markdown = argv.includes('--markdown');
  const files = argv.filter((a) => !a.startsWith('--'));
  if (markdown) {
    console.log('| file | indirect jumps | complete target set | sample (no bound) | table not located | through a pointer |');
    console.log('|---|---|---|---|---|---|');
  }
  const list = files.length > 0 ? files : DEFAULT_FILES.filter((f) => existsSync(f));
  const results: Record<string, unknown>[] = [];
  for (const path of list) {
    const t0 = performance.now();
    let cfg: ModuleCfg;
    try {
      cfg = analyzeElfFile(path);
    } catch (e) {
      console.error(`cfg-stats: ${path}: ${(e as Error).message.split('\n')[0]}`);
      return 2;
    }
    const millis = performance.now() - t0;
    // blockAt speed: one lookup per block start and per block middle.
    const t1 = performance.now();
    let hits = 0;
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      for (let b = 0; b < cfg.blockCount; b++) {
        if (cfg.blockAt(cfg.blockStart[b]) === b) hits++;
        if (cfg.blockAt(cfg.blockLast[b]) === b) hits++;
      }
    }
    const lookups = rounds * cfg.blockCount * 2;
    const lookupNs = ((performance.now() - t1) * 1e6) / lookups;
    const row = { file: path, millis: Math.round(millis), blockAtNs: Number(lookupNs.toFixed(1)), blockAtHits: hits / lookups, ...cfg.summary() };
    results.push(row);
    if (markdown) {
      const r = jumpRecovery(cfg);
      console.log(`| ${path} | ${r.jumps} | ${r.complete} | ${r.sample} | ${r.indexed} | ${r.pointer} |`);
    } else if (!json) {
      console.log(`${path}: ${row.millis} ms, blockAt ${row.blockAtNs} ns/lookup`);
      for (const [k, v] of Object.entries(cfg.summary())) console.log(`  ${k.padEnd(24)} ${v}`);
    }
  }
  if (json) console.log(JSON.stringify(results, null, 2));
  return 0;
}

process.exitCode = main(process.argv.slice(2));
