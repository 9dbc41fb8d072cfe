/**
 * Structure-aware fuzzing of every hostile input except PT packets (those
 * are tools/fuzz-packets.ts): bundle manifests, ELF images, perf.data
 * files, ELF cores, and the policy, model and dormant-report JSON files.
 *
 * Each target starts from a valid seed and applies 1 to 4 mutations that
 * know the format: JSON inputs get values of the wrong type, huge or
 * negative numbers, traversing paths, deleted and unknown keys, giant
 * arrays; binary inputs get their header, table and record fields
 * (offsets, sizes, counts, types) set to boundary values, plus byte flips,
 * truncation and garbage.
 *
 * A failure is a crash (an exception that is not one of the input-error
 * kinds: TypeError, RangeError, ... or a non-Error), a hang (no progress
 * for --hang seconds of the child's CPU time: the child is killed and the
 * input reported), or
 * memory past --max-rss MB.
 *
 *   node dist/tools/fuzz-inputs.js [--targets a,b] [--count N] [--seed S] [--hang SEC] [--max-rss MB]
 *
 * Defaults: every target, 150,000 inputs each (over a million in all),
 * seed 1. A failure prints the target, seed and index and exits 1; the
 * input is written to build/fuzz/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../bench/synthetic-trace.js';
import { importBundle } from '../src/sources/import/bundle-import.js';
import { openInsnDecoder } from '../src/sources/model/decoders.js';
import { InstructionInfo } from '../src/flow/instruction.js';
import { Status } from '../src/events/status.js';
import { PtEvent } from '../src/events/event.js';
import { ElfFile, loadElf } from '../src/flow/elf.js';
import { Image } from '../src/flow/image.js';
import { ByteSourceCache } from '../src/flow/section.js';
import { analyzeElfFile } from '../src/flow/static/cfg.js';
import { flowInputs, readPerfDataBytes } from '../src/sources/perf-data/perf-data.js';
import { exportInputFrom, exportPerfData } from '../src/sources/perf-data/bundle-to-perf.js';
import { CoreFile } from '../src/sources/core-file.js';
import { loadPolicy } from '../src/analyses/policy.js';
import { readModelFile } from '../src/analyses/learned/model.js';
import { ModuleMap } from '../src/analyses/modules.js';
import { readDormantFile } from '../src/cli/dormant-file.js';

const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!readdirSync(dir).includes('package.json')) dir = dirname(dir);
  return dir;
})();
const DEMO_BUNDLE = join(ROOT, 'demo', 'rop_stack.exploit');

/** What a parser may throw for bad input; anything else is a crash. */
export function isCrash(e: unknown): boolean {
  if (!(e instanceof Error)) return true;
  return e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError || e instanceof EvalError || e instanceof URIError;
}

// ---------------------------------------------------------------- JSON ----

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const WEIRD_STRINGS = ['', '../../../../etc/passwd', '/etc/shadow', '0x', '0xzz', '0xffffffffffffffffff', 'NaN', '\u0000', 'a'.repeat(70_000), '%s%n', '<script>'];
const WEIRD_NUMBERS = [-1, 0, 1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, 1e308, -1e308, Number.MAX_SAFE_INTEGER];

function randomValue(rng: Rng, depth = 0): Json {
  switch (rng.int(depth > 3 ? 4 : 6)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick(WEIRD_NUMBERS);
    case 3:
      return rng.pick(WEIRD_STRINGS);
    case 4:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: rng.int(4) }, (_, i) => [`k${i}`, randomValue(rng, depth + 1)]));
  }
}

/** Every container in `v` with the key or index of one of its members (iterative: inputs nest deeply). */
function slots(root: Json): { parent: Json[] | Record<string, Json>; key: string | number }[] {
  const out: { parent: Json[] | Record<string, Json>; key: string | number }[] = [];
  const todo: Json[] = [root];
  while (todo.length > 0 && out.length < 100_000) {
    const v = todo.pop()!;
    if (Array.isArray(v)) v.forEach((x, i) => (out.push({ parent: v, key: i }), todo.push(x)));
    else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) out.push({ parent: v, key: k }), todo.push(v[k]!);
  }
  return out;
}

