/**
 * The recorded program's executable mappings, so that every executed IP maps
 * to a file and offset (the raw images a decoder needs).
 *
 * Sources, all from qemu's log:
 * - The main binary and its ELF interpreter (ld.so) are loaded by qemu
 *   itself, not by syscalls. The post-load layout dump (`-d page`) gives
 *   `start_code` (lowest address of the main binary's executable segments)
 *   and `entry` (the interpreter's entry point when there is one, else the
 *   program's); with the ELF program headers they give both load biases.
 * - Everything else (shared libraries, dlopen) is mapped by the guest:
 *   `-strace` shows `openat(...) = fd` and `mmap(addr,len,prot,flags,fd,off)
 *   = result`. Executable file mappings are kept; `close` forgets an fd.
 *
 * A later mapping replaces the parts of earlier ones it overlaps, as mmap
 * does. Mappings are never dropped on munmap: the image describes every
 * address that executed during the recording.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ElfFile, PF_X, PT_LOAD } from '../../flow/elf.js';

const PT_INTERP = 3;

/** One executable file mapping. */
export interface ImageMapping {
  /** The file as the program named it (absolute). */
  path: string;
  /** First mapped byte's offset in the file. */
  offset: number;
  /** Bytes mapped from the file (clipped to the file's size). */
  size: number;
  /** Load address. */
  address: number;
}

export class MemoryMap {
  private readonly fds = new Map<number, string>();
  private mappings: ImageMapping[] = [];
  private startCode = NaN;
  private entry = NaN;
  /** Warnings for the report (unparsable lines are not errors). */
  readonly warnings: string[] = [];
  /** True after a successful execve: the recorder stops following. */
  execed = false;

  constructor(
    /** The program as given to qemu (absolute path). */
    private readonly program: string,
    /** The guest's working directory, for relative openat paths. */
    private readonly cwd: string,
  ) {}

  layout(name: string, value: number): void {
    if (name === 'start_code') this.startCode = value;
    else if (name === 'entry') this.entry = value;
  }

  /**
   * Place the main binary and its interpreter once the layout is known.
   * Returns false if the layout lines were missing.
   */
  placeLoadedElves(): boolean {
    if (Number.isNaN(this.startCode) || Number.isNaN(this.entry)) return false;
    const main = ElfFile.parse(readFileSync(this.program), this.program);
    const execSegs = main.segments.filter((s) => s.type === PT_LOAD && (s.flags & PF_X) !== 0);
    if (execSegs.length === 0) return false;
    const mainBias = this.startCode - Math.min(...execSegs.map((s) => s.vaddr));
    this.addElf(this.program, main, mainBias);
    const interp = interpreterOf(main, this.program);
    if (interp !== null) {
      const ld = ElfFile.parse(readFileSync(interp), interp);
      this.addElf(interp, ld, this.entry - ld.entry);
    }
    return true;
  }

  private addElf(path: string, elf: ElfFile, bias: number): void {
    for (const s of elf.segments) {
      if (s.type !== PT_LOAD || (s.flags & PF_X) === 0 || s.filesz === 0) continue;
      this.add({ path, offset: s.offset, size: s.filesz, address: s.vaddr + bias });
    }
  }

  /** One `-strace` line (without the pid). */
  syscall(line: string): void {
    const paren = line.indexOf('(');
    if (paren <= 0) return;
    const name = line.slice(0, paren);
    switch (name) {
      case 'openat':
      case 'open': {
        const m = /^open(?:at)?\((?:[^,]*,)?"((?:[^"\\]|\\.)*)",.*\) = (-?\d+)/.exec(line);
        if (m && Number(m[2]) >= 0) {
          const p = m[1];
          this.fds.set(Number(m[2]), isAbsolute(p) ? p : resolve(this.cwd, p));
        }
        return;
      }
      case 'close': {
        const m = /^close\((\d+)\) = 0/.exec(line);
        if (m) this.fds.delete(Number(m[1]));
        return;
      }
      case 'mmap': {
        const m = /^mmap\(([^,]+),(\d+),([^,]+),([^,]+),(-?\d+),(0x[0-9a-fA-F]+|\d+)\)\s*= (0x[0-9a-fA-F]+|-\d+)/.exec(line);
        if (!m || !m[3].includes('PROT_EXEC') || m[7].startsWith('-')) return;
        const fd = Number(m[5]);
        const path = this.fds.get(fd);
        if (path === undefined) {
          if (fd >= 0) this.warnings.push(`executable mapping of unknown fd ${fd}: ${line}`);
          return;
        }
        const offset = Number(m[6]);
        let size = Number(m[2]);
        try {
          size = Math.min(size, statSync(path).size - offset);
        } catch {
          this.warnings.push(`cannot stat ${path}`);
          return;
        }
        if (size > 0) this.add({ path, offset, size, address: Number(m[7]) });
        return;
      }
      case 'execve': {
        if (/\) = 0\s*$/.test(line)) this.execed = true;
        return;
      }
      default:
        return;
    }
  }

  /** Add a mapping, cutting the parts of older ones it covers. */
  add(m: ImageMapping): void {
    const end = m.address + m.size;
    const kept: ImageMapping[] = [];
    for (const o of this.mappings) {
      const oEnd = o.address + o.size;
      if (oEnd <= m.address || o.address >= end) {
        kept.push(o);
        continue;
      }
      if (o.address < m.address) kept.push({ ...o, size: m.address - o.address });
      if (oEnd > end) kept.push({ ...o, offset: o.offset + (end - o.address), address: end, size: oEnd - end });
    }
    kept.push(m);
    kept.sort((a, b) => a.address - b.address);
    this.mappings = kept;
  }

  /** The executable mappings, by address. */
  images(): readonly ImageMapping[] {
    return this.mappings;
  }

  /** True if `ip` lies in a known mapping. */
  contains(ip: number): boolean {
    let lo = 0;
    let hi = this.mappings.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.mappings[mid];
      if (ip < m.address) hi = mid - 1;
      else if (ip >= m.address + m.size) lo = mid + 1;
      else return true;
    }
    return false;
  }
}

/** The PT_INTERP path of `elf`, or null for a static binary. */
export function interpreterOf(elf: ElfFile, path: string): string | null {
  const seg = elf.segments.find((s) => s.type === PT_INTERP);
  if (!seg) return null;
  const bytes = readFileSync(path);
  let end = seg.offset;
  while (end < seg.offset + seg.filesz && bytes[end] !== 0) end++;
  return bytes.toString('latin1', seg.offset, end);
}
