import { RandomAccessFile, u64AsNumber } from './file-access.js';

/**
 * The perf.data container (perf's tools/perf/util/header.c,
 * Documentation/perf.data-file-format.txt): a fixed file header, an attr
 * section (one `perf_event_attr` plus an id list per event), the data
 * section of records, and after the data optional "feature" sections
 * selected by a bitmap in the header.
 *
 * Only the little-endian "PERFILE2" layout is read and written; files
 * written on a big-endian host (byte-swapped magic) are refused.
 */

/** "PERFILE2" read as a little-endian u64. */
export const PERF_MAGIC = 0x32454c4946524550n;
/** sizeof(struct perf_file_header): magic, size, attr_size, 3 sections, 256-bit feature bitmap. */
export const FILE_HEADER_SIZE = 104;
/** sizeof(struct perf_event_attr) as perf 6.1 writes it (PERF_ATTR_SIZE_VER7). */
export const ATTR_SIZE = 128;
/** Smallest attr perf accepts (PERF_ATTR_SIZE_VER0). */
export const ATTR_SIZE_VER0 = 64;
/** sizeof(struct perf_file_section). */
export const FILE_SECTION_SIZE = 16;
/** Strings in feature sections are padded to this (NAME_ALIGN). */
export const NAME_ALIGN = 64;
/** perf_file_header.adds_features is HEADER_FEAT_BITS = 256 bits. */
export const HEADER_FEAT_BITS = 256;

/** Feature section ids (enum in header.h); the bit number in adds_features. */
export enum HeaderFeature {
  TracingData = 1,
  BuildId = 2,
  Hostname = 3,
  OsRelease = 4,
  Version = 5,
  Arch = 6,
  NrCpus = 7,
  CpuDesc = 8,
  CpuId = 9,
  TotalMem = 10,
  Cmdline = 11,
  EventDesc = 12,
  CpuTopology = 13,
  NumaTopology = 14,
  BranchStack = 15,
  PmuMappings = 16,
  GroupDesc = 17,
  Auxtrace = 18,
  Stat = 19,
  Cache = 20,
  SampleTime = 21,
  MemTopology = 22,
  ClockId = 23,
  DirFormat = 24,
  BpfProgInfo = 25,
  BpfBtf = 26,
  Compressed = 27,
  CpuPmuCaps = 28,
  ClockData = 29,
  HybridTopology = 30,
  PmuCaps = 31,
}

/** struct perf_file_section. */
export interface FileSection {
  offset: number;
  size: number;
}

export interface PerfFileHeader {
  /** sizeof(struct perf_file_attr) in this file: attr size + one file section. */
  attrSize: number;
  attrs: FileSection;
  data: FileSection;
  eventTypes: FileSection;
  /** The set feature bits, ascending; feature sections are stored in this order. */
  features: number[];
}

/** `perf_event_attr` flag bits (the u64 bitfield at offset 40, linux/perf_event.h). */
export enum AttrFlag {
  Disabled = 1 << 0,
  Inherit = 1 << 1,
  ExcludeUser = 1 << 4,
  ExcludeKernel = 1 << 5,
  ExcludeHv = 1 << 6,
  Mmap = 1 << 8,
  Comm = 1 << 9,
  Freq = 1 << 10,
  EnableOnExec = 1 << 12,
  Task = 1 << 13,
  SampleIdAll = 1 << 18,
  ExcludeGuest = 1 << 20,
  Mmap2 = 1 << 23,
  CommExec = 1 << 24,
  ContextSwitch = 1 << 26,
}

/** `perf_event_attr.type` values used here. */
export const PERF_TYPE_HARDWARE = 0;
export const PERF_TYPE_SOFTWARE = 1;
/** PERF_COUNT_SW_DUMMY: the software event perf uses to collect sideband. */
export const PERF_COUNT_SW_DUMMY = 9;

/** The fields of `perf_event_attr` the importer and exporter use; the rest are kept as raw bytes. */
export interface PerfEventAttr {
  type: number;
  size: number;
  config: bigint;
  samplePeriod: bigint;
  sampleType: bigint;
  readFormat: bigint;
  /** The flag bitfield ({@link AttrFlag} bits). */
  flags: bigint;
  config1: bigint;
  config2: bigint;
  auxWatermark: number;
}

export interface PerfAttrEntry {
  attr: PerfEventAttr;
  /** Sample ids of this event (one per cpu/thread it was opened on). */
  ids: bigint[];
  /** Event name from HEADER_EVENT_DESC, when present. */
  name?: string;
}

