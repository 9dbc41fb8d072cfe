/**
 * ELF core files (x86-64): the state of a process when it died, as Linux
 * (fs/binfmt_elf.c) and qemu-user (linux-user/elfload.c) write it.
 *
 * - PT_NOTE segments hold notes: NT_PRSTATUS (the signal and the general
 *   registers, `struct elf_prstatus`: 112 bytes of header, then
 *   `user_regs_struct`, 27 8-byte registers), NT_SIGINFO (`siginfo_t`: the
 *   signal, its code and the faulting address), NT_AUXV (the auxiliary
 *   vector), NT_FILE (the file-backed mappings: count, page size, then
 *   start/end/page-offset triples, then the NUL-separated names). qemu 7
 *   writes only NT_PRSTATUS, NT_PRPSINFO and NT_AUXV.
 * - PT_LOAD segments hold the memory: `filesz` bytes at `vaddr`; the rest
 *   up to `memsz` was not dumped (unreadable or skipped) and reads as
 *   unknown.
 *
 * This is the one core reader: `ptscope crash` reads `--core` and bundle
 * cores with it, and the recorder reads qemu's core of the guest with it.
 * A core is hostile (the program made it, or a bundle brought it): a file
 * is read only if it is a regular file, not through a final symlink, and
 * within {@link MAX_CORE_BYTES}; every offset is checked against the size.
 */
import { InputError, readBoundedFile } from './import/safe-files.js';
import { partitionPoint } from '../flow/sorted-search.js';

const ET_CORE = 4;
const EM_X86_64 = 62;
const PT_LOAD = 1;
const PT_NOTE = 4;
const NT_PRSTATUS = 1;
const NT_AUXV = 6;
const NT_SIGINFO = 0x53494749;
const NT_FILE = 0x46494c45;
/** Offset of `pr_reg` in x86-64 `struct elf_prstatus`. */
const PR_REG_OFFSET = 112;

/** `user_regs_struct` order (arch/x86/include/asm/user_64.h). */
export const CORE_REGISTER_NAMES = [
  'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi',
  'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
] as const;
export type CoreRegisterName = (typeof CORE_REGISTER_NAMES)[number];

/** The largest core read. */
export const MAX_CORE_BYTES = 2 ** 31;

/** A core file that cannot be read: one line for the user. */
export class CoreFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CoreFileError';
  }
}

export interface CoreSegment {
  vaddr: number;
  memsz: number;
  /** Bytes present in the file (a prefix of the segment). */
  data: Uint8Array;
  flags: number;
}

export interface CoreFileMapping {
  start: number;
  end: number;
  /** Offset in the file, in bytes. */
  offset: number;
  path: string;
}

export interface CoreSigInfo {
  signo: number;
  code: number;
  errno: number;
  /** si_addr for SIGSEGV/SIGBUS/SIGILL/SIGFPE, else NaN. */
  addr: number;
}

/** `n` rounded up to a multiple of 4 (note name and descriptor padding), exact for any 32-bit size. */
function align4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

export class CoreFile {
  /** The signal from NT_PRSTATUS (pr_cursig). */
  readonly signal: number;
  readonly pid: number;
  /** Registers by name (64-bit values). */
  readonly registers: ReadonlyMap<CoreRegisterName, bigint>;
  readonly siginfo: CoreSigInfo | null;
  readonly auxv: ReadonlyMap<number, bigint>;
  readonly files: readonly CoreFileMapping[];
  readonly segments: readonly CoreSegment[];

  private constructor(init: {
    signal: number;
    pid: number;
    registers: Map<CoreRegisterName, bigint>;
    siginfo: CoreSigInfo | null;
    auxv: Map<number, bigint>;
    files: CoreFileMapping[];
    segments: CoreSegment[];
  }) {
    this.signal = init.signal;
    this.pid = init.pid;
    this.registers = init.registers;
    this.siginfo = init.siginfo;
    this.auxv = init.auxv;
    this.files = init.files;
    this.segments = init.segments.sort((a, b) => a.vaddr - b.vaddr);
  }

  static load(path: string): CoreFile {
    let bytes: Buffer;
    try {
      bytes = readBoundedFile(path, MAX_CORE_BYTES, path);
    } catch (e) {
      throw new CoreFileError(e instanceof InputError ? e.message : `${path}: cannot read (${(e as Error).message})`);
    }
    return CoreFile.parse(bytes, path);
  }