/** Is `v` within the generator's bounds (about `budget` bytes of JSON, nesting under `depth`)? */
function withinBounds(v: Json, budget = 6_000_000, depth = 1000): boolean {
  let size = 0;
  const todo: [Json, number][] = [[v, 0]];
  while (todo.length > 0) {
    const [x, d] = todo.pop()!;
    if (d > depth) return false;
    if (Array.isArray(x)) {
      size += 2 + x.length;
      for (const y of x) todo.push([y, d + 1]);
    } else if (x !== null && typeof x === 'object') {
      for (const [k, y] of Object.entries(x)) {
        size += k.length + 4;
        todo.push([y, d + 1]);
      }
    } else size += typeof x === 'string' ? x.length + 2 : 8;
    if (size > budget) return false;
  }
  return true;
}

export function mutateJson(rng: Rng, seed: Json): string {
  let root: Json = structuredClone(seed);
  for (let m = 1 + rng.int(4); m > 0; m--) {
    const all = slots(root);
    if (all.length === 0 || rng.chance(0.03)) {
      root = randomValue(rng);
      continue;
    }
    const s = rng.pick(all);
    const p = s.parent as Record<string | number, Json>;
    const old = p[s.key]!;
    const undo = Array.isArray(s.parent) ? s.parent.slice() : { ...s.parent };
    let added: string | null = null;
    switch (rng.int(8)) {
      case 0:
        p[s.key] = randomValue(rng);
        break;
      case 1:
        if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
        else delete p[s.key];
        break;
      case 2:
        added = `unknown${rng.int(100)}`;
        p[added] = randomValue(rng);
        break;
      case 3:
        p[s.key] = Array.isArray(old) && old.length > 0 ? Array.from({ length: 1 + rng.int(20_000) }, () => old[rng.int(old.length)]!) : rng.pick(WEIRD_NUMBERS);
        break;
      case 4:
        p[s.key] = typeof old === 'number' ? rng.pick(WEIRD_NUMBERS) : rng.pick(WEIRD_STRINGS);
        break;
      case 5: {
        let v: Json = old;
        for (let d = rng.int(1000); d > 0; d--) v = [v];
        p[s.key] = v;
        break;
      }
      case 6:
        p[s.key] = typeof old === 'string' ? `${old}/../../..` : String(old);
        break;
      default:
        p[s.key] = Array.isArray(old) ? {} : [];
    }
    // Mutations compound (a long array of deep values): undo one that leaves the bounds.
    if (!withinBounds(root)) {
      if (Array.isArray(s.parent)) s.parent.splice(0, s.parent.length, ...(undo as Json[]));
      else {
        if (added !== null) delete p[added];
        Object.assign(s.parent, undo);
      }
    }
  }
  let text = JSON.stringify(root);
  if (rng.chance(0.05)) text = text.slice(0, rng.int(text.length + 1));
  return text;
}

// -------------------------------------------------------------- binary ----

interface Field {
  offset: number;
  size: 1 | 2 | 4 | 8;
}

const INTERESTING = [0n, 1n, 2n, 7n, 8n, 0x38n, 0x40n, 0x7fn, 0x80n, 0xffn, 0x100n, 0xfffen, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 1n << 50n, (1n << 63n) - 1n, (1n << 64n) - 1n];

