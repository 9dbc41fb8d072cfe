/**
 * Dataset for the learned exploit detector, made with ptscope's own
 * emulated recorder:
 * - benign runs of real programs (Debian tools with varied inputs, python3
 *   -S scripts, the exploit corpus programs on benign inputs);
 * - exploit runs of the corpus and its variants (tools/learned/exploit-variants.ts:
 *   other target binaries, other gadgets, longer chains).
 *
 * Every recording is decoded once with the window extractor and the
 * default rule-based detectors riding the same walk; each window becomes a
 * line of build/learned/dataset/windows.jsonl (see src/analyses/learned/train.ts
 * for the labels). Raw bundles stay under build/learned/bundles; only the
 * small summary goes to models/dataset-summary.json.
 *
 *   node dist/tools/learned/make-dataset.js [--reuse] [--choices N] [--out DIR]
 *
 * --reuse keeps bundles that already exist (re-extract only); whether a
 * reused exploit ran is taken from the previous models/dataset-summary.json.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openTraceInput } from '../../src/analyses/trace-input.js';
import { extractWindows, type FeatureWindow } from '../../src/analyses/learned/features.js';
import { DATASET_FILE, type DatasetWindow } from '../../src/analyses/learned/train.js';
import { buildExploitCorpus } from '../corpus/build-exploits.js';
import { recordWithStdin } from '../eval-detectors.js';
import { buildVariants } from './exploit-variants.js';

/** The modification time of every generated input (2024-01-01T00:00:00Z). */
const FIXED_TIME = new Date('2024-01-01T00:00:00Z');

/** Benign windows kept per run (evenly spaced): no single chatty program dominates. */
const MAX_BENIGN_WINDOWS = 150;

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/** One recording to make. */
interface RunPlan {
  name: string;
  group: string;
  kind: 'benign' | 'exploit';
  argv: string[];
  stdin: string | null;
  /** Exploit ground truth: run-time addresses of the chain and its entry. */
  chain?: number[];
  entry?: number;
}

/** Seeded text: words of a fixed vocabulary, `lines` lines. */
function makeText(seed: number, lines: number): string {
  const words = ['the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'abacus', 'zebra', 'kernel', 'trace', 'packet', 'branch', 'alpha', 'omega', '42', '3.14', 'Ab', 'ab'];
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = 3 + (next() % 9);
    const line: string[] = [];
    for (let j = 0; j < n; j++) line.push(words[next() % words.length]);
    out.push(line.join(' '));
  }
  return out.join('\n') + '\n';
}

/**
 * Input files under build/ (the recorder's sandbox shows the host
 * read-only, with a private /tmp). Contents and times are fixed: `ls -la`,
 * `tar -tv` and gzip's header show times, and the dataset must not depend
 * on the day it was made.
 */
function makeInputs(dir: string): Record<string, string> {
  mkdirSync(join(dir, 'tree', 'sub'), { recursive: true });
  const f = (name: string, text: string | Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    utimesSync(p, FIXED_TIME, FIXED_TIME);
    return p;
  };
  const small = f('small.txt', makeText(1, 40));
  const medium = f('medium.txt', makeText(2, 1500));
  f('tree/a.txt', makeText(3, 10));
  f('tree/sub/b.txt', makeText(4, 30));
  f('tree/sub/c.dat', makeText(5, 5));
  for (const d of [join(dir, 'tree', 'sub'), join(dir, 'tree')]) utimesSync(d, FIXED_TIME, FIXED_TIME);
  const b64 = f('small.b64', Buffer.from(makeText(6, 30)).toString('base64') + '\n');
  const tarball = join(dir, 'tree.tar');
  execFileSync('tar', ['-cf', tarball, '--owner=0', '--group=0', '--numeric-owner', '-C', dir, 'tree']);
  utimesSync(tarball, FIXED_TIME, FIXED_TIME);
  const gz = f('medium.txt.gz', execFileSync('gzip', ['-c', '-n', medium]));
  const script = f('wordfreq.py', 'import sys\nc={}\nfor w in open(sys.argv[1]).read().split():\n    c[w]=c.get(w,0)+1\nfor k in sorted(c)[:10]:\n    print(k,c[k])\n');
  return { small, medium, tree: join(dir, 'tree'), b64, tarball, gz, script };
}