  /** Parse an x86-64 ELF core. Throws {@link CoreFileError} for anything else or a truncated file. */
  static parse(bytes: Uint8Array, name = 'core'): CoreFile {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const bad = (why: string): CoreFileError => new CoreFileError(`${name}: ${why}`);
    if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw bad('not an ELF file');
    if (b[4] !== 2 || b[5] !== 1) throw bad('not a 64-bit little-endian ELF file');
    if (b.readUInt16LE(16) !== ET_CORE) throw bad(`not a core file (ELF type ${b.readUInt16LE(16)})`);
    if (b.readUInt16LE(18) !== EM_X86_64) throw bad(`not an x86-64 core (machine ${b.readUInt16LE(18)})`);
    const phoff = Number(b.readBigUInt64LE(32));
    if (phoff > b.length) throw bad('truncated: the program headers start past the end of the file');
    const phentsize = b.readUInt16LE(54);
    const phnum = b.readUInt16LE(56);
    if (phentsize < 56 || phoff + phnum * phentsize > b.length) throw bad('truncated: program headers run past the end of the file');

    let signal = 0;
    let pid = 0;
    const registers = new Map<CoreRegisterName, bigint>();
    let siginfo: CoreSigInfo | null = null;
    const auxv = new Map<number, bigint>();
    const files: CoreFileMapping[] = [];
    const segments: CoreSegment[] = [];
    let sawPrstatus = false;

    for (let i = 0; i < phnum; i++) {
      const ph = phoff + i * phentsize;
      const type = b.readUInt32LE(ph);
      const flags = b.readUInt32LE(ph + 4);
      const offset = Number(b.readBigUInt64LE(ph + 8));
      const vaddr = Number(b.readBigUInt64LE(ph + 16));
      const filesz = Number(b.readBigUInt64LE(ph + 32));
      const memsz = Number(b.readBigUInt64LE(ph + 40));
      if (type === PT_LOAD) {
        if (filesz > 0 && (offset > b.length || filesz > b.length - offset)) throw bad(`truncated: segment at 0x${vaddr.toString(16)} needs bytes up to ${offset + filesz}, the file has ${b.length}`);
        segments.push({ vaddr, memsz, flags, data: filesz > 0 ? new Uint8Array(b.buffer, b.byteOffset + offset, filesz) : new Uint8Array(0) });
      } else if (type === PT_NOTE) {
        if (offset > b.length || filesz > b.length - offset) throw bad('truncated: the notes run past the end of the file');
        let p = offset;
        const end = offset + filesz;
        while (p + 12 <= end) {
          const namesz = b.readUInt32LE(p);
          const descsz = b.readUInt32LE(p + 4);
          const ntype = b.readUInt32LE(p + 8);
          // Sizes are 32-bit unsigned: align with arithmetic, not 32-bit signed bit operations.
          const desc = p + 12 + align4(namesz);
          if (desc > end || descsz > end - desc) throw bad('truncated note');
          const d = b.subarray(desc, desc + descsz);
          if (ntype === NT_PRSTATUS && !sawPrstatus) {
            if (descsz < PR_REG_OFFSET + CORE_REGISTER_NAMES.length * 8) throw bad(`NT_PRSTATUS of ${descsz} bytes is too short for x86-64`);
            sawPrstatus = true;
            signal = d.readUInt16LE(12);
            pid = d.readInt32LE(32);
            CORE_REGISTER_NAMES.forEach((r, k) => registers.set(r, d.readBigUInt64LE(PR_REG_OFFSET + k * 8)));
          } else if (ntype === NT_SIGINFO && descsz >= 24) {
            const signo = d.readInt32LE(0);
            const fault = signo === 11 || signo === 7 || signo === 4 || signo === 8;
            siginfo = { signo, errno: d.readInt32LE(4), code: d.readInt32LE(8), addr: fault ? Number(d.readBigUInt64LE(16)) : NaN };
          } else if (ntype === NT_AUXV) {
            for (let k = 0; k + 16 <= descsz; k += 16) {
              const key = Number(d.readBigUInt64LE(k));
              if (key === 0) break;
              auxv.set(key, d.readBigUInt64LE(k + 8));
            }
          } else if (ntype === NT_FILE && descsz >= 16) {
            const count = Number(d.readBigUInt64LE(0));
            const pageSize = Number(d.readBigUInt64LE(8));
            if (count > (descsz - 16) / 24) throw bad('NT_FILE note is truncated');
            let names = 16 + count * 24;
            for (let k = 0; k < count; k++) {
              const q = 16 + k * 24;
              const nul = d.indexOf(0, names);
              const stop = nul < 0 ? descsz : nul;
              files.push({
                start: Number(d.readBigUInt64LE(q)),
                end: Number(d.readBigUInt64LE(q + 8)),
                offset: Number(d.readBigUInt64LE(q + 16)) * pageSize,
                path: d.toString('utf8', names, stop),
              });
              names = stop + 1;
            }
          }
          p = desc + align4(descsz);
        }
      }
    }
    if (!sawPrstatus) throw bad('no NT_PRSTATUS note (no registers)');
    return new CoreFile({ signal, pid, registers, siginfo, auxv, files, segments });
  }

  reg(name: CoreRegisterName): bigint {
    return this.registers.get(name)!;
  }

  get rip(): number {
    return Number(this.reg('rip'));
  }

  /** The segment holding `addr` (mapped, whether or not its bytes were dumped), or null. */
  segmentAt(addr: number): CoreSegment | null {
    const s = this.segments;
    const i = partitionPoint(s.length, (k) => s[k].vaddr <= addr) - 1;
    if (i < 0) return null;
    const seg = s[i];
    return addr < seg.vaddr + seg.memsz ? seg : null;
  }

  /** True if `addr` was mapped in the process. */
  isMapped(addr: number): boolean {
    return this.segmentAt(addr) !== null;
  }

  /** The byte at `addr`, or -1 if it is not in the dump. */
  byte(addr: number): number {
    const seg = this.segmentAt(addr);
    if (seg === null) return -1;
    const k = addr - seg.vaddr;
    return k < seg.data.length ? seg.data[k] : -1;
  }

  /** `size` bytes (1..8) at `addr` as a little-endian value, or null if any byte is not in the dump. */
  read(addr: number, size: number): bigint | null {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) {
      const x = this.byte(addr + i);
      if (x < 0) return null;
      v = (v << 8n) | BigInt(x);
    }
    return v;
  }

  /** Up to `size` bytes at `addr`, stopping at the first byte that is not in the dump. */
  bytesAt(addr: number, size: number): Uint8Array {
    const seg = this.segmentAt(addr);
    if (seg === null) return new Uint8Array(0);
    const k = addr - seg.vaddr;
    return seg.data.subarray(k, Math.min(seg.data.length, k + size));
  }
}