function writeField(b: Uint8Array, f: Field, v: bigint): void {
  for (let i = 0; i < f.size && f.offset + i < b.length; i++) b[f.offset + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

export function mutateBinary(rng: Rng, seed: Uint8Array, fields: readonly Field[]): Uint8Array {
  let b = seed.slice();
  for (let m = 1 + rng.int(4); m > 0; m--) {
    const r = rng.int(10);
    if (r < 5 && fields.length > 0) {
      const f = rng.pick(fields);
      const around = BigInt(b.length) + BigInt(rng.int(64)) - 32n;
      const v = rng.chance(0.2) ? (around < 0n ? 0n : around) : rng.chance(0.5) ? rng.pick(INTERESTING) : BigInt(rng.bits(f.size * 8 > 53 ? 53 : f.size * 8));
      writeField(b, f, v);
    } else if (r < 7) {
      for (let k = 1 + rng.int(8); k > 0 && b.length > 0; k--) b[rng.int(b.length)] ^= 1 << rng.int(8);
    } else if (r < 8) {
      b = b.subarray(0, rng.int(b.length + 1)).slice();
    } else if (r < 9) {
      const g = new Uint8Array(1 + rng.int(256));
      for (let i = 0; i < g.length; i++) g[i] = rng.bits(8);
      const at = rng.int(b.length + 1);
      const out = new Uint8Array(b.length + g.length);
      out.set(b.subarray(0, at));
      out.set(g, at);
      out.set(b.subarray(at), at + g.length);
      b = out;
    } else if (b.length > 16) {
      // Copy a block over another (duplicated headers, records).
      const n = 1 + rng.int(Math.min(64, b.length - 1));
      const from = rng.int(b.length - n);
      b.copyWithin(rng.int(b.length - n), from, from + n);
    }
  }
  return b;
}

const u16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8);
const u32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const u64 = (b: Uint8Array, o: number): number => u32(b, o) + u32(b, o + 4) * 2 ** 32;

/** The fields of an ELF64 worth mutating: header, program and section headers, notes. */
export function elfFields(b: Uint8Array): Field[] {
  const f: Field[] = [];
  for (const [offset, size] of [[4, 1], [5, 1], [16, 2], [18, 2], [24, 8], [32, 8], [40, 8], [52, 2], [54, 2], [56, 2], [58, 2], [60, 2], [62, 2]] as const) f.push({ offset, size });
  const phoff = u64(b, 32);
  const phnum = u16(b, 56);
  for (let i = 0; i < phnum && phoff + (i + 1) * 56 <= b.length; i++) {
    const p = phoff + i * 56;
    for (const [o, s] of [[0, 4], [4, 4], [8, 8], [16, 8], [32, 8], [40, 8], [48, 8]] as const) f.push({ offset: p + o, size: s });
    // Note headers inside PT_NOTE segments (cores: NT_PRSTATUS, NT_FILE, ...).
    if (u32(b, p) === 4) {
      let at = u64(b, p + 8);
      const end = Math.min(b.length, at + u64(b, p + 32));
      for (let k = 0; k < 64 && at + 12 <= end; k++) {
        f.push({ offset: at, size: 4 }, { offset: at + 4, size: 4 }, { offset: at + 8, size: 4 });
        const namesz = u32(b, at);
        const descsz = u32(b, at + 4);
        const desc = at + 12 + ((namesz + 3) & ~3);
        if (u32(b, at + 8) === 0x46494c45 /* NT_FILE */ && desc + 16 <= end) f.push({ offset: desc, size: 8 }, { offset: desc + 8, size: 8 });
        at = desc + ((descsz + 3) & ~3);
      }
    }
  }
  const shoff = u64(b, 40);
  const shnum = u16(b, 60);
  for (let i = 0; i < shnum && shoff + (i + 1) * 64 <= b.length; i++) {
    const s = shoff + i * 64;
    for (const [o, size] of [[0, 4], [4, 4], [16, 8], [24, 8], [32, 8], [40, 4], [44, 4], [56, 8]] as const) f.push({ offset: s + o, size });
  }
  return f;
}

/** The fields of a perf.data worth mutating: the header's sections, the attrs, every record header. */
export function perfDataFields(b: Uint8Array): Field[] {
  const f: Field[] = [];
  for (let o = 8; o < 104; o += 8) f.push({ offset: o, size: 8 });
  const dataOffset = u64(b, 40);
  const dataSize = u64(b, 48);
  let at = dataOffset;
  const end = Math.min(b.length, dataOffset + dataSize);
  for (let k = 0; k < 4096 && at + 8 <= end; k++) {
    f.push({ offset: at, size: 4 }, { offset: at + 4, size: 2 }, { offset: at + 6, size: 2 });
    const type = u32(b, at);
    const size = u16(b, at + 6);
    if (type === 71 /* AUXTRACE */ && at + 48 <= end) {
      for (let o = 8; o < 48; o += 8) f.push({ offset: at + o, size: 8 });
      at += size + u64(b, at + 8);
    } else at += Math.max(8, size);
  }
  return f;
}

// ------------------------------------------------------------- targets ----

export interface FuzzTarget {
  name: string;
  /** Make the seed and scratch state in `dir` (once per process). */
  setup(dir: string): void;
  /** Input number `index` of run `seed`. */
  input(rng: Rng): Uint8Array;
  /** Feed one input; throws only on a crash-kind exception. */
  check(input: Uint8Array, dir: string): void;
}

function expectClean(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (isCrash(e)) throw e;
    const msg = (e as Error).message;
    if (msg.length === 0 || msg.includes('\n')) throw new Error(`error message is not one line: ${JSON.stringify(msg.slice(0, 200))}`);
  }
}