function benignPlans(inputs: Record<string, string>): RunPlan[] {
  const { small, medium, tree, b64, tarball, gz, script } = inputs;
  const cmds: [string, string[]][] = [
    ['ls', ['/usr/bin/ls', '-la', tree]],
    ['ls', ['/usr/bin/ls', '-R', '-s', tree]],
    ['gzip', ['/usr/bin/gzip', '-c', '-9', medium]],
    ['gzip', ['/usr/bin/gzip', '-d', '-c', gz]],
    ['sha256sum', ['/usr/bin/sha256sum', small, medium]],
    ['md5sum', ['/usr/bin/md5sum', medium]],
    ['sort', ['/usr/bin/sort', medium]],
    ['sort', ['/usr/bin/sort', '-r', '-u', small]],
    ['grep', ['/usr/bin/grep', '-c', 'the', medium]],
    ['grep', ['/usr/bin/grep', '-n', '-i', '-E', 'ab(acus)?', small]],
    ['sed', ['/usr/bin/sed', 's/a/b/g', small]],
    ['sed', ['/usr/bin/sed', '-n', '/fox/p', medium]],
    ['mawk', ['/usr/bin/mawk', '{ n += length($0) } END { print n }', medium]],
    ['mawk', ['/usr/bin/mawk', '{ print $2, NR }', small]],
    ['tar', ['/usr/bin/tar', '-tvf', tarball]],
    ['tar', ['/usr/bin/tar', '-cf', '-', tree]],
    ['base64', ['/usr/bin/base64', small]],
    ['base64', ['/usr/bin/base64', '-d', b64]],
    ['od', ['/usr/bin/od', '-x', small]],
    ['od', ['/usr/bin/od', '-c', '-N', '600', medium]],
    ['wc', ['/usr/bin/wc', small, medium]],
    ['cut', ['/usr/bin/cut', '-d', ' ', '-f', '1,3', medium]],
    ['find', ['/usr/bin/find', tree, '-name', '*.txt']],
    ['bzip2', ['/usr/bin/bzip2', '-c', small]],
    ['xz', ['/usr/bin/xz', '-c', '-1', small]],
    ['diff', ['/usr/bin/diff', small, medium]],
    ['python3', ['/usr/bin/python3', '-S', '-c', 'print(sum(i * i for i in range(2000)))']],
    ['python3', ['/usr/bin/python3', '-S', script, medium]],
  ];
  const seen = new Map<string, number>();
  return cmds.map(([group, argv]) => {
    const n = (seen.get(group) ?? 0) + 1;
    seen.set(group, n);
    return { name: `benign-${group}-${n}`, group, kind: 'benign', argv, stdin: null };
  });
}

/**
 * Labels of an exploit run's windows: 1 when the window holds a transfer
 * into the chain at or after the hijack (the first transfer to the chain's
 * entry), -1 after the hijack without chain transfers, 0 before it.
 */
export function labelExploitWindows(windows: readonly FeatureWindow[], chain: readonly number[], entry: number): (1 | 0 | -1)[] {
  const inChain = new Set(chain);
  let hijack = Infinity;
  for (const w of windows) {
    const first = w.transferIndex - w.length + 1;
    for (let i = 0; i < w.length && first + i < hijack; i++) if (w.targets[i] === entry) hijack = first + i;
  }
  return windows.map((w) => {
    if (w.transferIndex < hijack) return 0;
    const first = w.transferIndex - w.length + 1;
    for (let i = 0; i < w.length; i++) if (first + i >= hijack && inChain.has(w.targets[i])) return 1;
    return -1;
  });
}

