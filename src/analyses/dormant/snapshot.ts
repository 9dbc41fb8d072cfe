/**
 * The concrete state the shim (native/dormant-shim.c) records
 * after each interposed library call made by the program's own code (the
 * main executable or one of its own shared libraries): which call, the
 * caller's module and the link-time return site in it, the loaded modules,
 * its arguments and result, the registers the caller keeps across a call,
 * and the process's readable non-code memory. Symbolic execution
 * (symbolic.ts) starts from one of these.
 *
 * File format (version 2, magic "PSN2"): records one after another,
 * little-endian, each a 192-byte header (the C `struct snap_header`), then
 * `nmodules` modules (u64 lo, hi, bias, u32 path length, u32 traced, the
 * path), then `nregions` memory regions (u64 lo, u64 hi, then hi - lo bytes).
 */
import { readFileSync } from 'node:fs';
import { lastAtOrBelow } from '../../flow/sorted-search.js';

const MAGIC = 0x324e5350;
const OLD_MAGIC = 0x4e535450;
const HEADER = 192;
const MODULE_ENTRY = 32;
const MAX_MODULES = 64;
const MAX_PATH = 4096;
/** The shim's bounds: regions per record and bytes per region (native/dormant-shim.c). */
const MAX_REGIONS = 256;
const MAX_REGION_BYTES = 4 << 20;

/** A module loaded in the snapshot run. */
export interface SnapshotModule {
  /** Its path as the loader named it; '' for the main executable. */
  path: string;
  lo: number;
  hi: number;
  /** runtime = link + bias. */
  bias: number;
  /** The shim acts on calls from it (the program's own code). */
  traced: boolean;
}

export interface MemoryRegion {
  lo: number;
  hi: number;
  bytes: Uint8Array;
}

/** One interposed call, seen from the caller right after it returned. */
export interface CallSnapshot {
  /** Order in the file (the order of the calls). */
  index: number;
  name: string;
  /** Link-time address of the instruction after the call, in the caller's module. */
  site: number;
  /** The caller's module: index in {@link modules} (0 is the main executable). */
  caller: number;
  /**
   * Which traced call of this name at this site it was in its process (1
   * for the first), as the shim counts for SITE#N rules; 0 if it was not counted.
   */
  occurrence: number;
  /** The modules loaded at the call. */
  modules: SnapshotModule[];
  /** Load bias of the main executable in the snapshot run (runtime = link + bias). */
  bias: number;
  /** rbx, rbp, r12, r13, r14, r15 after the return. */
  calleeSaved: bigint[];
  /** rsp at the callee's entry (it points at the return address). */
  rspAtEntry: number;
  /** rdi, rsi, rdx, rcx as passed; [4] is the stack canary (fs:0x28), [5] unused. */
  args: bigint[];
  /** rax after the return. */
  result: bigint;
  memory: SnapshotMemory;
}

/** Readable memory of the process at one snapshot. */
export class SnapshotMemory {
  private readonly starts: number[];
  constructor(readonly regions: MemoryRegion[]) {
    regions.sort((a, b) => a.lo - b.lo);
    this.starts = regions.map((r) => r.lo);
  }

  private regionOf(addr: number): MemoryRegion | null {
    const i = lastAtOrBelow(this.starts, addr);
    if (i < 0) return null;
    const r = this.regions[i];
    return addr < r.hi ? r : null;
  }

  /** The byte at `addr`, or -1 if the snapshot holds no memory there. */
  byte(addr: number): number {
    const r = this.regionOf(addr);
    return r === null ? -1 : r.bytes[addr - r.lo];
  }

  /** A NUL-terminated string at `addr` (at most `max` bytes), or null if unreadable. */
  cString(addr: number, max = 4096): string | null {
    const out: number[] = [];
    for (let i = 0; i < max; i++) {
      const b = this.byte(addr + i);
      if (b < 0) return null;
      if (b === 0) break;
      out.push(b);
    }
    return Buffer.from(out).toString('latin1');
  }
}

