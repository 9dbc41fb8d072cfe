/**
 * The memory image a trace is decoded against (libipt's `pt_image`): a set of
 * sections mapped at virtual addresses, each in an address space.
 *
 * Semantics follow libipt's pt_image.c:
 * - Adding a section that overlaps sections in a matching address space
 *   replaces the overlapped bytes: the old sections are cut and their
 *   remaining front and back parts stay mapped.
 * - A read is served by the one section that contains the address and
 *   stops at that section's end; it never continues into the next section.
 * - No section contains the address: `-ErrorCode.NoMap`.
 *
 * Layout for speed: sections are grouped by address space; within a group
 * no two sections overlap (their asids match, so adding one cut the other),
 * so each group is an array sorted by address and searched by bisection.
 * The last section found is tried first. Addresses are signed doubles
 * (see address-space.ts).
 *
 * Every change increments {@link Image.version} so caches built on the
 * image's content (a block cache) can tell they are stale.
 */
import { ErrorCode } from '../packets/errors.js';
import { ANY_ASID, Asid, asidMatch, isExactIp } from './address-space.js';
import { ByteSourceCache, Section } from './section.js';
import { partitionPoint } from './sorted-search.js';
import type { ImageTimeline } from './image-timeline.js';

/** A section, or the part of one that an overlap left, mapped at an address. */
export class MappedSection {
  /** First address after the mapping. */
  readonly end: number;
  /** Offset in the section's byte source of the byte mapped at {@link vaddr}. */
  readonly sourceOffset: number;
  private view: Uint8Array | null = null;

  constructor(
    readonly section: Section,
    readonly asid: Asid,
    /** Address of the first mapped byte. */
    readonly vaddr: number,
    /** Offset in {@link section} of the first mapped byte. */
    readonly offset: number,
    /** Number of mapped bytes. */
    readonly size: number,
    /** Image section identifier, passed through to instructions (libipt's isid). */
    readonly isid: number,
  ) {
    this.end = vaddr + size;
    this.sourceOffset = section.offset + offset;
  }

  /**
   * The mapped bytes: a view into the shared source buffer, created on first
   * use. Shorter than {@link size} only if the file shrank after it was added.
   */
  get bytes(): Uint8Array {
    if (this.view === null) {
      const all = this.section.source.bytes;
      const begin = Math.min(this.sourceOffset, all.length);
      this.view = all.subarray(begin, Math.min(this.sourceOffset + this.size, all.length));
    }
    return this.view;
  }
}

/** The sections of one address space, sorted by address, not overlapping. */
interface AsidGroup {
  readonly asid: Asid;
  readonly list: MappedSection[];
}

export class Image {
  private readonly groups: AsidGroup[] = [];
  private lastHit: MappedSection | null = null;
  private lastAsid: Asid | null = null;
  private changes = 0;
  /**
   * For a stream whose code was rewritten while it ran: the image each part
   * of the trace decodes with (this image holds every address's last
   * version, for whoever reads code without a trace position). Decoders
   * given this image follow it.
   */
  timeline: ImageTimeline<Image> | null = null;

  constructor(readonly name: string = '') {}

  /** Incremented by every change of the mapping. */
  get version(): number {
    return this.changes;
  }

  /** Number of mapped sections. */
  get size(): number {
    let n = 0;
    for (const g of this.groups) n += g.list.length;
    return n;
  }

  /** All mapped sections: grouped by address space, each group by address. */
  sections(): MappedSection[] {
    const out: MappedSection[] = [];
    for (const g of this.groups) out.push(...g.list);
    return out;
  }

  /**
   * Map `section` at `vaddr` in `asid` (libipt's `pt_image_add`). Overlapped
   * parts of sections in matching address spaces are unmapped.
   * Returns 0 or `-ErrorCode.Invalid` (empty section, or an address range the
   * signed-double representation cannot hold exactly).
   */
  add(section: Section, vaddr: number, asid: Asid = ANY_ASID, isid = 0): number {
    const size = section.size;
    if (size <= 0 || !isExactIp(vaddr) || !isExactIp(vaddr + size)) return -ErrorCode.Invalid;
    this.insert(new MappedSection(section, asid, vaddr, 0, size, isid));
    return 0;
  }

  /**
   * Map `size` bytes from `offset` of file `filename` at `vaddr`
   * (libipt's `pt_image_add_file`). `size` is truncated at the end of the file;
   * pass `Infinity` for the whole rest. Throws PtError if the file cannot be
   * opened or `offset` is beyond its end; otherwise returns as {@link add}.
   */
  addFile(
    files: ByteSourceCache,
    filename: string,
    offset: number,
    size: number,
    vaddr: number,
    asid: Asid = ANY_ASID,
    isid = 0,
  ): number {
    return this.add(Section.create(files.file(filename), offset, size), vaddr, asid, isid);
  }

  /**
   * Map a memory buffer at `vaddr`: an overlay over what is mapped there, for
   * code that differs from the file (unpacked, patched or JIT code).
   */
  addMemory(name: string, bytes: Uint8Array, vaddr: number, asid: Asid = ANY_ASID, isid = 0): number {
    if (bytes.length === 0) return -ErrorCode.Invalid;
    return this.add(Section.fromMemory(name, bytes), vaddr, asid, isid);
  }