export function hasFlag(attr: PerfEventAttr, flag: AttrFlag): boolean {
  return (attr.flags & BigInt(flag)) !== 0n;
}

/** Parse the file header. Throws PerfDataError for a bad magic, sizes or sections past EOF. */
export function readFileHeader(file: RandomAccessFile): PerfFileHeader {
  if (file.size < FILE_HEADER_SIZE) {
    throw file.error(0, `not a perf.data file: ${file.size} bytes, shorter than the ${FILE_HEADER_SIZE}-byte header`);
  }
  const b = file.read(0, FILE_HEADER_SIZE, 'file header');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = v.getBigUint64(0, true);
  if (magic !== PERF_MAGIC) {
    if (b[0] === 0x32 && b[7] === 0x50) throw file.error(0, 'big-endian perf.data is not supported');
    if (b.subarray(0, 8).every((c, i) => c === 'PERFFILE'.charCodeAt(i))) {
      throw file.error(0, 'perf.data version 1 ("PERFFILE") is not supported');
    }
    throw file.error(0, 'not a perf.data file: bad magic');
  }
  const hdrSize = u64AsNumber(v, 8, file, 8, 'header size');
  if (hdrSize !== FILE_HEADER_SIZE) {
    // A pipe-mode stream has size 16 and no sections.
    throw file.error(8, hdrSize === 16 ? 'pipe-mode perf.data is not supported' : `bad header size ${hdrSize}`);
  }
  const attrSize = u64AsNumber(v, 16, file, 16, 'attr size');
  if (attrSize < ATTR_SIZE_VER0 + FILE_SECTION_SIZE || attrSize > 4096) {
    throw file.error(16, `bad attr size ${attrSize}`);
  }
  const section = (pos: number, what: string): FileSection => {
    const s = {
      offset: u64AsNumber(v, pos, file, pos, `${what} offset`),
      size: u64AsNumber(v, pos + 8, file, pos + 8, `${what} size`),
    };
    if (s.offset + s.size > file.size) {
      throw file.error(s.offset, `${what} section (0x${s.size.toString(16)} bytes) runs past the end of the file (size 0x${file.size.toString(16)})`);
    }
    return s;
  };
  const attrs = section(24, 'attr');
  const data = section(40, 'data');
  const eventTypes = { offset: u64AsNumber(v, 56, file, 56, 'event types offset'), size: u64AsNumber(v, 64, file, 64, 'event types size') };
  if (attrs.size % attrSize !== 0) throw file.error(24, `attr section size ${attrs.size} is not a multiple of ${attrSize}`);
  const features: number[] = [];
  for (let bit = 0; bit < HEADER_FEAT_BITS; bit++) {
    if (b[72 + (bit >> 3)]! & (1 << (bit & 7))) features.push(bit);
  }
  return { attrSize, attrs, data, eventTypes, features };
}

export function encodeFileHeader(h: PerfFileHeader): Uint8Array {
  const b = new Uint8Array(FILE_HEADER_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, PERF_MAGIC, true);
  v.setBigUint64(8, BigInt(FILE_HEADER_SIZE), true);
  v.setBigUint64(16, BigInt(h.attrSize), true);
  const put = (pos: number, s: FileSection): void => {
    v.setBigUint64(pos, BigInt(s.offset), true);
    v.setBigUint64(pos + 8, BigInt(s.size), true);
  };
  put(24, h.attrs);
  put(40, h.data);
  put(56, h.eventTypes);
  for (const bit of h.features) b[72 + (bit >> 3)]! |= 1 << (bit & 7);
  return b;
}

/** Parse one `perf_event_attr` of `size` bytes (fields beyond `size` read as zero). */
export function parseAttr(bytes: Uint8Array): PerfEventAttr {
  const full = new Uint8Array(ATTR_SIZE);
  full.set(bytes.subarray(0, Math.min(bytes.length, ATTR_SIZE)));
  const v = new DataView(full.buffer);
  return {
    type: v.getUint32(0, true),
    size: v.getUint32(4, true),
    config: v.getBigUint64(8, true),
    samplePeriod: v.getBigUint64(16, true),
    sampleType: v.getBigUint64(24, true),
    readFormat: v.getBigUint64(32, true),
    flags: v.getBigUint64(40, true),
    config1: v.getBigUint64(56, true),
    config2: v.getBigUint64(64, true),
    auxWatermark: v.getUint32(104, true),
  };
}

