/**
 * Packet decoder fuzzing: mutated traces (bit flips, cut and duplicated
 * bytes, spliced and inserted PSBs, random garbage) go through the
 * PacketDecoder with a resync loop, and a sample through `ptscope dump`'s
 * formatter. Checks: no exception, no hang (every step makes progress),
 * decoded packets re-encode, flat memory.
 *
 *   node dist/tools/fuzz-packets.js [--count N] [--seed S] [--seconds T] [--dump-every K]
 *
 * Defaults: 1,000,000 traces from seed 1, no time limit, a dump sample every
 * 100 traces. A failure prints the seed and trace index and exits 1; the
 * failing trace is written to build/fuzz/.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseDumpArgs, runDump } from '../src/cli/dump.js';
import { CliError, LineWriter } from '../src/cli/output.js';
import { PacketDecoder, type PacketDecoderOptions } from '../src/packets/decoder.js';
import { encodePacket } from '../src/packets/encoder.js';
import { ErrorCode } from '../src/packets/errors.js';
import { Packet } from '../src/packets/packet.js';
import { PacketType } from '../src/packets/packet-type.js';
import { PSB_SIZE } from '../src/packets/sync.js';
import { encodeTrace } from '../src/packets/trace-writer.js';
import { randomStream, Rng, type PacketMix } from '../bench/synthetic-trace.js';

const PSB_BYTES = encodeTrace([Object.assign(new Packet(), { type: PacketType.Psb })]);

/** Random bytes, biased towards opcode-like values so that garbage decodes a bit. */
export function garbage(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  const interesting = [0x00, 0x02, 0x82, 0x03, 0x19, 0x59, 0x99, 0xd9, 0x23, 0xf3, 0xc3, 0x88, 0x43, 0xa3, 0x73, 0xc8, 0x12, 0x63, 0x33];
  for (let i = 0; i < n; i++) out[i] = rng.chance(0.3) ? rng.pick(interesting) : rng.bits(8);
  return out;
}

/** Concatenate byte arrays. */
function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Apply 1 to 4 random mutations to `trace`: flip bits, set random bytes,
 * cut a range, duplicate a range, insert a PSB (aligned or not), splice a
 * partial PSB, insert garbage, or truncate the end.
 */
export function mutate(rng: Rng, trace: Uint8Array): Uint8Array {
  let t = trace;
  for (let m = 1 + rng.int(4); m > 0; m--) {
    const at = rng.int(t.length + 1);
    switch (rng.int(8)) {
      case 0: {
        // Bit flips.
        t = t.slice();
        for (let k = 1 + rng.int(3); k > 0 && t.length > 0; k--) t[rng.int(t.length)] ^= 1 << rng.int(8);
        break;
      }
      case 1: {
        t = t.slice();
        for (let k = 1 + rng.int(3); k > 0 && t.length > 0; k--) t[rng.int(t.length)] = rng.bits(8);
        break;
      }
      case 2: {
        // Cut bytes.
        const n = 1 + rng.int(24);
        t = concat([t.subarray(0, at), t.subarray(Math.min(t.length, at + n))]);
        break;
      }
      case 3: {
        // Duplicate a range.
        const n = 1 + rng.int(32);
        t = concat([t.subarray(0, at), t.subarray(at, at + n), t.subarray(at)]);
        break;
      }
      case 4: {
        // Insert a PSB, at an 8-byte aligned offset half of the time.
        const pos = rng.chance(0.5) ? at - (at % 8) : at;
        t = concat([t.subarray(0, pos), PSB_BYTES, t.subarray(pos)]);
        break;
      }
      case 5: {
        // Splice in the start or the end of a PSB.
        const n = 1 + rng.int(PSB_SIZE - 1);
        const part = rng.chance(0.5) ? PSB_BYTES.subarray(0, n) : PSB_BYTES.subarray(PSB_SIZE - n);
        t = concat([t.subarray(0, at), part, t.subarray(at)]);
        break;
      }
      case 6: {
        // Garbage, followed by a PSB half of the time.
        const g = garbage(rng, 1 + rng.int(64));
        t = concat([t.subarray(0, at), g, rng.chance(0.5) ? PSB_BYTES : new Uint8Array(0), t.subarray(at)]);
        break;
      }
      default:
        t = t.subarray(0, at);
        break;
    }
  }
  return t;
}

/** A random valid trace of `packets` packets, encoded. */
export function randomTrace(rng: Rng, packets: number, mix: PacketMix = {}): Uint8Array {
  return encodeTrace(randomStream(rng, packets, mix));
}

