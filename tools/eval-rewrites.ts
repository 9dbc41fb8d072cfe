/**
 * Code rewritten in place, decoded: programs that write code over code they
 * already ran (an unpacker's layers, a thread rewriting another's code, a
 * JIT whose code space is reused) are recorded with the emulated recorder,
 * and each stream is decoded twice with ptscope's instruction decoder: with
 * the bundle's image epochs, and with one image holding every version (each
 * address's last, as ptxed or perf would map them). Both are checked
 * against the recorder's count and FNV-1a 64 of the executed instructions.
 * Prints the README's table.
 *
 *   node dist/tools/eval-rewrites.js [--work DIR] [--markdown]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readBundleManifest } from '../src/sources/import/bundle-import.js';
import { openRecording } from '../src/sources/import/open-recording.js';
import { hashStream } from '../src/sources/model/stream-check.js';
import { record } from '../src/sources/recorder/record.js';
import { withRecordDefaults } from '../src/sources/recorder/record-options.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Case {
  name: string;
  what: string;
  /** The command line, given the work directory (C fixtures are built there). */
  argv: (work: string) => string[];
}

function fixture(source: string, flags: string[] = []): (work: string) => string[] {
  return (work) => {
    const out = join(work, source.replace(/\.c$/, '') + flags.join(''));
    const cc = spawnSync('gcc', ['-O1', '-pthread', ...flags, '-o', out, join(ROOT, 'test', 'fixtures', 'runtime-code', source)], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`gcc ${source}: ${cc.stderr.trim()}`);
    return [out];
  };
}

const V8_PROGRAM = 'let t=0; for (let r=0;r<3;r++){ for (let i=0;i<100;i++){ t+=new Function("x","return x+"+(i*7+r))(1) } gc() } console.log(t)';

const CASES: Case[] = [
  { name: 'layers', what: 'three functions of other instruction lengths take turns at one address (RW→RX)', argv: fixture('layers.c') },
  { name: 'layers-rwx', what: 'the same in RWX memory, from a worker thread', argv: fixture('layers.c', ['-DRWX', '-DIN_THREAD']) },
  { name: 'shared-rewrite', what: 'one thread rewrites code another thread ran, which then runs it', argv: fixture('shared-rewrite.c') },
  { name: 'node (V8 Sparkplug)', what: 'node --always-sparkplug: 300 functions compiled to machine code, with code-space GCs', argv: () => ['/usr/bin/node', '--always-sparkplug', '--expose-gc', '-e', V8_PROGRAM] },
];

interface Row {
  name: string;
  what: string;
  threads: number;
  runtimeImages: number;
  rewritten: number;
  epochs: number;
  instructions: number;
  epochExact: number;
  epochErrors: number;
  flatExact: number;
  flatErrors: number;
  flatLost: number;
}

async function evaluate(c: Case, work: string): Promise<Row> {
  const output = join(work, `${c.name.replace(/\W+/g, '-')}.ptscope`);
  rmSync(output, { recursive: true, force: true });
  await record(withRecordDefaults({ argv: c.argv(work), output, timeoutSec: 600, maxInsns: 400_000_000, hardware: false, stdio: 'pipe', notice: () => {} }));
  const m = readBundleManifest(output);
  const streams = m.version === 1 ? [{ imageEpochs: m.trace?.imageEpochs }] : m.streams;
  const rewritten = Number(/(\d+) block\(s\) rewritten/.exec((m.warnings ?? []).join('\n'))?.[1] ?? 0);
  const row: Row = {
    name: c.name, what: c.what, threads: 0, runtimeImages: m.images.filter((im) => im.runtime != null).length, rewritten,
    epochs: streams.reduce((n, s) => n + Math.max(0, (s.imageEpochs?.length ?? 1) - 1), 0),
    instructions: 0, epochExact: 0, epochErrors: 0, flatExact: 0, flatErrors: 0, flatLost: 0,
  };
  const r = openRecording(output);
  try {
    for (const s of r.streams) {
      if (s.expected === null || s.expected.instructions === 0) continue;
      row.threads++;
      row.instructions += s.expected.instructions;
      const exact = hashStream(s);
      const timeline = s.image.timeline;
      s.image.timeline = null;
      const flat = hashStream(s);
      s.image.timeline = timeline;
      const same = (x: { instructions: number; fnv1a64: string }): boolean => x.instructions === s.expected!.instructions && x.fnv1a64 === s.expected!.fnv1a64;
      if (same(exact)) row.epochExact++;
      row.epochErrors += exact.errors;
      if (same(flat)) row.flatExact++;
      row.flatErrors += flat.errors;
      row.flatLost += Math.max(0, s.expected.instructions - flat.instructions);
    }
  } finally {
    r.close();
  }
  return row;
}

function report(rows: Row[], markdown: boolean): string[] {
  const n = (v: number): string => v.toLocaleString('en-US');
  const lines: string[] = [];
  if (markdown) {
    lines.push('| program | what it does | threads | run-time images | rewritten blocks | epochs | instructions | with epochs: exact threads, errors | one image: exact threads, errors, instructions lost |');
    lines.push('|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) lines.push(`| ${r.name} | ${r.what} | ${r.threads} | ${n(r.runtimeImages)} | ${n(r.rewritten)} | ${n(r.epochs)} | ${n(r.instructions)} | ${r.epochExact}/${r.threads}, ${n(r.epochErrors)} | ${r.flatExact}/${r.threads}, ${n(r.flatErrors)}, ${n(r.flatLost)} |`);
  } else {
    for (const r of rows) lines.push(`${r.name}: ${r.threads} thread(s), ${r.runtimeImages} run-time images, ${r.rewritten} rewritten blocks, ${r.epochs} epochs, ${r.instructions} instructions; with epochs ${r.epochExact}/${r.threads} exact, ${r.epochErrors} errors; one image ${r.flatExact}/${r.threads} exact, ${r.flatErrors} errors, ${r.flatLost} instructions lost`);
  }
  return lines;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--work');
  const work = at >= 0 && args[at + 1] ? args[at + 1]! : mkdtempSync(join(tmpdir(), 'ptscope-eval-rewrites-'));
  mkdirSync(work, { recursive: true });
  const rows: Row[] = [];
  for (const c of CASES) {
    process.stderr.write(`eval-rewrites: ${c.name}...\n`);
    rows.push(await evaluate(c, work));
  }
  for (const l of report(rows, args.includes('--markdown'))) console.log(l);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`eval-rewrites: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