export function encodeAttr(a: PerfEventAttr): Uint8Array {
  const b = new Uint8Array(ATTR_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, a.type, true);
  v.setUint32(4, ATTR_SIZE, true);
  v.setBigUint64(8, a.config, true);
  v.setBigUint64(16, a.samplePeriod, true);
  v.setBigUint64(24, a.sampleType, true);
  v.setBigUint64(32, a.readFormat, true);
  v.setBigUint64(40, a.flags, true);
  v.setBigUint64(56, a.config1, true);
  v.setBigUint64(64, a.config2, true);
  v.setUint32(104, a.auxWatermark, true);
  return b;
}

/** Read the attr section and each attr's id list. */
export function readAttrs(file: RandomAccessFile, h: PerfFileHeader): PerfAttrEntry[] {
  const n = h.attrs.size / h.attrSize;
  if (n > 4096) throw file.error(h.attrs.offset, `implausible number of attrs: ${n}`);
  const out: PerfAttrEntry[] = [];
  const attrBytes = h.attrSize - FILE_SECTION_SIZE;
  for (let i = 0; i < n; i++) {
    const at = h.attrs.offset + i * h.attrSize;
    const raw = file.read(at, h.attrSize, `attr ${i}`);
    const attr = parseAttr(raw.subarray(0, attrBytes));
    if (attr.size !== 0 && attr.size < ATTR_SIZE_VER0) throw file.error(at + 4, `attr ${i}: bad size ${attr.size}`);
    const v = new DataView(raw.buffer, raw.byteOffset + attrBytes, FILE_SECTION_SIZE);
    const idsOffset = u64AsNumber(v, 0, file, at + attrBytes, 'ids offset');
    const idsSize = u64AsNumber(v, 8, file, at + attrBytes + 8, 'ids size');
    if (idsSize % 8 !== 0 || idsSize > 8 * 65536) throw file.error(at + attrBytes + 8, `attr ${i}: bad ids size ${idsSize}`);
    const idBytes = file.read(idsOffset, idsSize, `attr ${i} ids`);
    const iv = new DataView(idBytes.buffer, idBytes.byteOffset, idBytes.byteLength);
    const ids: bigint[] = [];
    for (let p = 0; p < idsSize; p += 8) ids.push(iv.getBigUint64(p, true));
    out.push({ attr, ids });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Feature sections

export interface BuildIdEntry {
  /** pid the entry belongs to (-1: the host kernel/user space). */
  pid: number;
  /** PERF_RECORD_MISC_USER or _KERNEL. */
  cpumode: number;
  /** Lower-case hex. */
  buildId: string;
  filename: string;
}

export interface AuxtraceIndexEntry {
  /** File offset of the PERF_RECORD_AUXTRACE header. */
  fileOffset: number;
  /** Header size plus data size. */
  size: number;
}

export interface PerfFeatures {
  hostname?: string;
  osRelease?: string;
  version?: string;
  arch?: string;
  nrCpusAvail?: number;
  nrCpusOnline?: number;
  cpuDesc?: string;
  /** HEADER_CPUID, on x86 "GenuineIntel,family,model,stepping". */
  cpuId?: string;
  cmdline?: string[];
  buildIds: BuildIdEntry[];
  auxtraceIndex: AuxtraceIndexEntry[];
  /** HEADER_EVENT_DESC: event names by id. */
  eventNames: { name: string; ids: bigint[] }[];
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const utf8enc = new TextEncoder();

/** Cursor over one feature section's bytes, bounds-checked against the section. */
class SectionCursor {
  pos = 0;
  private readonly view: DataView;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly base: number,
    private readonly file: RandomAccessFile,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get left(): number {
    return this.bytes.length - this.pos;
  }
  need(n: number): void {
    if (n < 0 || this.pos + n > this.bytes.length) {
      throw this.file.error(this.base + this.pos, `${this.what} feature section truncated`);
    }
  }
  u32(): number {
    this.need(4);
    const x = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return x;
  }
  u64(): bigint {
    this.need(8);
    const x = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return x;
  }
  u64n(): number {
    const at = this.base + this.pos;
    const x = this.u64();
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw this.file.error(at, `${this.what}: bad value 0x${x.toString(16)}`);
    return Number(x);
  }
  raw(n: number): Uint8Array {
    this.need(n);
    const r = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return r;
  }
  /** perf's do_read_string: u32 padded length, then a NUL-terminated string padded with NULs. */
  string(): string {
    const len = this.u32();
    const r = this.raw(len);
    const nul = r.indexOf(0);
    return utf8.decode(nul < 0 ? r : r.subarray(0, nul));
  }
}

/** Read the feature index (right after the data section) and the features the importer uses. */
export function readFeatures(file: RandomAccessFile, h: PerfFileHeader): PerfFeatures {
  const f: PerfFeatures = { buildIds: [], auxtraceIndex: [], eventNames: [] };
  if (h.features.length === 0) return f;
  const indexAt = h.data.offset + h.data.size;
  const index = file.read(indexAt, h.features.length * FILE_SECTION_SIZE, 'feature section index');
  const iv = new DataView(index.buffer, index.byteOffset, index.byteLength);
  h.features.forEach((feat, i) => {
    const pos = i * FILE_SECTION_SIZE;
    const offset = u64AsNumber(iv, pos, file, indexAt + pos, `feature ${feat} offset`);
    const size = u64AsNumber(iv, pos + 8, file, indexAt + pos + 8, `feature ${feat} size`);
    if (!isUsedFeature(feat)) return;
    const what = HeaderFeature[feat] ?? `#${feat}`;
    const c = new SectionCursor(file.read(offset, size, `${what} feature section`), offset, file, what);
    parseFeature(feat, c, f, file, offset);
  });
  return f;
}

function isUsedFeature(feat: number): boolean {
  switch (feat) {
    case HeaderFeature.Hostname:
    case HeaderFeature.OsRelease:
    case HeaderFeature.Version:
    case HeaderFeature.Arch:
    case HeaderFeature.NrCpus:
    case HeaderFeature.CpuDesc:
    case HeaderFeature.CpuId:
    case HeaderFeature.Cmdline:
    case HeaderFeature.BuildId:
    case HeaderFeature.Auxtrace:
    case HeaderFeature.EventDesc:
      return true;
  }
  return false;
}

/** sizeof(struct perf_record_header_build_id) without the filename. */
const BUILD_ID_RECORD_SIZE = 36;
/** header.misc: the build-id record carries its size in `size` (else 20 bytes). */
const PERF_RECORD_MISC_BUILD_ID_SIZE = 1 << 15;

function parseFeature(feat: number, c: SectionCursor, f: PerfFeatures, file: RandomAccessFile, base: number): void {
  switch (feat) {
    case HeaderFeature.Hostname:
      f.hostname = c.string();
      return;
    case HeaderFeature.OsRelease:
      f.osRelease = c.string();
      return;
    case HeaderFeature.Version:
      f.version = c.string();
      return;
    case HeaderFeature.Arch:
      f.arch = c.string();
      return;
    case HeaderFeature.CpuDesc:
      f.cpuDesc = c.string();
      return;
    case HeaderFeature.CpuId:
      f.cpuId = c.string();
      return;
    case HeaderFeature.NrCpus:
      f.nrCpusAvail = c.u32();
      f.nrCpusOnline = c.u32();
      return;
    case HeaderFeature.Cmdline: {
      const n = c.u32();
      if (n > c.left) throw file.error(base, `cmdline: bad argument count ${n}`);
      f.cmdline = [];
      for (let i = 0; i < n; i++) f.cmdline.push(c.string());
      return;
    }
    case HeaderFeature.Auxtrace: {
      const n = c.u64n();
      if (n * 16 > c.left) throw file.error(base, `auxtrace index: ${n} entries do not fit the ${c.left + 8}-byte section`);
      for (let i = 0; i < n; i++) f.auxtraceIndex.push({ fileOffset: c.u64n(), size: c.u64n() });
      return;
    }
    case HeaderFeature.BuildId:
      while (c.left >= BUILD_ID_RECORD_SIZE) {
        const at = c.pos;
        c.u32(); // type: unused
        const miscSize = c.u32();
        const misc = miscSize & 0xffff;
        const size = miscSize >>> 16;
        if (size < BUILD_ID_RECORD_SIZE || size > c.left + 8) {
          throw file.error(base + at, `build-id record size ${size} is bad`);
        }
        const pid = c.u32() | 0;
        const id = c.raw(24);
        const idLen = misc & PERF_RECORD_MISC_BUILD_ID_SIZE ? Math.min(id[20]!, 20) : 20;
        const name = c.raw(size - BUILD_ID_RECORD_SIZE);
        const nul = name.indexOf(0);
        f.buildIds.push({
          pid,
          cpumode: misc & 7,
          buildId: Buffer.from(id.subarray(0, idLen)).toString('hex'),
          filename: utf8.decode(nul < 0 ? name : name.subarray(0, nul)),
        });
      }
      return;
    case HeaderFeature.EventDesc: {
      const nr = c.u32();
      const attrSize = c.u32();
      if (attrSize < ATTR_SIZE_VER0 || attrSize > 4096) throw file.error(base + 4, `event desc: bad attr size ${attrSize}`);
      for (let i = 0; i < nr; i++) {
        c.raw(attrSize);
        const nrIds = c.u32();
        const name = c.string();
        if (nrIds * 8 > c.left) throw file.error(base + c.pos, 'event desc: ids past the section');
        const ids: bigint[] = [];
        for (let k = 0; k < nrIds; k++) ids.push(c.u64());
        f.eventNames.push({ name, ids });
      }
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Encoding feature sections (the writer's side)

/** Growable little-endian byte builder. */
export class ByteBuilder {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }
  u8(x: number): this {
    this.reserve(1);
    this.buf[this.length++] = x & 0xff;
    return this;
  }
  u16(x: number): this {
    this.reserve(2);
    this.view.setUint16(this.length, x, true);
    this.length += 2;
    return this;
  }
  u32(x: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, x >>> 0, true);
    this.length += 4;
    return this;
  }
  u64(x: bigint | number): this {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, BigInt(x)), true);
    this.length += 8;
    return this;
  }
  bytes(b: ArrayLike<number>): this {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
    return this;
  }
  zeros(n: number): this {
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
    return this;
  }
  /** Pad with zeros to a multiple of `align`. */
  align(align: number): this {
    const r = this.length % align;
    return r ? this.zeros(align - r) : this;
  }
  /** Overwrite a u16 already written at `pos`. */
  patchU16(pos: number, x: number): void {
    this.view.setUint16(pos, x, true);
  }
  /** perf's do_write_string: u32 length (NUL included, padded to NAME_ALIGN), then the padded string. */
  perfString(s: string): this {
    const enc = utf8enc.encode(s);
    const len = Math.ceil((enc.length + 1) / NAME_ALIGN) * NAME_ALIGN;
    this.u32(len);
    this.bytes(enc);
    return this.zeros(len - enc.length);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** The bytes of the feature sections the writer emits. */
export function encodeFeature(feat: HeaderFeature, f: PerfFeatures, attrs: PerfAttrEntry[]): Uint8Array {
  const b = new ByteBuilder();
  switch (feat) {
    case HeaderFeature.Hostname:
      return b.perfString(f.hostname ?? '').finish();
    case HeaderFeature.OsRelease:
      return b.perfString(f.osRelease ?? '').finish();
    case HeaderFeature.Version:
      return b.perfString(f.version ?? '').finish();
    case HeaderFeature.Arch:
      return b.perfString(f.arch ?? '').finish();
    case HeaderFeature.CpuDesc:
      return b.perfString(f.cpuDesc ?? '').finish();
    case HeaderFeature.CpuId:
      return b.perfString(f.cpuId ?? '').finish();
    case HeaderFeature.NrCpus:
      return b.u32(f.nrCpusAvail ?? 1).u32(f.nrCpusOnline ?? 1).finish();
    case HeaderFeature.Cmdline: {
      const args = f.cmdline ?? [];
      b.u32(args.length);
      for (const a of args) b.perfString(a);
      return b.finish();
    }
    case HeaderFeature.Auxtrace:
      b.u64(f.auxtraceIndex.length);
      for (const e of f.auxtraceIndex) b.u64(e.fileOffset).u64(e.size);
      return b.finish();
    case HeaderFeature.BuildId:
      for (const e of f.buildIds) {
        const name = utf8enc.encode(e.filename);
        const nameLen = Math.ceil((name.length + 1) / NAME_ALIGN) * NAME_ALIGN;
        const id = Buffer.from(e.buildId, 'hex');
        b.u32(0).u16(e.cpumode | PERF_RECORD_MISC_BUILD_ID_SIZE).u16(BUILD_ID_RECORD_SIZE + nameLen);
        b.u32(e.pid);
        const idField = new Uint8Array(24);
        idField.set(id.subarray(0, 20));
        idField[20] = Math.min(id.length, 20);
        b.bytes(idField).bytes(name).zeros(nameLen - name.length);
      }
      return b.finish();
    case HeaderFeature.EventDesc:
      b.u32(attrs.length).u32(ATTR_SIZE);
      for (const a of attrs) {
        b.bytes(encodeAttr(a.attr)).u32(a.ids.length).perfString(a.name ?? '');
        for (const id of a.ids) b.u64(id);
      }
      return b.finish();
    default:
      throw new Error(`encodeFeature: feature ${feat} is not written`);
  }
}