/** Raised by {@link checkDecode} on a broken invariant. */
export class FuzzFailure extends Error {}

function fail(what: string): never {
  throw new FuzzFailure(what);
}

const scratch = new Uint8Array(64);
const again = new Packet();

/**
 * Decode `buf` from every PSB with the resync loop, checking that every
 * step makes progress and that every decoded packet re-encodes to bytes
 * that decode to the same packet. Then walk all PSBs backwards. Returns the
 * number of packets decoded.
 */
export function checkDecode(buf: Uint8Array, options: PacketDecoderOptions, pkt = new Packet()): number {
  const decoder = new PacketDecoder(buf, options);
  let packets = 0;
  let lastSync = -1;
  // Each step consumes at least one byte or stops: bounded by the length.
  let budget = 2 * buf.length + 8;
  for (;;) {
    const err = decoder.syncForward();
    if (err < 0) {
      if (err !== -ErrorCode.Eos) fail(`syncForward: unexpected ${err}`);
      break;
    }
    const sync = decoder.syncOffset;
    if (sync <= lastSync) fail(`syncForward did not advance: ${sync} after ${lastSync}`);
    lastSync = sync;
    let block = 0;
    for (;;) {
      if (--budget < 0) fail('no progress: step budget exhausted');
      const before = decoder.offset;
      const size = decoder.next(pkt);
      if (size < 0) {
        if (decoder.offset !== before) fail(`error ${size} moved the offset`);
        break;
      }
      if (size === 0 || size > 32) fail(`bad packet size ${size}`);
      if (pkt.offset !== before) fail(`packet offset ${pkt.offset} != ${before}`);
      if (decoder.offset <= before) fail(`offset did not advance at ${before}`);
      packets++;
      if (pkt.type === PacketType.Bbp) block = pkt.bbpSize;
      if (pkt.type === PacketType.Bep || pkt.type === PacketType.Psb || pkt.type === PacketType.Ovf) block = 0;
      checkReencode(pkt, block);
    }
  }
  // Backward from the end: every sync point is a PSB. Like libipt's
  // pt_sync_backward, a position inside a run of PSBs finds the run's last
  // PSB again (not an earlier one), so the walk stops when it stops going back.
  const back = new PacketDecoder(buf, options);
  let prev = Infinity;
  for (;;) {
    const err = back.syncBackward();
    if (err < 0) {
      if (err !== -ErrorCode.Eos) fail(`syncBackward: unexpected ${err}`);
      break;
    }
    const off = back.syncOffset;
    if (!back.isPsbAt(off)) fail(`syncBackward stopped at ${off}, not a PSB`);
    if (off >= prev) break;
    prev = off;
  }
  return packets;
}

/** The encoder accepts every decoded packet and its bytes decode to the same packet. */
function checkReencode(pkt: Packet, block: number): void {
  if (pkt.type === PacketType.Invalid) return; // SKZ84's skipped TMA: nothing to encode.
  // CYC values beyond 2^53 are not exact in a double; the encoder refuses them.
  if (pkt.type === PacketType.Cyc && pkt.cyc > Number.MAX_SAFE_INTEGER) return;
  const savedSize = pkt.bbpSize;
  if (pkt.type === PacketType.Bip) pkt.bbpSize = block;
  const n = encodePacket(pkt, scratch, 0);
  pkt.bbpSize = savedSize;
  if (n < 0) fail(`decoded ${PacketType[pkt.type]} at ${pkt.offset} does not re-encode: ${n}`);
  const d = new PacketDecoder(scratch.subarray(0, n), { pebs: true });
  d.syncSet(0);
  if (pkt.type === PacketType.Bip) {
    // Re-create the block context for the lone BIP.
    const ctx = new Uint8Array(3 + n);
    ctx.set([0x02, 0x63, block === 4 ? 0x80 : 0], 0);
    ctx.set(scratch.subarray(0, n), 3);
    const dc = new PacketDecoder(ctx);
    dc.syncSet(0);
    dc.next(again);
    if (dc.next(again) !== n) fail('BIP re-decode failed');
  } else if (d.next(again) !== n) {
    fail(`re-decode of ${PacketType[pkt.type]} at ${pkt.offset} failed`);
  }
  if (!samePacket(pkt, again)) fail(`re-encoded ${PacketType[pkt.type]} at ${pkt.offset} decodes differently`);
}