const insn = new InstructionInfo();
const ev = new PtEvent();

/** Decode a few thousand instructions of each stream (configurations and images from the input). */
function decodeSome(path: string): void {
  const rec = importBundle(path);
  for (const s of rec.streams.slice(0, 4)) {
    const dec = openInsnDecoder(s);
    let st = dec.syncForward();
    for (let n = 0; n < 3000 && st >= 0; n++) {
      while (st >= 0 && st & Status.EventPending) st = dec.event(ev);
      if (st < 0) break;
      st = dec.next(insn);
    }
  }
}

function jsonTarget(name: string, seedOf: (dir: string) => Json, check: (path: string) => void): FuzzTarget {
  let seed: Json = null;
  return {
    name,
    setup(dir) {
      seed = seedOf(dir);
    },
    input: (rng) => new TextEncoder().encode(mutateJson(rng, seed)),
    check(input, dir) {
      const p = join(dir, `${name}.json`);
      writeFileSync(p, input);
      expectClean(() => check(p));
    },
  };
}

function binaryTarget(name: string, seedOf: (dir: string) => Uint8Array, fieldsOf: (b: Uint8Array) => Field[], check: (b: Uint8Array, dir: string) => void): FuzzTarget {
  let seed: Uint8Array = new Uint8Array(0);
  let fields: Field[] = [];
  return {
    name,
    setup(dir) {
      seed = seedOf(dir);
      fields = fieldsOf(seed);
    },
    input: (rng) => mutateBinary(rng, seed, fields),
    check(input, dir) {
      expectClean(() => check(input, dir));
    },
  };
}

