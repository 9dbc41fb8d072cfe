/**
 * The private shared libraries a program ships beside itself: the DT_NEEDED
 * entries that its DT_RUNPATH or DT_RPATH directories hold (ld.so(8), "Search
 * order"; `-Wl,-rpath,'$ORIGIN'` is the ordinary way to ship a private .so).
 * The sandbox shows these files, read-only, so that the program starts there
 * as it does on the host; never the directories, whose other files (a home
 * directory's) stay hidden. System directories are already in the view.
 *
 * The program may be hostile, and its dynamic section is its own to write:
 * only entries that start with `$ORIGIN` count (an absolute run path could
 * name any host directory, `$LIB` and `$PLATFORM` are skipped), and a file
 * is shown only if it lies, links resolved, inside the directory of the
 * program the analyst named and is an ELF shared object. Each library
 * found is searched the same way for its own private libraries, up to a
 * bound.
 */
import { openSync, readSync, closeSync, fstatSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { ElfFile } from '../../flow/elf.js';

const PT_DYNAMIC = 2;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

/** Bounds: a program's private libraries are few and small next to these. */
const MAX_LIBRARIES = 64;
const MAX_FILE_BYTES = 512 * 1024 * 1024;

interface DynamicNames {
  needed: string[];
  /** DT_RUNPATH if present (it overrides DT_RPATH), else DT_RPATH, split on ':'. */
  searchPath: string[];
}

function readBounded(path: string): Uint8Array | null {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return null;
    const buf = Buffer.alloc(st.size);
    let at = 0;
    while (at < st.size) {
      const n = readSync(fd, buf, at, st.size - at, at);
      if (n === 0) break;
      at += n;
    }
    return buf.subarray(0, at);
  } catch {
    return null;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** The dynamic section's NEEDED names and search path, or null when the file is not a dynamic ELF. */
export function dynamicNames(bytes: Uint8Array): DynamicNames | null {
  let elf: ElfFile;
  try {
    elf = ElfFile.parse(bytes);
  } catch {
    return null;
  }
  const dyn = elf.segments.find((s) => s.type === PT_DYNAMIC);
  if (dyn === undefined) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = elf.littleEndian;
  const is64 = elf.bits === 64;
  const entSize = is64 ? 16 : 8;
  const end = Math.min(dyn.offset + dyn.filesz, bytes.length);
  const entries: { tag: number; value: number }[] = [];
  for (let at = dyn.offset; at + entSize <= end; at += entSize) {
    const tag = is64 ? Number(view.getBigInt64(at, le)) : view.getInt32(at, le);
    const value = is64 ? Number(view.getBigUint64(at + 8, le)) : view.getUint32(at + 4, le);
    if (tag === DT_NULL) break;
    entries.push({ tag, value });
  }
  const strAddr = entries.find((e) => e.tag === DT_STRTAB)?.value;
  const strSize = entries.find((e) => e.tag === DT_STRSZ)?.value ?? 0;
  if (strAddr === undefined) return null;
  // DT_STRTAB is an address: the PT_LOAD segment holding it gives its file offset.
  const seg = elf.loadSegments().find((s) => strAddr >= s.vaddr && strAddr < s.vaddr + s.filesz);
  if (seg === undefined) return null;
  const strOff = seg.offset + (strAddr - seg.vaddr);
  const strEnd = Math.min(strOff + strSize, bytes.length);
  const str = (off: number): string | null => {
    const at = strOff + off;
    if (off < 0 || at >= strEnd) return null;
    const nul = bytes.indexOf(0, at);
    if (nul < 0 || nul >= strEnd) return null;
    return Buffer.from(bytes.subarray(at, nul)).toString('utf8');
  };
  const needed = entries.filter((e) => e.tag === DT_NEEDED).map((e) => str(e.value)).filter((s): s is string => s !== null && s !== '');
  const runpath = entries.find((e) => e.tag === DT_RUNPATH);
  const rpath = entries.find((e) => e.tag === DT_RPATH);
  const chosen = runpath ?? rpath;
  const text = chosen === undefined ? null : str(chosen.value);
  return { needed, searchPath: text === null ? [] : text.split(':').filter((d) => d !== '') };
}

/** Expand an entry that starts with `$ORIGIN`/`${ORIGIN}`; null for any other entry. */
function expandEntry(entry: string, origin: string): string | null {
  const m = /^(?:\$\{ORIGIN\}|\$ORIGIN(?![A-Za-z0-9_]))(.*)$/.exec(entry);
  if (m === null || m[1].includes('$')) return null;
  const expanded = origin + m[1];
  return isAbsolute(expanded) ? expanded : null;
}

const ET_DYN = 3;

/** An ELF shared object (ET_DYN), judged from its header only. */
function isSharedObject(path: string): boolean {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(18);
    if (readSync(fd, head, 0, 18, 0) < 18) return false;
    if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return false;
    const type = head[5] === 2 ? head.readUInt16BE(16) : head.readUInt16LE(16);
    return type === ET_DYN;
  } catch {
    return false;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function isInside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Absolute host paths of the private libraries `program` (absolute) loads through its run paths, its own libraries' included. */
export function privateLibraries(program: string): string[] {
  let root: string;
  try {
    root = dirname(realpathSync(program));
  } catch {
    return [];
  }
  const found: string[] = [];
  const seen = new Set<string>();
  const queue: string[] = [program];
  while (queue.length > 0 && found.length < MAX_LIBRARIES) {
    const object = queue.shift()!;
    const bytes = readBounded(object);
    const names = bytes === null ? null : dynamicNames(bytes);
    if (names === null || names.searchPath.length === 0) continue;
    // ld.so's $ORIGIN is the directory of the object as loaded, links resolved.
    let origin: string;
    try {
      origin = dirname(realpathSync(object));
    } catch {
      continue;
    }
    const dirs = names.searchPath.map((d) => expandEntry(d, origin)).filter((d): d is string => d !== null);
    for (const name of names.needed) {
      if (name.includes('/')) continue; // a path, not searched (ld.so(8))
      for (const dir of dirs) {
        const candidate = join(dir, name);
        let real: string;
        try {
          real = realpathSync(candidate);
          if (!statSync(real).isFile()) continue;
        } catch {
          continue; // not in this directory
        }
        if (!isInside(real, root) || !isSharedObject(real)) continue;
        if (!seen.has(candidate)) {
          seen.add(candidate);
          found.push(candidate);
          queue.push(candidate);
        }
        break;
      }
    }
  }
  return found.slice(0, MAX_LIBRARIES);
}