/** Field names that matter for each packet kind (see Packet's documentation). */
export const PACKET_FIELDS: Readonly<Partial<Record<PacketType, readonly (keyof Packet)[]>>> = {
  [PacketType.Fup]: ['ipc', 'hi', 'lo'],
  [PacketType.Tip]: ['ipc', 'hi', 'lo'],
  [PacketType.TipPge]: ['ipc', 'hi', 'lo'],
  [PacketType.TipPgd]: ['ipc', 'hi', 'lo'],
  [PacketType.Tnt8]: ['tntSize', 'tntBits'],
  [PacketType.Tnt64]: ['tntSize', 'tntBits'],
  [PacketType.ModeExec]: ['csl', 'csd', 'iflag'],
  [PacketType.ModeTsx]: ['intx', 'abrt'],
  [PacketType.Pip]: ['hi', 'lo', 'nr'],
  [PacketType.Vmcs]: ['hi', 'lo'],
  [PacketType.Tsc]: ['hi', 'lo'],
  [PacketType.Cbr]: ['ratio'],
  [PacketType.Tma]: ['ctc', 'fc'],
  [PacketType.Mtc]: ['ctc'],
  [PacketType.Cyc]: ['cyc'],
  [PacketType.Mnt]: ['hi', 'lo'],
  [PacketType.Exstop]: ['ip'],
  [PacketType.Mwait]: ['hints', 'ext'],
  [PacketType.Pwre]: ['state', 'subState', 'hw'],
  [PacketType.Pwrx]: ['last', 'deepest', 'wakeInterrupt', 'wakeStore', 'wakeAutonomous'],
  [PacketType.Ptw]: ['plc', 'ip', 'hi', 'lo'],
  [PacketType.Cfe]: ['cfeType', 'vector', 'ip'],
  [PacketType.Evd]: ['evdType', 'hi', 'lo'],
  [PacketType.Trig]: ['trbv', 'ip', 'icntv', 'mult', 'icnt'],
  [PacketType.Bbp]: ['bbpSize', 'bbpType'],
  [PacketType.Bip]: ['bipId', 'hi', 'lo'],
  [PacketType.Bep]: ['ip'],
};

/** True if `a` and `b` are the same kind with the same meaningful fields. */
export function samePacket(a: Packet, b: Packet): boolean {
  if (a.type !== b.type) return false;
  for (const f of PACKET_FIELDS[a.type] ?? []) if (a[f] !== b[f]) return false;
  return true;
}

/** A short description of the meaningful fields, for failure messages. */
export function describePacket(p: Packet): string {
  const fields = (PACKET_FIELDS[p.type] ?? []).map((f) => `${f}=${String(p[f])}`);
  return `${PacketType[p.type]}@${p.offset}(${fields.join(',')})`;
}

const DUMP_FLAG_SETS: readonly string[][] = [
  [], ['--lastip'], ['--raw'], ['--exec-mode', '--lastip'], ['--no-pad', '--no-timing'], ['--no-offset', '--raw'],
  ['--json'], ['--stat'], ['--no-sync'], ['--no-cyc', '--quiet'],
];

/** Run `ptscope dump` formatting on the trace file `path` into memory; returns the output length. */
export function checkDump(path: string, flags: readonly string[]): number {
  const opts = parseDumpArgs([...flags, path]);
  if (!opts) fail('dump: no options');
  const out = new LineWriter(null);
  // dump reports a trace that ends inside a packet on stderr: keep it quiet.
  const write = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    // 0, or 1 for a trace that ends inside a packet.
    const status = runDump(opts, out);
    if (status !== 0 && status !== 1) fail(`dump exited with ${status}`);
  } catch (e) {
    // A CliError is a reported user-level failure (e.g. no PSB at all), not a crash.
    if (!(e instanceof CliError)) throw e;
    return e.message.length;
  } finally {
    process.stderr.write = write;
  }
  out.flush();
  return out.text.length;
}

export interface FuzzOptions {
  count: number;
  seed: number;
  /** Stop after this many seconds even if `count` is not reached. */
  seconds?: number;
  /** Run the dump formatter on every `dumpEvery`-th trace (0: never). */
  dumpEvery?: number;
  /** Progress callback, called about every 10 seconds. */
  progress?: (done: number, stats: FuzzStats) => void;
}

export interface FuzzStats {
  traces: number;
  bytes: number;
  packets: number;
  dumps: number;
  seconds: number;
  heapStartMB: number;
  heapEndMB: number;
}