  /**
   * Unmap the mapping of `section` that starts at `vaddr` in an address space
   * matching `asid` (libipt's `pt_image_remove`). Returns 0, or
   * `-ErrorCode.BadImage` if there is none.
   */
  remove(section: Section, vaddr: number, asid: Asid = ANY_ASID): number {
    for (const g of this.groups) {
      if (!asidMatch(g.asid, asid)) continue;
      const list = g.list;
      for (let i = 0; i < list.length; i++) {
        const m = list[i];
        if (m.section === section && m.vaddr === vaddr) {
          list.splice(i, 1);
          this.changed();
          return 0;
        }
      }
    }
    return -ErrorCode.BadImage;
  }

  /** Unmap every section of file `filename` in address spaces matching `asid`; returns how many. */
  removeByFilename(filename: string, asid: Asid = ANY_ASID): number {
    return this.removeWhere((m) => m.section.filename === filename && asidMatch(m.asid, asid));
  }

  /** Unmap every section in address spaces matching `asid`; returns how many. */
  removeByAsid(asid: Asid): number {
    return this.removeWhere((m) => asidMatch(m.asid, asid));
  }

  /** Unmap everything. */
  clear(): void {
    this.groups.length = 0;
    this.changed();
  }

  /**
   * Add every mapping of `src` to this image (libipt's `pt_image_copy`).
   * Returns the number of mappings that could not be added.
   */
  copyFrom(src: Image): number {
    if (src === this) return 0;
    let ignored = 0;
    for (const m of src.sections()) {
      const piece =
        m.offset === 0 && m.size === m.section.size
          ? m.section
          : new Section(m.section.source, m.sourceOffset, m.size);
      if (this.add(piece, m.vaddr, m.asid, m.isid) < 0) ignored++;
    }
    return ignored;
  }

  /**
   * The mapping that contains `ip` in an address space matching `asid`, or
   * null. This is the decoders' hot path: no allocation.
   */
  find(ip: number, asid: Asid): MappedSection | null {
    const last = this.lastHit;
    if (
      last !== null &&
      ip >= last.vaddr &&
      ip < last.end &&
      (asid === this.lastAsid || asidMatch(last.asid, asid))
    ) {
      return last;
    }
    const groups = this.groups;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g];
      if (!asidMatch(group.asid, asid)) continue;
      const list = group.list;
      // Last section with vaddr <= ip.
      const i = partitionPoint(list.length, (k) => list[k].vaddr <= ip) - 1;
      if (i >= 0) {
        const m = list[i];
        if (ip < m.end) {
          this.lastHit = m;
          this.lastAsid = asid;
          return m;
        }
      }
    }
    return null;
  }

  /**
   * Copy up to `size` bytes at `ip` into `buf` from `bufOffset` (libipt's
   * `pt_image_read`). The read stops at the end of the section that
   * contains `ip`. Returns the number of bytes read (> 0) or `-ErrorCode.NoMap`.
   */
  read(buf: Uint8Array, ip: number, size: number, asid: Asid, bufOffset = 0): number {
    const m = this.find(ip, asid);
    if (m === null) return -ErrorCode.NoMap;
    const bytes = m.bytes;
    const begin = ip - m.vaddr;
    let n = bytes.length - begin;
    if (n <= 0) return -ErrorCode.NoMap;
    if (n > size) n = size;
    if (n > buf.length - bufOffset) n = buf.length - bufOffset;
    for (let i = 0; i < n; i++) buf[bufOffset + i] = bytes[begin + i];
    return n;
  }

  private insert(msec: MappedSection): void {
    const begin = msec.vaddr;
    const end = msec.end;
    const remainders: MappedSection[] = [];
    for (const g of this.groups) {
      if (!asidMatch(g.asid, msec.asid)) continue;
      const list = g.list;
      // First section that ends after `begin`: the first that may overlap.
      const lo = partitionPoint(list.length, (k) => list[k].end <= begin);
      let stop = lo;
      while (stop < list.length && list[stop].vaddr < end) stop++;
      if (stop === lo) continue;
      for (const old of list.splice(lo, stop - lo)) {
        if (old.vaddr < begin) {
          remainders.push(
            new MappedSection(old.section, old.asid, old.vaddr, old.offset, begin - old.vaddr, old.isid),
          );
        }
        if (end < old.end) {
          remainders.push(
            new MappedSection(old.section, old.asid, end, old.offset + (end - old.vaddr), old.end - end, old.isid),
          );
        }
      }
    }
    for (const r of remainders) this.place(r);
    this.place(msec);
    this.changed();
  }

  /** Put a mapping into its address space's group, which has no overlapping section. */
  private place(msec: MappedSection): void {
    let group: AsidGroup | undefined;
    for (const g of this.groups) {
      if (g.asid.cr3 === msec.asid.cr3 && g.asid.vmcs === msec.asid.vmcs) {
        group = g;
        break;
      }
    }
    if (!group) {
      group = { asid: msec.asid, list: [] };
      this.groups.push(group);
    }
    const list = group.list;
    list.splice(
      partitionPoint(list.length, (k) => list[k].vaddr < msec.vaddr),
      0,
      msec,
    );
  }

  private removeWhere(pred: (m: MappedSection) => boolean): number {
    let removed = 0;
    for (const g of this.groups) {
      const list = g.list;
      let w = 0;
      for (let r = 0; r < list.length; r++) {
        if (pred(list[r])) removed++;
        else list[w++] = list[r];
      }
      list.length = w;
    }
    if (removed > 0) this.changed();
    return removed;
  }

  private changed(): void {
    this.changes++;
    this.lastHit = null;
    this.lastAsid = null;
    for (let i = this.groups.length - 1; i >= 0; i--) {
      if (this.groups[i].list.length === 0) this.groups.splice(i, 1);
    }
  }
}