function sh(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`fuzz setup: ${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
}

/** A copy of the demo bundle whose manifest is mutated (its trace and images stay valid). */
function manifestTarget(): FuzzTarget {
  let seed: Json = null;
  return {
    name: 'manifest',
    setup(dir) {
      cpSync(DEMO_BUNDLE, join(dir, 'bundle'), { recursive: true });
      seed = JSON.parse(readFileSync(join(DEMO_BUNDLE, 'manifest.json'), 'utf8'));
    },
    input: (rng) => new TextEncoder().encode(mutateJson(rng, seed)),
    check(input, dir) {
      const bundle = join(dir, 'bundle');
      writeFileSync(join(bundle, 'manifest.json'), input);
      expectClean(() => decodeSome(bundle));
    },
  };
}

export const TARGETS: FuzzTarget[] = [
  manifestTarget(),
  binaryTarget(
    'elf',
    (dir) => {
      writeFileSync(join(dir, 'small.c'), '#include <stdio.h>\nstatic int f(int x){switch(x){case 0:return 3;case 1:return 9;case 2:return 1;case 3:return 7;default:return x;}}\nint main(int c,char**v){printf("%d\\n",f(c));return 0;}\n');
      sh('gcc', ['-O2', '-o', 'small', 'small.c'], dir);
      return new Uint8Array(readFileSync(join(dir, 'small')));
    },
    elfFields,
    (b, dir) => {
      const path = join(dir, 'elf.bin');
      writeFileSync(path, b);
      const elf = ElfFile.parse(b, path);
      elf.symbolize(elf.entry);
      const image = new Image();
      const files = new ByteSourceCache();
      loadElf(image, files, path, 0);
      new ModuleMap().addMapping(path, 0, Math.min(b.length, 1 << 20), 0x400000);
      analyzeElfFile(path);
    },
  ),
  binaryTarget(
    'perf-data',
    (dir) => {
      const out = join(dir, 'seed.data');
      const input = exportInputFrom(importBundle(DEMO_BUNDLE));
      exportPerfData(out, input);
      return new Uint8Array(readFileSync(out));
    },
    perfDataFields,
    (b) => {
      const model = readPerfDataBytes('perf.data', b);
      try {
        for (const input of flowInputs(model)) {
          const n = Math.min(input.source.size, 1 << 20);
          input.source.read(new Uint8Array(n), 0, 0, n);
          const task = input.taskAt(1n << 62n);
          if (task) input.imageFor(task.pid, 1n << 62n);
        }
      } finally {
        model.close();
      }
    },
  ),
  binaryTarget(
    'core',
    (dir) => {
      writeFileSync(join(dir, 'crash.c'), 'int main(void){volatile int*p=(int*)16;return *p;}\n');
      sh('gcc', ['-O0', '-o', 'crash', 'crash.c'], dir);
      spawnSync('sh', ['-c', 'ulimit -c unlimited; exec qemu-x86_64 ./crash'], { cwd: dir });
      const core = readdirSync(dir).find((f) => f.startsWith('qemu_') && f.endsWith('.core'));
      if (core === undefined) throw new Error('fuzz setup: qemu-x86_64 left no core (is qemu-user installed?)');
      return new Uint8Array(readFileSync(join(dir, core)));
    },
    elfFields,
    (b) => {
      const core = CoreFile.parse(b);
      void core.rip;
    },
  ),
  jsonTarget(
    'policy',
    () => ({
      format: 'ptscope-policy',
      version: 1,
      cfi: { modules: { prog: { indirectTargets: ['0x401000', '0x401010'], returnSites: ['0x401020'] } }, allow: [{ from: '0x401000', to: '0x402000' }] },
      interModule: { mode: 'strict', rules: [{ from: 'prog', to: 'libc.so.6', targets: ['puts', '0x1234', '*exports'] }] },
      flowguard: { edges: [['0x401000', '0x402000', 3]], threshold: 2 },
    }),
    (p) => void loadPolicy(p),
  ),
  jsonTarget('model', () => JSON.parse(readFileSync(join(ROOT, 'models', 'exploit-window-model.json'), 'utf8')), (p) => void readModelFile(p)),
  jsonTarget(
    'dormant',
    () => ({
      regions: [{ function: 'main', target: '0x1234', entries: ['0x1234'], guard: '0x1200', status: 'proven', reason: null, trigger: [{ call: 'getenv', values: [{ symbol: 'string', value: '"x"' }] }], constraints: ['a == 1'], proof: { targetRan: true } }],
      regionsFound: 3,
    }),
    (p) => void readDormantFile(p),
  ),
];

// --------------------------------------------------------------- runner ----

/** The rng of input `index` of run `seed` for target number `t` (reproducible alone). */
export function inputRng(seed: number, t: number, index: number): Rng {
  return new Rng((Math.imul(seed, 0x9e3779b1) ^ Math.imul(t + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0);
}

/** Run inputs [from, from + count) of one target in this process; returns the peak RSS in MB. */
export function runRange(targetName: string, seed: number, from: number, count: number, onProgress?: (index: number) => void): number {
  const t = TARGETS.findIndex((x) => x.name === targetName);
  if (t < 0) throw new Error(`unknown fuzz target ${targetName} (${TARGETS.map((x) => x.name).join(', ')})`);
  const target = TARGETS[t]!;
  const dir = mkdtempSync(join(tmpdir(), `ptscope-fuzz-${targetName}-`));
  let peak = 0;
  try {
    target.setup(dir);
    for (let i = from; i < from + count; i++) {
      onProgress?.(i);
      const input = target.input(inputRng(seed, t, i));
      try {
        target.check(input, dir);
      } catch (e) {
        const out = join(ROOT, 'build', 'fuzz');
        mkdirSync(out, { recursive: true });
        const file = join(out, `${targetName}-seed${seed}-${i}.bin`);
        writeFileSync(file, input);
        throw new Error(`${targetName} seed ${seed} input ${i}: crash: ${(e as Error)?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(e)} (input in ${file})`);
      }
      if ((i & 63) === 0) peak = Math.max(peak, process.memoryUsage().rss / 2 ** 20);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return Math.max(peak, process.memoryUsage().rss / 2 ** 20);
}

interface Args {
  targets: string[];
  count: number;
  seed: number;
  hang: number;
  maxRss: number;
  chunk: number;
}

function parseArgs(argv: string[]): Args & { child: { target: string; from: number; count: number } | null } {
  const a: Args = { targets: TARGETS.map((t) => t.name), count: 150_000, seed: 1, hang: 20, maxRss: 1536, chunk: 5000 };
  let child = null;
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--targets': a.targets = v!.split(','); i++; break;
      case '--count': a.count = Number(v); i++; break;
      case '--seed': a.seed = Number(v); i++; break;
      case '--hang': a.hang = Number(v); i++; break;
      case '--max-rss': a.maxRss = Number(v); i++; break;
      case '--chunk': a.chunk = Number(v); i++; break;
      case '--child': {
        const [target, from, count] = v!.split(':');
        child = { target: target!, from: Number(from), count: Number(count) };
        i++;
        break;
      }
      default: throw new Error(`fuzz-inputs: unknown argument ${argv[i]}`);
    }
  }
  return { ...a, child };
}

/** CPU seconds (user + system) a live process has used, from /proc; 0 once it is gone. */
function childCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name (which may hold spaces): utime and stime are the 14th and 15th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Linux's USER_HZ, the unit of /proc/PID/stat's times (100 on every architecture Node runs on). */
const CLOCK_TICKS = 100;

/** One chunk in a child process, watched for hangs; resolves with the peak RSS or the failure. */
function runChild(target: string, a: Args, from: number, count: number): Promise<{ peak: number; failure: string | null; next: number }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--seed', String(a.seed), '--child', `${target}:${from}:${count}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let last = from;
    let peak = 0;
    let failure: string | null = null;
    let buf = '';
    let stderr = '';
    // A hang is --hang seconds of the child's CPU time without progress: on
    // a loaded machine, wall time would blame inputs for a starved child. A
    // child that blocks (no CPU) is caught by a wall-clock bound 10x longer.
    let cpuAtProgress = 0;
    let wallAtProgress = Date.now();
    const timer = setInterval(() => {
      const cpu = childCpuSeconds(child.pid);
      if (cpu - cpuAtProgress > a.hang) onHang(`no progress in ${a.hang} s of CPU`);
      else if (Date.now() - wallAtProgress > a.hang * 10_000) onHang(`no progress in ${a.hang * 10} s`);
    }, 1000);
    function onHang(why: string): void {
      if (failure !== null) return;
      failure = `${target} seed ${a.seed} input ${last}: hang (${why})`;
      child.kill('SIGKILL');
    }
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^(at|peak|fail) (.*)$/.exec(line);
        if (!m) continue;
        if (m[1] === 'at') {
          last = Number(m[2]);
          cpuAtProgress = childCpuSeconds(child.pid);
          wallAtProgress = Date.now();
        } else if (m[1] === 'peak') peak = Number(m[2]);
        else failure = m[2]!;
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => {
      clearInterval(timer);
      if (failure === null && code !== 0) failure = `${target} seed ${a.seed} near input ${last}: child exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      if (failure === null && peak > a.maxRss) failure = `${target} seed ${a.seed} inputs ${from}..${from + count}: peak RSS ${peak.toFixed(0)} MB over ${a.maxRss} MB`;
      done({ peak, failure, next: last + 1 });
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const a = parseArgs(argv);
  if (a.child) {
    const { target, from, count } = a.child;
    try {
      const peak = runRange(target, a.seed, from, count, (i) => {
        process.stdout.write(`at ${i}\n`);
      });
      process.stdout.write(`peak ${peak}\n`);
    } catch (e) {
      process.stdout.write(`fail ${(e as Error).message.replace(/\n/g, ' ')}\n`);
    }
    return 0;
  }
  const started = Date.now();
  let total = 0;
  const failures: string[] = [];
  for (const target of a.targets) {
    let peak = 0;
    let done = 0;
    for (let from = 0; from < a.count; ) {
      const n = Math.min(a.chunk, a.count - from);
      const r = await runChild(target, a, from, n);
      peak = Math.max(peak, r.peak);
      if (r.failure !== null) {
        failures.push(r.failure);
        console.log(`FAIL ${r.failure}`);
        // Go on after the failing input.
        done += r.next - from;
        from = r.next;
        continue;
      }
      done += n;
      from += n;
    }
    total += done;
    console.log(`${target.padEnd(10)} ${done.toLocaleString('en-US').padStart(10)} inputs, peak RSS ${peak.toFixed(0)} MB`);
  }
  console.log(`total      ${total.toLocaleString('en-US').padStart(10)} inputs in ${((Date.now() - started) / 1000).toFixed(0)} s, seed ${a.seed}: ${failures.length} crashes/hangs/memory failures`);
  return failures.length > 0 ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((c) => (process.exitCode = c));
}