/** Where a failing case is: enough to reproduce it. */
export class FuzzCaseError extends Error {
  constructor(readonly seed: number, readonly index: number, readonly trace: Uint8Array, cause: unknown) {
    super(`fuzz failure at seed ${seed}, trace ${index}: ${cause instanceof Error ? cause.stack ?? cause.message : String(cause)}`);
  }
}

/** One fuzz case: deterministic from (seed, index). */
export function fuzzCase(seed: number, index: number): { trace: Uint8Array; options: PacketDecoderOptions } {
  const rng = new Rng((seed * 0x9e3779b1 + index) >>> 0);
  const mix: PacketMix = { libipt205: rng.chance(0.3) };
  let trace = randomTrace(rng, 4 + rng.int(60), mix);
  if (rng.chance(0.2)) trace = concat([garbage(rng, rng.int(40)), trace, garbage(rng, rng.int(40))]);
  trace = mutate(rng, trace);
  const options: PacketDecoderOptions = { pebs: rng.chance(0.7), skd007: rng.chance(0.2), skz84: rng.chance(0.2) };
  return { trace, options };
}

/** Run the fuzz loop; throws {@link FuzzCaseError} on the first failure. */
export function runFuzz(opts: FuzzOptions): FuzzStats {
  const start = performance.now();
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapStart = process.memoryUsage().heapUsed;
  const stats: FuzzStats = { traces: 0, bytes: 0, packets: 0, dumps: 0, seconds: 0, heapStartMB: heapStart / 2 ** 20, heapEndMB: 0 };
  const pkt = new Packet();
  const dumpEvery = opts.dumpEvery ?? 100;
  let dir: string | undefined;
  let lastProgress = start;
  try {
    for (let i = 0; i < opts.count; i++) {
      const { trace, options } = fuzzCase(opts.seed, i);
      try {
        stats.packets += checkDecode(trace, options, pkt);
        if (dumpEvery > 0 && i % dumpEvery === 0) {
          dir ??= mkdtempSync(join(tmpdir(), 'ptscope-fuzz-'));
          const file = join(dir, 'trace.pt');
          writeFileSync(file, trace);
          checkDump(file, DUMP_FLAG_SETS[(i / dumpEvery) % DUMP_FLAG_SETS.length]);
          stats.dumps++;
        }
      } catch (e) {
        throw new FuzzCaseError(opts.seed, i, trace, e);
      }
      stats.traces++;
      stats.bytes += trace.length;
      if ((i & 1023) === 0) {
        const now = performance.now();
        if (opts.seconds !== undefined && now - start > opts.seconds * 1000) break;
        if (opts.progress && now - lastProgress > 10_000) {
          lastProgress = now;
          stats.seconds = (now - start) / 1000;
          opts.progress(i, stats);
        }
      }
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  gc?.();
  stats.heapEndMB = process.memoryUsage().heapUsed / 2 ** 20;
  stats.seconds = (performance.now() - start) / 1000;
  return stats;
}

function parseArgs(argv: string[]): FuzzOptions {
  const o: FuzzOptions = { count: 1_000_000, seed: 1, dumpEvery: 100 };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[++i]);
    if (!Number.isFinite(value)) throw new Error(`${argv[i - 1]}: expected a number`);
    switch (argv[i - 1]) {
      case '--count': o.count = value; break;
      case '--seed': o.seed = value; break;
      case '--seconds': o.seconds = value; break;
      case '--dump-every': o.dumpEvery = value; break;
      default: throw new Error(`unknown option ${argv[i - 1]}`);
    }
  }
  return o;
}

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  opts.progress = (done, s) =>
    console.log(`  ${done} traces, ${s.packets} packets, ${s.seconds.toFixed(0)} s, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} MB`);
  console.log(`fuzz-packets: ${opts.count} traces from seed ${opts.seed}${opts.seconds ? `, at most ${opts.seconds} s` : ''}`);
  try {
    const s = runFuzz(opts);
    console.log(`traces ${s.traces}\nbytes ${s.bytes}\npackets ${s.packets}\ndumps ${s.dumps}`);
    console.log(`seconds ${s.seconds.toFixed(1)}\nheap-start-mb ${s.heapStartMB.toFixed(1)}\nheap-end-mb ${s.heapEndMB.toFixed(1)}`);
  } catch (e) {
    if (e instanceof FuzzCaseError) {
      mkdirSync('build/fuzz', { recursive: true });
      const file = join('build/fuzz', `seed${e.seed}-case${e.index}.pt`);
      writeFileSync(file, e.trace);
      console.error(`${e.message}\ntrace written to ${file}`);
      process.exit(1);
    }
    throw e;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