const round = (v: number): number => (v === 0 ? 0 : Number(v.toFixed(4)));

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const root = repoRoot();
  let out = join(root, 'build', 'learned');
  let choices = 3;
  const reuse = args.includes('--reuse');
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--out') out = args[++i];
    else if (args[i] === '--choices') choices = Number(args[++i]);
  }
  const started = Date.now();
  const corpus = buildExploitCorpus({ log: (l) => console.log(l) });
  const variants = buildVariants(root, corpus.outDir, join(out, 'variants'), choices, (l) => console.log(l));
  const plans: RunPlan[] = benignPlans(makeInputs(join(out, 'inputs')));
  for (const v of variants) plans.push({ name: v.name, group: v.group, kind: 'exploit', argv: [v.prog], stdin: v.payload, chain: v.chain, entry: v.entry });
  const benignSeen = new Set<string>();
  for (const v of variants) {
    v.benign.forEach((b, i) => {
      const name = `benign-${v.name.replace(/-g\d+$/, '')}-${i}`;
      if (benignSeen.has(name)) return;
      benignSeen.add(name);
      plans.push({ name, group: v.group, kind: 'benign', argv: [v.prog], stdin: b });
    });
  }
  const bundles = join(out, 'bundles');
  const datasetDir = join(out, 'dataset');
  mkdirSync(bundles, { recursive: true });
  mkdirSync(datasetDir, { recursive: true });
  const lines: string[] = [];
  const summary: { name: string; group: string; kind: string; instructions: number; windows: number; kept: number; attack: number; ambiguous: number; ruleWindows: number; findings: number; exploitRan: boolean | null }[] = [];
  const previousRan = reuse ? previousExploitRan(join(root, 'models', 'dataset-summary.json')) : new Map<string, boolean | null>();
  for (const p of plans) {
    const bundle = join(bundles, p.name);
    let stdout: string | null = null;
    if (!(reuse && existsSync(join(bundle, 'manifest.json')))) {
      try {
        stdout = await recordWithStdin(p.argv, bundle, p.stdin);
      } catch (e) {
        console.log(`${p.name}: recording failed (${(e as Error).message.split('\n')[0]}); skipped`);
        continue;
      }
    }
    const r = extractWindows(openTraceInput(bundle), { withRules: true });
    let labels: (1 | 0 | -1)[] = r.windows.map(() => 0);
    if (p.kind === 'exploit') labels = labelExploitWindows(r.windows, p.chain!, p.entry!);
    let keep = r.windows.map((_, i) => i);
    if (p.kind === 'benign' && keep.length > MAX_BENIGN_WINDOWS) {
      const step = keep.length / MAX_BENIGN_WINDOWS;
      keep = Array.from({ length: MAX_BENIGN_WINDOWS }, (_, i) => Math.floor(i * step));
    }
    for (const i of keep) {
      const w = r.windows[i];
      const row: DatasetWindow = {
        run: p.name,
        group: p.group,
        kind: p.kind,
        label: labels[i],
        trigger: w.trigger,
        rule: w.ruleHits > 0 ? 1 : 0,
        seq: Array.from(w.seq, round),
        summary: Array.from(w.summary, round),
      };
      lines.push(JSON.stringify(row));
    }
    const attack = labels.filter((l) => l === 1).length;
    summary.push({
      name: p.name,
      group: p.group,
      kind: p.kind,
      instructions: r.flow.instructions,
      windows: r.windows.length,
      kept: keep.length,
      attack,
      ambiguous: labels.filter((l) => l === -1).length,
      ruleWindows: keep.filter((i) => r.windows[i].ruleHits > 0).length,
      findings: r.findings.length,
      exploitRan: p.kind !== 'exploit' ? null : stdout === null ? (previousRan.get(p.name) ?? null) : stdout.includes('PWNED'),
    });
    console.log(`${p.name.padEnd(34)} ${p.kind.padEnd(7)} ${String(r.flow.instructions).padStart(10)} insns ${String(r.windows.length).padStart(5)} windows ${attack} attack, ${r.findings.length} rule findings`);
  }
  writeFileSync(join(datasetDir, DATASET_FILE), lines.join('\n') + '\n');
  const byLabel = (l: number): number => lines.filter((x) => JSON.parse(x).label === l).length;
  const file = {
    format: 'ptscope-learned-dataset-summary',
    generated: 'node dist/tools/learned/make-dataset.js',
    windowsFile: join('build/learned/dataset', DATASET_FILE),
    runs: summary.length,
    benignRuns: summary.filter((s) => s.kind === 'benign').length,
    exploitRuns: summary.filter((s) => s.kind === 'exploit').length,
    groups: [...new Set(summary.map((s) => s.group))],
    windows: { total: lines.length, attack: byLabel(1), benign: byLabel(0), ambiguous: byLabel(-1) },
    variants: variants.map((v) => ({ name: v.name, description: v.description })),
    perRun: summary,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  mkdirSync(join(root, 'models'), { recursive: true });
  writeFileSync(join(root, 'models', 'dataset-summary.json'), JSON.stringify(file, null, 1) + '\n');
  console.log(`${lines.length} windows (${file.windows.attack} attack, ${file.windows.benign} benign, ${file.windows.ambiguous} ambiguous) from ${summary.length} runs in ${file.seconds} s -> ${join(datasetDir, DATASET_FILE)}`);
}

/** Whether each exploit run of an earlier summary ran (a reused bundle keeps no output). */
function previousExploitRan(file: string): Map<string, boolean | null> {
  const out = new Map<string, boolean | null>();
  if (!existsSync(file)) return out;
  try {
    const prev = JSON.parse(readFileSync(file, 'utf8')) as { perRun?: { name: string; exploitRan: boolean | null }[] };
    for (const r of prev.perRun ?? []) out.set(r.name, r.exploitRan);
  } catch {
    // An unreadable summary tells nothing.
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`make-dataset: ${(e as Error).stack ?? e}`);
    process.exitCode = 2;
  });
}