/** The largest occurrence a SITE#N rule names (the shim reads at most 9 digits). */
const MAX_OCCURRENCE = 999_999_999n;

/**
 * Parse a shim snapshot file. The file lies in the program's own working
 * directory, so every count and bound is checked. A record cut off at the
 * end (the run was killed while the shim wrote it) ends the file: the
 * records before it are kept.
 */
export function readSnapshots(path: string): CallSnapshot[] {
  const buf = readFileSync(path);
  const out: CallSnapshot[] = [];
  let p = 0;
  // A record cut off at the end ends the loop (`break records`).
  records: while (p + HEADER <= buf.length) {
    const magic = buf.readUInt32LE(p);
    if (magic === OLD_MAGIC) throw new Error(`${path}: a snapshot of an older shim (format 1, no module table): rebuild the shim`);
    if (magic !== MAGIC) throw new Error(`${path}: bad snapshot record at offset ${p}`);
    const nameLen = Math.min(buf.readUInt32LE(p + 4), 31);
    const name = buf.toString('latin1', p + 8, p + 8 + nameLen);
    const u64 = (o: number): bigint => buf.readBigUInt64LE(p + o);
    const regs = [0, 1, 2, 3, 4, 5, 6].map((i) => u64(72 + i * 8));
    const args = [0, 1, 2, 3, 4, 5].map((i) => u64(128 + i * 8));
    const nregions = buf.readUInt32LE(p + 184);
    if (nregions > MAX_REGIONS) throw new Error(`${path}: bad region count in the snapshot record at offset ${p}`);
    const caller = buf.readUInt32LE(p + 48);
    const nmodules = buf.readUInt32LE(p + 52);
    if (nmodules === 0 || nmodules > MAX_MODULES || caller >= nmodules) throw new Error(`${path}: bad module table in the snapshot record at offset ${p}`);
    let q = p + HEADER;
    const modules: SnapshotModule[] = [];
    for (let i = 0; i < nmodules; i++) {
      if (q + MODULE_ENTRY > buf.length) break records;
      const len = buf.readUInt32LE(q + 24);
      if (len > MAX_PATH) throw new Error(`${path}: bad module path in the snapshot record at offset ${p}`);
      if (q + MODULE_ENTRY + len > buf.length) break records;
      modules.push({
        lo: Number(buf.readBigUInt64LE(q)),
        hi: Number(buf.readBigUInt64LE(q + 8)),
        bias: Number(buf.readBigUInt64LE(q + 16)),
        traced: buf.readUInt32LE(q + 28) !== 0,
        path: buf.toString('latin1', q + MODULE_ENTRY, q + MODULE_ENTRY + len),
      });
      q += MODULE_ENTRY + len;
    }
    const regions: MemoryRegion[] = [];
    for (let i = 0; i < nregions; i++) {
      if (q + 16 > buf.length) break records;
      const lo = Number(buf.readBigUInt64LE(q));
      const hi = Number(buf.readBigUInt64LE(q + 8));
      if (!(lo < hi) || hi - lo > MAX_REGION_BYTES) throw new Error(`${path}: bad memory region in the snapshot record at offset ${p}`);
      q += 16;
      if (q + (hi - lo) > buf.length) break records;
      regions.push({ lo, hi, bytes: new Uint8Array(buf.buffer, buf.byteOffset + q, hi - lo) });
      q += hi - lo;
    }
    // From the program's directory: a count a rule cannot name (the shim reads up to 9 digits) is none.
    const count = u64(56);
    const occurrence = count <= MAX_OCCURRENCE ? Number(count) : 0;
    out.push({
      index: out.length,
      name,
      site: Number(u64(40)),
      caller,
      occurrence,
      modules,
      bias: modules[0].bias,
      calleeSaved: regs.slice(0, 6),
      rspAtEntry: Number(regs[6]),
      args,
      result: u64(176),
      memory: new SnapshotMemory(regions),
    });
    p = q;
  }
  return out;
}
