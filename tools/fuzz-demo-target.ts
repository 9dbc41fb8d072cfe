/**
 * The fuzzing target of the edge-coverage benchmark, tests and demo:
 * corpus/fuzz/json_check.c, built non-PIE and recorded with the emulated
 * recorder on one input at a time, traced only inside its own .text (an IP
 * filter, as kAFL traces its target), so each run's trace is short and
 * holds only the parser's branches.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfig, type DecoderConfig } from '../src/packets/config.js';
import { ElfFile, loadElf } from '../src/flow/elf.js';
import { Image } from '../src/flow/image.js';
import { ByteSourceCache } from '../src/flow/section.js';
import { openTraceInput } from '../src/analyses/trace-input.js';
import { record } from '../src/sources/recorder/record.js';
import { DEFAULT_PSB_PERIOD, withRecordDefaults } from '../src/sources/recorder/record-options.js';

/** Repository root (this file runs as dist/tools/... or tools/...). */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

export const TARGET_SOURCE = join(REPO_ROOT, 'corpus', 'fuzz', 'json_check.c');

export interface FuzzTarget {
  binary: string;
  /** The traced range: the binary's .text, inclusive. */
  textFrom: number;
  textTo: number;
  /** The binary's code, mapped at its link addresses (shared by every run, so caches stay warm). */
  image: Image;
  config: DecoderConfig;
}

/** Compile json_check into `dir` and load its image. Throws with gcc's message. */
export function buildTarget(dir: string): FuzzTarget {
  mkdirSync(dir, { recursive: true });
  const binary = join(dir, 'json_check');
  const res = spawnSync('gcc', ['-O1', '-no-pie', '-o', binary, TARGET_SOURCE], { encoding: 'utf8' });
  if (res.error) throw new Error(`gcc: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`gcc ${TARGET_SOURCE}: ${res.stderr.trim()}`);
  const elf = ElfFile.parse(readFileSync(binary), binary);
  const text = elf.sections.find((s) => s.name === '.text');
  if (!text) throw new Error(`${binary}: no .text section`);
  const image = new Image(binary);
  loadElf(image, new ByteSourceCache(), binary);
  return { binary, textFrom: text.addr, textTo: text.addr + text.size - 1, image, config: defaultConfig() };
}

/** One recorded run of the target. */
export interface TargetRun {
  trace: Uint8Array;
  /** Instructions traced (the recorder's count). */
  insns: number;
  /** The target's output line. */
  stdout: string;
  seconds: number;
}

/**
 * Run the target on `input` under the emulated recorder (sandboxed) and
 * return its trace. `work` is a scratch directory (reused: the input file
 * and the bundle are overwritten).
 */
export async function recordRun(target: FuzzTarget, input: Uint8Array, work: string, psbPeriod = DEFAULT_PSB_PERIOD): Promise<TargetRun> {
  mkdirSync(work, { recursive: true });
  const inputFile = join(work, 'input');
  writeFileSync(inputFile, input);
  const bundle = join(work, 'run.ptscope');
  const r = await record(withRecordDefaults({
    argv: [target.binary],
    output: bundle,
    force: true,
    hardware: false,
    timeoutSec: 60,
    maxInsns: 50_000_000,
    psbPeriod,
    ranges: [{ from: target.textFrom, to: target.textTo }],
    stdin: inputFile,
    stdio: 'pipe',
    notice: () => {},
  }));
  const recorded = openTraceInput(bundle);
  const trace = recorded.trace;
  const insns = recorded.stream.expected?.instructions ?? 0;
  recorded.recording.close();
  rmSync(bundle, { recursive: true, force: true });
  return { trace, insns, stdout: r.stdout.trim(), seconds: r.seconds };
}

/** Inputs of different shapes and sizes: what the benchmark's "fuzzing-like" traces run on. */
export const SAMPLE_INPUTS: readonly string[] = [
  '{"version": 3, "name": "demo", "tags": ["a", "b", "c"], "limits": {"cpu": 2, "mem": 512}}',
  '[1, 2.5, -3e4, true, false, null, "x\\n\\u0041"]',
  '{"a": {"b": {"c": {"d": [[[[]]]]}}}, "e": "\\"quoted\\""}',
  '{"numbers": [0, 1, 12, 123, 1234, -0.5, 6.02e23, 1E-9], "ok": true}',
  '{"broken": [1, 2,, 3]}',
  '"just a string with \\t escapes \\\\ and \\/ slashes"',
  '{"tags": [' + Array.from({ length: 40 }, (_, i) => `"t${i}"`).join(', ') + '], "version": 12}',
  '{"deep": ' + '['.repeat(20) + ']'.repeat(20) + ', "k": null}',
  // Larger documents, up to the target's 4 KiB limit.
  JSON.stringify({
    version: 7,
    name: 'service "alpha"\n',
    tags: ['x', 'y\t', 'z/\\'],
    limits: { cpu: 4, mem: 2048, ratio: 0.75, burst: -1e3 },
    routes: Array.from({ length: 12 }, (_, i) => ({ path: `/api/v${i}/items`, methods: ['GET', 'PUT'], timeout: i * 250, cache: i % 2 === 0, owner: null })),
  }, null, 2),
  JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ id: i, ok: i % 3 !== 0, score: (i * 37) % 101 / 7, label: `item-${i}\u00e9` }))),
];
