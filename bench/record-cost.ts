/**
 * `npm run bench -- record`: what the emulated recorder costs on ordinary
 * programs, one-thread and multi-threaded or forking ones (README,
 * "Recording cost"). For each program: instructions recorded (all
 * streams), trace bytes per million instructions, and the wall time of
 * `record` against the same program run natively (best of 3), both on
 * this machine in this run. A program that starts a thread or process is
 * recorded twice (record.ts); its time is both runs (RecordResult.seconds).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBundleManifest } from '../src/sources/import/bundle-import.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';

interface Program {
  label: string;
  argv: string[];
}

function compile(work: string, root: string, name: string, source: string, flags: string[]): string {
  const out = join(work, name);
  const res = spawnSync('gcc', ['-O1', '-o', out, join(root, source), ...flags], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`gcc ${source}: ${res.stderr}`);
  return out;
}

function nativeSeconds(argv: string[]): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = process.hrtime.bigint();
    spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' });
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return best;
}

export async function runRecordCostBench(root: string): Promise<Array<{ label: string; mbps: number; unit: string; detail: string }>> {
  const work = mkdtempSync(join(tmpdir(), 'ptscope-record-cost-'));
  try {
    const fixtures = join(root, 'test', 'fixtures');
    let text = '';
    for (let i = 0; i < 300; i++) text += `line ${i}: the quick brown fox jumps over the lazy dog\n`;
    const input = join(work, 'input.txt');
    writeFileSync(input, text);
    const programs: Program[] = [
      { label: 'static C program', argv: [compile(work, fixtures, 'workload-static', 'recorder/workload.c', ['-static'])] },
      { label: 'dynamic C program', argv: [compile(work, fixtures, 'workload-dynamic', 'recorder/workload.c', [])] },
      { label: '`ls -la /`', argv: ['/bin/ls', '-la', '/'] },
      { label: '`gzip -c` (17 KB)', argv: ['/bin/gzip', '-c', input] },
      { label: '`sha256sum`', argv: ['/usr/bin/sha256sum', input] },
      { label: 'C program, 4 threads', argv: [compile(work, fixtures, 'threads4', 'threads/threads4.c', ['-pthread'])] },
      { label: 'C program that forks', argv: [compile(work, fixtures, 'fork', 'threads/fork.c', [])] },
      { label: '`sh -c` pipeline (seq, 2 gzip, tail)', argv: ['/bin/sh', '-c', `seq 1 2000 | gzip -c | gzip -dc | tail -1`] },
    ];
    const rows: Array<{ label: string; mbps: number; unit: string; detail: string }> = [];
    console.log('| program | threads | instructions | trace bytes per M instructions | slowdown vs native |');
    console.log('|---|---|---|---|---|');
    for (const p of programs) {
      const output = join(work, `b${rows.length}.ptscope`);
      const res = await record(withRecordDefaults({ argv: p.argv, output, timeoutSec: 600, maxInsns: 500_000_000, hardware: false, stdio: 'pipe', notice: () => {} }));
      const m = readBundleManifest(res.bundle);
      let insns = 0;
      let bytes = 0;
      let threads = 1;
      if (m.version === 2) {
        threads = m.streams.length;
        for (const s of m.streams) {
          insns += s.instructions?.traced ?? 0;
          bytes += statSync(join(res.bundle, s.file)).size;
        }
      } else {
        insns = m.instructions?.traced ?? 0;
        bytes = m.trace?.bytes ?? 0;
      }
      const native = nativeSeconds(p.argv);
      const slowdown = res.seconds / native;
      const perM = (bytes / insns) * 1e6;
      console.log(`| ${p.label} | ${threads} | ${insns.toLocaleString('en-US')} | ${Math.round(perM).toLocaleString('en-US')} | ~${Math.round(slowdown)}× |`);
      rows.push({ label: `record ${p.label}`, mbps: slowdown, unit: 'x native', detail: `${insns} insns, ${threads} stream(s), record ${res.seconds.toFixed(2)} s, native ${(native * 1000).toFixed(1)} ms` });
    }
    return rows;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
