/**
 * Static CFG statistics and timing for ELF files (opt-in; not part of the
 * test suite because libc takes a few seconds):
 *
 *   npm run build && node dist/tools/cfg-stats.js [--json] [FILE...]
 *
 * Without files it analyses /bin/ls and the system libc. Prints per file the
 * time to disassemble and model it, and the counts of ModuleCfg.summary().
 */
import { existsSync } from 'node:fs';
import { analyzeElfFile } from '../src/flow/static/cfg.js';

const DEFAULT_FILES = ['/bin/ls', '/lib/x86_64-linux-gnu/libc.so.6'];

function main(argv: string[]): number {
  const json = argv.includes('--json');
  const files = argv.filter((a) => !a.startsWith('--'));
  const list = files.length > 0 ? files : DEFAULT_FILES.filter((f) => existsSync(f));
  const results: Record<string, unknown>[] = [];
  for (const path of list) {
    const t0 = performance.now();
    const cfg = analyzeElfFile(path);
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
    if (!json) {
      console.log(`${path}: ${row.millis} ms, blockAt ${row.blockAtNs} ns/lookup`);
      for (const [k, v] of Object.entries(cfg.summary())) console.log(`  ${k.padEnd(24)} ${v}`);
    }
  }
  if (json) console.log(JSON.stringify(results, null, 2));
  return 0;
}

process.exitCode = main(process.argv.slice(2));
